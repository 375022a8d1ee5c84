// Options shared by the operator commands, and how they read, check and report.
import { resolve } from 'node:path';
import { DEFAULTS, ENV, optionName } from '../config.js';

export const spoolFlag = ['--spool <dir>', `spool root (env INTAKE_SPOOL, default ${DEFAULTS.spool})`] as const;
export const deadAfterFlag = ['--dead-after-ms <n>', `a node whose heartbeat stops this long is dead (env INTAKE_DEAD_AFTER_MS, default ${DEFAULTS.deadAfterMs})`] as const;
export const jsonFlag = ['--json', 'print the result as one JSON document'] as const;

export const spoolOf = (o: { spool?: string }) => resolve(o.spool ?? process.env[ENV.spool] ?? DEFAULTS.spool);

export const deadAfterOf = (o: { deadAfterMs?: string }): number => {
  const v = o.deadAfterMs ?? process.env[ENV.deadAfterMs] ?? DEFAULTS.deadAfterMs;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 200 || n > 600_000) fail(`INTAKE_BAD_CONFIG: ${optionName('deadAfterMs')} must be an integer from 200 to 600000, got ${JSON.stringify(v)}`);
  return n;
};

/** A count of seconds or milliseconds given on the command line (--timeout, --idle-ms): a bad one would wait forever. */
export function positive(v: string, flag: string, o: { zero?: boolean } = {}): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !o.zero) || v.trim() === '') {
    fail(`INTAKE_BAD_CONFIG: ${flag} must be a ${o.zero ? 'non-negative' : 'positive'} number, got ${JSON.stringify(v)}`);
  }
  return n;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Fail the command: message to stderr, exit code 1. */
export function fail(message: string): never {
  process.stderr.write(`intake: ${message}\n`);
  process.exit(1);
}

/** The command's answer on stdout: JSON with --json, else the line for people. */
export function out(o: { json?: boolean }, json: unknown, text: string): void {
  process.stdout.write((o.json ? JSON.stringify(json) : text) + '\n');
}

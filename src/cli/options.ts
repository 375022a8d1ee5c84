// Options shared by the operator commands.
import { DEFAULTS } from '../config.js';
import { resolve } from 'node:path';

export const spoolFlag = ['--spool <dir>', `spool root (env INTAKE_SPOOL, default ${DEFAULTS.spool})`] as const;
export const deadAfterFlag = ['--dead-after-ms <n>', `a node whose heartbeat stops this long is dead (env INTAKE_DEAD_AFTER_MS, default ${DEFAULTS.deadAfterMs})`] as const;

export const spoolOf = (o: { spool?: string }) => resolve(o.spool ?? process.env.INTAKE_SPOOL ?? DEFAULTS.spool);
export const deadAfterOf = (o: { deadAfterMs?: string }) => Number(o.deadAfterMs ?? process.env.INTAKE_DEAD_AFTER_MS ?? DEFAULTS.deadAfterMs);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Fail the command: message to stderr, exit code 1. */
export function fail(message: string): never {
  process.stderr.write(`intake: ${message}\n`);
  process.exit(1);
}

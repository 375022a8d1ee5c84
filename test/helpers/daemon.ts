// Start real intake processes for tests: `node bin/intake.js start` as a child process, on an
// ephemeral port, killed with real signals.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root (this file runs as dist/test/helpers/daemon.js). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const intakeBin = join(repoRoot, 'bin', 'intake.js');

export interface DaemonOptions {
  spool: string;
  db: string;
  mode?: 'receive' | 'save' | 'both';
  nodeId?: string;
  port?: number;
  /** Extra CLI arguments for `intake start`. */
  args?: string[];
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /** Another build's bin/intake.js (the power-loss test's mutants); default this repository's. */
  bin?: string;
}

export interface Daemon {
  url: string;
  nodeId: string;
  proc: ChildProcess;
  /** Everything the process printed so far (pino JSON lines and stderr). */
  output(): string;
  /** Send a signal and wait for the exit; resolves to the exit code (null when killed by a signal). */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * The process's output once it matches `re`, or at the deadline (then the caller's own assertion
 * fails with its message): a node's logger writes asynchronously, through libuv's thread pool, so
 * a line logged before an HTTP answer can reach the output after it.
 */
export async function outputOnceLogged(p: { output(): string }, re: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!re.test(p.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return p.output();
}

export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  const nodeId = o.nodeId ?? `test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const args = [
    o.bin ?? intakeBin,
    'start',
    '--port',
    String(o.port ?? 0),
    '--spool',
    o.spool,
    '--db',
    o.db,
    '--mode',
    o.mode ?? 'both',
    '--node-id',
    nodeId,
    ...(o.args ?? []),
  ];
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.setEncoding('utf8');
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`intake did not start within ${o.startTimeoutMs ?? 20000} ms:\n${out}`));
    }, o.startTimeoutMs ?? 20000);
    let buf = '';
    proc.stdout!.on('data', (d: string) => {
      out += d;
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.includes('"intake node started"')) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { url: string }).url);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`intake exited with ${code} before it started:\n${out}`));
    });
  });
  return {
    url,
    nodeId,
    proc,
    output: () => out,
    exited,
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** Run the intake CLI to completion; returns exit code and output. */
export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [intakeBin, ...args], { env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? repoRoot });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

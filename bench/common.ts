// Shared pieces of the benchmark: the request body, child processes and temp dirs that are
// cleaned up whatever happens, peak RSS from /proc, percentiles, machine facts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type Daemon, type DaemonOptions } from '../test/helpers/daemon.js';

/** This file runs as dist/bench/common.js. */
export const distBench = fileURLToPath(new URL('./', import.meta.url));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Progress goes to stderr; stdout carries only the final markdown table. */
export function say(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Runs one part of the benchmark; a failure is said and handed back, so the other parts still run. */
export async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T | Error> {
  try {
    return await fn();
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    say(`${what} failed: ${e.stack ?? e.message}`);
    return e;
  }
}

/** Says how many warning or error lines a daemon logged (pino levels 40-60) and the first of them. */
export function sayWarnings(what: string, daemon: { output(): string }): void {
  const warnings = daemon
    .output()
    .split('\n')
    .filter((l) => /"level":(40|50|60)/.test(l));
  if (warnings.length) say(`${what}: ${warnings.length} warning/error log lines, first: ${warnings[0]!.slice(0, 300)}`);
}

// ---- the request body ---------------------------------------------------------------------

export const CALLBACK_URL = 'https://client.example.com/hooks/intake?tenant=acme';

/** A realistic ~500-byte payload object (an order, as a client might send one). */
export function samplePayload(i = 0): Record<string, unknown> {
  return {
    type: 'order.review',
    order_id: `ord_${(100000 + i).toString(36)}_7f3a9c`,
    customer: { id: 'cus_4f8e2a19', name: 'Ada Lovelace', email: 'ada@example.com', tier: 'gold' },
    items: [
      { sku: 'SKU-1001-BLK', qty: 2, unit_price: 1999 },
      { sku: 'SKU-2040-RED', qty: 1, unit_price: 4599 },
      { sku: 'SKU-3310-GRN', qty: 5, unit_price: 299 },
    ],
    currency: 'EUR',
    total: 10092,
    note: 'Please check the shipping address before approval; Saturday delivery requested.',
    tags: ['priority', 'eu'],
  };
}

/** A POST /v1/requests body: the sample payload and this callback URL. */
export const requestBody = (callbackUrl: string) => JSON.stringify({ payload: samplePayload(), callback_url: callbackUrl });

/** The POST /v1/requests body used by every load run whose callbacks are not delivered. */
export const REQUEST_BODY = requestBody(CALLBACK_URL);

// ---- child processes and temp dirs, cleaned up even on error --------------------------------

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** A temp dir under `base` (default: the OS temp dir), removed by cleanupNow() if still there. */
export function tempDir(prefix: string, base = tmpdir()): string {
  const d = mkdtempSync(join(base, prefix));
  dirs.add(d);
  return d;
}

export function removeDir(d: string): void {
  if (!process.env.INTAKE_KEEP_TMP) rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

/** Stop a child: SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

const hooks = new Set<() => void>();

/**
 * A synchronous cleanup step for something that is neither a tracked child nor a temp dir (a
 * PostgreSQL server and its data dir); cleanupNow() runs it. Returns the function that removes it
 * again (call that once the thing was closed the normal way).
 */
export function onCleanup(fn: () => void): () => void {
  hooks.add(fn);
  return () => void hooks.delete(fn);
}

/** Synchronous last resort: run the cleanup hooks, kill every child still alive and remove every temp dir. */
export function cleanupNow(): void {
  for (const h of [...hooks]) {
    hooks.delete(h);
    try {
      h();
    } catch {
      // best effort
    }
  }
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
  for (const d of [...dirs]) {
    try {
      removeDir(d);
    } catch {
      // best effort
    }
  }
}

let hooked = false;
export function installCleanupHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      say(`${sig}: cleaning up`);
      cleanupNow();
      process.exit(130);
    });
  }
}

/**
 * startDaemon (test/helpers/daemon.ts) whose process is cleaned up even when the benchmark is
 * interrupted while the daemon is still starting (before its ChildProcess is handed back).
 */
export async function startTrackedDaemon(o: DaemonOptions): Promise<Daemon> {
  const before = new Set(childPids(process.pid));
  const starting = startDaemon(o); // spawns synchronously, then waits for "intake node started"
  const spawned = childPids(process.pid).filter((p) => !before.has(p));
  const unhook = onCleanup(() => {
    for (const p of spawned) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });
  try {
    const d = await starting;
    track(d.proc);
    return d;
  } finally {
    unhook();
  }
}

/** Start a compiled bench script (dist/bench/<name>.js) and wait for its JSON `{url}` line. */
export async function startScript(name: string, args: string[] = [], timeoutMs = 15000): Promise<{ url: string; proc: ChildProcess }> {
  const proc = track(spawn(process.execPath, [join(distBench, name), ...args], { stdio: ['ignore', 'pipe', 'inherit'] }));
  proc.stdout!.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs} ms`)), timeoutMs);
    proc.stdout!.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const v = JSON.parse(line) as { url?: string };
          if (v.url) {
            clearTimeout(timer);
            resolve(v.url);
          }
        } catch {
          // not ours
        }
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it started`));
    });
  });
  return { url, proc };
}

// ---- measurements ---------------------------------------------------------------------------

/** Peak resident set size of a live process in bytes (VmHWM), or null when unreadable. */
export function peakRssBytes(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** A growable list of float samples. */
export class Samples {
  private buf = new Float64Array(1 << 16);
  private n = 0;
  add(v: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
  }
  get count(): number {
    return this.n;
  }
  sorted(): Float64Array {
    return this.buf.slice(0, this.n).sort();
  }
}

export interface Machine {
  nproc: number;
  cpu: string;
  node: string;
  kernel: string;
  memory: string;
  tmp: string;
}

export async function machineInfo(): Promise<Machine> {
  const os = await import('node:os');
  let cpu = 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  let tmp = tmpdir();
  try {
    // which file system the temp dir (spool and database of the benchmark) lives on
    const mounts = readFileSync('/proc/mounts', 'utf8').trim().split('\n').map((l) => l.split(' '));
    let best: string[] | undefined;
    for (const m of mounts) if (m[1] && tmp.startsWith(m[1]) && (!best || m[1].length > best[1]!.length)) best = m;
    if (best) tmp = `${tmpdir()} (${best[2]} on ${best[0]})`;
  } catch {
    // not Linux
  }
  return {
    nproc: os.availableParallelism(),
    cpu,
    node: process.version,
    kernel: `${os.type()} ${release()}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    tmp,
  };
}

// ---- CPU accounting (Linux /proc; ticks are USER_HZ, 100 per second) --------------------------

/** utime + stime of a process in ticks, or 0 when unreadable. */
export function processTicks(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Direct children of `ppid` (from /proc), as pids. */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === ppid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * CPU ticks of a process and its live children plus the children it has already reaped
 * (cutime + cstime): a PostgreSQL postmaster and its backends, say.
 */
export function treeTicks(pid: number | undefined): number {
  if (pid === undefined) return 0;
  let total = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
  for (const c of childPids(pid)) total += processTicks(c);
  return total;
}

/** Busy ticks of the whole machine (all CPUs, everything but idle and iowait). */
export function machineBusyTicks(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return total - (v[3] ?? 0) - (v[4] ?? 0);
  } catch {
    return 0;
  }
}

/** CPU used during an interval, in percent of one core: by `pids`, and by every other process. */
export class CpuMeter {
  private readonly pids: (number | undefined)[];
  private readonly ticks: ((pid: number | undefined) => number)[];
  private t0 = 0;
  private own0: number[] = [];
  private busy0 = 0;
  /** `treePids` count with their children (treeTicks) and come after `pids` in perPid. */
  constructor(pids: (number | undefined)[], treePids: (number | undefined)[] = []) {
    this.pids = [...pids, ...treePids];
    this.ticks = [...pids.map(() => processTicks), ...treePids.map(() => treeTicks)];
  }
  start(): void {
    this.t0 = performance.now();
    this.own0 = this.pids.map((p, i) => this.ticks[i]!(p));
    this.busy0 = machineBusyTicks();
  }
  /** Per-pid CPU % and the rest of the machine's CPU % since start(). */
  stop(): { perPid: number[]; others: number; seconds: number } {
    const seconds = (performance.now() - this.t0) / 1000;
    const own = this.pids.map((p, i) => (this.ticks[i]!(p) - this.own0[i]!) / seconds);
    const busy = (machineBusyTicks() - this.busy0) / seconds;
    return { perPid: own, others: Math.max(0, busy - own.reduce((a, b) => a + b, 0)), seconds };
  }
}

// ---- the disk ----------------------------------------------------------------------------------

/** Flush dirty pages of earlier phases (sync(1)) so they do not land in the next timed section. */
export function settleDisk(): void {
  spawnSync('sync', { stdio: 'ignore' });
}

/** fdatasync latency of small appends in `dir`: what one spool group commit pays at least. */
export function fsyncProbe(dir: string, syncs = 200, bytes = 16 * 1024): { p50Ms: number; p99Ms: number; meanMs: number; syncs: number; bytes: number } {
  const path = join(dir, 'fsync-probe.dat');
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(bytes, 0x61);
  const ts: number[] = [];
  try {
    for (let i = 0; i < syncs; i++) {
      writeSync(fd, buf, 0, buf.length, i * bytes);
      const t = performance.now();
      fdatasyncSync(fd);
      ts.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  ts.sort((a, b) => a - b);
  return { p50Ms: percentile(ts, 50), p99Ms: percentile(ts, 99), meanMs: ts.reduce((a, b) => a + b, 0) / ts.length, syncs, bytes };
}

// Callbacks and the processing API.
//
// Delivery: N completed requests wait in the callback outbox of a database prepared through the
// store API (insertRequests, then claimWork in batches of 100 and completeWork, untimed; their
// callback URL is the benchmark's receiver, bench/callback-receiver.ts, a node:http server in
// its own process answering 200). Then a daemon in mode `both` is started on that database with
// INTAKE_CALLBACK_ALLOW_CIDRS=127.0.0.1/32, and the time from spawning it until the receiver has
// got the Nth callback gives callbacks delivered per second (the daemon's start-up included).
// Baseline, same run, same receiver: autocannon POSTing a body of the same size with the same
// webhook headers over 64 keep-alive connections (the dispatcher's concurrency), i.e. what the
// receiver and this machine manage without intake in the way.
//
// Round trips: a daemon (mode both) over a backlog of pending requests; 16 workers over HTTP
// keep-alive, each in a loop: POST /v1/work/claim {limit: 1}, then POST /v1/work/:id/complete.
// Round trips per second and the latency of one (claim + complete), after a warm-up. The
// callbacks these completions make go to the same receiver meanwhile, as in production.
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import autocannon from 'autocannon';
import pg from 'pg';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import { COMPLETED_EVENT, webhookIdFor } from '../src/work/routes.js';
import { CpuMeter, percentile, processTicks, removeDir, Samples, say, sayWarnings, settleDisk, startScript, startTrackedDaemon, stopChild, tempDir } from './common.js';
import { makeRecord } from './drain.js';
import type { BenchPg } from './pg.js';
import { runWorkers, sampleResult } from './work-loop.js';

export type Engine = 'sqlite' | 'postgres';

/** The callback body exactly as POST /v1/work/:id/complete builds it (src/work/routes.ts). */
export function callbackBody(id: string, result: unknown): string {
  return JSON.stringify({ type: COMPLETED_EVENT, timestamp: new Date().toISOString(), data: { id, status: 'completed', result } });
}

const wallNow = () => performance.timeOrigin + performance.now();

/**
 * The daemons' environment: callbacks to 127.0.0.1 allowed. INTAKE_BENCH_DAEMON_NODE_OPTIONS, when
 * set, becomes their NODE_OPTIONS (say --require of a module that starts node:inspector's profiler;
 * --cpu-prof itself is not allowed in NODE_OPTIONS).
 */
export function daemonEnv(): Record<string, string> {
  const env: Record<string, string> = { INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32' };
  if (process.env.INTAKE_BENCH_DAEMON_NODE_OPTIONS) env.NODE_OPTIONS = process.env.INTAKE_BENCH_DAEMON_NODE_OPTIONS;
  return env;
}

// ---- the receiver (a child process) ------------------------------------------------------------

export interface ReceiverStats {
  count: number;
  unique: number;
  bytes: number;
  firstAt: number | null;
  lastAt: number | null;
  connections: number;
}

export class Receiver {
  readonly url: string;
  readonly proc: ChildProcess;
  private waiter: ((at: number) => void) | null = null;

  private constructor(url: string, proc: ChildProcess) {
    this.url = url;
    this.proc = proc;
    let buf = '';
    proc.stdout!.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const v = JSON.parse(line) as { reached?: number; at?: number };
          if (v.reached !== undefined && v.at !== undefined) this.waiter?.(v.at);
        } catch {
          // not ours
        }
      }
    });
  }

  static async start(): Promise<Receiver> {
    const s = await startScript('callback-receiver.js');
    return new Receiver(s.url, s.proc);
  }

  /** Zero the counters; `reached` resolves with the wall time of the `expect`th POST, or null after `timeoutMs`. */
  async reset(expect = 0, timeoutMs = 0): Promise<{ reached: Promise<number | null> }> {
    const reached =
      expect > 0
        ? new Promise<number | null>((resolve) => {
            const t = setTimeout(() => {
              this.waiter = null;
              resolve(null);
            }, timeoutMs);
            this.waiter = (at) => {
              clearTimeout(t);
              this.waiter = null;
              resolve(at);
            };
          })
        : Promise.resolve(null);
    const res = await fetch(`${this.url}/_reset?expect=${expect}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    return { reached };
  }

  async stats(): Promise<ReceiverStats> {
    const res = await fetch(`${this.url}/_stats`, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as ReceiverStats;
  }

  stop(): Promise<void> {
    return stopChild(this.proc);
  }
}

// ---- preparing databases through the store API -------------------------------------------------

/**
 * n pending requests, received one per millisecond up to now (claims go oldest first, by
 * received_at then id: a backlog that all arrived in the same millisecond would be one big tie).
 */
export async function insertBacklog(store: Store, n: number, callbackUrl: string): Promise<void> {
  const now = Date.now();
  for (let i = 0; i < n; i += 5000) {
    const recs: ReturnType<typeof makeRecord>[] = [];
    for (let j = i; j < Math.min(n, i + 5000); j++) recs.push({ ...makeRecord(j, now, callbackUrl), receivedAt: now - n + j });
    await store.insertRequests(recs);
  }
}

/** Insert n requests, claim them in batches of 100 and complete each: n callbacks in the outbox. */
async function prepareOutbox(store: Store, n: number, callbackUrl: string, concurrency: number): Promise<number> {
  await insertBacklog(store, n, callbackUrl);
  let done = 0;
  let k = 0;
  const worker = async () => {
    for (;;) {
      const items = await store.claimWork({ tenant: 'default', lane: null, limit: 100, leaseMs: 3_600_000 });
      if (items.length === 0) return;
      const batch = items.map((w) => {
        const result = sampleResult(k++);
        return { id: w.id, tenant: 'default', leaseToken: w.leaseToken, result: JSON.stringify(result), callback: { id: webhookIdFor(w.id), body: callbackBody(w.id, result) } };
      });
      const out = await store.completeWork(batch);
      const bad = out.findIndex((o) => o !== 'ok');
      if (bad >= 0) throw new Error(`completeWork(${batch[bad]!.id}) answered ${out[bad]}`);
      done += batch.length;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (done !== n) throw new Error(`prepared ${done} callbacks, expected ${n}`);
  return done;
}

/** Run `fn` with synchronous_commit off for new connections to the database of `url` (untimed preparation only). */
export async function withAsyncCommit<T>(pgs: BenchPg, url: string, fn: () => Promise<T>): Promise<T> {
  const name = new URL(url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: pgs.server.adminUrl });
  await admin.connect();
  try {
    await admin.query(`ALTER DATABASE ${name} SET synchronous_commit = off`);
    try {
      return await fn();
    } finally {
      await admin.query(`ALTER DATABASE ${name} RESET synchronous_commit`);
    }
  } finally {
    await admin.end();
  }
}

// ---- callbacks delivered per second ---------------------------------------------------------------

export interface DeliveryResult {
  engine: Engine;
  callbacks: number;
  bodyBytes: number;
  prepSeconds: number;
  /** Spawn → "intake node started". */
  startupMs: number;
  /** Spawn → first callback at the receiver. */
  firstMs: number;
  /** Spawn → the Nth callback at the receiver (or the last one, when not all came in time). */
  seconds: number;
  /** Callbacks ÷ seconds: the headline figure, the daemon's start-up included. */
  perSec: number;
  /** First to last callback at the receiver. */
  steadyPerSec: number;
  received: number;
  unique: number;
  /** TCP connections the receiver accepted meanwhile (keep-alive: about the sender's socket count). */
  connections: number;
  complete: boolean;
  /** CPU over the spawn → Nth window, % of one core. */
  daemonCpu: number;
  /** The daemon's CPU per callback after its start-up (from "started" to the Nth callback), µs. */
  cpuPerCallbackUs: number;
  receiverCpu: number;
  pgCpu: number | null;
  othersCpu: number;
}

export interface DeliveryOptions {
  callbacks: number;
  timeoutS: number;
}

export async function runDelivery(engine: Engine, o: DeliveryOptions, receiver: Receiver, pgs: BenchPg | null): Promise<DeliveryResult> {
  const dir = tempDir(`intake-bench-cb-${engine}-`);
  const hook = `${receiver.url}/hooks/intake`;
  try {
    say(`callbacks (${engine}): preparing ${o.callbacks} completed requests in the outbox through the store API (untimed)`);
    const tp = performance.now();
    let db: string;
    if (engine === 'sqlite') {
      // Prepared on tmpfs (no fsync per completeWork), then copied onto the benchmark's disk.
      const shm = existsSync('/dev/shm') ? tempDir('intake-bench-cb-prep-', '/dev/shm') : null;
      const prepPath = join(shm ?? dir, 'prep.db');
      const store = await openStore(`sqlite:${prepPath}`);
      try {
        await store.migrate();
        await prepareOutbox(store, o.callbacks, hook, 1);
      } finally {
        await store.close(); // the last connection checkpoints the WAL into the file
      }
      const path = join(dir, 'intake.db');
      copyFileSync(prepPath, path);
      if (shm) removeDir(shm);
      db = `sqlite:${path}`;
    } else {
      if (!pgs) throw new Error('no PostgreSQL server');
      db = await pgs.freshDb();
      await withAsyncCommit(pgs, db, async () => {
        const store = await openStore(db);
        try {
          await prepareOutbox(store, o.callbacks, hook, 8);
        } finally {
          await store.close();
        }
      });
    }
    const prepSeconds = (performance.now() - tp) / 1000;
    const bodyBytes = Buffer.byteLength(callbackBody(randomUUID(), sampleResult(0)));
    settleDisk();

    const { reached } = await receiver.reset(o.callbacks, o.timeoutS * 1000);
    say(`callbacks (${engine}): starting a daemon (mode both) and waiting for ${o.callbacks} callbacks at the receiver`);
    const t0 = wallNow();
    const starting = startTrackedDaemon({
      spool: join(dir, 'spool'),
      db,
      mode: 'both',
      nodeId: `bench-cb-${engine}`,
      args: ['--stop-idle-ms', '100'],
      env: daemonEnv(),
    });
    const meter = new CpuMeter([receiver.proc.pid], engine === 'postgres' ? [pgs?.pid] : []);
    meter.start();
    const d = await starting;
    const startupMs = wallNow() - t0;
    const startedTicks = processTicks(d.proc.pid);
    try {
      const atStart = await receiver.stats();
      const at = await reached;
      const daemonTicks = processTicks(d.proc.pid); // everything since spawn: the whole window
      const cpu = meter.stop();
      const st = await receiver.stats();
      const end = at ?? st.lastAt ?? wallNow();
      const seconds = (end - t0) / 1000;
      const daemonCpu = daemonTicks / seconds;
      if (at === null) say(`callbacks (${engine}): only ${st.count} of ${o.callbacks} callbacks arrived within ${o.timeoutS} s`);
      sayWarnings(`callbacks (${engine})`, d);
      const received = at === null ? st.count : o.callbacks;
      return {
        engine,
        callbacks: o.callbacks,
        bodyBytes,
        prepSeconds,
        startupMs,
        firstMs: st.firstAt === null ? NaN : st.firstAt - t0,
        seconds,
        perSec: received / seconds,
        steadyPerSec: st.firstAt !== null && st.lastAt !== null && st.lastAt > st.firstAt ? (st.count - 1) / ((st.lastAt - st.firstAt) / 1000) : NaN,
        received,
        unique: st.unique,
        connections: st.connections,
        complete: at !== null,
        daemonCpu,
        cpuPerCallbackUs: received > atStart.count ? ((daemonTicks - startedTicks) / 100 / (received - atStart.count)) * 1e6 : NaN,
        receiverCpu: cpu.perPid[0] ?? 0,
        pgCpu: pgs?.pid === undefined || engine !== 'postgres' ? null : (cpu.perPid[1] ?? 0),
        othersCpu: Math.max(0, cpu.others - daemonCpu),
      };
    } finally {
      await stopChild(d.proc);
    }
  } finally {
    removeDir(dir);
  }
}

export interface ReceiverBaseline {
  connections: number;
  seconds: number;
  bodyBytes: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  received: number;
  receiverCpu: number;
  clientCpu: number;
  othersCpu: number;
}

/** The receiver's own ceiling: autocannon, keep-alive, the same body size and headers. */
export async function runReceiverBaseline(receiver: Receiver, connections: number, seconds: number): Promise<ReceiverBaseline> {
  const id = randomUUID();
  const body = callbackBody(id, sampleResult(0));
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'intake-callbacks',
    'webhook-id': webhookIdFor(id),
    'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
    'webhook-signature': `v1,${Buffer.alloc(32, 7).toString('base64')}`,
  };
  const run = (s: number, lat?: Samples) =>
    new Promise<import('autocannon').AutocannonResult>((resolve, reject) => {
      const inst = autocannon({ url: `${receiver.url}/hooks/intake`, method: 'POST', headers, body, connections, duration: s, timeout: 10 }, (err, r) =>
        err ? reject(err) : resolve(r),
      );
      if (lat) inst.on('response', (_c: unknown, status: number, _b: number, ms: number) => status === 200 && lat.add(ms));
    });
  say(`callbacks: baseline, autocannon → receiver, ${connections} keep-alive connections, ${seconds} s (after a 1 s warm-up)`);
  await run(1);
  await receiver.reset(0);
  const lat = new Samples();
  const meter = new CpuMeter([receiver.proc.pid, process.pid]);
  meter.start();
  const r = await run(seconds, lat);
  const cpu = meter.stop();
  const st = await receiver.stats();
  const sorted = lat.sorted();
  // The rate as the receiver saw it, first to last POST (autocannon's own duration includes its
  // connection set-up and wind-down).
  const span = st.firstAt !== null && st.lastAt !== null ? (st.lastAt - st.firstAt) / 1000 : r.duration;
  return {
    connections,
    seconds: span,
    bodyBytes: Buffer.byteLength(body),
    reqPerSec: st.count / span,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    non2xx: r.non2xx,
    errors: r.errors,
    received: st.count,
    receiverCpu: cpu.perPid[0] ?? 0,
    clientCpu: cpu.perPid[1] ?? 0,
    othersCpu: cpu.others,
  };
}

// ---- claim + complete round trips ----------------------------------------------------------------

export interface RoundTripResult {
  engine: Engine;
  workers: number;
  backlog: number;
  seconds: number;
  roundTrips: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  claimP50Ms: number;
  claimP99Ms: number;
  completeP50Ms: number;
  completeP99Ms: number;
  emptyClaims: number;
  errors: Record<string, number>;
  callbacksDelivered: number;
  daemonCpu: number;
  pgCpu: number | null;
  clientCpu: number;
  othersCpu: number;
}

export interface RoundTripOptions {
  workers: number;
  backlog: number;
  warmupS: number;
  seconds: number;
}

export async function runRoundTrips(engine: Engine, o: RoundTripOptions, receiver: Receiver, pgs: BenchPg | null): Promise<RoundTripResult> {
  const dir = tempDir(`intake-bench-work-${engine}-`);
  const hook = `${receiver.url}/hooks/intake`;
  try {
    say(`work (${engine}): ${o.backlog} pending requests through store.insertRequests (untimed)`);
    let db: string;
    if (engine === 'sqlite') db = `sqlite:${join(dir, 'intake.db')}`;
    else {
      if (!pgs) throw new Error('no PostgreSQL server');
      db = await pgs.freshDb();
    }
    const store = await openStore(db);
    try {
      if (engine === 'sqlite') await store.migrate();
      await insertBacklog(store, o.backlog, hook);
    } finally {
      await store.close();
    }
    settleDisk();
    await receiver.reset(0);
    const d = await startTrackedDaemon({
      spool: join(dir, 'spool'),
      db,
      mode: 'both',
      nodeId: `bench-work-${engine}`,
      args: ['--stop-idle-ms', '100'],
      env: daemonEnv(),
    });
    try {
      say(`work (${engine}): ${o.workers} workers, claim (limit 1) + complete over HTTP, ${o.warmupS} s warm-up + ${o.seconds} s`);
      const ws = performance.now() + o.warmupS * 1000;
      const meter = new CpuMeter([process.pid], [pgs && engine === 'postgres' ? pgs.pid : undefined]);
      let daemon0 = 0;
      const startMeter = setTimeout(() => {
        meter.start();
        daemon0 = processTicks(d.proc.pid);
      }, o.warmupS * 1000);
      const w = await runWorkers({ url: d.url, workers: o.workers, limit: 1, batchComplete: false, start: ws, end: ws + o.seconds * 1000, emptySleepMs: [5, 5] });
      clearTimeout(startMeter);
      const cpu = meter.stop();
      const daemonCpu = (processTicks(d.proc.pid) - daemon0) / cpu.seconds;
      const st = await receiver.stats();
      const sorted = w.roundTrips.sorted();
      const cs = w.claims.sorted();
      const ps = w.completes.sorted();
      sayWarnings(`work (${engine})`, d);
      return {
        engine,
        workers: o.workers,
        backlog: o.backlog,
        seconds: w.seconds,
        roundTrips: w.roundTrips.count,
        perSec: w.roundTrips.count / w.seconds,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
        claimP50Ms: percentile(cs, 50),
        claimP99Ms: percentile(cs, 99),
        completeP50Ms: percentile(ps, 50),
        completeP99Ms: percentile(ps, 99),
        emptyClaims: w.emptyClaims,
        errors: w.errors,
        callbacksDelivered: st.count,
        daemonCpu,
        pgCpu: engine === 'postgres' && pgs?.pid !== undefined ? (cpu.perPid[1] ?? 0) : null,
        clientCpu: cpu.perPid[0] ?? 0,
        othersCpu: Math.max(0, cpu.others - daemonCpu),
      };
    } finally {
      await stopChild(d.proc);
    }
  } finally {
    removeDir(dir);
  }
}

// Mixed load: one node (`intake start`, a child process) in every role at once, on one engine.
//
// 1. Ingest alone: receive mode, autocannon at 64 connections as bench/ingest.ts loads it.
// 2. Everything at once: mode both, the same ingest load, while the node drains its spool,
//    16 workers claim (limit 1) and complete each item over HTTP, and the node delivers the
//    callbacks to the benchmark's receiver (bench/callback-receiver.ts).
// 3. Processing alone: mode both over a backlog of pending requests (inserted through the store
//    API before the node starts), no ingest: 16 workers at claim limit 1 completing each item,
//    then 16 workers at claim limit 100 completing each claim in one batch call.
// 4. Sustained pipeline: requests at a fixed rate (bench/paced-load.ts) with the workers of (2);
//    does accepted → completed → callback delivered keep up over a measured window? A few rates
//    are tried, each on a fresh node and database, to find the highest that keeps up.
//
// Every run reads the node's CPU (all its threads), the benchmark process's (load and workers),
// the receiver's and PostgreSQL's, the callbacks the receiver counted, the records the node
// drained (its intake_drain_records_total) and its event-loop delay p99 (its /metrics).
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openStore } from '../src/store/open.js';
import type { Daemon } from '../test/helpers/daemon.js';
import { daemonEnv, insertBacklog, withAsyncCommit, type Engine, type Receiver } from './callbacks.js';
import { attempt, CpuMeter, percentile, removeDir, requestBody, Samples, say, sayWarnings, settleDisk, sleep, startTrackedDaemon, stopChild, tempDir } from './common.js';
import { load } from './ingest.js';
import { PacedLoad } from './paced-load.js';
import type { BenchPg } from './pg.js';
import { LoopDelayWatch, sampleSum, scrape } from './prom.js';
import { runWorkers, type WorkerResult } from './work-loop.js';

export interface MixedOptions {
  /** autocannon connections of (1) and (2). */
  connections: number;
  warmupS: number;
  /** Measured seconds of (1) and (2). */
  ingestS: number;
  workers: number;
  /** Pending requests before (3); both of its runs take from them. */
  backlog: number;
  /** Measured seconds of each run of (3), after a 1 s warm-up (shorter when the backlog runs out). */
  processingS: number;
  /** (4): warm-up and measured window per rate, how many rates at most, and seconds (4) may take in all. */
  pipelineWarmupS: number;
  pipelineS: number;
  maxWindows: number;
  pipelineBudgetS: number;
}

/** What the node and the machine did during one measured span. */
export interface Span {
  seconds: number;
  /** CPU, % of one core: the node (all threads), the benchmark process, the receiver, PostgreSQL (all its processes), everything else. */
  nodeCpu: number;
  benchCpu: number;
  receiverCpu: number;
  pgCpu: number | null;
  othersCpu: number;
  /** Callbacks the receiver counted, records the node drained (its metric) in the span. */
  delivered: number;
  drained: number;
  /** The node's event-loop delay p99 (its 5 s window) read at the end, and the largest read every 5 s during the span. */
  loopP99Ms: number;
  loopMaxP99Ms: number;
  /** Mean time of one spool group commit (write + fdatasync) in the span, and how many took over 1 s, from the node's histogram. */
  commitMeanMs: number;
  commitsOver1s: number;
  /** Event-loop delay p99 and max of the benchmark process itself: a late client reads latencies late. */
  benchLoopP99Ms: number;
  benchLoopMaxMs: number;
}

export interface IngestFigures {
  /** 2xx answers per second. */
  perSec: number;
  ok2xx: number;
  /** Answers that were not 2xx, by status. */
  non2xx: Record<string, number>;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  seconds: number;
}

export interface WorkFigures {
  workers: number;
  limit: number;
  batchComplete: boolean;
  items: number;
  seconds: number;
  itemsPerSec: number;
  claimP50Ms: number;
  claimP99Ms: number;
  emptyClaims: number;
  errors: Record<string, number>;
  ranDry: boolean;
}

/** Node CPU per completed item, µs (and PostgreSQL's, when measured). */
export interface PerItem {
  cpuPerItemUs: number;
  pgCpuPerItemUs: number | null;
}

export interface AloneRun {
  ingest: IngestFigures;
  span: Span;
}

export interface AllRun extends PerItem {
  ingest: IngestFigures;
  work: WorkFigures;
  span: Span;
}

export interface ProcessingRun extends PerItem {
  backlog: number;
  work: WorkFigures;
  span: Span;
}

export interface PipelineWindow extends PerItem {
  rate: number;
  /** Requests the client sent per second in the window (below `rate` when every connection was busy). */
  sentPerSec: number;
  ingest: IngestFigures;
  work: WorkFigures;
  span: Span;
  /** Accepted (202s) minus callbacks delivered, at the window's start and end. */
  backlogStart: number;
  backlogEnd: number;
  /** Backlog growth over the window from a least-squares line through one reading a second. */
  growth: number;
  /** Growth allowed: one second of input (one age-sealed segment). */
  allowedGrowth: number;
  /** The client kept pace (sent ≥ 98 % of the rate), ≥ 99 % of what it sent was accepted, and the backlog grew by at most allowedGrowth. */
  keptUp: boolean;
}

export interface MixedResult {
  engine: Engine;
  options: MixedOptions;
  bodyBytes: number;
  alone: AloneRun | Error;
  all: AllRun | Error;
  processing: (ProcessingRun | Error)[];
  /** Windows of (4) in the order run. */
  pipeline: PipelineWindow[];
  pipelineError: Error | null;
}

const isOk = <T>(v: T | Error): v is T => !(v instanceof Error);

/** Rates tried in (4): two significant digits, at least 10/s. */
function roundRate(r: number): number {
  const step = 10 ** Math.max(1, Math.floor(Math.log10(Math.max(r, 10))) - 1);
  return Math.max(10, Math.round(r / step) * step);
}

/** The node's spool group commits so far: seconds spent and how many. */
const commits = (text: string) => ({
  sum: sampleSum(text, 'intake_spool_fsync_seconds_sum') ?? 0,
  count: sampleSum(text, 'intake_spool_fsync_seconds_count') ?? 0,
  upTo1s: sampleSum(text, 'intake_spool_fsync_seconds_bucket', { le: '1' }) ?? 0,
});

/** One measured span: CPU of every process involved, callbacks, drained records, loop delay, spool commits. */
class SpanMeter {
  private readonly d: Daemon;
  private readonly receiver: Receiver;
  private readonly meter: CpuMeter;
  private readonly watch: LoopDelayWatch;
  private delivered0 = 0;
  private drained0 = 0;
  private commits0 = { sum: 0, count: 0, upTo1s: 0 };
  private readonly benchLoop = monitorEventLoopDelay({ resolution: 10 });

  private constructor(d: Daemon, receiver: Receiver, pgPid: number | undefined) {
    this.d = d;
    this.receiver = receiver;
    this.meter = new CpuMeter([d.proc.pid, process.pid, receiver.proc.pid], pgPid === undefined ? [] : [pgPid]);
    this.watch = new LoopDelayWatch(d.url);
  }

  static async start(d: Daemon, receiver: Receiver, pgPid: number | undefined): Promise<SpanMeter> {
    const m = new SpanMeter(d, receiver, pgPid);
    const [st, text] = await Promise.all([receiver.stats(), scrape(d.url)]);
    m.delivered0 = st.count;
    m.drained0 = sampleSum(text, 'intake_drain_records_total') ?? 0;
    m.commits0 = commits(text);
    m.benchLoop.enable();
    m.meter.start();
    return m;
  }

  async stop(): Promise<Span> {
    const cpu = this.meter.stop();
    this.benchLoop.disable();
    const [st, text, loop] = await Promise.all([this.receiver.stats(), scrape(this.d.url), this.watch.stop()]);
    const c = commits(text);
    return {
      seconds: cpu.seconds,
      nodeCpu: cpu.perPid[0] ?? NaN,
      benchCpu: cpu.perPid[1] ?? NaN,
      receiverCpu: cpu.perPid[2] ?? NaN,
      pgCpu: cpu.perPid.length > 3 ? cpu.perPid[3]! : null,
      othersCpu: cpu.others,
      delivered: st.count - this.delivered0,
      drained: (sampleSum(text, 'intake_drain_records_total') ?? 0) - this.drained0,
      loopP99Ms: loop.lastMs,
      loopMaxP99Ms: loop.maxMs,
      commitMeanMs: ((c.sum - this.commits0.sum) / (c.count - this.commits0.count)) * 1000,
      commitsOver1s: c.count - c.upTo1s - (this.commits0.count - this.commits0.upTo1s),
      benchLoopP99Ms: this.benchLoop.percentile(99) / 1e6,
      benchLoopMaxMs: this.benchLoop.max / 1e6,
    };
  }
}

function perItem(span: Span, items: number): PerItem {
  const us = (pct: number) => ((pct / 100) * span.seconds * 1e6) / items;
  return { cpuPerItemUs: items > 0 ? us(span.nodeCpu) : NaN, pgCpuPerItemUs: span.pgCpu === null || items === 0 ? null : us(span.pgCpu) };
}

function workFigures(w: WorkerResult): WorkFigures {
  const claims = w.claims.sorted();
  return {
    workers: w.workers,
    limit: w.limit,
    batchComplete: w.batchComplete,
    items: w.items,
    seconds: w.seconds,
    itemsPerSec: w.items / w.seconds,
    claimP50Ms: percentile(claims, 50),
    claimP99Ms: percentile(claims, 99),
    emptyClaims: w.emptyClaims,
    errors: w.errors,
    ranDry: w.ranDry,
  };
}

function ingestFigures(ok2xx: number, statuses: Record<string, number>, errors: number, latency: Samples, seconds: number): IngestFigures {
  const sorted = latency.sorted();
  return {
    perSec: ok2xx / seconds,
    ok2xx,
    non2xx: Object.fromEntries(Object.entries(statuses).filter(([c]) => !c.startsWith('2'))),
    errors,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    seconds,
  };
}

/** Least-squares slope of y over x. */
function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

/** One engine's mixed-load runs. Each run gets a fresh spool, database and node. */
class MixedRun {
  private readonly engine: Engine;
  private readonly o: MixedOptions;
  private readonly receiver: Receiver;
  private readonly pgs: BenchPg | null;
  private readonly body: string;
  private readonly hook: string;
  private n = 0;

  constructor(engine: Engine, o: MixedOptions, receiver: Receiver, pgs: BenchPg | null) {
    this.engine = engine;
    this.o = o;
    this.receiver = receiver;
    this.pgs = pgs;
    this.hook = `${receiver.url}/hooks/intake`;
    this.body = requestBody(this.hook);
  }

  private get pgPid(): number | undefined {
    return this.engine === 'postgres' ? this.pgs?.pid : undefined;
  }

  private async freshDb(dir: string): Promise<string> {
    if (this.engine === 'sqlite') return `sqlite:${join(dir, 'intake.db')}`;
    if (!this.pgs) throw new Error('no PostgreSQL server');
    return this.pgs.freshDb();
  }

  /** A fresh node (and database, prepared by `prepare`) for `fn`; stopped and removed afterwards. */
  private async withNode<T>(mode: 'receive' | 'both', prepare: ((db: string) => Promise<void>) | null, fn: (d: Daemon) => Promise<T>): Promise<T> {
    const dir = tempDir(`intake-bench-mixed-${this.engine}-`);
    try {
      const db = await this.freshDb(dir);
      if (prepare) await prepare(db);
      settleDisk();
      await this.receiver.reset(0);
      const d = await startTrackedDaemon({
        spool: join(dir, 'spool'),
        db,
        mode,
        nodeId: `bench-mixed-${this.engine}-${++this.n}`,
        args: ['--stop-idle-ms', '100'],
        env: daemonEnv(),
      });
      try {
        return await fn(d);
      } finally {
        sayWarnings(`mixed (${this.engine})`, d);
        await stopChild(d.proc);
      }
    } finally {
      removeDir(dir);
    }
  }

  /** autocannon for the warm-up, then the measured run with its latencies and a SpanMeter. */
  private async ingestLoad(d: Daemon): Promise<AloneRun> {
    await load(d.url, { connections: this.o.connections, durationS: this.o.warmupS, body: this.body });
    const lat = new Samples();
    const meter = await SpanMeter.start(d, this.receiver, this.pgPid);
    const r = await load(d.url, { connections: this.o.connections, durationS: this.o.ingestS, body: this.body }, (status, ms) => {
      if (status >= 200 && status < 300) lat.add(ms);
    });
    const span = await meter.stop();
    const statuses = Object.fromEntries(Object.entries(r.statusCodeStats).map(([c, v]) => [c, v.count]));
    return { ingest: ingestFigures(r['2xx'], statuses, r.errors + r.timeouts, lat, r.duration), span };
  }

  /** (1) */
  alone(): Promise<AloneRun> {
    say(`mixed (${this.engine}): ingest alone, receive mode, ${this.o.connections} connections, ${this.o.warmupS} s warm-up + ${this.o.ingestS} s`);
    return this.withNode('receive', null, (d) => this.ingestLoad(d));
  }

  /** (2) */
  all(): Promise<AllRun> {
    say(`mixed (${this.engine}): everything at once, mode both: ingest at ${this.o.connections} connections + drain + ${this.o.workers} workers (limit 1) + callbacks, ${this.o.warmupS} s warm-up + ${this.o.ingestS} s`);
    return this.withNode('both', null, async (d) => {
      const start = performance.now() + this.o.warmupS * 1000;
      const workers = runWorkers({ url: d.url, workers: this.o.workers, limit: 1, batchComplete: false, start, end: start + this.o.ingestS * 1000, emptySleepMs: [10, 100] });
      const { ingest, span } = await this.ingestLoad(d);
      const work = workFigures(await workers);
      return { ingest, work, span, ...perItem(span, work.items) };
    });
  }

  /** (3): both runs on one node over one backlog. */
  async processing(): Promise<(ProcessingRun | Error)[]> {
    say(`mixed (${this.engine}): processing alone, ${this.o.backlog} pending requests through store.insertRequests (untimed)`);
    const insert = async (db: string) => {
      const store = await openStore(db);
      try {
        if (this.engine === 'sqlite') await store.migrate();
        await insertBacklog(store, this.o.backlog, this.hook);
      } finally {
        await store.close();
      }
    };
    // On PostgreSQL without waiting for a WAL flush per insert: untimed preparation only.
    const prepare = (db: string) => (this.engine === 'postgres' && this.pgs ? withAsyncCommit(this.pgs, db, () => insert(db)) : insert(db));
    return this.withNode('both', prepare, async (d) => {
      const out: (ProcessingRun | Error)[] = [];
      for (const [limit, batchComplete] of [
        [1, false],
        [100, true],
      ] as const) {
        say(`mixed (${this.engine}): processing alone, ${this.o.workers} workers, limit ${limit}, ${batchComplete ? 'batch complete' : 'complete each'}, 1 s warm-up + ${this.o.processingS} s`);
        const start = performance.now() + 1000;
        const meter = sleep(1000).then(() => SpanMeter.start(d, this.receiver, this.pgPid));
        const w = await runWorkers({ url: d.url, workers: this.o.workers, limit, batchComplete, start, end: start + this.o.processingS * 1000, emptySleepMs: [10, 100], stopWhenEmpty: true });
        const span = await (await meter).stop();
        const work = workFigures(w);
        if (w.ranDry) say(`mixed (${this.engine}): the backlog ran out after ${w.seconds.toFixed(1)} s of the window`);
        out.push({ backlog: this.o.backlog, work, span, ...perItem(span, work.items) });
      }
      return out;
    });
  }

  /** (4): one rate on a fresh node. */
  private pipelineWindow(rate: number): Promise<PipelineWindow> {
    say(`mixed (${this.engine}): pipeline at ${rate} requests/s, ${this.o.pipelineWarmupS} s warm-up + ${this.o.pipelineS} s`);
    return this.withNode('both', null, async (d) => {
      const paced = new PacedLoad(d.url, this.body, rate, this.o.connections);
      const start = performance.now() + this.o.pipelineWarmupS * 1000;
      const end = start + this.o.pipelineS * 1000;
      paced.start();
      const workers = runWorkers({ url: d.url, workers: this.o.workers, limit: 1, batchComplete: false, start, end, emptySleepMs: [10, 100] });
      try {
        await sleep(start - performance.now());
        paced.recording = true;
        const meter = await SpanMeter.start(d, this.receiver, this.pgPid);
        const sent0 = paced.sent;
        const ok0 = paced.accepted;
        const statuses0 = { ...paced.statuses };
        const errors0 = paced.errors;
        // One backlog reading a second: accepted (the client's 202s) minus delivered (the receiver's count).
        const points: { x: number; y: number }[] = [];
        while (performance.now() < end) {
          const accepted = paced.accepted;
          const st = await this.receiver.stats();
          points.push({ x: (performance.now() - start) / 1000, y: accepted - st.count });
          await sleep(Math.min(1000, end - performance.now()));
        }
        const accepted = paced.accepted;
        const st = await this.receiver.stats();
        points.push({ x: (performance.now() - start) / 1000, y: accepted - st.count });
        paced.recording = false;
        const span = await meter.stop();
        const sent = paced.sent - sent0;
        const statuses: Record<string, number> = {};
        for (const [c, n] of Object.entries(paced.statuses)) statuses[c] = n - (statuses0[c] ?? 0);
        const ingest = ingestFigures(paced.accepted - ok0, statuses, paced.errors - errors0, paced.latency, span.seconds);
        const failures = Object.values(ingest.non2xx).reduce((a, b) => a + b, 0) + ingest.errors;
        const work = workFigures(await workers);
        const growth = slope(points) * this.o.pipelineS;
        const allowedGrowth = rate;
        return {
          rate,
          sentPerSec: sent / span.seconds,
          ingest,
          work,
          span,
          ...perItem(span, work.items),
          backlogStart: points[0]!.y,
          backlogEnd: points[points.length - 1]!.y,
          growth,
          allowedGrowth,
          keptUp: sent >= 0.98 * rate * span.seconds && failures <= 0.01 * sent && growth <= allowedGrowth,
        };
      } finally {
        await paced.stop();
        await workers;
      }
    });
  }

  /**
   * (4): start at `first`; after a rate that did not keep up, try 0.9× what the pipeline did
   * manage in that window (the slowest of accepted, completed, delivered per second); after
   * one that did, 1.25× it; once both are known, halfway between them. Stops after
   * maxWindows, when the two are within 10 %, or, after two windows (the fewest that can find
   * both), when the next window would pass the budget (a window costs what the last one took,
   * start-up and stop included).
   */
  async pipeline(first: number, into: PipelineWindow[]): Promise<void> {
    const deadline = performance.now() + this.o.pipelineBudgetS * 1000;
    let windowMs = (this.o.pipelineWarmupS + this.o.pipelineS + 5) * 1000;
    let rate = roundRate(first);
    while (into.length < this.o.maxWindows && (into.length < 2 || performance.now() + windowMs <= deadline)) {
      const t = performance.now();
      const w = await this.pipelineWindow(rate);
      windowMs = performance.now() - t;
      into.push(w);
      say(
        `mixed (${this.engine}): ${rate}/s ${w.keptUp ? 'kept up' : 'did not keep up'}: accepted ${Math.round(w.ingest.perSec)}/s, completed ${Math.round(w.work.itemsPerSec)}/s, delivered ${Math.round(w.span.delivered / w.span.seconds)}/s, backlog ${w.backlogStart} → ${w.backlogEnd} (fitted growth ${Math.round(w.growth)})`,
      );
      const kept = into.filter((x) => x.keptUp).map((x) => x.rate);
      const failed = into.filter((x) => !x.keptUp).map((x) => x.rate);
      const hi = kept.length ? Math.max(...kept) : null;
      const lo = failed.length ? Math.min(...failed) : null;
      if (hi !== null && lo !== null && lo - hi <= 0.1 * hi) return;
      let next: number;
      if (hi !== null && lo !== null) next = (hi + lo) / 2;
      else if (w.keptUp) next = rate * 1.25;
      else next = 0.9 * Math.min(w.ingest.perSec, w.work.itemsPerSec, w.span.delivered / w.span.seconds);
      next = roundRate(next);
      if (into.some((x) => x.rate === next)) return;
      rate = next;
    }
  }
}

export async function runMixed(engine: Engine, o: MixedOptions, receiver: Receiver, pgs: BenchPg | null): Promise<MixedResult> {
  const run = new MixedRun(engine, o, receiver, pgs);
  const alone = await attempt(`mixed (${engine}): ingest alone`, () => run.alone());
  const all = await attempt(`mixed (${engine}): everything at once`, () => run.all());
  const processing = await attempt(`mixed (${engine}): processing alone`, () => run.processing());
  const procRuns = processing instanceof Error ? [processing] : processing;
  // (4) starts from what processing alone managed at limit 1, no more than ingest alone took.
  const p1 = procRuns[0];
  const guesses = [p1 && isOk(p1) ? p1.work.itemsPerSec : NaN, isOk(alone) ? alone.ingest.perSec : NaN].filter(Number.isFinite);
  const pipeline: PipelineWindow[] = [];
  const pipelineError = await attempt(`mixed (${engine}): pipeline`, () => run.pipeline(guesses.length ? Math.min(...guesses) : 3000, pipeline));
  return {
    engine,
    options: o,
    bodyBytes: Buffer.byteLength(requestBody(`${receiver.url}/hooks/intake`)),
    alone,
    all,
    processing: procRuns,
    pipeline,
    pipelineError: pipelineError instanceof Error ? pipelineError : null,
  };
}

// Ingest: the real daemon (receive mode, so the durable path is measured alone) against a bare
// fastify server, both child processes, both loaded by autocannon with the same body,
// connections and total duration.
//
// The machine may be shared (other processes come and go), so the measured time is split into
// rounds run in ABBA order (bare, intake, intake, bare, ...) with both servers up throughout:
// drift in the background load hits both alike. The CPU used by each server, by this process
// (autocannon) and by every other process is recorded per run and reported.
// Latency percentiles come from autocannon's per-response times (2xx only, sub-millisecond
// resolution; its own histogram rounds to whole milliseconds).
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import autocannon, { type AutocannonResult } from 'autocannon';
import { CpuMeter, peakRssBytes, percentile, REQUEST_BODY, removeDir, Samples, say, sayWarnings, startScript, startTrackedDaemon, stopChild, tempDir } from './common.js';
import { createKey } from '../src/cluster/keys.js';
import { histogramMean, scrape } from './prom.js';

export interface LoadResult {
  name: string;
  reqPerSec: number;
  completed: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  peakRssBytes: number | null;
  durationS: number;
  /** CPU of the server process, in % of one core, averaged over the measured time. */
  serverCpu: number;
  /** CPU of the load generator (this process). */
  clientCpu: number;
  /** CPU of every other process on the machine while this server was measured. */
  othersCpu: number;
  /** The intake node's own group-commit figures, from its /metrics after the run. */
  extra?: Record<string, string>;
}

export interface IngestOptions {
  connections: number;
  /** Measured seconds per server, split into `rounds` runs. */
  durationS: number;
  warmupS: number;
  rounds: number;
}

/** autocannon POSTing `body` (default: REQUEST_BODY) to /v1/requests; onResponse sees every answer. */
export function load(
  url: string,
  o: { connections: number; durationS: number; body?: string; headers?: Record<string, string> },
  onResponse?: (status: number, ms: number) => void,
): Promise<AutocannonResult> {
  return new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url: `${url}/v1/requests`,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...o.headers },
        body: o.body ?? REQUEST_BODY,
        connections: o.connections,
        duration: o.durationS,
        timeout: 10,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (onResponse) inst.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => onResponse(status, ms));
  });
}

/** One server under test and what its measured runs added up to. */
class Target {
  readonly name: string;
  readonly url: string;
  readonly proc: ChildProcess;
  private lat = new Samples();
  private statusCodes: Record<string, number> = {};
  private ok2xx = 0;
  private non2xx = 0;
  private errors = 0;
  private timeouts = 0;
  private seconds = 0;
  private cpu = { server: 0, client: 0, others: 0 };

  private readonly headers: Record<string, string>;

  constructor(name: string, url: string, proc: ChildProcess, headers: Record<string, string> = {}) {
    this.name = name;
    this.url = url;
    this.proc = proc;
    this.headers = headers;
  }

  async warmUp(o: IngestOptions): Promise<void> {
    say(`${this.name}: warm-up ${o.warmupS} s at ${o.connections} connections`);
    await load(this.url, { connections: o.connections, durationS: o.warmupS, headers: this.headers });
  }

  async measure(o: IngestOptions, seconds: number): Promise<void> {
    say(`${this.name}: measuring ${seconds} s at ${o.connections} connections`);
    const meter = new CpuMeter([this.proc.pid, process.pid]);
    meter.start();
    const r = await load(this.url, { connections: o.connections, durationS: seconds, headers: this.headers }, (status, ms) => {
      if (status >= 200 && status < 300) this.lat.add(ms);
    });
    const cpu = meter.stop();
    this.cpu.server += (cpu.perPid[0] ?? 0) * cpu.seconds;
    this.cpu.client += (cpu.perPid[1] ?? 0) * cpu.seconds;
    this.cpu.others += cpu.others * cpu.seconds;
    for (const [code, v] of Object.entries(r.statusCodeStats)) this.statusCodes[code] = (this.statusCodes[code] ?? 0) + v.count;
    this.ok2xx += r['2xx'];
    this.non2xx += r.non2xx;
    this.errors += r.errors;
    this.timeouts += r.timeouts;
    this.seconds += r.duration;
  }

  result(): LoadResult {
    const sorted = this.lat.sorted();
    const completed = Object.values(this.statusCodes).reduce((a, b) => a + b, 0);
    return {
      name: this.name,
      reqPerSec: completed / this.seconds,
      completed,
      ok2xx: this.ok2xx,
      non2xx: this.non2xx,
      errors: this.errors,
      timeouts: this.timeouts,
      statusCodes: this.statusCodes,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
      peakRssBytes: peakRssBytes(this.proc.pid),
      durationS: this.seconds,
      serverCpu: this.cpu.server / this.seconds,
      clientCpu: this.cpu.client / this.seconds,
      othersCpu: this.cpu.others / this.seconds,
    };
  }
}

/** The group-commit figures of an intake node, from its /metrics. */
async function commitFigures(url: string, headers: Record<string, string> = {}): Promise<Record<string, string> | undefined> {
  try {
    const text = await scrape(url, headers);
    const batch = histogramMean(text, 'intake_spool_batch_records');
    const sync = histogramMean(text, 'intake_spool_fsync_seconds');
    const extra: Record<string, string> = {};
    if (batch !== null) extra['mean records per fdatasync'] = batch.toFixed(1);
    if (sync !== null) extra['mean write+fdatasync'] = `${(sync * 1000).toFixed(2)} ms`;
    return extra;
  } catch {
    return undefined; // metrics are a bonus
  }
}

/**
 * Three servers, measured in rotating order: bare fastify, intake open (no key exists: the
 * README's first run), and intake with an API key on every request (the cost of authentication:
 * parse the header, hash the key, compare in constant time, check the scope).
 */
export async function runIngest(o: IngestOptions): Promise<{ bare: LoadResult; intake: LoadResult; intakeAuth: LoadResult }> {
  const dir = tempDir('intake-bench-ingest-');
  const procs: ChildProcess[] = [];
  try {
    const bareSrv = await startScript('bare-server.js');
    procs.push(bareSrv.proc);
    const d = await startTrackedDaemon({ spool: join(dir, 'spool'), db: `sqlite:${join(dir, 'unused.db')}`, mode: 'receive', nodeId: 'bench-ingest' });
    procs.push(d.proc);
    const keyedSpool = join(dir, 'spool-keyed');
    const { key } = await createKey(keyedSpool, { tenant: 'bench', scopes: ['submit', 'admin'], lanes: null });
    const dk = await startTrackedDaemon({ spool: keyedSpool, db: `sqlite:${join(dir, 'unused-keyed.db')}`, mode: 'receive', nodeId: 'bench-ingest-keyed' });
    procs.push(dk.proc);
    const auth = { authorization: `Bearer ${key}` };
    const bare = new Target('bare fastify (parse, no write)', bareSrv.url, bareSrv.proc);
    const intake = new Target('intake, receive mode (durable)', d.url, d.proc);
    const keyed = new Target('intake, receive mode, API key on every request', dk.url, dk.proc, auth);

    const all = [bare, intake, keyed];
    for (const t of all) await t.warmUp(o);
    const per = o.durationS / o.rounds;
    for (let i = 0; i < o.rounds; i++) {
      // ABC, CBA, ...: drift in the background load hits every server alike.
      for (const t of i % 2 === 0 ? all : [...all].reverse()) await t.measure(o, per);
    }

    const r = intake.result();
    const rk = keyed.result();
    r.extra = await commitFigures(d.url);
    rk.extra = await commitFigures(dk.url, auth);
    sayWarnings('intake', d);
    sayWarnings('intake (keyed)', dk);
    return { bare: bare.result(), intake: r, intakeAuth: rk };
  } finally {
    for (const p of procs) await stopChild(p);
    removeDir(dir);
  }
}

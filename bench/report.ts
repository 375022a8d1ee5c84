// The benchmark's output: one markdown document, printed to stdout and written to docs/benchmarks.md.
import type { Machine } from './common.js';
import type { DrainResult } from './drain.js';
import type { IngestOptions, LoadResult } from './ingest.js';
import type { VisibleResult } from './visible.js';

export const TARGETS = {
  ingestRatio: 0.9,
  p99Ms: 10,
  peakRssMiB: 128,
  drainPerSec: 150_000,
} as const;

export interface Report {
  startedAt: Date;
  seconds: number;
  command: string;
  machine: Machine;
  bodyBytes: number;
  ingest: IngestOptions;
  bare: LoadResult | Error | null;
  intake: LoadResult | Error | null;
  drain: DrainResult | Error | null;
  visible: (VisibleResult | Error)[];
  loadBefore: number[];
  loadAfter: number[];
  fsync: { p50Ms: number; p99Ms: number; meanMs: number; syncs: number; bytes: number } | Error | null;
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const ms = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0)) + ' ms' : 'n/a');
const pct = (n: number) => (Number.isFinite(n) ? `${Math.round(n)} %` : 'n/a');
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 20).toFixed(1)} MiB`);
const met = (ok: boolean | null) => (ok === null ? 'not measured' : ok ? '**met**' : '**not met**');
const isOk = <T>(v: T | Error | null): v is T => v !== null && !(v instanceof Error);
const failed = (what: string, v: unknown) => (v instanceof Error ? `${what} failed: ${v.message.split('\n')[0]}\n` : '');

function statusList(r: LoadResult): string {
  const other = Object.entries(r.statusCodes).filter(([c]) => !c.startsWith('2'));
  return other.length ? other.map(([c, n]) => `${c}×${n}`).join(', ') : '0';
}

export interface TargetRow {
  target: string;
  measured: string;
  ok: boolean | null;
}

export function targetRows(r: Report): TargetRow[] {
  const rows: TargetRow[] = [];
  const bare = isOk(r.bare) ? r.bare : null;
  const intake = isOk(r.intake) ? r.intake : null;
  const ratio = bare && intake ? intake.reqPerSec / bare.reqPerSec : NaN;
  rows.push({
    target: `durable ingest ≥ ${TARGETS.ingestRatio}× bare req/s`,
    measured: Number.isFinite(ratio) ? `${ratio.toFixed(2)}× (${int(intake!.reqPerSec)} vs ${int(bare!.reqPerSec)} req/s)` : 'n/a',
    ok: Number.isFinite(ratio) ? ratio >= TARGETS.ingestRatio : null,
  });
  rows.push({
    target: `ingest p99 ≤ ${TARGETS.p99Ms} ms`,
    measured: intake ? ms(intake.p99Ms) : 'n/a',
    ok: intake ? intake.p99Ms <= TARGETS.p99Ms : null,
  });
  rows.push({
    target: `intake peak RSS ≤ ${TARGETS.peakRssMiB} MiB`,
    measured: intake ? mib(intake.peakRssBytes) : 'n/a',
    ok: intake && intake.peakRssBytes !== null ? intake.peakRssBytes <= TARGETS.peakRssMiB * 2 ** 20 : null,
  });
  rows.push({
    target: `no non-2xx answers under load`,
    measured: intake ? `${intake.non2xx} non-2xx, ${intake.errors} errors, ${intake.timeouts} timeouts` : 'n/a',
    ok: intake ? intake.non2xx === 0 && intake.errors === 0 : null,
  });
  const drain = isOk(r.drain) ? r.drain : null;
  rows.push({
    target: `drain into SQLite ≥ ${int(TARGETS.drainPerSec)} records/s`,
    measured: drain ? `${int(drain.recordsPerSec)} records/s` : 'n/a',
    ok: drain ? drain.recordsPerSec >= TARGETS.drainPerSec && drain.rowsInDb === drain.records : null,
  });
  return rows;
}

export function renderMarkdown(r: Report): string {
  const out: string[] = [];
  const m = r.machine;
  out.push('# Benchmarks', '');
  out.push('Written by `npm run bench` (bench/run.ts); every figure below was measured in one run. Benchmarks measure, they never assert.', '');
  out.push(`- Date: ${r.startedAt.toISOString().replace('T', ' ').slice(0, 19)} UTC (run took ${Math.round(r.seconds)} s)`);
  out.push(`- Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory} RAM, ${m.kernel}, Node ${m.node}`);
  out.push(`- Spool and databases in: ${m.tmp}`);
  out.push(`- Command: \`${r.command}\``);
  out.push(`- Load average (1/5/15 min) before: ${load(r.loadBefore)}, after: ${load(r.loadAfter)}`);
  if (isOk(r.fsync)) {
    out.push(`- Disk: fdatasync after a ${r.fsync.bytes / 1024} KiB append, ${r.fsync.syncs} in a row: p50 ${ms(r.fsync.p50Ms)}, p99 ${ms(r.fsync.p99Ms)}, mean ${ms(r.fsync.meanMs)}`);
  }
  out.push(
    `- Load: autocannon in the benchmark process, ${r.ingest.connections} connections, ${r.ingest.durationS} s measured after a ${r.ingest.warmupS} s warm-up, ` +
      `POST /v1/requests with a ${r.bodyBytes}-byte JSON body \`{payload, callback_url}\`, the measured time split into ${r.ingest.rounds} runs per server in ABBA order. ` +
      `Client and server share the machine's ${m.nproc} cores (CPU figures are % of one core).`,
  );
  out.push('');

  out.push('## Targets', '');
  out.push('| Target | Measured | Status |', '|---|---|---|');
  for (const t of targetRows(r)) out.push(`| ${t.target} | ${t.measured} | ${met(t.ok)} |`);
  out.push('');

  out.push('## Ingest', '');
  out.push('Both servers run as child processes, loaded one after the other. The intake node runs in `receive` mode (HTTP → validated → spool, 202 only after the group-committed `fdatasync`); the bare server is fastify with the same body limit that parses the same JSON and answers the same 202 shape without validating or writing anything. Latency is per response as seen by autocannon (2xx only); peak RSS is the server process\'s VmHWM.', '');
  out.push(
    '| Server | req/s | p50 | p99 | max | peak RSS | 2xx | non-2xx | errors / timeouts | server CPU | autocannon CPU | other processes CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const s of [r.bare, r.intake]) {
    if (!isOk(s)) continue;
    out.push(
      `| ${s.name} | ${int(s.reqPerSec)} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${ms(s.maxMs)} | ${mib(s.peakRssBytes)} | ${int(s.ok2xx)} | ${statusList(s)} | ${s.errors} / ${s.timeouts} | ${pct(s.serverCpu)} | ${pct(s.clientCpu)} | ${pct(s.othersCpu)} |`,
    );
  }
  if (isOk(r.bare) && isOk(r.intake)) out.push('', `Ratio intake / bare: **${(r.intake.reqPerSec / r.bare.reqPerSec).toFixed(2)}×** req/s, p99 ${ms(r.intake.p99Ms)} vs ${ms(r.bare.p99Ms)}.`);
  if (isOk(r.intake) && r.intake.extra) out.push('', `Intake group commit (its /metrics): ${Object.entries(r.intake.extra).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  const f = failed('bare server run', r.bare) + failed('intake run', r.intake);
  if (f) out.push('', f.trim());
  out.push('');

  out.push('## Drain into SQLite', '');
  if (isOk(r.drain)) {
    const d = r.drain;
    out.push(
      `${int(d.records)} request records (avg ${Math.round(d.avgRecordBytes)} bytes framed, same payload as the ingest body) in ${d.segments} sealed segments, ` +
        `drained by the Drainer over openStore (SQLite, WAL, synchronous=FULL, ${'insert-if-absent'}) in the benchmark process; timed from start() until every segment was committed and deleted. ` +
        `Rows in the database afterwards: ${int(d.rowsInDb)}. CPU during the drain: drainer ${pct(d.drainCpu)}, other processes ${pct(d.othersCpu)}.`,
      '',
    );
    out.push('| Path | rows | time | rows/s | vs autocommit |', '|---|---:|---:|---:|---:|');
    const base = d.baseline.rowsPerSec;
    out.push(`| drainer: sealed segments → SQLite (end to end) | ${int(d.records)} | ${d.seconds.toFixed(2)} s | **${int(d.recordsPerSec)}** | ${(d.recordsPerSec / base).toFixed(0)}× |`);
    out.push(`| diagnostic: decode + parse the segments alone (CRC32C, utf-8, JSON; no database) | ${int(d.decodeOnly.rows)} | ${d.decodeOnly.seconds.toFixed(2)} s | ${int(d.decodeOnly.rowsPerSec)} | – |`);
    out.push(`| diagnostic: store.insertRequests alone (parsed records, 2000-row transactions) | ${int(d.storeOnly.rows)} | ${d.storeOnly.seconds.toFixed(2)} s | ${int(d.storeOnly.rowsPerSec)} | ${(d.storeOnly.rowsPerSec / base).toFixed(0)}× |`);
    out.push(`| diagnostic: the same rows, ${d.multiRow.rowsPerStatement} rows per INSERT statement (candidate) | ${int(d.multiRow.rows)} | ${d.multiRow.seconds.toFixed(2)} s | ${int(d.multiRow.rowsPerSec)} | ${(d.multiRow.rowsPerSec / base).toFixed(0)}× |`);
    out.push(`| baseline: single-row INSERT, autocommit (one commit per row) | ${int(d.baseline.rows)} | ${d.baseline.seconds.toFixed(2)} s | ${int(base)} | 1× |`);
    if (d.inSegmentSeconds !== null) {
      out.push('', `The drainer's own per-segment timings (decode + insert + delete) add up to ${d.inSegmentSeconds.toFixed(2)} s of the ${d.seconds.toFixed(2)} s; the rest is reading files, claiming locks and scanning.`);
    }
  } else {
    out.push(failed('drain run', r.drain).trim() || 'not run');
  }
  out.push('');

  out.push('## Time from 202 to visible', '');
  out.push(
    'A node in mode `both`; one request at a time, each posted once the previous one is visible, so each is the first record of a fresh segment (a quiet node: the slowest case). After the 202, GET /v1/requests/:id is polled until it answers 200.',
    '',
  );
  out.push('| --seal-after-ms | samples | min | p50 | p99 | max | poll interval |', '|---:|---:|---:|---:|---:|---:|---:|');
  for (const v of r.visible) {
    if (v instanceof Error) out.push(`| failed: ${v.message.split('\n')[0]} | | | | | | |`);
    else out.push(`| ${v.sealAfterMs}${v.sealAfterMs === 1000 ? ' (default)' : ''} | ${v.samples} | ${ms(v.minMs)} | ${ms(v.p50Ms)} | ${ms(v.p99Ms)} | ${ms(v.maxMs)} | ${v.pollMs} ms |`);
  }
  out.push('', 'With so few samples p99 is the largest sample or close to it.', '');

  const notes = observations(r);
  if (notes.length) {
    out.push('## Observations', '');
    out.push('Generated from the figures above.', '');
    for (const n of notes) out.push(`- ${n}`);
    out.push('');
  }
  return out.join('\n');
}

/** Plain statements derived from the measured figures: what limited what. */
export function observations(r: Report): string[] {
  const notes: string[] = [];
  const bare = isOk(r.bare) ? r.bare : null;
  const intake = isOk(r.intake) ? r.intake : null;
  if (bare && intake) {
    const others = Math.max(bare.othersCpu, intake.othersCpu);
    if (others >= 25) {
      notes.push(
        `The machine was shared: other processes (including kernel threads such as the ext4 journal) used ${pct(bare.othersCpu)} / ${pct(intake.othersCpu)} of a core (bare / intake runs) out of ${r.machine.nproc * 100} %. ` +
          'Throughput is lower and latency higher than on a quiet machine; the ABBA rounds spread the disturbance over both servers, but fdatasync latency (intake only) suffers most from other processes\' disk syncs.',
      );
    }
    const usBare = (bare.serverCpu / 100 / bare.reqPerSec) * 1e6;
    const usIntake = (intake.serverCpu / 100 / intake.reqPerSec) * 1e6;
    notes.push(
      `CPU per request (server process, all threads): bare ${usBare.toFixed(0)} µs, intake ${usIntake.toFixed(0)} µs (+${(usIntake - usBare).toFixed(0)} µs: validation, re-serialising the payload, record encoding, CRC32C, the group-commit writer and its thread-pool calls).` +
        (bare.serverCpu < 90 && intake.serverCpu < 90
          ? ` Neither server used a full core (${pct(bare.serverCpu)}, ${pct(intake.serverCpu)}): with ${r.ingest.connections} connections both were bound by round trips through a busy machine more than by their own CPU.`
          : ''),
    );
    const commit = intake.extra?.['mean write+fdatasync'];
    const batch = intake.extra?.['mean records per fdatasync'];
    if (commit && batch) {
      notes.push(
        `Group commit worked: ${batch} records per fdatasync on average (warm-up included), each batch taking ${commit} for write + fdatasync + ownership check` +
          (isOk(r.fsync) ? `, against an fdatasync of ${ms(r.fsync.p50Ms)} p50 / ${ms(r.fsync.p99Ms)} p99 measured on the same disk just before the runs` : '') +
          '. The difference is queueing: write, fdatasync and stat are three trips through libuv\'s thread pool whose completions wait for the busy main thread, plus other processes\' CPU and disk use. ' +
          'A request waits for the batch in flight and then its own, so intake\'s latency is about two commits; with a closed loop of connections, latency ≈ connections ÷ throughput.',
      );
    }
    if (bare.p99Ms > TARGETS.p99Ms) {
      notes.push(
        `The bare server's own p99 is ${ms(bare.p99Ms)}, above the ${TARGETS.p99Ms} ms target without writing anything: in this run, at ${r.ingest.connections} connections on ${r.machine.nproc} cores shared with the load generator, the target was out of reach even for a server that writes nothing, and intake's p99 (${ms(intake.p99Ms)}) is to be read next to it.`,
      );
    }
  }
  const d = isOk(r.drain) ? r.drain : null;
  if (d) {
    const insertS = d.records / d.storeOnly.rowsPerSec;
    const decodeS = d.records / d.decodeOnly.rowsPerSec;
    notes.push(
      `Drain: per record, decoding and parsing cost ${(1e6 / d.decodeOnly.rowsPerSec).toFixed(1)} µs and the SQLite insert ${(1e6 / d.storeOnly.rowsPerSec).toFixed(1)} µs (each measured alone); ` +
        `together ${(insertS + decodeS).toFixed(2)} s for ${int(d.records)} records against the drain's ${d.seconds.toFixed(2)} s` +
        (Math.abs(insertS + decodeS - d.seconds) <= 0.25 * d.seconds ? ': the drain is these two, one after the other on one thread. ' : ' (the machine\'s load changed between the measurements). ') +
        `The ${int(TARGETS.drainPerSec)} records/s target allows ${(1e6 / TARGETS.drainPerSec).toFixed(1)} µs per record in all.`,
    );
    notes.push(
      `${d.multiRow.rowsPerStatement} rows per INSERT statement run at ${int(d.multiRow.rowsPerSec)} rows/s, ${(d.multiRow.rowsPerSec / d.storeOnly.rowsPerSec).toFixed(2)}× store.insertRequests. ` +
        'Decoding the next segment while SQLite inserts the previous one (a worker thread for either) would overlap the two on the machine\'s second core.',
    );
    if (d.othersCpu >= 25) notes.push(`Other processes used ${pct(d.othersCpu)} of a core during the drain.`);
  }
  const v = r.visible.find((x): x is VisibleResult => !(x instanceof Error) && x.sealAfterMs === 1000);
  if (v) {
    notes.push(
      `Time to visible is the segment's age seal (${v.sealAfterMs} ms, checked every ${Math.max(20, Math.min(250, Math.floor(v.sealAfterMs / 4)))} ms) plus the drain of a one-record segment. The age counts from a segment's first record, so under steady load later records wait less: these figures are the quiet-node worst case.`,
    );
  }
  return notes;
}

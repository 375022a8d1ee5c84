// The benchmark's output: one markdown document, printed to stdout and written to docs/benchmarks.md.
import type { DeliveryResult, ReceiverBaseline, RoundTripResult } from './callbacks.js';
import type { Machine } from './common.js';
import type { PgDrainResult } from './drain-pg.js';
import type { DrainResult } from './drain.js';
import type { IngestOptions, LoadResult } from './ingest.js';
import { renderClaimScale, type ClaimScaleResult } from './claim-scale.js';
import { renderDelayed, type DelayedResult } from './delayed.js';
import type { MixedResult } from './mixed.js';
import { mixedObservations, mixedTargetRows, renderMixed } from './report-mixed.js';
import type { VisibleResult } from './visible.js';
import type { BooksResult } from './books.js';

export const TARGETS = {
  ingestRatio: 0.9,
  p99Ms: 10,
  peakRssMiB: 128,
  drainPerSec: 150_000,
  drainPgPerSec: 80_000,
  // The target of the issue "One node, every role at once" (it was 5,000/s before).
  callbacksPerSec: 8_000,
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
  /** The same node with an API key on every request. */
  intakeAuth: LoadResult | Error | null;
  drain: DrainResult | Error | null;
  drainPg: PgDrainResult | Error | null;
  delivery: (DeliveryResult | Error)[];
  receiverBaseline: ReceiverBaseline | Error | null;
  roundTrips: (RoundTripResult | Error)[];
  mixed: (MixedResult | Error)[];
  claimScale: (ClaimScaleResult | Error)[];
  delayed: (DelayedResult | Error)[];
  visible: (VisibleResult | Error)[];
  books: BooksResult | Error | null;
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
const engineName = (e: 'sqlite' | 'postgres') => (e === 'sqlite' ? 'SQLite' : 'PostgreSQL');
const pctOrNa = (n: number | null) => (n === null ? 'n/a' : pct(n));
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
  const keyed = isOk(r.intakeAuth) ? r.intakeAuth : null;
  const authCost = intake && keyed ? 1 - keyed.reqPerSec / intake.reqPerSec : NaN;
  rows.push({
    target: 'authentication costs ≤ 5 % of ingest req/s',
    measured: Number.isFinite(authCost) ? `${(authCost * 100).toFixed(1)} % (${int(keyed!.reqPerSec)} with a key vs ${int(intake!.reqPerSec)} req/s open)` : 'n/a',
    ok: Number.isFinite(authCost) ? authCost <= 0.05 : null,
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
  const dpg = isOk(r.drainPg) ? r.drainPg : null;
  rows.push({
    target: `drain into PostgreSQL ≥ ${int(TARGETS.drainPgPerSec)} records/s`,
    measured: dpg ? `${int(dpg.recordsPerSec)} records/s (${(dpg.recordsPerSec / dpg.baseline.rowsPerSec).toFixed(0)}× single-row autocommit)` : 'n/a',
    ok: dpg ? dpg.recordsPerSec >= TARGETS.drainPgPerSec && dpg.rowsInDb === dpg.records : null,
  });
  const base = isOk(r.receiverBaseline) ? r.receiverBaseline : null;
  const deliveries = r.delivery.filter(isOk);
  if (deliveries.length === 0) rows.push({ target: `callbacks delivered ≥ ${int(TARGETS.callbacksPerSec)}/s`, measured: 'n/a', ok: null });
  for (const d of deliveries) {
    rows.push({
      target: `callbacks delivered ≥ ${int(TARGETS.callbacksPerSec)}/s (${engineName(d.engine)})`,
      measured:
        `${int(d.perSec)}/s` +
        (base ? ` (${(d.perSec / base.reqPerSec).toFixed(2)}× the receiver's ceiling of ${int(base.reqPerSec)}/s)` : '') +
        (d.complete ? '' : `, only ${int(d.received)} of ${int(d.callbacks)} arrived`),
      ok: d.complete && d.perSec >= TARGETS.callbacksPerSec,
    });
  }
  rows.push(...mixedTargetRows(r.mixed));
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
    `- Ingest load: autocannon in the benchmark process, ${r.ingest.connections} connections, ${r.ingest.durationS} s measured after a ${r.ingest.warmupS} s warm-up, ` +
      `POST /v1/requests with a ${r.bodyBytes}-byte JSON body \`{payload, callback_url}\`, the measured time split into ${r.ingest.rounds} runs per server in ABBA order. ` +
      `Client and server share the machine's ${m.nproc} cores (CPU figures are % of one core).`,
  );
  out.push('');

  out.push('## Targets', '');
  out.push('| Target | Measured | Status |', '|---|---|---|');
  for (const t of targetRows(r)) out.push(`| ${t.target} | ${t.measured} | ${met(t.ok)} |`);
  out.push('');

  out.push('## Ingest', '');
  out.push('The three servers run as child processes, loaded one after the other in rotating order (ABC, CBA, …). The intake nodes run in `receive` mode, one open (no key exists) and one with an API key sent and checked on every request (header parse, SHA-256 of the key, constant-time compare, scope check) (HTTP → validated → spool, 202 only after the group-committed `fdatasync`); the bare server is fastify with the same body limit that parses the same JSON and answers the same 202 shape without validating or writing anything. Latency is per response as seen by autocannon (2xx only); peak RSS is the server process\'s VmHWM.', '');
  out.push(
    '| Server | req/s | p50 | p99 | max | peak RSS | 2xx | non-2xx | errors / timeouts | server CPU | autocannon CPU | other processes CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const s of [r.bare, r.intake, r.intakeAuth]) {
    if (!isOk(s)) continue;
    out.push(
      `| ${s.name} | ${int(s.reqPerSec)} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${ms(s.maxMs)} | ${mib(s.peakRssBytes)} | ${int(s.ok2xx)} | ${statusList(s)} | ${s.errors} / ${s.timeouts} | ${pct(s.serverCpu)} | ${pct(s.clientCpu)} | ${pct(s.othersCpu)} |`,
    );
  }
  if (isOk(r.bare) && isOk(r.intake)) out.push('', `Ratio intake / bare: **${(r.intake.reqPerSec / r.bare.reqPerSec).toFixed(2)}×** req/s, p99 ${ms(r.intake.p99Ms)} vs ${ms(r.bare.p99Ms)}.`);
  if (isOk(r.intake) && r.intake.extra) out.push('', `Intake group commit (its /metrics): ${Object.entries(r.intake.extra).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  if (isOk(r.intake) && isOk(r.intakeAuth)) {
    out.push('', `Cost of authentication: **${((1 - r.intakeAuth.reqPerSec / r.intake.reqPerSec) * 100).toFixed(1)} %** of req/s (${int(r.intakeAuth.reqPerSec)} with a key vs ${int(r.intake.reqPerSec)} open), p99 ${ms(r.intakeAuth.p99Ms)} vs ${ms(r.intake.p99Ms)}.`);
  }
  const f = failed('bare server run', r.bare) + failed('intake run', r.intake) + failed('intake run with a key', r.intakeAuth);
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
    out.push(`| baseline: single-row INSERT, autocommit (one commit per row) | ${int(d.baseline.rows)} | ${d.baseline.seconds.toFixed(2)} s | ${int(base)} | 1× |`);
    if (d.inSegmentSeconds !== null) {
      out.push('', `The drainer's own per-segment timings (decode + insert + delete) add up to ${d.inSegmentSeconds.toFixed(2)} s of the ${d.seconds.toFixed(2)} s; the rest is reading files, claiming locks and scanning.`);
    }
  } else {
    out.push(failed('drain run', r.drain).trim() || 'not run');
  }
  out.push('');

  out.push('## Drain into PostgreSQL', '');
  if (isOk(r.drainPg)) {
    const d = r.drainPg;
    out.push(
      `${int(d.records)} request records (avg ${Math.round(d.avgRecordBytes)} bytes framed, the same generator as the SQLite drain) in ${d.segments} sealed segments, ` +
        'drained by the Drainer over openStore(postgres://…) (a pool of 8, two segments at a time as a save-mode node on PostgreSQL does, one transaction per segment: COPY into a session staging table, then one INSERT … SELECT in id order with insert-if-absent on the id) in the benchmark process, ' +
        'into a throwaway PostgreSQL on the same machine (initdb from the system binaries, fsync on, synchronous_commit on, shared_buffers 128 MB), freshly migrated; ' +
        `timed from start() until every segment was committed and deleted. Rows in the database afterwards: ${int(d.rowsInDb)}. ` +
        `CPU during the drain: drainer ${pct(d.drainCpu)}, PostgreSQL (all its processes) ${pctOrNa(d.pgCpu)}, other processes ${pct(d.othersCpu)}.`,
      '',
    );
    out.push('| Path | rows | time | rows/s | vs autocommit |', '|---|---:|---:|---:|---:|');
    const base = d.baseline.rowsPerSec;
    out.push(`| drainer: sealed segments → PostgreSQL (end to end) | ${int(d.records)} | ${d.seconds.toFixed(2)} s | **${int(d.recordsPerSec)}** | ${(d.recordsPerSec / base).toFixed(0)}× |`);
    out.push(
      `| diagnostic: store.insertRequests alone (parsed records, segment-sized calls, fresh database; client ${pct(d.storeOnly.clientCpu)}, PostgreSQL ${pctOrNa(d.storeOnly.pgCpu)} CPU) | ${int(d.storeOnly.rows)} | ${d.storeOnly.seconds.toFixed(2)} s | ${int(d.storeOnly.rowsPerSec)} | ${(d.storeOnly.rowsPerSec / base).toFixed(0)}× |`,
    );
    out.push(`| baseline: single-row INSERT … ON CONFLICT DO NOTHING through pg, autocommit, same table | ${int(d.baseline.rows)} | ${d.baseline.seconds.toFixed(2)} s | ${int(base)} | 1× |`);
    out.push('', `Ratio drainer / single-row baseline: **${(d.recordsPerSec / base).toFixed(0)}×**.`);
    if (d.inSegmentSeconds !== null) {
      out.push('', `The drainer's own per-segment timings (decode + insert + delete) add up to ${d.inSegmentSeconds.toFixed(2)} s of the ${d.seconds.toFixed(2)} s.`);
    }
  } else {
    out.push(failed('PostgreSQL drain run', r.drainPg).trim() || 'not run');
  }
  out.push('');

  out.push('## Callbacks delivered', '');
  out.push(
    'N completed requests wait in the callback outbox, prepared through the store API before the timing starts (insertRequests, claimWork in batches of 100, completeWork for each: the same rows and bodies `POST /v1/work/:id/complete` makes; on SQLite prepared on tmpfs and copied to disk, on PostgreSQL with synchronous_commit off for the preparation only). ' +
      'Their callback URL is a node:http receiver on 127.0.0.1 in its own process that reads each body and answers 200, keep-alive. ' +
      'A daemon in mode `both` (INTAKE_CALLBACK_ALLOW_CIDRS=127.0.0.1/32, otherwise defaults: two outbox batch loops of 128 callbacks, 32 concurrent sends each, Standard Webhooks signing) is then spawned on that database; ' +
      'timed from the spawn until the receiver has counted the Nth callback, so the daemon\'s start-up (node, modules, migrations check, first claim) is inside the figure. ' +
      'The baseline is the same receiver loaded by autocannon from the benchmark process over 64 keep-alive connections with a body of the same size and the same webhook headers: the ceiling of this receiver on this machine.',
    '',
  );
  const cb = isOk(r.receiverBaseline) ? r.receiverBaseline : null;
  out.push(
    '| Sender | callbacks | body | time | **callbacks/s** | vs receiver ceiling | start-up (spawn → started) | spawn → first callback | first → last callback | distinct webhook-ids | TCP connections | sender CPU | receiver CPU | PostgreSQL CPU | other processes CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const d of r.delivery) {
    if (d instanceof Error) {
      out.push(`| failed: ${d.message.split('\n')[0]} | | | | | | | | | | | | | | |`);
      continue;
    }
    out.push(
      `| intake daemon, ${engineName(d.engine)} outbox | ${int(d.received)}${d.complete ? '' : ` of ${int(d.callbacks)}`} | ${d.bodyBytes} B | ${d.seconds.toFixed(2)} s | **${int(d.perSec)}** | ${cb ? `${(d.perSec / cb.reqPerSec).toFixed(2)}×` : 'n/a'} | ${ms(d.startupMs)} | ${ms(d.firstMs)} | ${int(d.steadyPerSec)}/s | ${int(d.unique)} | ${int(d.connections)} | ${pct(d.daemonCpu)} (${int(d.cpuPerCallbackUs)} µs per callback after start-up) | ${pct(d.receiverCpu)} | ${pctOrNa(d.pgCpu)} | ${pct(d.othersCpu)} |`,
    );
  }
  if (cb) {
    out.push(
      `| baseline: autocannon, ${cb.connections} keep-alive connections, rate as the receiver counted it (p50 ${ms(cb.p50Ms)}, p99 ${ms(cb.p99Ms)}; ${cb.non2xx} non-2xx, ${cb.errors} errors) | ${int(cb.received)} | ${cb.bodyBytes} B | ${cb.seconds.toFixed(2)} s | ${int(cb.reqPerSec)} | 1× | – | – | – | – | ${cb.connections} | ${pct(cb.clientCpu)} (autocannon, ${int(((cb.clientCpu / 100) * 1e6) / cb.reqPerSec)} µs per request) | ${pct(cb.receiverCpu)} | – | ${pct(cb.othersCpu)} |`,
    );
  } else if (r.receiverBaseline instanceof Error) out.push(`| baseline failed: ${r.receiverBaseline.message.split('\n')[0]} | | | | | | | | | | | | | | |`);
  out.push('');

  out.push('## Claim + complete round trips', '');
  const rt0 = r.roundTrips.find(isOk);
  out.push(
    `A daemon in mode \`both\` over a backlog of ${rt0 ? int(rt0.backlog) : 'N'} pending requests (inserted through the store API before it starts). ` +
      `${rt0 ? rt0.workers : 16} workers in the benchmark process, each in a loop over HTTP keep-alive: \`POST /v1/work/claim {limit: 1}\`, then \`POST /v1/work/:id/complete\` with a ~300-byte result. ` +
      'A round trip is claim + complete as the worker sees it; counted when its complete answers 200 inside the measured window (after the warm-up). ' +
      'The callbacks these completions record are delivered to the receiver meanwhile, as they would be in production. No target is set for this figure.',
    '',
  );
  out.push(
    '| Engine | workers | round trips | time | **round trips/s** | p50 | p99 | max | claim p50 / p99 | complete p50 / p99 | empty claims | errors | callbacks delivered meanwhile | daemon CPU | PostgreSQL CPU | workers (bench) CPU | other processes CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const t of r.roundTrips) {
    if (t instanceof Error) {
      out.push(`| failed: ${t.message.split('\n')[0]} | | | | | | | | | | | | | | | | |`);
      continue;
    }
    const errs = Object.entries(t.errors);
    out.push(
      `| ${engineName(t.engine)} | ${t.workers} | ${int(t.roundTrips)} | ${t.seconds.toFixed(2)} s | **${int(t.perSec)}** | ${ms(t.p50Ms)} | ${ms(t.p99Ms)} | ${ms(t.maxMs)} | ${ms(t.claimP50Ms)} / ${ms(t.claimP99Ms)} | ${ms(t.completeP50Ms)} / ${ms(t.completeP99Ms)} | ${int(t.emptyClaims)} | ${errs.length ? errs.map(([k, v]) => `${k}×${v}`).join(', ') : '0'} | ${int(t.callbacksDelivered)} | ${pct(t.daemonCpu)} | ${pctOrNa(t.pgCpu)} | ${pct(t.clientCpu)} | ${pct(t.othersCpu)} |`,
    );
  }
  out.push('');

  out.push(...renderMixed(r.mixed));
  out.push(...renderDelayed(r.delayed));
  out.push(...renderClaimScale(r.claimScale));

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
  out.push(...renderBooks(r.books));

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
          '. The difference is the busy main thread: each completion of write, fdatasync and stat waits for it to finish a turn of HTTP work. Doing all three as one job on a worker thread (one completion per batch) was tried and did not raise req/s, because the main thread\'s CPU per request is the limit, not the disk. ' +
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
      'Decoding the next segment while SQLite inserts the previous one (a worker thread for either) would overlap the two on the machine\'s second core.',
    );
    if (d.othersCpu >= 25) notes.push(`Other processes used ${pct(d.othersCpu)} of a core during the drain.`);
  }
  const dpg = isOk(r.drainPg) ? r.drainPg : null;
  if (dpg) {
    const us = (cpuPct: number, seconds: number, n: number) => ((cpuPct / 100) * seconds * 1e6) / n;
    const client = us(dpg.drainCpu, dpg.seconds, dpg.records);
    const server = dpg.pgCpu === null ? null : us(dpg.pgCpu, dpg.seconds, dpg.records);
    notes.push(
      `Drain into PostgreSQL: per record the drainer process used ${client.toFixed(0)} µs of CPU` +
        (server === null ? '' : ` and PostgreSQL ${server.toFixed(0)} µs`) +
        ` (${pct(dpg.drainCpu)} and ${pctOrNa(dpg.pgCpu)} of a core over the drain). The drainer works on two segments at once (one PostgreSQL backend each, while it decodes the next), so the two processes overlap. On the database side the row costs its jsonb parse, two index inserts and its WAL. ` +
        `The ${int(TARGETS.drainPgPerSec)} records/s target allows ${(1e6 / TARGETS.drainPgPerSec).toFixed(1)} µs per record in all. ` +
        `store.insertRequests alone (no segment reading or decoding) ran at ${int(dpg.storeOnly.rowsPerSec)} rows/s, so ${dpg.storeOnly.rowsPerSec < 1.5 * dpg.recordsPerSec ? 'inserting, not decoding, sets the pace' : 'decoding and file handling take a large share'}. ` +
        `The single-row baseline (${int(dpg.baseline.rowsPerSec)} rows/s) pays one commit and WAL flush per row.` +
        (dpg.othersCpu >= 25 ? ` Other processes used ${pct(dpg.othersCpu)} of a core meanwhile.` : ''),
    );
  }
  const cbBase = isOk(r.receiverBaseline) ? r.receiverBaseline : null;
  for (const d of r.delivery.filter(isOk)) {
    notes.push(
      `Callbacks (${engineName(d.engine)}): the daemon used ${int(d.cpuPerCallbackUs)} µs of CPU per callback after its start-up` +
        (cbBase ? `, against ${int(((cbBase.clientCpu / 100) * 1e6) / cbBase.reqPerSec)} µs per request for autocannon (which sends pre-built requests over a raw socket)` : '') +
        `; over the whole window it used ${pct(d.daemonCpu)} of a core` +
        (d.daemonCpu < 90 ? `, so it spent part of the time waiting rather than computing (two batch loops of 128 overlap, but each waits for its claim and its record; ${d.engine === 'sqlite' ? 'on SQLite those are synchronous transactions on the event loop' : 'on PostgreSQL those are queries it waits for'})` : '') +
        `. Start-up (spawn to "started") took ${ms(d.startupMs)} of the ${d.seconds.toFixed(2)} s; from the first callback to the last the rate was ${int(d.steadyPerSec)}/s.` +
        (d.unique === d.received ? ' Every callback arrived once (as many distinct webhook-ids as callbacks).' : ` ${int(d.received - d.unique)} arrived more than once.`) +
        (d.othersCpu >= 25 ? ` Other processes used ${pct(d.othersCpu)} of a core meanwhile.` : ''),
    );
  }
  for (const t of r.roundTrips.filter(isOk)) {
    const dbMs = t.pgCpu === null ? null : ((t.pgCpu / 100) * 1000) / t.perSec;
    notes.push(
      `Round trips (${engineName(t.engine)}): ${int(t.perSec)}/s with ${t.workers} workers; the daemon used ${pct(t.daemonCpu)} of a core` +
        (dbMs === null ? '' : `, PostgreSQL ${pct(t.pgCpu!)} (${dbMs.toFixed(1)} ms of database CPU per round trip, with ${int(t.backlog)} requests pending)`) +
        `. With a closed loop of ${t.workers} workers, latency ≈ workers ÷ throughput (${((t.workers / t.perSec) * 1000).toFixed(0)} ms against a measured p50 of ${ms(t.p50Ms)}).` +
        (t.othersCpu >= 25 ? ` Other processes used ${pct(t.othersCpu)} of a core meanwhile.` : ''),
    );
  }
  notes.push(...mixedObservations(r.mixed));
  const v = r.visible.find((x): x is VisibleResult => !(x instanceof Error) && x.sealAfterMs === 1000);
  if (v) {
    notes.push(
      `Time to visible is the segment's age seal (${v.sealAfterMs} ms, checked every ${Math.max(20, Math.min(250, Math.floor(v.sealAfterMs / 4)))} ms) plus the drain of a one-record segment. The age counts from a segment's first record, so under steady load later records wait less: these figures are the quiet-node worst case.`,
    );
  }
  return notes;
}

function renderBooks(b: BooksResult | Error | null): string[] {
  if (b === null) return [];
  const out = ['## The books (`intake verify`, `intake_books_*`)', ''];
  if (b instanceof Error) return [...out, `books run failed: ${b.message.split('\n')[0]}`, ''];
  out.push(
    `One SQLite database and one spool: ${b.spoolRecords.toLocaleString('en-US')} request records in ${b.spoolSegments} sealed segments not drained yet, and the history of a node that drained ${b.history.toLocaleString('en-US')} segments two hours ago (a drained_segments row and a segments.log line each: ${(b.history / 86_400).toFixed(1)} days of a node sealing a segment a second). The same process takes the books (bench/books.ts); the files are in the page cache.`,
    '',
    '| Taking the books | time (median of 3) | vs unfolded |',
    '|---|---:|---:|',
    `| unfolded: every history row and log line read | ${ms(b.unfoldedMs)} | 1.00× |`,
    `| after the fold (${b.folded.toLocaleString('en-US')} segments in one checkpoint row) | ${ms(b.foldedMs)} | ${(b.foldedMs / b.unfoldedMs).toFixed(2)}× |`,
    '',
    '| Event loop of the process, one window each (the worker\'s: at least two whole takes) | p99 delay | vs idle | takes in the window |',
    '|---|---:|---:|---:|',
    `| idle (baseline) | ${ms(b.loop.idleP99Ms)} | 1.00× | – |`,
    `| a BooksKeeper taking them back to back in its worker thread (as a node does) | ${ms(b.loop.workerP99Ms)} | ${(b.loop.workerP99Ms / b.loop.idleP99Ms).toFixed(2)}× | ${b.loop.workerTakes} |`,
    `| computeBooks on the event loop's own thread (as without the worker) | ${ms(b.loop.mainThreadP99Ms)} | ${(b.loop.mainThreadP99Ms / b.loop.idleP99Ms).toFixed(2)}× | ${b.loop.mainThreadTakes} |`,
    '',
  );
  return out;
}

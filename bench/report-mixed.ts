// The "Mixed load" section of the benchmark report and its rows in the targets table.
import type { AllRun, IngestFigures, MixedResult, PipelineWindow, ProcessingRun, Span, WorkFigures } from './mixed.js';

export const MIXED_TARGETS = {
  /** Ingest req/s with every role running, against ingest alone. */
  ingestRatio: 0.6,
  /** Ingest p99 with every role running, against ingest alone. */
  p99Ratio: 2,
  /** Processing alone, claim limit 1, complete per item. */
  perItemPerSec: 3_000,
  /** Processing alone, claim limit 100, batch complete. */
  batchPerSec: 15_000,
  /** Sustained pipeline (accepted → completed → delivered). */
  pipelinePerSec: 3_000,
} as const;

interface TargetRow {
  target: string;
  measured: string;
  ok: boolean | null;
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const ms = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0)) + ' ms' : 'n/a');
const pct = (n: number | null) => (n !== null && Number.isFinite(n) ? `${Math.round(n)} %` : 'n/a');
const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : 'n/a');
const signed = (n: number) => (Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${int(Math.abs(n))}` : 'n/a');
const isOk = <T>(v: T | Error): v is T => !(v instanceof Error);
const engineName = (e: 'sqlite' | 'postgres') => (e === 'sqlite' ? 'SQLite' : 'PostgreSQL');
const firstLine = (e: Error) => e.message.split('\n')[0];

/** Every failure inside a mixed-load result (a failed run does not stop the others). */
export function mixedFailures(m: MixedResult | Error): Error[] {
  if (m instanceof Error) return [m];
  return [m.alone, m.all, ...m.processing, m.pipelineError].filter((v): v is Error => v instanceof Error);
}

/** The highest rate that kept up and the lowest that did not. */
export function pipelineBounds(windows: PipelineWindow[]): { kept: PipelineWindow | null; failed: PipelineWindow | null } {
  let kept: PipelineWindow | null = null;
  let failed: PipelineWindow | null = null;
  for (const w of windows) {
    if (w.keptUp && (!kept || w.rate > kept.rate)) kept = w;
    if (!w.keptUp && (!failed || w.rate < failed.rate)) failed = w;
  }
  return { kept, failed };
}

export function mixedTargetRows(results: (MixedResult | Error)[]): TargetRow[] {
  const rows: TargetRow[] = [];
  const T = MIXED_TARGETS;
  const ok = results.filter(isOk);
  if (ok.length === 0) rows.push({ target: 'mixed load', measured: 'n/a', ok: null });
  for (const m of ok) {
    const e = engineName(m.engine);
    const alone = isOk(m.alone) ? m.alone : null;
    const all = isOk(m.all) ? m.all : null;
    const ratio = alone && all ? all.ingest.perSec / alone.ingest.perSec : NaN;
    const p99 = alone && all ? all.ingest.p99Ms / alone.ingest.p99Ms : NaN;
    rows.push({
      target: `mixed load: ingest ≥ ${T.ingestRatio}× ingest alone (${e})`,
      measured: Number.isFinite(ratio) ? `${x(ratio)} (${int(all!.ingest.perSec)} vs ${int(alone!.ingest.perSec)} req/s)` : 'n/a',
      ok: Number.isFinite(ratio) ? ratio >= T.ingestRatio : null,
    });
    rows.push({
      target: `mixed load: ingest p99 ≤ ${T.p99Ratio}× ingest alone (${e})`,
      measured: Number.isFinite(p99) ? `${x(p99)} (${ms(all!.ingest.p99Ms)} vs ${ms(alone!.ingest.p99Ms)})` : 'n/a',
      ok: Number.isFinite(p99) ? p99 <= T.p99Ratio : null,
    });
    const proc = (limit: number) => m.processing.find((p): p is ProcessingRun => isOk(p) && p.work.limit === limit) ?? null;
    for (const [limit, target, what] of [
      [1, T.perItemPerSec, 'claim limit 1, complete each'],
      [100, T.batchPerSec, 'claim limit 100, batch complete'],
    ] as const) {
      const p = proc(limit);
      rows.push({
        target: `processing alone ≥ ${int(target)} items/s, ${what} (${e})`,
        measured: p ? `${int(p.work.itemsPerSec)} items/s` : 'n/a',
        ok: p ? p.work.itemsPerSec >= target : null,
      });
    }
    const { kept, failed } = pipelineBounds(m.pipeline);
    rows.push({
      target: `sustained pipeline (accepted → completed → callback delivered) ≥ ${int(T.pipelinePerSec)} requests/s (${e})`,
      measured: m.pipeline.length
        ? `${kept ? `kept up at ${int(kept.rate)}/s` : 'kept up at none of the rates tried'}${failed ? `, not at ${int(failed.rate)}/s` : ''}`
        : 'n/a',
      ok: m.pipeline.length ? (kept?.rate ?? 0) >= T.pipelinePerSec : null,
    });
  }
  return rows;
}

/** Ingest answers that were not 2xx or never came, and the workers' failed calls. */
function errs(ingest: IngestFigures | null, work: WorkFigures | null): string {
  const list = (e: [string, number][]) => e.map(([k, v]) => `${k}×${v}`).join(', ');
  const i: [string, number][] = ingest ? Object.entries(ingest.non2xx) : [];
  if (ingest?.errors) i.push(['no answer', ingest.errors]);
  const w = work ? Object.entries(work.errors) : [];
  const parts = [i.length ? `ingest ${list(i)}` : '', w.length ? `workers ${list(w)}` : ''].filter(Boolean);
  return parts.length ? parts.join('; ') : '0';
}

/** Loop delay (with the worst 5 s window when asked) and the mean spool commit: two cells. */
function loop(s: Span, withMax: boolean): string {
  return `${withMax ? `${ms(s.loopP99Ms)} (worst ${ms(s.loopMaxP99Ms)})` : ms(s.loopP99Ms)} | ${ms(s.commitMeanMs)}${s.commitsOver1s > 0 ? ` (${s.commitsOver1s} over 1 s)` : ''}`;
}

function cpuCells(s: Span, p: { cpuPerItemUs: number; pgCpuPerItemUs: number | null } | null): string {
  const perItem = p ? `${int(p.cpuPerItemUs)} µs${p.pgCpuPerItemUs === null ? '' : ` + PG ${int(p.pgCpuPerItemUs)} µs`}` : '–';
  return `${pct(s.nodeCpu)} | ${perItem} | ${pct(s.pgCpu)} | ${pct(s.benchCpu)} (loop p99 ${ms(s.benchLoopP99Ms)}, max ${ms(s.benchLoopMaxMs)}) | ${pct(s.receiverCpu)} | ${pct(s.othersCpu)}`;
}

export function renderMixed(results: (MixedResult | Error)[]): string[] {
  const out: string[] = [];
  out.push('## Mixed load', '');
  const m0 = results.find(isOk);
  if (!m0) {
    out.push(results.length ? results.map((r) => `mixed load failed: ${firstLine(r as Error)}`).join('\n') : 'not run', '');
    return out;
  }
  const o = m0.options;
  out.push(
    `One node (\`intake start\`, a child process) on each engine, every run on a fresh spool, database and node; callbacks go to the benchmark's receiver (the one of "Callbacks delivered", INTAKE_CALLBACK_ALLOW_CIDRS=127.0.0.1/32), the requests' body is the ingest body with the receiver as callback_url (${m0.bodyBytes} bytes). ` +
      `Workers run in the benchmark process over HTTP keep-alive (one agent, a socket each); after an empty claim a worker sleeps 10 ms, doubling to 100 ms while claims stay empty.`,
    '',
  );
  out.push(
    `- **ingest alone**: receive mode, autocannon at ${o.connections} connections (as in "Ingest"), ${o.warmupS} s warm-up + ${o.ingestS} s; req/s counts 202s, p50/p99 per response (2xx).`,
    `- **everything at once**: mode \`both\`, the same ingest load while the node drains its spool, ${o.workers} workers loop claim (limit 1) → \`POST /v1/work/:id/complete\`, and the node sends the callbacks; ratios are to ingest alone just before.`,
    `- **processing alone**: mode \`both\` over ${int(o.backlog)} pending requests inserted through the store API before the node starts, no ingest; ${o.workers} workers at claim limit 1 completing each item, then at limit 100 with one \`POST /v1/work/complete\` per claim (1 s warm-up + ${o.processingS} s each, ended early when the backlog runs out); claim p50/p99 is one claim call.`,
    `- **pipeline at R/s**: requests at a fixed rate R, spread evenly (every 5 ms what is due; at most ${o.connections} in flight), with the workers of "everything at once"; ${o.pipelineWarmupS} s warm-up + ${o.pipelineS} s window. The backlog is accepted (the client's 202s) minus callbacks delivered (the receiver's count), read once a second; its growth is a least-squares line through those readings over the window. R **kept up** when the client kept pace (sent ≥ 98 % of R; it falls behind only while every connection waits for the node), ≥ 99 % of what it sent was answered 202, and the backlog grew by at most one second of input (R requests: one age-sealed segment, the step by which the backlog moves). Rates: first what processing alone managed at limit 1 (no more than ingest alone), then 0.9× what a failed window managed end to end or 1.25× one that kept up, then halfway between the two, at most ${o.maxWindows} windows.`,
    '- **items/s**: completes answered inside the window; **callbacks/s**: POSTs the receiver counted; **drained/s**: records the node drained into the database (its `intake_drain_records_total`).',
    '- **loop-delay p99**: the node\'s `intake_event_loop_delay_seconds{quantile="0.99"}` (a 5 s window) read at the end of the measured time (n/a before the node\'s first window ends); on pipeline rows also the worst 5 s window read during it. **spool commit mean**: one group commit\'s write + fdatasync, the mean over the window (its `intake_spool_fsync_seconds`), with how many took over 1 s: where a request waits besides the loop.',
    '- **claim p50 / p99**: one claim call as a worker saw it; **empty/s**: claims that found nothing, per second of the window (a worker then sleeps, see above).',
    '- **CPU per item**: the node\'s CPU seconds (all threads) in the window ÷ items completed in it (+ PostgreSQL\'s, all its processes); the node also ingested, drained and sent callbacks for other requests meanwhile, so on the ingest-heavy rows this is the node\'s whole cost shared over the items completed. CPU columns are % of one core; "bench" is the benchmark process (load generator and workers), with its own event-loop delay: a client whose loop is late reads every answer late, so its latencies include that delay.',
    '',
  );
  for (const m of results) {
    if (m instanceof Error) {
      out.push(`mixed load failed: ${firstLine(m)}`, '');
      continue;
    }
    out.push(`### ${engineName(m.engine)}`, '');
    out.push(
      '| Run | ingest req/s | ingest p50 | ingest p99 | vs ingest alone | items/s | claim p50 / p99 | callbacks/s | drained/s | backlog start → end (growth) | loop-delay p99 | spool commit mean | node CPU | CPU per item | PostgreSQL CPU | bench CPU | receiver CPU | other CPU | non-2xx, errors |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    const alone = isOk(m.alone) ? m.alone : null;
    const vs = (perSec: number | null, p99: number) =>
      alone ? (perSec === null ? `p99 ${x(p99 / alone.ingest.p99Ms)}` : `req/s ${x(perSec / alone.ingest.perSec)}, p99 ${x(p99 / alone.ingest.p99Ms)}`) : 'n/a';
    const failedRow = (what: string, e: Error) => `| ${what} failed: ${firstLine(e)} |${' |'.repeat(18)}`;
    const claim = (w: WorkFigures): string => `${ms(w.claimP50Ms)} / ${ms(w.claimP99Ms)}${w.emptyClaims ? ` (${int(w.emptyClaims / w.seconds)} empty/s)` : ''}`;
    const rate = (n: number, s: Span) => int(n / s.seconds);
    if (alone) {
      const i = alone.ingest;
      out.push(
        `| ingest alone (receive mode) | ${int(i.perSec)} | ${ms(i.p50Ms)} | ${ms(i.p99Ms)} | 1× | – | – | – | – | – | ${loop(alone.span, false)} | ${cpuCells(alone.span, null)} | ${errs(i, null)} |`,
      );
    } else out.push(failedRow('ingest alone', m.alone as Error));
    if (isOk(m.all)) {
      const a: AllRun = m.all;
      const i = a.ingest;
      out.push(
        `| everything at once (both, ${a.work.workers} workers at limit 1) | ${int(i.perSec)} | ${ms(i.p50Ms)} | ${ms(i.p99Ms)} | ${vs(i.perSec, i.p99Ms)} | ${int(a.work.itemsPerSec)} | ${claim(a.work)} | ${rate(a.span.delivered, a.span)} | ${rate(a.span.drained, a.span)} | – | ${loop(a.span, false)} | ${cpuCells(a.span, a)} | ${errs(i, a.work)} |`,
      );
    } else out.push(failedRow('everything at once', m.all));
    for (const p of m.processing) {
      if (p instanceof Error) {
        out.push(failedRow('processing alone', p));
        continue;
      }
      const w = p.work;
      out.push(
        `| processing alone, limit ${w.limit}, ${w.batchComplete ? 'batch complete' : 'complete each'}${w.ranDry ? ` (backlog ran out after ${w.seconds.toFixed(1)} s)` : ''} | – | – | – | – | **${int(w.itemsPerSec)}** | ${claim(w)} | ${rate(p.span.delivered, p.span)} | – | – | ${loop(p.span, false)} | ${cpuCells(p.span, p)} | ${errs(null, w)} |`,
      );
    }
    for (const w of m.pipeline) {
      const i = w.ingest;
      out.push(
        `| pipeline at ${int(w.rate)}/s: **${w.keptUp ? 'kept up' : 'did not keep up'}**${w.sentPerSec < 0.98 * w.rate ? ` (sent ${int(w.sentPerSec)}/s)` : ''} | ${int(i.perSec)} | ${ms(i.p50Ms)} | ${ms(i.p99Ms)} | ${vs(null, i.p99Ms)} | ${int(w.work.itemsPerSec)} | ${claim(w.work)} | ${rate(w.span.delivered, w.span)} | ${rate(w.span.drained, w.span)} | ${int(w.backlogStart)} → ${int(w.backlogEnd)} (${signed(w.growth)}, allowed +${int(w.allowedGrowth)}) | ${loop(w.span, true)} | ${cpuCells(w.span, w)} | ${errs(i, w.work)} |`,
      );
    }
    if (m.pipelineError) out.push(failedRow('pipeline', m.pipelineError));
    const { kept, failed } = pipelineBounds(m.pipeline);
    out.push('');
    if (m.pipeline.length) {
      out.push(
        `Sustained pipeline (${engineName(m.engine)}): ` +
          (kept ? `highest rate that kept up **${int(kept.rate)}/s** (backlog growth ${signed(kept.growth)} over ${m.options.pipelineS} s)` : 'no rate tried kept up') +
          (failed ? `; lowest that did not ${int(failed.rate)}/s (growth ${signed(failed.growth)}; it managed ${int(failed.ingest.perSec)} accepted, ${int(failed.work.itemsPerSec)} completed, ${int(failed.span.delivered / failed.span.seconds)} delivered per second)` : '; no rate tried failed') +
          '.',
        '',
      );
    }
  }
  return out;
}

/** Plain statements derived from the mixed-load figures. */
export function mixedObservations(results: (MixedResult | Error)[]): string[] {
  const notes: string[] = [];
  for (const m of results.filter(isOk)) {
    const e = engineName(m.engine);
    const { kept } = pipelineBounds(m.pipeline);
    if (kept) {
      notes.push(
        `Mixed load (${e}): at ${int(kept.rate)} requests/s, the highest rate that kept up, each request cost the node ${int(kept.cpuPerItemUs)} µs of CPU end to end (ingest, spool, drain, claim, complete, callback)` +
          (kept.pgCpuPerItemUs === null ? '' : ` and PostgreSQL ${int(kept.pgCpuPerItemUs)} µs`) +
          `, using ${pct(kept.span.nodeCpu)} of a core while other processes used ${pct(kept.span.othersCpu)}.` +
          (kept.work.emptyClaims > 0 ? ` At a rate this far below what the workers can claim, the node's fixed costs weigh in: ${int(kept.work.emptyClaims / kept.work.seconds)} empty claims a second, heartbeats, scans and timers.` : ''),
      );
    }
    const spans = [m.alone, m.all, ...m.processing].filter(isOk).map((r) => r.span);
    const others = spans.length ? Math.max(...spans.map((s) => s.othersCpu)) : 0;
    if (others >= 25) notes.push(`Mixed load (${e}): other processes used up to ${pct(others)} of a core during these runs, so the node had less than the machine to itself.`);
  }
  return notes;
}

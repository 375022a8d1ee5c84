// `npm run bench`: ingest (intake vs a bare fastify server), drain into SQLite and into
// PostgreSQL, callbacks delivered per second, claim+complete round trips, the time from 202
// to visible, and one node in every role at once (mixed). Prints a markdown report to stdout
// (progress goes to stderr) and writes it to docs/benchmarks.md. Takes about twelve minutes on a
// 2-core machine, eight of them the mixed part. The PostgreSQL parts start a throwaway server
// from the system's binaries (test/helpers/postgres.ts) and stop it at the end.
//
// Options: --quick (short runs, for trying the harness; docs/benchmarks.md is not written),
//          --no-write (print only),
//          --only=a,b (run only these parts: ingest, drain, drain-pg, callbacks, work, mixed, delayed, claims, visible, books;
//          docs/benchmarks.md is not written).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../test/helpers/daemon.js';
import { loadavg } from 'node:os';
import { attempt, cleanupNow, fsyncProbe, installCleanupHooks, machineInfo, removeDir, REQUEST_BODY, say, tempDir } from './common.js';
import { Receiver, runDelivery, runReceiverBaseline, runRoundTrips, type Engine } from './callbacks.js';
import { runBooks } from './books.js';
import { runClaimScale } from './claim-scale.js';
import { runDelayed } from './delayed.js';
import { runDrainPg } from './drain-pg.js';
import { runDrain } from './drain.js';
import { runMixed, type MixedOptions } from './mixed.js';
import { startBenchPg, type BenchPg } from './pg.js';
import { runIngest } from './ingest.js';
import { mixedFailures } from './report-mixed.js';
import { renderMarkdown, type Report } from './report.js';
import { runVisible } from './visible.js';

async function main(): Promise<number> {
  installCleanupHooks();
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const onlyArg = args.find((a) => a.startsWith('--only='));
  const only = onlyArg ? new Set(onlyArg.slice('--only='.length).split(',')) : null;
  const want = (part: string) => only === null || only.has(part);
  const write = !quick && only === null && !args.includes('--no-write');
  const startedAt = new Date();
  const t0 = performance.now();

  const ingest = quick ? { connections: 64, durationS: 4, warmupS: 1, rounds: 2 } : { connections: 64, durationS: 10, warmupS: 2, rounds: 4 };
  const report: Report = {
    startedAt,
    seconds: 0,
    command: `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`,
    machine: await machineInfo(),
    bodyBytes: Buffer.byteLength(REQUEST_BODY),
    ingest,
    bare: null,
    intake: null,
    intakeAuth: null,
    drain: null,
    drainPg: null,
    delivery: [],
    receiverBaseline: null,
    roundTrips: [],
    mixed: [],
    claimScale: [],
    delayed: [],
    visible: [],
    books: null,
    loadBefore: loadavg(),
    loadAfter: [],
    fsync: null,
  };

  report.fsync = await attempt('fdatasync probe', async () => {
    const d = tempDir('intake-bench-disk-');
    try {
      return fsyncProbe(d);
    } finally {
      removeDir(d);
    }
  });

  const ing = want('ingest') ? await attempt('ingest run', () => runIngest(ingest)) : null;
  report.bare = ing instanceof Error ? ing : (ing?.bare ?? null);
  report.intake = ing instanceof Error ? ing : (ing?.intake ?? null);
  report.intakeAuth = ing instanceof Error ? ing : (ing?.intakeAuth ?? null);
  if (want('drain')) report.drain = await attempt('drain run', () =>
    runDrain({
      records: quick ? 50_000 : 200_000,
      segmentBytes: 16 * 1024 * 1024,
      baselineMaxRows: quick ? 2000 : 20_000,
      baselineMaxSeconds: quick ? 1 : 2,
      storeOnlyRows: quick ? 50_000 : 200_000,
    }),
  );

  // PostgreSQL: one throwaway server for the drain, the callbacks, the round trips and the mixed load.
  const needPg = want('drain-pg') || want('callbacks') || want('work') || want('mixed') || want('delayed') || want('claims');
  const needReceiver = want('callbacks') || want('work') || want('mixed') || want('delayed');
  const mixed: MixedOptions = quick
    ? { connections: 64, warmupS: 1, ingestS: 5, workers: 16, backlog: 20_000, processingS: 3, pipelineWarmupS: 3, pipelineS: 10, maxWindows: 3, pipelineBudgetS: 45 }
    : { connections: 64, warmupS: 2, ingestS: 10, workers: 16, backlog: 60_000, processingS: 5, pipelineWarmupS: 4, pipelineS: 60, maxWindows: 4, pipelineBudgetS: 150 };
  const pgs = needPg ? await attempt('postgres start', () => startBenchPg()) : new Error('not run');
  const pgOrNull: BenchPg | null = pgs instanceof Error ? null : pgs;
  let receiver: Receiver | Error | null = null;
  const engines: Engine[] = ['sqlite', 'postgres'];
  try {
    if (want('drain-pg')) report.drainPg = pgs instanceof Error ? pgs : await attempt('PostgreSQL drain run', () =>
      runDrainPg(
        {
          records: quick ? 50_000 : 200_000,
          segmentBytes: 16 * 1024 * 1024,
          baselineMaxRows: quick ? 2000 : 20_000,
          baselineMaxSeconds: quick ? 1 : 3,
          storeOnlyRows: quick ? 20_000 : 50_000,
        },
        pgs,
      ),
    );
    receiver = needReceiver ? await attempt('callback receiver start', () => Receiver.start()) : null;
    if (receiver instanceof Error) {
      report.delivery.push(receiver);
      report.roundTrips.push(receiver);
      report.mixed.push(receiver);
      report.delayed.push(receiver);
    } else if (receiver) {
      const rcv = receiver;
      for (const e of want('callbacks') ? engines : []) {
        if (e === 'postgres' && pgs instanceof Error) {
          report.delivery.push(pgs);
          continue;
        }
        report.delivery.push(await attempt(`callback delivery (${e})`, () => runDelivery(e, { callbacks: quick ? 5000 : 20_000, timeoutS: quick ? 30 : 60 }, rcv, pgOrNull)));
      }
      if (want('callbacks')) report.receiverBaseline = await attempt('receiver baseline', () => runReceiverBaseline(rcv, 64, quick ? 2 : 5));
      for (const e of want('work') ? engines : []) {
        if (e === 'postgres' && pgs instanceof Error) {
          report.roundTrips.push(pgs);
          continue;
        }
        report.roundTrips.push(
          await attempt(`round trips (${e})`, () => runRoundTrips(e, { workers: 16, backlog: quick ? 10_000 : 20_000, warmupS: 1, seconds: quick ? 2 : 6 }, rcv, pgOrNull)),
        );
      }
      for (const e of want('mixed') ? engines : []) {
        if (e === 'postgres' && pgs instanceof Error) {
          report.mixed.push(pgs);
          continue;
        }
        report.mixed.push(await attempt(`mixed load (${e})`, () => runMixed(e, mixed, rcv, pgOrNull)));
      }
      for (const e of want('delayed') ? engines : []) {
        if (e === 'postgres' && pgs instanceof Error) {
          report.delayed.push(pgs);
          continue;
        }
        report.delayed.push(await attempt(`delayed (${e})`, () => runDelayed(e, { requests: quick ? 1000 : 5000, concurrency: 64, syncSamples: quick ? 100 : 400 }, rcv, pgOrNull)));
      }
    }
    // Claim latency against the backlog: last, as it fills a database with up to a million rows.
    if (want('claims')) {
      const sizes = quick ? [10_000, 50_000] : [10_000, 100_000, 1_000_000];
      const dir = tempDir('intake-bench-claims-');
      try {
        report.claimScale.push(await attempt('claim scale (sqlite)', () => runClaimScale('sqlite', `sqlite:${join(dir, 'claims.db')}`, sizes)));
      } finally {
        removeDir(dir);
      }
      report.claimScale.push(pgOrNull ? await attempt('claim scale (postgres)', () => runClaimScale('postgres', pgOrNull.freshDb(), sizes)) : (pgs as Error));
    }
  } finally {
    if (receiver && !(receiver instanceof Error)) await receiver.stop();
    if (pgOrNull) await pgOrNull.close().catch((err: unknown) => say(`postgres close failed: ${String(err)}`));
  }

  if (want('visible')) {
    report.visible.push(await attempt('visible run (1000 ms)', () => runVisible(1000, quick ? 4 : 20, 5)));
    report.visible.push(await attempt('visible run (100 ms)', () => runVisible(100, quick ? 10 : 50, 2)));
  }
  if (want('books')) report.books = await attempt('books run', () => runBooks(quick ? { spoolRecords: 20_000, history: 20_000, windowS: 2 } : { spoolRecords: 100_000, history: 200_000, windowS: 5 }));
  report.seconds = (performance.now() - t0) / 1000;
  report.loadAfter = loadavg();

  const md = renderMarkdown(report);
  process.stdout.write(md + '\n');
  if (write) {
    const path = join(repoRoot, 'docs', 'benchmarks.md');
    writeFileSync(path, md + '\n');
    say(`wrote ${path}`);
  }
  const failures = [report.fsync, ing, report.drain, report.drainPg, ...report.delivery, report.receiverBaseline, ...report.roundTrips, ...report.mixed.flatMap(mixedFailures), ...report.claimScale, ...report.delayed, ...report.visible, report.books].filter(
    (v) => v instanceof Error,
  ).length;
  return failures > 0 ? 1 : 0;
}

main().then(
  (code) => {
    cleanupNow();
    process.exit(code);
  },
  (err: unknown) => {
    say(`benchmark crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    cleanupNow();
    process.exit(1);
  },
);

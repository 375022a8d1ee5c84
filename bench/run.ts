// `npm run bench`: ingest (intake vs a bare fastify server), drain into SQLite, and the time
// from 202 to visible. Prints a markdown report to stdout (progress goes to stderr) and writes
// it to docs/benchmarks.md. Takes about two and a half minutes on a 2-core machine.
//
// Options: --quick (short runs, for trying the harness; docs/benchmarks.md is not written),
//          --no-write (print only).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../test/helpers/daemon.js';
import { loadavg } from 'node:os';
import { cleanupNow, fsyncProbe, installCleanupHooks, machineInfo, removeDir, REQUEST_BODY, say, tempDir } from './common.js';
import { runDrain } from './drain.js';
import { runIngest } from './ingest.js';
import { renderMarkdown, type Report } from './report.js';
import { runVisible } from './visible.js';

async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T | Error> {
  try {
    return await fn();
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    say(`${what} failed: ${e.stack ?? e.message}`);
    return e;
  }
}

async function main(): Promise<number> {
  installCleanupHooks();
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const write = !quick && !args.includes('--no-write');
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
    drain: null,
    visible: [],
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

  const ing = await attempt('ingest run', () => runIngest(ingest));
  report.bare = ing instanceof Error ? ing : ing.bare;
  report.intake = ing instanceof Error ? ing : ing.intake;
  report.drain = await attempt('drain run', () =>
    runDrain({
      records: quick ? 50_000 : 200_000,
      segmentBytes: 16 * 1024 * 1024,
      baselineMaxRows: quick ? 2000 : 20_000,
      baselineMaxSeconds: quick ? 1 : 2,
      storeOnlyRows: quick ? 50_000 : 200_000,
    }),
  );
  report.visible.push(await attempt('visible run (1000 ms)', () => runVisible(1000, quick ? 4 : 20, 5)));
  report.visible.push(await attempt('visible run (100 ms)', () => runVisible(100, quick ? 10 : 50, 2)));
  report.seconds = (performance.now() - t0) / 1000;
  report.loadAfter = loadavg();

  const md = renderMarkdown(report);
  process.stdout.write(md + '\n');
  if (write) {
    const path = join(repoRoot, 'docs', 'benchmarks.md');
    writeFileSync(path, md + '\n');
    say(`wrote ${path}`);
  }
  const failures = [report.fsync, ing, report.drain, ...report.visible].filter((v) => v instanceof Error).length;
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

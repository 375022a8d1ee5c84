// The books (intake verify's figures, src/drain/books.ts): what taking them costs, what the
// checkpoints save, and what the worker thread spares the event loop.
//
// Set-up (untimed): a SQLite database and a spool holding `spoolRecords` request records in
// sealed segments (not drained), plus the history of an old node: `history` drained segments,
// each with its drained_segments row (drained two hours ago) and its line in segments.log, as a
// busy node leaves about one a second.
// Measured:
//   - computeBooks over it, unfolded (every history line and row read), then again after the
//     fold (the history counted from one checkpoint row): the ratio is what checkpoints save;
//   - the event-loop delay (p99) of this process over a window, idle (the baseline), while a
//     BooksKeeper takes the books again and again in its worker thread (as a node does), and
//     while computeBooks runs on this thread (as it would without the worker).
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import pino from 'pino';
import { v7 as uuidv7 } from 'uuid';
import { BooksKeeper } from '../src/drain/books-keeper.js';
import { computeBooks } from '../src/drain/books.js';
import { readBooksFile } from '../src/drain/books-file.js';
import { openStore } from '../src/store/open.js';
import { removeDir, say, sleep, tempDir } from './common.js';
import { writeSegments } from './drain.js';

export interface BooksOptions {
  spoolRecords: number;
  history: number;
  /** Length of each event-loop window. */
  windowS: number;
}

export interface BooksResult {
  spoolRecords: number;
  spoolSegments: number;
  history: number;
  unfoldedMs: number;
  foldedMs: number;
  folded: number;
  loop: { idleP99Ms: number; workerP99Ms: number; workerTakes: number; mainThreadP99Ms: number; mainThreadTakes: number };
}

const OLD_NODE = 'bench-old';

/** The median of `reps` timed runs of `fn`, in ms. */
async function medianMs(reps: number, fn: () => Promise<unknown>): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return t.sort((a, b) => a - b)[Math.floor(reps / 2)]!;
}

/** p99 of this thread's event-loop delay while `during` runs for `windowS`. */
async function loopP99(windowS: number, during: (until: number) => Promise<number>): Promise<{ p99Ms: number; n: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const n = await during(performance.now() + windowS * 1000);
  h.disable();
  return { p99Ms: h.percentile(99) / 1e6, n };
}

export async function runBooks(o: BooksOptions): Promise<BooksResult> {
  const dir = tempDir('intake-bench-books-');
  const root = join(dir, 'spool');
  const dbUrl = `sqlite:${join(dir, 'books.db')}`;
  try {
    say(`books: writing ${o.spoolRecords} spool records and ${o.history} drained segments of history`);
    const store = await openStore(dbUrl);
    await store.migrate();
    await store.close();
    const { segments } = writeSegments(root, o.spoolRecords, 16 * 1024 * 1024);
    mkdirSync(join(root, 'nodes', OLD_NODE), { recursive: true });
    const db = new Database(join(dir, 'books.db'));
    const ids = Array.from({ length: o.history }, () => uuidv7());
    const insert = db.prepare('INSERT INTO drained_segments (node, segment, requests, refused, conflicts, drained_at, drained_by) VALUES (?, ?, 0, 0, 0, ?, ?)');
    const twoHoursAgo = Date.now() - 2 * 3_600_000;
    db.transaction(() => ids.forEach((id) => insert.run(OLD_NODE, id, twoHoursAgo, OLD_NODE)))();
    db.close();
    appendFileSync(join(root, 'nodes', OLD_NODE, 'segments.log'), ids.map((id) => `\n${id}\n`).join(''));

    const reader = await openStore(dbUrl);
    try {
      const take = () => computeBooks(root, reader);
      await take(); // warm the page cache: every run below reads from memory
      const unfoldedMs = await medianMs(3, take);

      const log = pino({ level: 'silent' });
      const idle = await loopP99(o.windowS, async (until) => {
        while (performance.now() < until) await sleep(20);
        return 0;
      });
      // The keeper as a node runs it, taking the books back to back (no fold: a year's margin).
      const keeper = new BooksKeeper({ root, node: 'bench-keeper', dbUrl, intervalMs: 100, foldAfterMs: 365 * 24 * 3_600_000, lockStaleMs: 10_000, log });
      const worker = await loopP99(o.windowS, async (until) => {
        const seen = new Set<string>();
        keeper.start();
        // The window, and at least two whole takes (one take may outlast a short window).
        const cap = performance.now() + 120_000;
        while ((performance.now() < until || seen.size < 2) && performance.now() < cap) {
          const f = await readBooksFile(root);
          if (f) seen.add(f.takenAt);
          await sleep(20);
        }
        await keeper.close();
        return seen.size;
      });
      const main = await loopP99(o.windowS, async (until) => {
        let n = 0;
        while (performance.now() < until) {
          await take();
          n++;
        }
        return n;
      });

      // Fold as the keeper would over several intervals (at most MAX_FOLD_SEGMENTS a node a run).
      let folded = 0;
      for (;;) {
        const { folds } = await computeBooks(root, reader, undefined, { planFolds: { foldAfterMs: 3_600_000 } });
        let now = 0;
        for (const f of folds ?? []) if (await reader.foldSegments(f)) now += f.segments.length;
        if (now === 0) break;
        folded += now;
      }
      const foldedMs = await medianMs(3, take);
      return {
        spoolRecords: o.spoolRecords,
        spoolSegments: segments,
        history: o.history,
        unfoldedMs,
        foldedMs,
        folded,
        loop: { idleP99Ms: idle.p99Ms, workerP99Ms: worker.p99Ms, workerTakes: worker.n, mainThreadP99Ms: main.p99Ms, mainThreadTakes: main.n },
      };
    } finally {
      await reader.close();
    }
  } finally {
    removeDir(dir);
  }
}

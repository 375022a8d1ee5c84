// The books, taken off the event loop: a worker thread reads every spool file (parsing a segment
// costs milliseconds a megabyte) and counts the tables over a connection of its own, then
// answers once and ends. It also folds what the books need not read again (books-fold.ts). Started by the books keeper (books-keeper.ts), one run at a time.
import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../store/open.js';
import { computeBooks, type Books } from './books.js';

export interface BooksJob {
  root: string;
  dbUrl: string;
  foldAfterMs: number;
}
export type BooksAnswer = { ok: true; books: Books; folded: number } | { ok: false; message: string; code?: string };

if (!parentPort) throw new Error('books-worker.js runs as a worker thread of the books keeper');
const port = parentPort;
const job = workerData as BooksJob;

async function run(): Promise<BooksAnswer> {
  const store = await openStore(job.dbUrl);
  try {
    const { folds, ...books } = await computeBooks(job.root, store, undefined, { planFolds: { foldAfterMs: job.foldAfterMs } });
    // Once an interval, by one node: fold the oldest drained segments into their node's
    // checkpoint (books-fold.ts), and PostgreSQL's per-insert count rows into one, so that what
    // the books read stays small however old the cluster.
    let folded = 0;
    for (const f of folds ?? []) if (await store.foldSegments(f)) folded += f.segments.length;
    await store.compactCounts();
    return { ok: true, books, folded };
  } finally {
    await store.close();
  }
}

run().then(
  (a) => port.postMessage(a),
  (err: unknown) => port.postMessage({ ok: false, message: (err as Error).message, code: (err as { code?: string }).code } satisfies BooksAnswer),
);

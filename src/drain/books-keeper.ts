// The books as metrics: a save-mode node takes the books (intake verify's figures, books.ts) at
// an interval and writes them to cluster/books.json, which every node exports (books-gauges.ts).
//
// One node takes them for the whole cluster: a run is due when cluster/books.json has not
// changed for --books-interval-ms, as this node's own monotonic clock measured it (a foreign
// node's wall clock never makes it due early or never), and the run holds the file's spool lock,
// so two save nodes that find it due at once do not both read every spool file. The reading
// happens in a worker thread with a database connection of its own (books-worker.ts): nothing
// of it runs on the event loop that serves HTTP. The same run folds the oldest drained segments
// into their node's checkpoint (books-fold.ts), so what the books read stays small. A failed run
// leaves the last figures standing (their age is a metric too) and is tried again at the next
// interval.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { booksPath, clusterDir } from '../cluster/paths.js';
import { Errors } from '../errors.js';
import { mkdirDurable, writeFileDurable } from '../spool/fsutil.js';
import { StaleLocks } from '../spool/stale-locks.js';
import type { Books } from './books.js';
import type { BooksAnswer, BooksJob } from './books-worker.js';
import { readBooksFile, type BooksFile } from './books-file.js';

/** At most this many differences (and missing segments per node) are kept in the file: the count says how many there were. */
const KEPT_DIFFERENCES = 100;

export interface BooksKeeperOptions {
  root: string;
  node: string;
  dbUrl: string;
  intervalMs: number;
  /** Fold segments drained longer ago than this (books-fold.ts). */
  foldAfterMs: number;
  lockStaleMs: number;
  log: Logger;
}

export class BooksKeeper {
  private readonly o: BooksKeeperOptions;
  private readonly locks: StaleLocks;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private worker: Worker | null = null;
  /** The file's taken_at when this node last saw it change, and when (monotonic). */
  private seen: { takenAt: string | null; at: number } | null = null;
  private closed = false;

  constructor(o: BooksKeeperOptions) {
    this.o = o;
    this.locks = new StaleLocks(o.lockStaleMs, o.log);
  }

  start(): void {
    const every = Math.max(100, Math.min(this.o.intervalMs / 4, 5000));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
    this.tick();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.worker?.terminate();
    await this.running;
  }

  private tick(): void {
    if (this.running || this.closed) return;
    this.running = this.maybeTake()
      .catch((err: unknown) => {
        if (!this.closed) this.o.log.warn({ err }, 'could not take the books; the last figures stand, tried again at the next interval');
      })
      .finally(() => {
        this.running = null;
      });
  }

  /** Due: no books yet, or the file stood still for an interval as this node measured it. */
  private async due(): Promise<boolean> {
    const f = await readBooksFile(this.o.root);
    const takenAt = f?.takenAt ?? null;
    const now = performance.now();
    if (takenAt === null) return true;
    if (this.seen === null || this.seen.takenAt !== takenAt) {
      this.seen = { takenAt, at: now };
      return false;
    }
    return now - this.seen.at >= this.o.intervalMs;
  }

  private async maybeTake(): Promise<void> {
    if (!(await this.due())) return;
    const path = booksPath(this.o.root);
    await mkdirDurable(clusterDir(this.o.root));
    const release = await this.locks.tryLock(path);
    if (!release) return; // another node is taking them
    try {
      // Taken by another node between the look and the lock: not due any more.
      if (!(await this.due())) return;
      const started = performance.now();
      const books = await this.compute();
      if (this.closed) return;
      const file: BooksFile = {
        takenAt: new Date().toISOString(),
        takenBy: this.o.node,
        durationMs: Math.round(performance.now() - started),
        balanced: books.differences.length === 0,
        differenceCount: books.differences.length,
        ...books,
        nodes: books.nodes.map((n) => ({ ...n, segments: { ...n.segments, missing: n.segments.missing.slice(0, KEPT_DIFFERENCES) } })),
        differences: books.differences.slice(0, KEPT_DIFFERENCES),
      };
      await writeFileDurable(path, JSON.stringify(file, null, 2) + '\n');
      this.seen = { takenAt: file.takenAt, at: performance.now() };
      if (!file.balanced) this.o.log.warn({ differences: file.differences.slice(0, 5), count: file.differenceCount }, 'the books do not balance (intake verify names every difference)');
    } finally {
      await release();
    }
  }

  private compute(): Promise<Books> {
    return new Promise<Books>((resolve, reject) => {
      const job: BooksJob = { root: this.o.root, dbUrl: this.o.dbUrl, foldAfterMs: this.o.foldAfterMs };
      const w = new Worker(new URL('./books-worker.js', import.meta.url), { workerData: job, resourceLimits: { maxOldGenerationSizeMb: 512 } });
      this.worker = w;
      let answered = false;
      w.once('message', (a: BooksAnswer) => {
        answered = true;
        if (a.ok) {
          if (a.folded > 0) this.o.log.info({ segments: a.folded }, 'folded drained segments into the books\' checkpoints');
          resolve(a.books);
        }
        else reject(Errors.internal(`the books could not be taken: ${a.message}`));
      });
      w.once('error', reject);
      w.once('exit', (code) => {
        this.worker = null;
        if (!answered) reject(Errors.internal(`the books worker exited with code ${code} before answering`));
      });
    });
  }
}

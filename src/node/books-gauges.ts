// The books as gauges (intake_books_*): every node, whatever its mode, exports what
// cluster/books.json last held (books-keeper.ts takes them), read when the file changed, at each
// control step. A file not there yet exports nothing; the figures stay until the next books.
import { promises as fsp } from 'node:fs';
import type { Logger } from 'pino';
import { booksPath } from '../cluster/paths.js';
import { callbackCounts } from '../drain/books.js';
import { readBooksFile, type BooksFile } from '../drain/books-file.js';
import type { BooksView } from '../http/context.js';
import type { Metrics } from '../metrics.js';

export class BooksGauges {
  private lastMtimeMs = -1;
  private failing = false;
  private last: BooksFile | null = null;
  private readonly root: string;
  private readonly metrics: Metrics;
  private readonly log: Logger;

  constructor(root: string, metrics: Metrics, log: Logger) {
    this.root = root;
    this.metrics = metrics;
    this.log = log;
  }

  async refresh(): Promise<void> {
    try {
      const st = await fsp.stat(booksPath(this.root)).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      if (!st || st.mtimeMs === this.lastMtimeMs) return;
      const f = await readBooksFile(this.root);
      if (!f) return;
      this.lastMtimeMs = st.mtimeMs;
      this.last = f;
      const m = this.metrics;
      m.booksRequests.reset();
      for (const n of f.nodes) {
        const places = { accepted: n.accepted, stored: n.stored, in_spool: n.inSpool, quarantined: n.quarantined, damaged: n.damaged };
        for (const [place, v] of Object.entries(places)) m.booksRequests.set({ spool_node: n.node, place }, v);
      }
      for (const [status, v] of Object.entries(callbackCounts(f.callbacks))) m.booksCallbacks.set({ status }, v);
      m.booksDifferences.set(f.differenceCount);
      m.booksTakenSeconds.set(Date.parse(f.takenAt) / 1000);
      m.booksDurationSeconds.set(f.durationMs / 1000);
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ err }, 'could not read cluster/books.json; keeping the last figures');
      this.failing = true;
    }
  }

  /** What GET /v1/cluster shows of the books this node last read. */
  view(): BooksView | null {
    const f = this.last;
    if (!f) return null;
    const t = f.total;
    return {
      taken_at: f.takenAt,
      taken_by: f.takenBy,
      duration_ms: f.durationMs,
      balanced: f.balanced,
      difference_count: f.differenceCount,
      differences: f.differences.slice(0, 10),
      total: { accepted: t.accepted, stored: t.stored, in_spool: t.inSpool, quarantined: t.quarantined, damaged: t.damaged },
      callbacks: callbackCounts(f.callbacks),
    };
  }
}

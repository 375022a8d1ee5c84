// The short path from fsync to claimable for a request someone waits for (`Prefer: wait=N`).
// Normally a request reaches the database when its segment is sealed (by size, or
// --seal-after-ms after its first record, 1 s by default) and drained: good batching, but a
// waiting client would wait that long before any worker could even see its request. So a node
// that also saves (mode both) inserts a waiting request into the store itself, right after the
// fsync that made it durable. The insert is insert-if-absent on the id, exactly as the drain's:
// the later drain of the segment finds the row present (counted as a duplicate) and changes
// nothing. Everyone else's requests keep the spool's batching; waiting requests that arrive
// together share one insert (one transaction) here too.
// A failed insert loses nothing: the record is in the spool and the drain brings it.
import type { Logger } from 'pino';
import type { RequestRecord } from '../spool/records.js';
import type { Store } from '../store/store.js';

/** Rows per insert at most (the drain inserts segments in pieces of this order too). */
const MAX_ROWS = 500;

interface Queued {
  record: RequestRecord;
  done: () => void;
}

export class DirectInserts {
  private readonly store: () => Store | null;
  private readonly log: Logger;
  private queue: Queued[] = [];
  private running = false;

  constructor(store: () => Store | null, log: Logger) {
    this.store = store;
    this.log = log;
  }

  /** Resolves once the record is in the store, or once trying failed (the drain will bring it). Never rejects. */
  insert(record: RequestRecord): Promise<void> {
    return new Promise((done) => {
      this.queue.push({ record, done });
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_ROWS);
        const store = this.store();
        try {
          if (store) await store.insertRequests(batch.map((q) => q.record));
        } catch (err) {
          this.log.warn({ err, rows: batch.length }, 'direct insert of waited-for requests failed; the drain will store them');
        }
        for (const q of batch) q.done();
      }
    } finally {
      this.running = false;
    }
  }
}

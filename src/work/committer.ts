// Group commit for the processing API: completes (or releases) that arrive while earlier ones
// are being written share the next store call, so one transaction and one fsync cover many
// workers' calls (the spool's group commit, applied to the database). A batch never holds one
// request id twice: a second call for an id waits for the next batch, so the store sees each
// id once per statement and answers each caller for its own item.
// On PostgreSQL a batch is one statement: if the database refuses one item's data, the whole
// statement fails. Then the batch is written again item by item, so only the caller whose item
// was refused gets the error and every other caller's item is stored.
import { isDataError } from '../store/errors.js';
import type { LeaseOutcome } from '../store/store.js';

interface Waiting<I> {
  item: I;
  resolve: (o: LeaseOutcome) => void;
  reject: (err: unknown) => void;
}

export interface CommitterOptions<I> {
  /** Writes one batch; answers one outcome per item, in order. */
  write: (items: I[]) => Promise<LeaseOutcome[]>;
  /** Items per store call at most. */
  maxBatch: number;
  /** Store calls running at once (a pool of connections writes several batches side by side). */
  maxInFlight: number;
  /** Called with the size of every batch written (metrics). */
  onBatch?: (size: number) => void;
}

export class GroupCommitter<I extends { id: string }> {
  private readonly o: CommitterOptions<I>;
  private readonly queue: Waiting<I>[] = [];
  private inFlight = 0;

  constructor(o: CommitterOptions<I>) {
    this.o = o;
  }

  submit(item: I): Promise<LeaseOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.flush();
    });
  }

  /** Many items of one caller: they go in as few batches as the limits allow. */
  submitMany(items: I[]): Promise<LeaseOutcome[]> {
    const out = Promise.all(items.map((item) => new Promise<LeaseOutcome>((resolve, reject) => this.queue.push({ item, resolve, reject }))));
    this.flush();
    return out;
  }

  private flush(): void {
    while (this.inFlight < this.o.maxInFlight && this.queue.length > 0) {
      const batch: Waiting<I>[] = [];
      const ids = new Set<string>();
      for (let i = 0; i < this.queue.length && batch.length < this.o.maxBatch; ) {
        const w = this.queue[i]!;
        if (ids.has(w.item.id)) {
          i++;
          continue;
        }
        ids.add(w.item.id);
        batch.push(w);
        this.queue.splice(i, 1);
      }
      this.inFlight++;
      this.o.onBatch?.(batch.length);
      this.write(batch).finally(() => {
        this.inFlight--;
        this.flush();
      });
    }
  }

  private async write(batch: Waiting<I>[]): Promise<void> {
    try {
      const outcomes = await this.o.write(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(outcomes[i]!));
    } catch (err) {
      if (batch.length === 1 || !isDataError(err)) {
        batch.forEach((w) => w.reject(err));
        return;
      }
      for (const w of batch) await this.write([w]);
    }
  }
}

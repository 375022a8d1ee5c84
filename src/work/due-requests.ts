// The due-request duty: every save-mode node turns scheduled requests whose not_before has come
// into pending ones, a batch at a time, every ~250 ms. Delayed requests are stored 'scheduled'
// so that claims read only pending rows and never walk past them; this duty is what makes a due
// request claimable, within about a second. It is idempotent (an UPDATE of due rows only) and
// safe on every node at once (PostgreSQL skips rows another node holds), so it needs no leader.
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';

export const DUE_EVERY_MS = 250;
/** Rows per statement: a short transaction; a full batch runs again at once. */
const BATCH = 1000;

export class DueRequests {
  private readonly store: Store;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private failures = 0;

  constructor(store: Store, log: Logger) {
    this.store = store;
    this.log = log;
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(), DUE_EVERY_MS);
    this.timer.unref();
  }

  /** Stop, and wait for a run in flight (the store closes after this). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.run().finally(() => {
      this.running = null;
    });
  }

  private async run(): Promise<void> {
    try {
      while (this.timer && (await this.store.releaseDueRequests(BATCH)) === BATCH);
      if (this.failures > 0) this.log.info({ failures: this.failures }, 'due requests released again');
      this.failures = 0;
    } catch (err) {
      // The database is down or busy: the next tick tries again; log the first and every 100th.
      if (this.failures++ % 100 === 0) this.log.warn({ err, failures: this.failures }, 'could not release due requests; retrying');
    }
  }
}

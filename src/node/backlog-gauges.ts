// The database's backlog as gauges (intake_work_requests, intake_outbox_callbacks), refreshed
// by a timer, never by a scrape: the counts are of the unfinished states only (index range
// scans, cheap while the backlog is small), run off the event loop (in the SQLite thread, or
// on PostgreSQL), and a slow or failed refresh only leaves the last figures standing.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';

export const BACKLOG_REFRESH_MS = 10_000;

export class BacklogGauges {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private failing = false;
  private readonly store: Store;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly everyMs: number;

  constructor(o: { store: Store; metrics: Metrics; log: Logger; everyMs?: number }) {
    this.store = o.store;
    this.metrics = o.metrics;
    this.log = o.log;
    this.everyMs = o.everyMs ?? BACKLOG_REFRESH_MS;
  }

  start(): void {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), this.everyMs);
    this.timer.unref();
  }

  private refresh(): void {
    if (this.running) return;
    this.running = (async () => {
      try {
        const b = await this.store.backlog();
        for (const [status, n] of Object.entries(b.requests)) this.metrics.workRequests.set({ status }, n);
        for (const [status, n] of Object.entries(b.callbacks)) this.metrics.outboxCallbacks.set({ status }, n);
        this.failing = false;
      } catch (err) {
        if (!this.failing) this.log.warn({ err }, 'could not refresh the backlog gauges; keeping the last figures');
        this.failing = true;
      }
    })().finally(() => {
      this.running = null;
    });
  }

  /** Stop refreshing and drop the figures (a node out of save mode reports no database backlog). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    this.metrics.workRequests.reset();
    this.metrics.outboxCallbacks.reset();
  }
}

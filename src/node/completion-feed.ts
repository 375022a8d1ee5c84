// Tells the node's waiting clients (src/intake/waiters.ts) about completions, from wherever they
// are heard: this node's work API after each committed completion (both engines), and on
// PostgreSQL the LISTEN client for completions through any node. Where a notification can be
// missed (the listener is down, or was down until a moment ago), the ids someone waits for are
// polled in the store with backoff until a poll has run while the listener was up throughout.
import type { Logger } from 'pino';
import type { CompletionWaiters } from '../intake/waiters.js';
import { listenForCompletions, type CompletionListener } from '../store/postgres/completions.js';
import type { Store } from '../store/store.js';

const POLL_MIN_MS = 100;
const POLL_MAX_MS = 2000;
/** Reads in flight at once while polling (the SQLite thread batches them; PostgreSQL spreads them on its pool). */
const POLL_CONCURRENCY = 16;

export class CompletionFeed {
  private readonly waiters: CompletionWaiters;
  private readonly store: Store;
  private readonly log: Logger;
  private listener: CompletionListener | null = null;
  private polling: Promise<void> | null = null;
  /** Times the listener went down: a poll counts only if none happened while it ran. */
  private downs = 0;
  private closed = false;

  constructor(o: { waiters: CompletionWaiters; store: Store; dbUrl: string; log: Logger }) {
    this.waiters = o.waiters;
    this.store = o.store;
    this.log = o.log;
    if (o.store.engine === 'postgres') {
      this.listener = listenForCompletions(o.dbUrl, {
        onCompleted: (ids) => this.waiters.completed(ids),
        onDown: () => {
          this.downs++;
          this.log.warn('completion listener lost its connection; polling for waited-for requests until it is back');
          this.poll();
        },
        onUp: () => this.log.debug('completion listener listening'),
        onError: (err) => this.log.warn({ err }, 'completion listener error; reconnecting'),
      });
      this.poll(); // until the first LISTEN is in effect
    }
  }

  /** Completions committed through this node. */
  completed(ids: string[]): void {
    this.waiters.completed(ids);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.listener?.close();
    await this.polling;
  }

  private poll(): void {
    this.polling ??= this.pollLoop().finally(() => {
      this.polling = null;
    });
  }

  private async pollLoop(): Promise<void> {
    let delay = POLL_MIN_MS;
    while (!this.closed) {
      const downs = this.downs;
      const listening = this.listener?.listening ?? true;
      try {
        await this.pollOnce();
        // Everything completed before this poll was found by it; after it, the listener heard.
        if (listening && this.downs === downs) return;
      } catch (err) {
        this.log.warn({ err }, 'polling for completions failed; trying again');
      }
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  private async pollOnce(): Promise<void> {
    const ids = this.waiters.ids();
    let next = 0;
    const worker = async () => {
      while (next < ids.length && !this.closed) {
        const id = ids[next++]!;
        const row = await this.store.getRequest(id);
        if (row?.status === 'completed') this.waiters.completed([id]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(POLL_CONCURRENCY, ids.length) }, worker));
  }
}

// The outbox dispatcher (save mode): claims due callbacks from the database, sends them, and
// records the outcome. A callback that fails is parked in the failed-callback spool (written
// durably first, then marked parked), where every node retries it. A dispatcher that dies
// mid-batch loses nothing: the claims' leases run out and another dispatcher sends them again.
import type { Logger } from 'pino';
import type { CallbackOutcome, Store } from '../store/store.js';
import { bury, park, spooledIds } from './failed-spool.js';
import { exhausted, nextDelayMs, type RetryPolicy } from './policy.js';
import type { CallbackSender } from './sender.js';
import { webhookHeaders } from './signing.js';
import type { SecretSource } from './secrets.js';

export interface DispatcherOptions {
  root: string;
  node: string;
  store: Store;
  sender: CallbackSender;
  secrets: SecretSource;
  policy: RetryPolicy;
  batch: number;
  /** Sends in flight at most, over all batch loops. */
  concurrency: number;
  /**
   * Batches worked on at once. With two, one loop sends while the other claims or records, so
   * the slowest callback of a batch no longer holds up the next (default 1).
   */
  loops?: number;
  leaseMs: number;
  idleMs: number;
  log: Logger;
  /** Told what became of each callback this dispatcher attempted (the node's metrics). */
  onOutcome?: (status: CallbackOutcome['status']) => void;
}

export class CallbackDispatcher {
  private readonly o: DispatcherOptions;
  private loop: Promise<unknown> | null = null;
  private closed = false;
  /** The idle waits of the batch loops; poke() ends them. */
  private readonly wakers = new Set<() => void>();

  constructor(o: DispatcherOptions) {
    this.o = o;
  }

  start(): void {
    const loops = Math.max(1, this.o.loops ?? 1);
    const perLoop = Math.max(1, Math.floor(this.o.concurrency / loops));
    this.loop = Promise.all(Array.from({ length: loops }, () => this.run(perLoop)));
  }

  /** A request was just completed: look at the outbox now rather than at the next poll. */
  poke(): void {
    for (const w of this.wakers) w();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.poke();
    await this.loop;
  }

  private async run(concurrency: number): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      let sent = 0;
      try {
        sent = await this.once(concurrency);
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0) this.o.log.error({ err, failures }, 'callback dispatch failed; retrying');
      }
      if (sent === 0 && !this.closed) {
        await new Promise<void>((r) => {
          const wake = () => {
            clearTimeout(t);
            this.wakers.delete(wake);
            r();
          };
          const t = setTimeout(wake, failures > 0 ? Math.min(5000, this.o.idleMs * 2 ** failures) : this.o.idleMs);
          this.wakers.add(wake);
        });
      }
    }
  }

  /** One batch: claim, send concurrently, record. Returns how many were claimed. */
  async once(concurrency = this.o.concurrency): Promise<number> {
    const { store, sender, secrets, policy, root, node } = this.o;
    const claimed = await store.claimCallbacks({ limit: this.o.batch, leaseMs: this.o.leaseMs });
    if (claimed.length === 0) return 0;
    const outcomes: CallbackOutcome[] = [];
    // One webhook-id, one retry chain: a callback already parked (or dead) in the failed-callback
    // spool is not sent from the outbox again; its row is only brought in line with the spool.
    const spooled = await spooledIds(root);
    const batch = claimed.filter((cb) => {
      const where = spooled.retry.has(cb.id) ? 'parked' : spooled.dead.has(cb.id) ? 'dead' : null;
      if (where) outcomes.push({ id: cb.id, attempts: cb.attempts, status: where, lastStatus: null, lastError: `already ${where} in the failed-callback spool`, at: Date.now() });
      return where === null;
    });
    let i = 0;
    const worker = async () => {
      while (i < batch.length) {
        const cb = batch[i++]!;
        const res = await sender.send(cb.url, webhookHeaders(secrets.secretsFor(cb.tenant), cb.id, cb.body), cb.body);
        const attempts = cb.attempts + 1;
        const now = Date.now();
        const base = { id: cb.id, attempts, lastStatus: res.status, lastError: res.error, at: now };
        if (res.ok) {
          outcomes.push({ ...base, status: 'delivered' });
          this.o.onOutcome?.('delivered');
          continue;
        }
        if (res.gone) {
          this.o.onOutcome?.('gone');
          // Recorded at once, not with the batch: a dispatcher killed before the batch's record
          // would let the lease run out and the 410 endpoint get the callback again.
          await store.recordCallbackOutcomes([{ ...base, status: 'gone' }]).catch((err: unknown) => {
            this.o.log.error({ err, webhookId: cb.id }, 'could not record a 410 at once; it goes with the batch');
            outcomes.push({ ...base, status: 'gone' });
          });
          continue;
        }
        try {
          const entry = { id: cb.id, requestId: cb.requestId, tenant: cb.tenant, url: cb.url, body: cb.body, attempts, firstFailedAt: now, lastStatus: res.status, lastError: res.error };
          if (exhausted(policy, attempts, now, now)) {
            await bury(root, entry, node);
            outcomes.push({ ...base, status: 'dead' });
            this.o.onOutcome?.('dead');
          } else {
            await park(root, entry, now + nextDelayMs(policy, attempts, res.retryAfterMs), node);
            outcomes.push({ ...base, status: 'parked' });
            this.o.onOutcome?.('parked');
          }
        } catch (err) {
          // Not parked: the row stays claimed and is sent again when its lease runs out.
          this.o.log.error({ err, webhookId: cb.id }, 'could not park a failed callback; it will be retried from the outbox');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, worker));
    await store.recordCallbackOutcomes(outcomes);
    return claimed.length;
  }
}

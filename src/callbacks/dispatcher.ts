// The outbox dispatcher (save mode): claims due callbacks from the database, sends them, and
// records the outcome. A callback that fails is parked in the failed-callback spool (written
// durably first, then marked parked), where every node retries it. A dispatcher that dies
// mid-batch loses nothing: the claims' leases run out and another dispatcher sends them again.
import type { Logger } from 'pino';
import type { CallbackOutcome, Store } from '../store/store.js';
import { bury, park } from './failed-spool.js';
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
  concurrency: number;
  leaseMs: number;
  idleMs: number;
  log: Logger;
}

export class CallbackDispatcher {
  private readonly o: DispatcherOptions;
  private loop: Promise<void> | null = null;
  private closed = false;
  private wake: (() => void) | null = null;

  constructor(o: DispatcherOptions) {
    this.o = o;
  }

  start(): void {
    this.loop = this.run();
  }

  /** A request was just completed: look at the outbox now rather than at the next poll. */
  poke(): void {
    this.wake?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      let sent = 0;
      try {
        sent = await this.once();
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0) this.o.log.error({ err, failures }, 'callback dispatch failed; retrying');
      }
      if (sent === 0 && !this.closed) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, failures > 0 ? Math.min(5000, this.o.idleMs * 2 ** failures) : this.o.idleMs);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wake = null;
      }
    }
  }

  /** One batch: claim, send concurrently, record. Returns how many were claimed. */
  async once(): Promise<number> {
    const { store, sender, secrets, policy, root, node } = this.o;
    const batch = await store.claimCallbacks({ limit: this.o.batch, leaseMs: this.o.leaseMs });
    if (batch.length === 0) return 0;
    const outcomes: CallbackOutcome[] = [];
    let i = 0;
    const worker = async () => {
      while (i < batch.length) {
        const cb = batch[i++]!;
        const res = await sender.send(cb.url, webhookHeaders(secrets.secretsFor(cb.tenant), cb.id, cb.body), cb.body);
        const attempts = cb.attempts + 1;
        const now = Date.now();
        const base = { id: cb.id, attempts, lastStatus: res.status, lastError: res.error, at: now };
        if (res.ok || res.gone) {
          outcomes.push({ ...base, status: res.ok ? 'delivered' : 'gone' });
          continue;
        }
        try {
          const entry = { id: cb.id, requestId: cb.requestId, tenant: cb.tenant, url: cb.url, body: cb.body, attempts, firstFailedAt: now, lastStatus: res.status, lastError: res.error };
          if (exhausted(policy, attempts, now, now)) {
            await bury(root, entry, node);
            outcomes.push({ ...base, status: 'dead' });
          } else {
            await park(root, entry, now + nextDelayMs(policy, attempts, res.retryAfterMs), node);
            outcomes.push({ ...base, status: 'parked' });
          }
        } catch (err) {
          // Not parked: the row stays claimed and is sent again when its lease runs out.
          this.o.log.error({ err, webhookId: cb.id }, 'could not park a failed callback; it will be retried from the outbox');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, batch.length) }, worker));
    await store.recordCallbackOutcomes(outcomes);
    return batch.length;
  }
}

// Retries the failed-callback spool. Runs on every node in every mode: the files need no
// database. An entry is claimed with a lock (so two nodes do not send it at the same moment),
// sent, and then removed (delivered, or 410 Gone), rescheduled, or buried in dead/.
// Outcomes go to the database through `record` (directly, or through the spool); a final
// outcome that neither can take yet waits in the entry itself, which is then only recorded,
// never sent again (settle below).
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { CallbackEntryRecord, CallbackOutcomeRecord } from '../spool/records.js';
import { quarantineFile } from '../spool/quarantine.js';
import { StaleLocks } from '../spool/stale-locks.js';
import { bury, listDue, move, park, readEntry, remove, type SpooledCallback } from './failed-spool.js';
import { exhausted, nextDelayMs, recordRetryDelayMs, type RetryPolicy } from './policy.js';
import type { CallbackSender } from './sender.js';
import { webhookHeaders } from './signing.js';
import type { SecretSource } from './secrets.js';

export interface RetrierOptions {
  root: string;
  node: string;
  sender: CallbackSender;
  secrets: SecretSource;
  policy: RetryPolicy;
  pollMs: number;
  concurrency: number;
  lockStaleMs: number;
  log: Logger;
  /** Record an outcome for the database; false if it could be recorded nowhere. */
  record: (o: CallbackOutcomeRecord) => Promise<boolean>;
  /** Counts every attempt's outcome (intake_callbacks_total). */
  metrics?: Metrics;
}

export class CallbackRetrier {
  private readonly o: RetrierOptions;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  /** What this node has seen of other nodes' claims on entries (a claim is stale only once it watched it stand still). */
  private readonly locks: StaleLocks;

  constructor(o: RetrierOptions) {
    this.o = o;
    this.locks = new StaleLocks(o.lockStaleMs, o.log);
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), this.o.pollMs);
    this.timer.unref();
  }

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = this.pass()
      .catch((err) => this.o.log.error({ err }, 'failed-callback retry pass failed'))
      .finally(() => {
        this.running = null;
      });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async pass(): Promise<void> {
    const due = await listDue(this.o.root);
    let i = 0;
    const worker = async () => {
      while (i < due.length && !this.closed) await this.attempt(due[i++]!);
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, due.length) }, worker));
  }

  private async attempt(f: SpooledCallback): Promise<void> {
    const { log, root, node, policy } = this.o;
    const release = await this.locks.tryLock(f.path);
    if (!release) return; // another node has it
    try {
      let entry;
      try {
        entry = await readEntry(f.path);
      } catch (err) {
        await quarantineFile(root, f.path, { reason: 'corrupt-callback-entry', detail: (err as Error).message, by: node });
        log.error({ err, file: f.path }, 'quarantined a damaged failed-callback entry');
        return;
      }
      if (!entry) return; // handled by another node meanwhile
      // Sent already; only its outcome still has to reach the database.
      if (entry.pendingOutcome) return await this.settle(f.path, entry, entry.pendingOutcome);
      const res = await this.o.sender.send(entry.url, webhookHeaders(this.o.secrets.secretsFor(entry.tenant), entry.id, entry.body), entry.body);
      const attempts = entry.attempts + 1;
      const now = Date.now();
      const outcome = (status: CallbackOutcomeRecord['status']): CallbackOutcomeRecord => {
        this.o.metrics?.callbacks.inc({ outcome: status });
        return { id: entry.id, status, attempts, lastStatus: res.status, lastError: res.error, at: now };
      };
      const next = { ...entry, attempts, lastStatus: res.status, lastError: res.error };
      if (res.ok || res.gone) {
        if (res.gone) log.warn({ webhookId: entry.id, url: entry.url }, 'receiver answered 410 Gone: no more attempts');
        return await this.settle(f.path, next, outcome(res.ok ? 'delivered' : 'gone'));
      }
      if (exhausted(policy, attempts - (entry.attemptsBeforeReplay ?? 0), entry.firstFailedAt, now)) {
        log.error({ webhookId: entry.id, url: entry.url, attempts, lastError: res.error }, 'callback is dead after its last attempt; replay with `intake callbacks replay`');
        return await this.settle(f.path, next, outcome('dead'));
      }
      await this.o.record(outcome('parked')); // a lost 'parked' only leaves the attempt count behind
      await move(f.path, () => park(root, next, now + nextDelayMs(policy, attempts, res.retryAfterMs), node));
    } finally {
      await release().catch(() => undefined);
    }
  }

  /**
   * A final outcome (delivered, gone, dead) is recorded before the file changes: a crash in
   * between leaves the file, and the outcome is found again. When no database or spool can take
   * it, the outcome goes into the entry, rescheduled with a backoff: the callback is not sent
   * again (the receiver has it, or it is out of attempts), and the same entry, its one retry
   * chain, records the outcome once the database is back.
   */
  private async settle(path: string, entry: CallbackEntryRecord, outcome: CallbackOutcomeRecord): Promise<void> {
    const { root, node, policy, log } = this.o;
    if (await this.o.record(outcome)) {
      if (outcome.status === 'dead') await move(path, () => bury(root, entry, node));
      else await remove(path);
      return;
    }
    const tries = (entry.recordTries ?? 0) + 1;
    const dueAt = Date.now() + recordRetryDelayMs(policy, tries);
    if (tries === 1) log.warn({ webhookId: entry.id, status: outcome.status }, 'callback outcome kept in the failed-callback spool until the database can record it');
    await move(path, () => park(root, { ...entry, pendingOutcome: outcome, recordTries: tries }, dueAt, node));
  }
}

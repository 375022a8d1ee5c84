// The roles a mode runs, started and stopped as the mode changes at run time: the receiver
// (spool writer), and in save mode the store with the drainer, the work API and the callback
// dispatcher. The failed-callback retrier and the control loop run in every mode (node.ts).
//   receive: spool writer.     save: store + drainer.     both: all of them.
// Leaving receive: new requests are refused at once (503), queued ones finish, the segment is
// sealed. Leaving save: the drainer finishes the segment it is loading, then the store closes.
import type { Logger } from 'pino';
import { accepts, saves, type Config, type Mode } from '../config.js';
import { Drainer } from '../drain/drainer.js';
import { Errors } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { SpoolWriter } from '../spool/writer.js';
import { CallbackDispatcher } from '../callbacks/dispatcher.js';
import { BacklogGauges } from './backlog-gauges.js';
import type { RetryPolicy } from '../callbacks/policy.js';
import type { SecretSource } from '../callbacks/secrets.js';
import type { CallbackSender } from '../callbacks/sender.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/store.js';
import { WorkApi } from '../work/api.js';
import { DueRequests } from '../work/due-requests.js';
import type { CompletionWaiters } from '../intake/waiters.js';
import { CompletionFeed } from './completion-feed.js';
import { BooksKeeper } from '../drain/books-keeper.js';

/** What the callback parts share, made once per node. */
export interface CallbackDeps {
  sender: CallbackSender;
  secrets: SecretSource;
  policy: RetryPolicy;
}

export class Roles {
  writer: SpoolWriter | null = null;
  drainer: Drainer | null = null;
  dispatcher: CallbackDispatcher | null = null;
  store: Store | null = null;
  work: WorkApi | null = null;
  private due: DueRequests | null = null;
  private gauges: BacklogGauges | null = null;
  private books: BooksKeeper | null = null;
  mode: Mode | null = null;
  private readonly c: Config;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly callbacks: CallbackDeps;
  private readonly waiters: CompletionWaiters | null;
  private feed: CompletionFeed | null = null;

  /** waiters: the node's clients waiting for completions, told of them while this node saves. */
  constructor(c: Config, log: Logger, metrics: Metrics, callbacks: CallbackDeps, waiters?: CompletionWaiters) {
    this.c = c;
    this.log = log;
    this.metrics = metrics;
    this.callbacks = callbacks;
    this.waiters = waiters ?? null;
  }

  /** Move to `target`. On failure (say the schema is unsupported) the previous mode stays. */
  async apply(target: Mode): Promise<void> {
    if (saves(target) && !this.drainer) await this.startSave();
    if (!accepts(target) && this.writer) {
      const w = this.writer;
      this.writer = null; // refuse new requests before the queued ones finish
      await w.close();
    }
    if (!saves(target) && this.drainer) await this.stopSave();
    if (accepts(target) && !this.writer) {
      const w = new SpoolWriter({
        root: this.c.spool,
        node: this.c.nodeId,
        maxSegmentBytes: this.c.maxSegmentBytes,
        sealAfterMs: this.c.sealAfterMs,
        lockStaleMs: this.c.lockStaleMs,
        log: this.log.child({ part: 'spool' }),
        metrics: this.metrics,
      });
      await w.start();
      this.writer = w;
    }
    if (this.mode !== null && this.mode !== target) this.log.info({ from: this.mode, to: target }, 'mode switched');
    this.mode = target;
  }

  private async startSave(): Promise<void> {
    const store = await openStore(this.c.db, { onError: (err) => this.log.warn({ err }, 'database connection lost; the next query reconnects') });
    try {
      await this.checkSchema(store);
    } catch (err) {
      await store.close().catch(() => undefined);
      throw err;
    }
    const drainer = new Drainer({
      root: this.c.spool,
      node: this.c.nodeId,
      store,
      log: this.log.child({ part: 'drain' }),
      metrics: this.metrics,
      scanIntervalMs: this.c.scanIntervalMs,
      lockStaleMs: this.c.lockStaleMs,
      archive: this.c.archive,
      concurrency: store.engine === 'postgres' ? 2 : 1,
    });
    await drainer.start();
    const dispatcher = new CallbackDispatcher({
      root: this.c.spool,
      node: this.c.nodeId,
      store,
      ...this.callbacks,
      // Two loops of 128-callback batches, 32 sends each in flight: one sends while the other
      // claims or records.
      batch: 128,
      concurrency: 64,
      loops: 2,
      // Long enough for a whole batch to time out (128 / 32 rounds), not much longer: a node
      // that dies mid-batch leaves its callbacks to others when this runs out.
      leaseMs: 4 * this.c.callbackTimeoutMs + 5000,
      idleMs: this.c.callbackPollMs,
      log: this.log.child({ part: 'callbacks' }),
      metrics: this.metrics,
    });
    dispatcher.start();
    const due = new DueRequests(store, this.log.child({ part: 'due' }));
    due.start();
    this.due = due;
    const gauges = new BacklogGauges({ store, metrics: this.metrics, log: this.log.child({ part: 'metrics' }) });
    gauges.start();
    this.gauges = gauges;
    if (this.c.booksIntervalMs > 0) {
      this.books = new BooksKeeper({ root: this.c.spool, node: this.c.nodeId, dbUrl: this.c.db, intervalMs: this.c.booksIntervalMs, foldAfterMs: this.c.booksFoldAfterMs, lockStaleMs: this.c.lockStaleMs, log: this.log.child({ part: 'books' }) });
      this.books.start();
    }
    const feed = this.waiters ? new CompletionFeed({ waiters: this.waiters, store, dbUrl: this.c.db, log: this.log.child({ part: 'wait' }) }) : null;
    this.feed = feed;
    this.store = store;
    this.work = new WorkApi(store, this.metrics, feed ? { onCompleted: (ids) => feed.completed(ids) } : {});
    this.drainer = drainer;
    this.dispatcher = dispatcher;
  }

  private async stopSave(): Promise<void> {
    const { drainer, dispatcher, store, due, feed, gauges, books } = this;
    this.gauges = null;
    this.books = null;
    this.due = null;
    this.feed = null;
    this.drainer = null;
    this.dispatcher = null;
    this.store = null;
    this.work = null;
    await gauges?.close();
    await books?.close();
    await feed?.close();
    await dispatcher?.close();
    await due?.close();
    await drainer?.close();
    await store?.close();
  }

  /** Save mode against a schema this build does not support is refused, with the command to run. */
  private async checkSchema(store: Store): Promise<void> {
    let s = await store.schema();
    if (store.engine === 'sqlite' && s.current < s.latest) {
      // The embedded database belongs to this node alone: bring it up to date here.
      const applied = await store.migrate();
      this.log.info({ applied }, 'migrated embedded database');
      s = await store.schema();
    }
    if (s.current > s.latest) {
      throw Errors.schemaUnsupported(`database schema is v${s.current}, newer than this build knows (v${s.latest}): upgrade intake on this node, or run it in receive mode`);
    }
    if (s.current < s.minSupported) {
      throw Errors.schemaUnsupported(`database schema is v${s.current}, older than this build needs (v${s.minSupported}): run \`intake migrate --db <url>\``);
    }
  }

  /** Graceful stop of everything (writer sealed, drainer finished). */
  async close(): Promise<void> {
    const w = this.writer;
    this.writer = null;
    await w?.close();
    await this.stopSave();
  }

  async destroy(): Promise<void> {
    await this.writer?.destroy();
    this.writer = null;
    await this.stopSave().catch(() => undefined);
  }
}

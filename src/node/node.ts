// The daemon: wires spool writer, drainer, store and HTTP server for the configured mode and
// tears them down in the order that keeps the promise.
//
// start(): node lock -> (save) store + schema check + drainer -> (receive) writer, sealing what
//          the previous run left open -> HTTP listen.
// close(): readiness fails; HTTP stops taking requests and finishes those in flight (each waits
//          for its fsync); the writer seals its segment; the drainer finishes its segment; the
//          store and node lock are released. Idempotent. destroy(): at once, nothing sealed.
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { accepts, saves, type Config } from '../config.js';
import { Drainer } from '../drain/drainer.js';
import { Errors } from '../errors.js';
import { buildServer } from '../intake/server.js';
import { createMetrics, type Metrics } from '../metrics.js';
import { acquireNodeLock, type NodeLock } from '../spool/node-lock.js';
import { SpoolWriter } from '../spool/writer.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/store.js';

export class IntakeNode {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  private lock: NodeLock | null = null;
  private writer: SpoolWriter | null = null;
  private drainer: Drainer | null = null;
  private store: Store | null = null;
  private server: FastifyInstance | null = null;
  private stopping = false;
  private closing: Promise<void> | null = null;
  /** Address the HTTP server listens on, once started. */
  url = '';

  constructor(config: Config, opts: { log?: Logger } = {}) {
    this.config = config;
    this.log = opts.log ?? pino({ level: config.logLevel, base: { node: config.nodeId } });
    this.metrics = createMetrics({ defaults: true });
  }

  async start(): Promise<void> {
    const c = this.config;
    this.lock = await acquireNodeLock(c.spool, c.nodeId, {
      staleMs: c.lockStaleMs,
      waitMs: c.lockStaleMs * 2,
      log: this.log,
      onCompromised: (err) => this.onLockLost(err),
    });
    try {
      if (saves(c.mode)) {
        this.store = await openStore(c.db, { onError: (err) => this.log.warn({ err }, 'database connection lost; the next query reconnects') });
        await this.checkSchema(this.store);
        this.drainer = new Drainer({
          root: c.spool,
          node: c.nodeId,
          store: this.store,
          log: this.log.child({ part: 'drain' }),
          metrics: this.metrics,
          scanIntervalMs: c.scanIntervalMs,
          lockStaleMs: c.lockStaleMs,
          archive: c.archive,
        });
        await this.drainer.start();
      }
      if (accepts(c.mode)) {
        this.writer = new SpoolWriter({
          root: c.spool,
          node: c.nodeId,
          maxSegmentBytes: c.maxSegmentBytes,
          sealAfterMs: c.sealAfterMs,
          lockStaleMs: c.lockStaleMs,
          log: this.log.child({ part: 'spool' }),
          metrics: this.metrics,
        });
        await this.writer.start();
      }
      this.server = await buildServer(
        {
          nodeId: c.nodeId,
          log: this.log,
          metrics: this.metrics,
          spool: () => (this.stopping ? null : this.writer),
          store: () => this.store,
          readiness: () => this.readiness(),
        },
        c,
      );
      this.url = await this.server.listen({ host: c.host, port: c.port });
      this.log.info({ url: this.url, mode: c.mode, spool: c.spool, db: saves(c.mode) ? redact(c.db) : undefined }, 'intake node started');
    } catch (err) {
      await this.destroy();
      throw err;
    }
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.stopping) return { ready: false, reason: 'shutting down' };
    if (!this.writer) return { ready: false, reason: `mode ${this.config.mode} does not accept requests` };
    if (!this.writer.healthy) return { ready: false, reason: `spool not writable (${this.writer.lastError})` };
    return { ready: true };
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

  private onLockLost(err: Error): void {
    // Another process judged this node dead (say the event loop stalled past lockStaleMs).
    // Acknowledgements stay safe (the writer checks its file is still its own after every sync),
    // but two processes must not share a node id: stop, and let the supervisor restart us.
    this.log.fatal({ err }, 'node lock lost; shutting down');
    process.exitCode = 1;
    void this.close();
  }

  /** Graceful stop. Idempotent; a second caller gets the same promise. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.stopping = true;
    this.closing = (async () => {
      const timer = setTimeout(() => {
        this.log.error({ timeoutMs: this.config.shutdownTimeoutMs }, 'graceful shutdown timed out; stopping at once');
        void this.destroy();
      }, this.config.shutdownTimeoutMs);
      timer.unref();
      try {
        await this.server?.close();
        await this.writer?.close();
        await this.drainer?.close();
        await this.store?.close();
        await this.lock?.release();
        this.log.info('intake node stopped');
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.closing;
  }

  async destroy(): Promise<void> {
    this.stopping = true;
    await this.writer?.destroy();
    await this.drainer?.close().catch(() => undefined);
    await this.server?.close().catch(() => undefined);
    await this.store?.close().catch(() => undefined);
    await this.lock?.release();
  }

  /** For tests and tools in the same process. */
  parts() {
    return { writer: this.writer, drainer: this.drainer, store: this.store };
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

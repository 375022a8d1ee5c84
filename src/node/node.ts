// The daemon: one `intake start` process. It holds its node lock, registers in the cluster,
// runs the parts of its mode (parts.ts), serves HTTP, and every heartbeat period publishes its
// heartbeat, applies the desired mode and drain flag (control), and, when it leads, runs the
// cluster duties.
//
// start(): node lock -> registration -> desired mode -> parts -> HTTP listen -> heartbeat/control.
// close(): readiness fails at once; requests keep being served until the node has been idle for
//          stopIdleMs (the load balancer has noticed) or stopGraceMs passed; then HTTP stops
//          (in-flight requests finish, each waiting for its fsync), the writer seals its segment,
//          the drainer finishes its segment, the lock is released. Idempotent.
// destroy(): at once; nothing sealed (the next start recovers it).
import { promises as fsp } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import chokidar, { type FSWatcher } from 'chokidar';
import pino, { type Logger } from 'pino';
import type { Config, Mode } from '../config.js';
import { effectiveMode, isDrained, readDesired } from '../cluster/desired.js';
import { pruneArchive, sealDeadNodes, sweepTempFiles } from '../cluster/duties.js';
import { HeartbeatPublisher } from '../cluster/heartbeat.js';
import { Membership } from '../cluster/membership.js';
import { clusterDir, heartbeatPath } from '../cluster/paths.js';
import { register } from '../cluster/register.js';
import { buildServer } from './http.js';
import { createMetrics, type Metrics } from '../metrics.js';
import { packageVersion } from '../package.js';
import { listSegments } from '../spool/layout.js';
import { acquireNodeLock, type NodeLock } from '../spool/node-lock.js';
import { LoopMonitor } from './loop-monitor.js';
import { Parts } from './parts.js';
import { CallbackRetrier } from '../callbacks/retrier.js';
import type { RetryPolicy } from '../callbacks/policy.js';
import { loadSecrets, type SecretSource } from '../callbacks/secrets.js';
import { CallbackSender } from '../callbacks/sender.js';
import { SsrfGuard } from '../callbacks/ssrf.js';
import { encodeRecord, RecordKind } from '../spool/format.js';
import type { CallbackOutcomeRecord } from '../spool/records.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** A temp file of a small durable write older than this was left by a crash (a write takes milliseconds). */
const TEMP_FILE_MAX_AGE_MS = 3_600_000;

export class IntakeNode {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly parts: Parts;
  private readonly guard: SsrfGuard;
  private readonly sender: CallbackSender;
  private readonly policy: RetryPolicy;
  private retrier: CallbackRetrier | null = null;
  private lock: NodeLock | null = null;
  private server: FastifyInstance | null = null;
  private heartbeat: HeartbeatPublisher | null = null;
  private membership: Membership;
  private readonly loop: LoopMonitor;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  private generation = 0;
  private modeError: string | null = null;
  private drained = false;
  private stopping = false;
  private leader = false;
  private backlog = 0;
  private accepted = 0;
  private lastAcceptedAt: number | null = null;
  private controlling: Promise<void> | null = null;
  private lastPrune = 0;
  private closing: Promise<void> | null = null;
  private readonly startedAt = new Date().toISOString();
  /** Address the HTTP server listens on, once started. */
  url = '';

  constructor(config: Config, opts: { log?: Logger } = {}) {
    this.config = config;
    this.log = opts.log ?? pino({ level: config.logLevel, base: { node: config.nodeId } });
    this.metrics = createMetrics({ defaults: true });
    this.guard = new SsrfGuard(config.callbackAllowCidrs.split(',').map((x) => x.trim()).filter(Boolean));
    this.sender = new CallbackSender({ guard: this.guard, connectTimeoutMs: config.callbackConnectTimeoutMs, timeoutMs: config.callbackTimeoutMs });
    this.policy = { baseMs: config.callbackBaseMs, capMs: config.callbackCapMs, maxAttempts: config.callbackMaxAttempts, maxAgeMs: config.callbackMaxAgeMs };
    // Secrets are loaded in start(); the parts read them through this indirection.
    const secrets: SecretSource = { secretsFor: (t) => this.requireSecrets().secretsFor(t) };
    this.parts = new Parts(config, this.log, this.metrics, { sender: this.sender, secrets, policy: this.policy });
    this.membership = new Membership({ root: config.spool, self: config.nodeId, deadAfterMs: config.deadAfterMs });
    this.loop = new LoopMonitor({ metrics: this.metrics, log: this.log, warnMs: config.loopDelayWarnMs });
  }

  get mode(): Mode | null {
    return this.parts.mode;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.loop.start();
    this.lock = await acquireNodeLock(c.spool, c.nodeId, {
      staleMs: c.lockStaleMs,
      waitMs: c.lockStaleMs * 2,
      log: this.log,
      onCompromised: (err) => this.onLockLost(err),
    });
    try {
      this.secrets = await loadSecrets(c.spool);
      this.seq = await register(c.spool, c.nodeId);
      // The operator's desired mode (intake mode) outlives restarts; --mode is the default
      // for a node the desired state does not name.
      const desired = await readDesired(c.spool);
      this.generation = desired.generation;
      this.drained = await isDrained(c.spool, c.nodeId);
      const target = effectiveMode(desired, c.nodeId, c.mode);
      try {
        await this.parts.apply(target);
      } catch (err) {
        // The cluster's desired mode cannot be applied here (say save mode before `intake
        // migrate`): start in the mode this node was started with, and report the error in the
        // heartbeat (`intake mode --wait` and `intake status` show it) rather than crash-loop.
        if (target === c.mode) throw err;
        this.modeError = (err as Error).message;
        this.log.error({ err, target, fallback: c.mode }, 'could not apply the desired mode at start; running in the start mode');
        await this.parts.apply(c.mode);
      }
      this.server = await buildServer(
        {
          nodeId: c.nodeId,
          log: this.log,
          metrics: this.metrics,
          spool: () => this.parts.writer,
          store: () => this.parts.store,
          work: () => this.parts.work,
          readiness: () => this.readiness(),
          noteAccepted: () => {
            this.accepted++;
            this.lastAcceptedAt = performance.now();
          },
          refuseAddress: (h) => this.guard.refuse(h),
          noteCompleted: () => this.parts.dispatcher?.poke(),
        },
        c,
      );
      this.url = await this.server.listen({ host: c.host, port: c.port });
      this.heartbeat = new HeartbeatPublisher({
        root: c.spool,
        node: c.nodeId,
        everyMs: c.heartbeatMs,
        state: () => this.heartbeatState(),
        onError: (err) => this.log.warn({ err }, 'heartbeat write failed'),
      });
      await this.heartbeat.start();
      this.retrier = new CallbackRetrier({
        root: c.spool,
        node: c.nodeId,
        sender: this.sender,
        secrets: this.requireSecrets(),
        policy: this.policy,
        pollMs: c.callbackPollMs,
        concurrency: 32,
        lockStaleMs: c.lockStaleMs,
        log: this.log.child({ part: 'callbacks' }),
        record: (o) => this.recordOutcome(o),
      });
      this.retrier.start();
      this.watcher = chokidar.watch(clusterDir(c.spool), { depth: 1, ignoreInitial: true });
      this.watcher.on('all', () => void this.control());
      this.watcher.on('error', (err) => this.log.warn({ err }, 'cluster watcher error; polling continues'));
      this.timer = setInterval(() => void this.control(), Math.min(500, c.heartbeatMs));
      this.timer.unref();
      await this.control();
      this.log.info({ url: this.url, mode: this.mode, seq: this.seq, version: packageVersion, spool: c.spool }, 'intake node started');
    } catch (err) {
      await this.destroy();
      throw err;
    }
  }

  private secrets: SecretSource | null = null;

  private requireSecrets(): SecretSource {
    if (!this.secrets) throw new Error('webhook secrets not loaded yet');
    return this.secrets;
  }

  /**
   * A callback outcome for the database: written there directly in save mode, otherwise as a
   * record in this node's spool (a drainer applies it). Returns false if neither could take it
   * (the retrier then keeps the entry and tries again later).
   */
  private async recordOutcome(o: CallbackOutcomeRecord): Promise<boolean> {
    const store = this.parts.store;
    if (store) {
      try {
        await store.recordCallbackOutcomes([o]);
        return true;
      } catch (err) {
        this.log.warn({ err, webhookId: o.id }, 'could not record a callback outcome in the database; spooling it');
      }
    }
    const w = this.parts.writer;
    if (w) {
      try {
        await w.append(encodeRecord(RecordKind.callbackOutcome, JSON.stringify(o)));
        return true;
      } catch (err) {
        this.log.warn({ err, webhookId: o.id }, 'could not spool a callback outcome');
      }
    }
    this.log.warn({ webhookId: o.id, status: o.status }, 'callback outcome not recorded: no database or spool could take it');
    return false;
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.stopping) return { ready: false, reason: 'shutting down' };
    if (this.drained) return { ready: false, reason: 'drained by an operator' };
    const w = this.parts.writer;
    if (!w) return { ready: false, reason: `mode ${this.mode} does not accept requests` };
    if (!w.healthy) return { ready: false, reason: `spool not writable (${w.lastError})` };
    return { ready: true };
  }

  private heartbeatState() {
    return {
      seq: this.seq,
      mode: this.mode ?? this.config.mode,
      generation: this.generation,
      modeError: this.modeError,
      version: packageVersion,
      url: this.url,
      backlog: this.backlog,
      drained: this.drained || this.stopping,
      ready: this.readiness().ready,
      idleMs: this.lastAcceptedAt === null ? null : Math.round(performance.now() - this.lastAcceptedAt),
      leader: this.leader,
      accepted: this.accepted,
      startedAt: this.startedAt,
    };
  }

  /** One control step: desired mode, drain flag, membership and the leader's duties. Never overlaps itself. */
  private control(): Promise<void> {
    if (this.controlling || this.stopping) return this.controlling ?? Promise.resolve();
    this.controlling = this.controlStep()
      .catch((err) => this.log.error({ err }, 'control step failed'))
      .finally(() => {
        this.controlling = null;
      });
    return this.controlling;
  }

  private async controlStep(): Promise<void> {
    const c = this.config;
    let changed = false;
    const drained = await isDrained(c.spool, c.nodeId);
    if (drained !== this.drained) {
      this.drained = drained;
      this.log.info({ drained }, drained ? 'drained: readiness fails, accepted work is still served' : 'undrained: ready again');
      changed = true;
    }
    const desired = await readDesired(c.spool);
    if (desired.generation !== this.generation) {
      const target = effectiveMode(desired, c.nodeId, c.mode);
      try {
        if (target !== this.mode) await this.parts.apply(target);
        this.modeError = null;
      } catch (err) {
        this.modeError = (err as Error).message;
        this.log.error({ err, target }, 'could not switch mode; keeping the current one');
      }
      this.generation = desired.generation;
      changed = true;
    }
    await this.membership.poll();
    const leader = this.membership.leader() === c.nodeId;
    if (leader !== this.leader) {
      this.leader = leader;
      this.log.info({ leader }, leader ? 'became cluster leader' : 'no longer cluster leader');
      changed = true;
    }
    if (changed) await this.heartbeat?.beat();
    this.backlog = (await listSegments(c.spool, c.nodeId)).filter((f) => f.state === 'sealed').length;
    if (this.leader) {
      await sealDeadNodes(c.spool, c.nodeId, c.lockStaleMs, this.log);
      if (Date.now() - this.lastPrune > 60_000) {
        this.lastPrune = Date.now();
        if (c.archive) await pruneArchive(c.spool, c.archiveRetentionMs, this.log);
        await sweepTempFiles(c.spool, TEMP_FILE_MAX_AGE_MS, this.log);
      }
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
        await this.heartbeat?.beat(); // tells `intake status` and `node drain --wait` we are going
        await this.waitForQuiet();
        if (this.timer) clearInterval(this.timer);
        await this.watcher?.close();
        await this.controlling;
        await this.server?.close();
        await this.retrier?.close();
        await this.parts.close();
        this.sender.close();
        await this.heartbeat?.close();
        // A node that stopped cleanly is not a member any more: it must not hold up `mode --wait`.
        await fsp.rm(heartbeatPath(this.config.spool, this.config.nodeId), { force: true });
        await this.lock?.release();
        this.loop.close();
        this.log.info('intake node stopped');
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.closing;
  }

  /** Keep serving until no request came for stopIdleMs (the load balancer saw /readyz fail), at most stopGraceMs. */
  private async waitForQuiet(): Promise<void> {
    const { stopGraceMs, stopIdleMs } = this.config;
    if (!this.parts.writer || !this.server) return;
    const deadline = performance.now() + stopGraceMs;
    while (performance.now() < deadline) {
      const idle = this.lastAcceptedAt === null ? Infinity : performance.now() - this.lastAcceptedAt;
      if (idle >= stopIdleMs) return;
      await sleep(Math.min(50, stopIdleMs));
    }
  }

  async destroy(): Promise<void> {
    this.stopping = true;
    this.loop.close();
    if (this.timer) clearInterval(this.timer);
    await this.watcher?.close().catch(() => undefined);
    await this.heartbeat?.close().catch(() => undefined);
    await this.retrier?.close().catch(() => undefined);
    await this.parts.destroy();
    this.sender.close();
    await this.server?.close().catch(() => undefined);
    await this.lock?.release();
  }
}

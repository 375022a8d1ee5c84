// The daemon: one `intake start` process. It wires the roles and keeps their order:
//   the node lock (one process per node id), the roles of its mode (roles.ts: receiver, store,
//   drainer, work API, dispatcher), the HTTP server (http.ts registers every route group), the
//   failed-callback retrier (every mode), the control loop (control.ts: desired mode, drain
//   flag, membership, heartbeat, leader duties) and the event-loop monitor.
//
// start(): node lock -> registration -> desired mode -> roles -> HTTP listen -> retrier -> control.
// close(): readiness fails at once; requests keep being served until the node has been idle for
//          stopIdleMs (the load balancer has noticed) or stopGraceMs passed; then HTTP stops
//          (in-flight requests finish, each waiting for its fsync), the writer seals its segment,
//          the drainer finishes its segment, the lock is released. Idempotent.
// destroy(): at once; nothing sealed (the next start recovers it).
import { promises as fsp } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { isLoopback, type Config, type Mode } from '../config.js';
import { readKeys } from '../cluster/keys.js';
import { Errors } from '../errors.js';
import { Authenticator } from '../http/auth.js';
import { loadIdSecret } from '../intake/ids.js';
import { CompletionWaiters } from '../intake/waiters.js';
import { heartbeatPath } from '../cluster/paths.js';
import { register } from '../cluster/register.js';
import { createMetrics, rateCounters, type Metrics } from '../metrics.js';
import { BooksGauges } from './books-gauges.js';
import type { HeartbeatCounters } from '../cluster/heartbeat.js';
import { packageVersion } from '../package.js';
import { acquireNodeLock, type NodeLock } from '../spool/node-lock.js';
import { checkSpoolMount } from '../spool/mount-check.js';
import { CallbackRetrier } from '../callbacks/retrier.js';
import type { RetryPolicy } from '../callbacks/policy.js';
import { loadSecrets, type SecretSource } from '../callbacks/secrets.js';
import { CallbackSender, failureClass } from '../callbacks/sender.js';
import { SsrfGuard } from '../callbacks/ssrf.js';
import { ClusterControl } from './control.js';
import { buildServer } from './http.js';
import { LoopMonitor } from './loop-monitor.js';
import { recordOutcome } from './outcomes.js';
import { Roles } from './roles.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class IntakeNode {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly roles: Roles;
  /** Clients waiting for completions (Prefer: wait, ?wait=N); all answered when the node stops. */
  private readonly waiters: CompletionWaiters;
  private readonly guard: SsrfGuard;
  private readonly sender: CallbackSender;
  private readonly policy: RetryPolicy;
  private readonly control: ClusterControl;
  private readonly loop: LoopMonitor;
  private secrets: SecretSource | null = null;
  private idSecret: Buffer | null = null;
  private readonly auth = new Authenticator();
  private retrier: CallbackRetrier | null = null;
  private lock: NodeLock | null = null;
  /** A stop keeps serving (answering) at least until then (performance.now()). */
  private serveUntil = 0;
  private server: FastifyInstance | null = null;
  private seq = 0;
  private stopping = false;
  private accepted = 0;
  private lastAcceptedAt: number | null = null;
  private closing: Promise<void> | null = null;
  private readonly startedAt = new Date().toISOString();
  /** This process's start on the monotonic clock, and its running totals as of the last control step (the heartbeat carries them). */
  private readonly bornAt = performance.now();
  private counters: HeartbeatCounters | undefined;
  private readonly books: BooksGauges;
  /** Address the HTTP server listens on, once started. */
  url = '';

  constructor(config: Config, opts: { log?: Logger } = {}) {
    this.config = config;
    this.log = opts.log ?? pino({ level: config.logLevel, base: { node: config.nodeId } });
    this.metrics = createMetrics({ defaults: true });
    this.guard = new SsrfGuard(config.callbackAllowCidrs.split(',').map((x) => x.trim()).filter(Boolean));
    this.sender = new CallbackSender({
      guard: this.guard,
      connectTimeoutMs: config.callbackConnectTimeoutMs,
      timeoutMs: config.callbackTimeoutMs,
      onAttempt: (r, seconds) => {
        this.metrics.callbackSendSeconds.observe(seconds);
        const why = failureClass(r);
        if (why) this.metrics.callbackFailures.inc({ class: why });
      },
    });
    this.policy = { baseMs: config.callbackBaseMs, capMs: config.callbackCapMs, maxAttempts: config.callbackMaxAttempts, maxAgeMs: config.callbackMaxAgeMs };
    // Secrets are loaded in start(); the roles read them through this indirection.
    const secrets: SecretSource = { secretsFor: (t) => this.requireSecrets().secretsFor(t) };
    this.waiters = new CompletionWaiters({ onChange: (n) => this.metrics.waiting.set(n) });
    this.books = new BooksGauges(config.spool, this.metrics, this.log.child({ part: 'books' }));
    this.roles = new Roles(config, this.log, this.metrics, { sender: this.sender, secrets, policy: this.policy }, this.waiters);
    this.control = new ClusterControl({
      config,
      log: this.log,
      roles: this.roles,
      idSecret: () => {
        if (!this.idSecret) throw new Error('id secret not loaded yet');
        return this.idSecret;
      },
      // A new or revoked key counts on this node within one control step.
      everyStep: async () => {
        this.auth.update(await readKeys(config.spool));
        await this.refreshCounters();
        await this.books.refresh();
      },
      state: () => ({
        seq: this.seq,
        version: packageVersion,
        url: this.url,
        ready: this.readiness('ingest').ready,
        idleMs: this.lastAcceptedAt === null ? null : Math.round(performance.now() - this.lastAcceptedAt),
        accepted: this.accepted,
        startedAt: this.startedAt,
        counters: this.counters,
        stopping: this.stopping,
      }),
    });
    this.loop = new LoopMonitor({ metrics: this.metrics, log: this.log, warnMs: config.loopDelayWarnMs });
  }

  private async refreshCounters(): Promise<void> {
    this.counters = { uptimeMs: Math.round(performance.now() - this.bornAt), accepted: this.accepted, ...(await rateCounters(this.metrics)) };
  }

  get mode(): Mode | null {
    return this.roles.mode;
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
      // Mount options under which other nodes see this spool late, or a write can be lost: say so once, at start.
      const mounted = await checkSpoolMount(c.spool, { lockStaleMs: c.lockStaleMs, deadAfterMs: c.deadAfterMs });
      for (const w of mounted.warnings) this.log.warn({ code: w.code, fsType: mounted.mount?.fsType, mountPoint: mounted.mount?.mountPoint }, w.message);
      this.auth.update(await readKeys(c.spool));
      // Safe by default: without keys a node is open, which only a loopback address makes safe.
      if (!this.auth.enabled && !isLoopback(c.host) && !c.insecureNoAuth) {
        throw Errors.badConfig(
          `refusing to listen on ${c.host} without API keys: create one (intake keys create --tenant T --scope submit --spool ${c.spool}), listen on 127.0.0.1, or pass --insecure-no-auth`,
        );
      }
      const idSecret = await loadIdSecret(c.spool);
      this.idSecret = idSecret;
      this.secrets = await loadSecrets(c.spool, c);
      this.seq = await register(c.spool, c.nodeId);
      const target = await this.control.initialMode();
      try {
        await this.roles.apply(target);
      } catch (err) {
        // The cluster's desired mode cannot be applied here (say save mode before `intake
        // migrate`): start in the mode this node was started with, and report the error in the
        // heartbeat (`intake mode --wait` and `intake status` show it) rather than crash-loop.
        if (target === c.mode) throw err;
        this.control.modeError = (err as Error).message;
        this.log.error({ err, target, fallback: c.mode }, 'could not apply the desired mode at start; running in the start mode');
        await this.roles.apply(c.mode);
      }
      this.server = await buildServer(
        {
          nodeId: c.nodeId,
          log: this.log,
          metrics: this.metrics,
          spool: () => this.roles.writer,
          store: () => this.roles.store,
          work: () => this.roles.work,
          readiness: (role) => this.readiness(role),
          cluster: () => ({ ...this.control.view(), books: this.books.view() }),
          idSecret,
          noteAccepted: () => {
            this.accepted++;
            this.lastAcceptedAt = performance.now();
          },
          refuseAddress: (h) => this.guard.refuse(h),
          noteCompleted: () => this.roles.dispatcher?.poke(),
          waits: this.waiters,
          maxWaitS: c.maxWaitS,
        },
        this.auth,
        c,
      );
      this.url = await this.server.listen({ host: c.host, port: c.port });
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
        record: (o) => recordOutcome(o, { store: this.roles.store, writer: this.roles.writer, log: this.log }),
        metrics: this.metrics,
      });
      this.retrier.start();
      // The first heartbeat carries the running totals too (a dashboard never sees none).
      await this.refreshCounters();
      await this.control.start();
      this.log.info({ url: this.url, mode: this.mode, seq: this.seq, version: packageVersion, spool: c.spool }, 'intake node started');
    } catch (err) {
      await this.destroy();
      throw err;
    }
  }

  private requireSecrets(): SecretSource {
    if (!this.secrets) throw new Error('webhook secrets not loaded yet');
    return this.secrets;
  }

  readiness(role: 'ingest' | 'work' = 'ingest'): { ready: boolean; reason?: string } {
    if (this.stopping) return { ready: false, reason: 'shutting down' };
    if (this.control.drained) return { ready: false, reason: 'drained by an operator' };
    if (role === 'work') return this.roles.work ? { ready: true } : { ready: false, reason: `mode ${this.mode} does not serve the processing API` };
    const w = this.roles.writer;
    if (!w) return { ready: false, reason: `mode ${this.mode} does not accept requests` };
    if (!w.healthy) return { ready: false, reason: `spool not writable (${w.lastError})` };
    return { ready: true };
  }

  private onLockLost(err: Error): void {
    // Another process judged this node dead: nobody saw its lock refreshed for --lock-stale-ms
    // (the process stalled: SIGSTOP, swapping, a hung storage call), and the leader took its open
    // segment over. Refuse every request from now on (the writer also refuses by itself when it
    // finds its segment gone), then stop with exit code 1: a process that stalled that long is
    // suspect, and two processes must not share a node id. The supervisor starts it again
    // (systemd: Restart=always); the new process takes the lock back once the leader has sealed
    // what was open, and goes on. Acknowledgements stay safe throughout: the writer acknowledges
    // a batch only if its file is still its own after the sync (writer.ts).
    this.log.fatal({ err }, 'node lock lost; shutting down');
    void this.roles.writer?.lose('this node was judged dead and taken over');
    // Requests that reached the node while it stalled are read only now: answer them (503)
    // rather than reset their connections, for as long as a graceful stop serves.
    this.serveUntil = performance.now() + this.config.stopIdleMs;
    process.exitCode = 1;
    void this.close();
  }

  /** Graceful stop. Idempotent; a second caller gets the same promise. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.stopping = true;
    // Waiting clients get their 202 now (their requests are durable), before anything closes.
    this.waiters.stop();
    this.closing = (async () => {
      const timer = setTimeout(() => {
        this.log.error({ timeoutMs: this.config.shutdownTimeoutMs }, 'graceful shutdown timed out; stopping at once');
        void this.destroy();
      }, this.config.shutdownTimeoutMs);
      timer.unref();
      try {
        await this.control.beat(); // tells `intake status` and `node drain --wait` we are going
        await this.waitForQuiet();
        await this.control.close();
        await this.server?.close();
        await this.retrier?.close();
        await this.roles.close();
        this.sender.close();
        await this.control.closeHeartbeat();
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
    if (!this.roles.writer || !this.server) return;
    const deadline = performance.now() + stopGraceMs;
    while (performance.now() < deadline) {
      const idle = this.lastAcceptedAt === null ? Infinity : performance.now() - this.lastAcceptedAt;
      if (idle >= stopIdleMs && performance.now() >= this.serveUntil) return;
      await sleep(Math.min(50, stopIdleMs));
    }
  }

  async destroy(): Promise<void> {
    this.stopping = true;
    this.waiters.stop();
    this.loop.close();
    await this.control.close().catch(() => undefined);
    await this.control.closeHeartbeat().catch(() => undefined);
    await this.retrier?.close().catch(() => undefined);
    await this.roles.destroy();
    this.sender.close();
    await this.server?.close().catch(() => undefined);
    await this.lock?.release();
  }
}

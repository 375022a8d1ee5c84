// The node's control loop: every heartbeat period (and at once on a change under cluster/) it
// applies the operator's desired mode and drain flag, polls membership, runs the leader's
// duties while this node leads, runs the schedules while it is the scheduler, and publishes the
// heartbeat. Never overlaps itself.
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import type { Config, Mode } from '../config.js';
import { effectiveMode, isDrained, readDesired } from '../cluster/desired.js';
import { HeartbeatPublisher, type Heartbeat } from '../cluster/heartbeat.js';
import { Membership } from '../cluster/membership.js';
import { clusterDir } from '../cluster/paths.js';
import { schedulerOf } from '../cluster/observe.js';
import { listSegments } from '../spool/layout.js';
import { LeaderDuties } from './leader-duties.js';
import type { ClusterView } from '../http/context.js';
import type { HeartbeatCounters } from '../cluster/heartbeat.js';
import { ScheduleDuty } from './schedule-duty.js';
import type { Roles } from './roles.js';

/** What the heartbeat says that the control loop does not know itself. */
export type NodeState = Pick<Heartbeat, 'seq' | 'version' | 'url' | 'ready' | 'idleMs' | 'accepted' | 'startedAt' | 'counters'> & { stopping: boolean };

export class ClusterControl {
  /** The desired-mode generation applied, the drain flag, leadership and the last error, as the heartbeat reports them. */
  generation = 0;
  drained = false;
  leader = false;
  /** Whether this node runs the schedules (the leader, unless it has no spool writer). */
  scheduler = false;
  modeError: string | null = null;
  private backlog = 0;
  private readonly c: Config;
  private readonly log: Logger;
  private readonly roles: Roles;
  private readonly state: () => NodeState;
  private readonly everyStep: (() => Promise<void>) | undefined;
  private readonly membership: Membership;
  private readonly duties: LeaderDuties;
  private readonly schedules: ScheduleDuty;
  private heartbeat: HeartbeatPublisher | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(o: { config: Config; log: Logger; roles: Roles; state: () => NodeState; idSecret: () => Buffer; everyStep?: () => Promise<void> }) {
    this.everyStep = o.everyStep;
    this.c = o.config;
    this.log = o.log;
    this.roles = o.roles;
    this.state = o.state;
    this.membership = new Membership({ root: o.config.spool, self: o.config.nodeId, deadAfterMs: o.config.deadAfterMs });
    this.duties = new LeaderDuties(o.config, o.log);
    this.schedules = new ScheduleDuty({
      root: o.config.spool,
      node: o.config.nodeId,
      idSecret: o.idSecret,
      graceMs: o.config.scheduleGraceMs,
      lockStaleMs: o.config.lockStaleMs,
      log: o.log.child({ part: 'schedules' }),
    });
  }

  /** The mode to start in: the operator's desired mode outlives restarts; --mode is the default for a node it does not name. */
  async initialMode(): Promise<Mode> {
    const desired = await readDesired(this.c.spool);
    this.generation = desired.generation;
    this.drained = await isDrained(this.c.spool, this.c.nodeId);
    return effectiveMode(desired, this.c.nodeId, this.c.mode);
  }

  async start(): Promise<void> {
    const c = this.c;
    this.heartbeat = new HeartbeatPublisher({
      root: c.spool,
      node: c.nodeId,
      everyMs: c.heartbeatMs,
      state: () => this.heartbeatState(),
      onError: (err) => this.log.warn({ err }, 'heartbeat write failed'),
    });
    await this.heartbeat.start();
    this.watcher = chokidar.watch(clusterDir(c.spool), { depth: 1, ignoreInitial: true });
    this.watcher.on('all', () => void this.step());
    this.watcher.on('error', (err) => this.log.warn({ err }, 'cluster watcher error; polling continues'));
    this.timer = setInterval(() => void this.step(), Math.min(500, c.heartbeatMs));
    this.timer.unref();
    await this.step();
  }

  /** The cluster as this node sees it (its last membership poll): for GET /v1/cluster. */
  view(): Omit<ClusterView, 'books'> {
    const members = this.membership.members();
    return {
      leader: this.membership.leader(),
      generation: this.generation,
      nodes: members.map((m) => ({
        id: m.hb.node,
        live: m.live,
        leader: m.hb.leader,
        mode: m.hb.mode,
        mode_error: m.hb.modeError,
        version: m.hb.version,
        ready: m.hb.ready,
        drained: m.hb.drained,
        backlog_segments: m.hb.backlog,
        accepted: m.hb.accepted,
        heartbeat_age_ms: Math.round(m.sinceAdvanceMs),
        started_at: m.hb.startedAt,
        url: m.hb.url,
        counters: m.hb.counters ? countersView(m.hb.counters) : null,
      })),
    };
  }

  /** Publish a beat now (a stopping node tells `intake status` and `node drain --wait` at once). */
  beat(): Promise<void> {
    return this.heartbeat?.beat() ?? Promise.resolve();
  }

  private heartbeatState() {
    const { stopping, ...s } = this.state();
    return {
      ...s,
      mode: this.roles.mode ?? this.c.mode,
      generation: this.generation,
      modeError: this.modeError,
      backlog: this.backlog,
      drained: this.drained || stopping,
      leader: this.leader,
    };
  }

  /** One control step. Never overlaps itself; stops once closed. */
  step(): Promise<void> {
    if (this.running || this.closed) return this.running ?? Promise.resolve();
    this.running = this.run()
      .catch((err) => this.log.error({ err }, 'control step failed'))
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  private async run(): Promise<void> {
    const c = this.c;
    let changed = false;
    await this.everyStep?.();
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
        if (target !== this.roles.mode) await this.roles.apply(target);
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
    // Schedules first (their ticks are due now) and on their own: a failing leader duty must not
    // hold up the ticks, nor a failing tick the duties.
    const writer = this.roles.writer;
    const scheduler = writer !== null && schedulerOf(this.membership.members()) === c.nodeId;
    if (scheduler !== this.scheduler) {
      this.scheduler = scheduler;
      this.log.info({ scheduler }, scheduler ? 'running the schedules' : 'no longer running the schedules');
    }
    if (scheduler) await this.schedules.run(writer).catch((err) => this.log.error({ err }, 'schedule step failed; retried next step'));
    if (this.leader) await this.duties.run();
  }

  /** Stops the loop (the step in progress finishes); the heartbeat stays until closeHeartbeat(). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.watcher?.close().catch(() => undefined);
    await this.running;
  }

  async closeHeartbeat(): Promise<void> {
    await this.heartbeat?.close();
  }
}

function countersView(c: HeartbeatCounters): NonNullable<ClusterView['nodes'][number]['counters']> {
  return {
    uptime_ms: c.uptimeMs,
    accepted: c.accepted,
    drained: c.drained,
    completed: c.completed,
    callbacks_delivered: c.callbacksDelivered,
    callbacks_failed: c.callbacksFailed,
  };
}

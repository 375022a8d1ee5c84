// The scheduler: enqueues a request for every due tick of every schedule (cluster/schedules.json).
// One node runs it, the scheduler (cluster/observe.ts schedulerOf): the leader, or, while the
// leader does not accept requests (save mode: it has no spool writer), the next live node by
// registration number that does. It appends the ticks' records through this node's own spool
// writer, like accepted requests, then records each schedule's progress.
//
// Exactly once per tick: a tick's request id is derived from the schedule id and the tick time
// (a keyed hash under the cluster's id secret, like an Idempotency-Key's), so whoever enqueues a
// tick, and however often (two schedulers for a moment, a crash between the fsync and the state
// write), the database keeps one row. Its content is derived from the schedule and the tick alone,
// so a second copy is a plain duplicate, never an idempotency conflict. Progress is written only
// after the records are fsynced, so a new scheduler never skips a tick the old one did not make
// durable.
import type { Logger } from 'pino';
import { readScheduleState, advanceScheduleState } from '../cluster/schedule-state.js';
import { planTicks, type TickPlan } from '../cluster/schedule-ticks.js';
import { readSchedules, type Schedule } from '../cluster/schedules.js';
import { newRequestId } from '../intake/ids.js';
import { encodeRecord, RecordKind } from '../spool/format.js';
import { encodeRequestRecord } from '../spool/records.js';
import type { SpoolWriter } from '../spool/writer.js';

/** Requests one step enqueues at most, over all schedules; the rest follow in the next steps. */
export const MAX_TICKS_PER_STEP = 200;

/** The Idempotency-Key a tick's request carries (stored with the row: it names schedule and tick). */
export const tickKey = (scheduleId: string, tick: number) => `schedule:${scheduleId}:${new Date(tick).toISOString()}`;

export interface ScheduleDutyOptions {
  root: string;
  node: string;
  /** The cluster's id secret (loaded when the node starts). */
  idSecret: () => Buffer;
  /** Ticks older than this when found were missed by an outage: the schedule's catch-up policy applies. */
  graceMs: number;
  lockStaleMs: number;
  log: Logger;
}

export class ScheduleDuty {
  private readonly o: ScheduleDutyOptions;

  constructor(o: ScheduleDutyOptions) {
    this.o = o;
  }

  /** One step: plan every schedule, append the records, wait for their fsync, then save progress. */
  async run(writer: SpoolWriter): Promise<number> {
    const { schedules } = await readSchedules(this.o.root);
    const state = await readScheduleState(this.o.root);
    const now = Date.now();
    let budget = MAX_TICKS_PER_STEP;
    const records: Buffer[] = [];
    const progress = new Map<string, number>();
    for (const s of schedules) {
      const last = state.schedules[s.id]?.last_tick;
      const since = last ? Date.parse(last) : Date.parse(s.created_at);
      let plan: TickPlan;
      try {
        plan = planTicks({ cron: s.cron, since, now, graceMs: this.o.graceMs, catchUp: s.catch_up, max: budget });
      } catch (err) {
        this.o.log.error({ err, schedule: s.id, cron: s.cron }, 'schedule cannot be planned; skipped');
        continue;
      }
      if (plan.last === since) continue;
      if (plan.missed) {
        const m = plan.missed;
        const range = { schedule: s.id, policy: s.catch_up, from: new Date(m.from).toISOString(), to: new Date(m.to).toISOString(), ticks: m.ticks };
        if (s.catch_up === 'once') {
          records.push(this.record(s, m.to, { from: range.from, to: range.to, ticks: m.ticks }));
          this.o.log.warn(range, 'schedule missed ticks during an outage: one request stands for them (catch-up once)');
        } else {
          this.o.log.warn(range, 'schedule missed ticks during an outage: skipped (catch-up skip)');
        }
        budget -= s.catch_up === 'once' ? 1 : 0;
      }
      for (const t of plan.ticks) records.push(this.record(s, t, null));
      budget -= plan.ticks.length;
      progress.set(s.id, plan.last);
    }
    const keep = new Set(schedules.map((s) => s.id));
    // Nothing due: write only to forget the progress of removed schedules.
    if (progress.size === 0 && Object.keys(state.schedules).every((id) => keep.has(id))) return 0;
    // One group commit for the whole step; progress only once every record is durable.
    await Promise.all(records.map((r) => writer.append(r)));
    await advanceScheduleState(this.o.root, { node: this.o.node, ticks: progress, keep, lockStaleMs: this.o.lockStaleMs });
    return records.length;
  }

  private record(s: Schedule, tick: number, catchUp: { from: string; to: string; ticks: number | null } | null): Buffer {
    const key = tickKey(s.id, tick);
    const metadata = { schedule: { id: s.id, tick: new Date(tick).toISOString(), ...(catchUp ? { catch_up: catchUp } : {}) } };
    return encodeRecord(
      RecordKind.request,
      encodeRequestRecord({
        id: newRequestId(s.tenant, key, this.o.idSecret()),
        tenant: s.tenant,
        idempotencyKey: key,
        receivedAt: Date.now(),
        node: this.o.node,
        callbackUrl: s.callback_url,
        lane: s.lane,
        notBefore: null,
        payload: s.payload,
        metadata: JSON.stringify(metadata),
      }),
    );
  }
}

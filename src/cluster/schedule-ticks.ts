// Which ticks of a cron schedule are due, and what a full outage left behind. Pure: the caller
// gives the last tick already enqueued and "now"; nothing here reads a clock or a file.
//
// Expressions have 5 fields (minute first) or 6 (second first) and are read in UTC, so every
// node computes the same instants whatever its time zone.
import { CronExpressionParser, type CronExpression } from 'cron-parser';
import { Errors } from '../errors.js';

export const CATCH_UP_POLICIES = ['skip', 'once'] as const;
export type CatchUp = (typeof CATCH_UP_POLICIES)[number];

/** Missed ticks are counted up to this many; past it a catch-up request says `ticks: null` (more). */
const MAX_COUNTED = 10_000;

function parse(cron: string, from: number): CronExpression {
  return CronExpressionParser.parse(cron, { currentDate: new Date(from), tz: 'UTC' });
}

/** Throws INTAKE_BAD_SCHEDULE when `cron` is not an expression this build can run. */
export function checkCron(cron: string): void {
  const fields = cron.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) throw Errors.badSchedule(`cron expression ${JSON.stringify(cron)} must have 5 fields (minute hour day month weekday) or 6 (second first)`);
  try {
    parse(cron, Date.now()).next();
  } catch (err) {
    throw Errors.badSchedule(`cron expression ${JSON.stringify(cron)} does not parse: ${(err as Error).message}`);
  }
}

export interface MissedRange {
  /** First and last missed tick (ms). */
  from: number;
  to: number;
  /** How many ticks the range holds, or null when more than MAX_COUNTED. */
  ticks: number | null;
}

export interface TickPlan {
  /** Ticks to enqueue one request each, oldest first. */
  ticks: number[];
  /** Ticks older than the grace (an outage): with `once` one request stands for them, with `skip` none. */
  missed: MissedRange | null;
  /** The schedule's progress once this plan's requests are on the spool. */
  last: number;
}

/**
 * The plan for one schedule: every tick after `since` and at or before `now`, at most `max`
 * requests. Ticks older than `now - graceMs` were missed by an outage (no scheduler ran), and
 * the catch-up policy decides for them; a takeover after a leader's death is well within the
 * grace, so it enqueues every tick the old scheduler did not.
 */
export function planTicks(o: { cron: string; since: number; now: number; graceMs: number; catchUp: CatchUp; max: number }): TickPlan {
  const plan: TickPlan = { ticks: [], missed: null, last: o.since };
  if (o.max <= 0) return plan;
  const it = parse(o.cron, o.since);
  if (!it.hasNext()) return plan;
  const first = it.next().getTime();
  if (first > o.now) return plan;
  const cutoff = o.now - o.graceMs;
  if (first < cutoff) {
    // The last missed tick: the latest at or before the cutoff (prev() never goes before `first`).
    const lastMissed = Math.max(first, parse(o.cron, cutoff + 1).prev().getTime());
    let count: number | null = 1;
    const counter = parse(o.cron, first);
    while (counter.hasNext() && counter.next().getTime() <= lastMissed) {
      if (++count > MAX_COUNTED) {
        count = null;
        break;
      }
    }
    plan.missed = { from: first, to: lastMissed, ticks: count };
    plan.last = lastMissed;
  } else {
    plan.ticks.push(first);
    plan.last = first;
  }
  const budget = o.max - (plan.missed && o.catchUp === 'once' ? 1 : 0);
  const rest = parse(o.cron, plan.last);
  while (plan.ticks.length < budget && rest.hasNext()) {
    const t = rest.next().getTime();
    if (t > o.now) break;
    plan.ticks.push(t);
    plan.last = t;
  }
  return plan;
}

// Cron schedules, kept in <root>/cluster/schedules.json so any node reads them without the
// database (the scheduler runs in receive mode too). `intake schedules add|rm` change the file
// under a lock and write it durably; the scheduler (node/schedule-duty.ts) reads it each step.
// The request a tick makes is fixed at `add` (tenant, callback URL, payload, lane): its fields
// arrive here already validated as a request (intake/validate.ts, called by the CLI).
import { randomBytes } from 'node:crypto';
import { Errors } from '../errors.js';
import { TENANT_PATTERN } from './keys.js';
import { clusterDir, schedulesPath } from './paths.js';
import { readJsonFile, updateJsonFile } from './shared-file.js';
import { CATCH_UP_POLICIES, checkCron, type CatchUp } from './schedule-ticks.js';

export interface Schedule {
  id: string;
  cron: string;
  tenant: string;
  callback_url: string;
  /** The payload every tick's request carries, as JSON text. */
  payload: string;
  lane: string | null;
  catch_up: CatchUp;
  created_at: string;
}

export interface SchedulesFile {
  schedules: Schedule[];
}

const normalize = (f: Partial<SchedulesFile> | null): SchedulesFile => ({ schedules: Array.isArray(f?.schedules) ? f.schedules : [] });

export function readSchedules(root: string): Promise<SchedulesFile> {
  return readJsonFile(schedulesPath(root), normalize);
}

/** Under a lock, so two operators never lose each other's change. */
function updateSchedules<T>(root: string, change: (f: SchedulesFile) => T): Promise<T> {
  return updateJsonFile(schedulesPath(root), { dir: clusterDir(root), normalize }, change);
}

export interface NewSchedule {
  cron: string;
  tenant: string;
  callbackUrl: string;
  payload: string;
  lane: string | null;
  catchUp: string;
}

export async function addSchedule(root: string, o: NewSchedule): Promise<Schedule> {
  checkCron(o.cron);
  if (!TENANT_PATTERN.test(o.tenant)) throw Errors.badSchedule(`tenant ${JSON.stringify(o.tenant)} must match ${TENANT_PATTERN}`);
  if (!(CATCH_UP_POLICIES as readonly string[]).includes(o.catchUp)) throw Errors.badSchedule(`--catch-up must be ${CATCH_UP_POLICIES.join(' or ')}, not ${JSON.stringify(o.catchUp)}`);
  const s: Schedule = {
    id: randomBytes(8).toString('hex'),
    cron: o.cron.trim().split(/\s+/).join(' '),
    tenant: o.tenant,
    callback_url: o.callbackUrl,
    payload: o.payload,
    lane: o.lane,
    catch_up: o.catchUp as CatchUp,
    created_at: new Date().toISOString(),
  };
  await updateSchedules(root, (f) => f.schedules.push(s));
  return s;
}

/** Returns false when no such schedule exists. Ticks already enqueued stay enqueued. */
export function removeSchedule(root: string, id: string): Promise<boolean> {
  return updateSchedules(root, (f) => {
    const before = f.schedules.length;
    f.schedules = f.schedules.filter((s) => s.id !== id);
    return f.schedules.length !== before;
  });
}

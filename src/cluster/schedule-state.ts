// Each schedule's progress: the last tick whose request is on a spool (fsynced). Kept in
// <root>/cluster/schedule-state.json, so a new scheduler (after a failover, or after a full
// outage) continues where the last one stopped. Written only after the requests it counts are
// durable: a crash in between makes the next scheduler enqueue those ticks again, under the same
// ids, and the database's key on the id keeps one row each.
import { clusterDir, scheduleStatePath } from './paths.js';
import { readJsonFile, updateJsonFile } from './shared-file.js';

export interface ScheduleProgress {
  /** The last tick enqueued, ISO 8601 (UTC). */
  last_tick: string;
  updated_at: string;
  node: string;
}

export interface ScheduleStateFile {
  schedules: Record<string, ScheduleProgress>;
}

const normalize = (f: Partial<ScheduleStateFile> | null): ScheduleStateFile => ({
  schedules: f?.schedules && typeof f.schedules === 'object' ? f.schedules : {},
});

export function readScheduleState(root: string): Promise<ScheduleStateFile> {
  return readJsonFile(scheduleStatePath(root), normalize);
}

/**
 * Move schedules forward to the given ticks (never back: two schedulers for a moment may
 * report out of order) and forget schedules that no longer exist. Under a lock, written durably.
 */
export function advanceScheduleState(
  root: string,
  o: { node: string; ticks: Map<string, number>; keep: Set<string>; lockStaleMs: number },
): Promise<void> {
  return updateJsonFile(scheduleStatePath(root), { dir: clusterDir(root), normalize, staleMs: o.lockStaleMs }, (f) => {
    const now = new Date().toISOString();
    for (const id of Object.keys(f.schedules)) if (!o.keep.has(id)) delete f.schedules[id];
    for (const [id, tick] of o.ticks) {
      const before = f.schedules[id];
      if (before && Date.parse(before.last_tick) >= tick) continue;
      f.schedules[id] = { last_tick: new Date(tick).toISOString(), updated_at: now, node: o.node };
    }
  });
}

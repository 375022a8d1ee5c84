// Counts by status, as both engines' GROUP BY status queries return them.
import type { CallbackStatus } from './store.js';

export const emptyCallbackCounts = (): Record<CallbackStatus, number> => ({ pending: 0, sending: 0, delivered: 0, parked: 0, dead: 0, gone: 0 });

/** Fold `status, n` rows into `into` (statuses it does not name are ignored). */
export function byStatus<T extends Record<string, number>>(rows: { status: string; n: number | string }[], into: T): T {
  for (const r of rows) if (r.status in into) (into as Record<string, number>)[r.status] = Number(r.n);
  return into;
}

// The exactly-once checker for schedules: given the rows a schedule's ticks made (read back from
// the database), which ticks of a per-second schedule are missing, which stored more than once,
// and which catch-up requests stand for a range of missed ticks.
export interface TickRow {
  id: string;
  idempotency_key: string | null;
  tenant: string;
  callback_url: string;
  payload: string;
  metadata: string | null;
}

export interface CatchUpRow {
  tick: number;
  from: number;
  to: number;
  ticks: number | null;
}

export interface TickReport {
  /** Rows of this schedule. */
  rows: number;
  first: number;
  last: number;
  /** Seconds from first to last tick, both included. */
  window: number;
  /** Ticks (ms) in [first, last] with neither a row nor a catch-up range covering them. */
  missing: number[];
  /** Ticks covered more than once (two rows, or a row inside a catch-up range). */
  duplicated: number[];
  catchUps: CatchUpRow[];
  /** Rows whose content does not say the tick its key names. */
  malformed: string[];
}

const iso = (ms: number) => new Date(ms).toISOString();

/** For a schedule that ticks every second. */
export function checkTicks(scheduleId: string, rows: readonly TickRow[]): TickReport {
  const prefix = `schedule:${scheduleId}:`;
  const covered = new Map<number, number>();
  const catchUps: CatchUpRow[] = [];
  const malformed: string[] = [];
  let n = 0;
  for (const r of rows) {
    if (!r.idempotency_key?.startsWith(prefix)) continue;
    n++;
    const tick = Date.parse(r.idempotency_key.slice(prefix.length));
    const meta = JSON.parse(r.metadata ?? 'null') as { schedule?: { id: string; tick: string; catch_up?: { from: string; to: string; ticks: number | null } } } | null;
    if (!Number.isFinite(tick) || tick % 1000 !== 0 || meta?.schedule?.id !== scheduleId || meta.schedule.tick !== iso(tick)) {
      malformed.push(`${r.id} ${r.idempotency_key} ${r.metadata}`);
      continue;
    }
    const cu = meta.schedule.catch_up;
    if (cu) {
      const c = { tick, from: Date.parse(cu.from), to: Date.parse(cu.to), ticks: cu.ticks };
      catchUps.push(c);
      for (let t = c.from; t <= c.to; t += 1000) covered.set(t, (covered.get(t) ?? 0) + 1);
    } else {
      covered.set(tick, (covered.get(tick) ?? 0) + 1);
    }
  }
  const ticks = [...covered.keys()].sort((a, b) => a - b);
  const first = ticks[0] ?? 0;
  const last = ticks.at(-1) ?? 0;
  const missing: number[] = [];
  for (let t = first; ticks.length > 0 && t <= last; t += 1000) if (!covered.has(t)) missing.push(t);
  const duplicated = ticks.filter((t) => covered.get(t)! > 1);
  return { rows: n, first, last, window: ticks.length === 0 ? 0 : (last - first) / 1000 + 1, missing, duplicated, catchUps, malformed };
}

export function formatTicks(r: TickReport): string {
  return `rows=${r.rows} window=${r.window}s ${r.window > 0 ? `${iso(r.first)}..${iso(r.last)} ` : ''}missing=${r.missing.length} duplicated=${r.duplicated.length} catch-ups=${r.catchUps.length} malformed=${r.malformed.length}`;
}

/** Consecutive runs of missing ticks, as [from, to] pairs. */
export function gaps(missing: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const t of missing) {
    const g = out.at(-1);
    if (g && g[1] + 1000 === t) g[1] = t;
    else out.push([t, t]);
  }
  return out;
}

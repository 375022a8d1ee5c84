// Delayed requests and cancels on SQLite, as synchronous calls run in the SQLite thread. One
// writer: the request insert's tombstone check and applyCancels never run side by side, so a
// cancel and its request cannot miss each other.
import type Database from 'better-sqlite3';
import type { CancelOutcome } from '../store.js';
import type { SyncStore } from './sync.js';

type CancelPart = Pick<SyncStore, 'cancelRequest' | 'applyCancels' | 'releaseDueRequests'>;

const sql = {
  cancel: `UPDATE requests SET status = 'cancelled', lease_token = NULL, lease_expires_at = NULL
    WHERE id = @id AND tenant = @tenant AND status IN ('pending', 'scheduled')`,
  statusOf: `SELECT status, tenant FROM requests WHERE id = ?`,
  tombstone: `INSERT INTO cancels (id, tenant, cancelled_at, node_id) VALUES (@id, @tenant, @at, @node) ON CONFLICT (id) DO NOTHING`,
  anyTombstone: `SELECT 1 FROM cancels LIMIT 1`,
  takeTombstone: `DELETE FROM cancels WHERE id = ? RETURNING tenant`,
  // Reads requests_scheduled_due (partial: scheduled rows only) in not_before order.
  releaseDue: `UPDATE requests SET status = 'pending'
    WHERE id IN (SELECT id FROM requests WHERE status = 'scheduled' AND not_before <= @now ORDER BY not_before LIMIT @limit)`,
} as const;

export interface SqliteCancels extends CancelPart {
  /** After inserting requests: store as cancelled those whose tombstone waits (and drop the tombstones). */
  honourTombstones(rows: readonly { id: string; tenant: string }[]): void;
}

export function sqliteCancels(db: Database.Database): SqliteCancels {
  const cache = new Map<keyof typeof sql, Database.Statement>();
  const st = (k: keyof typeof sql): Database.Statement => {
    let s = cache.get(k);
    if (!s) cache.set(k, (s = db.prepare(sql[k])));
    return s;
  };
  const outcomeOf = (id: string, tenant: string): CancelOutcome => {
    const row = st('statusOf').get(id) as { status: string; tenant: string } | undefined;
    if (!row || row.tenant !== tenant) return 'not-found';
    return row.status === 'cancelled' ? 'cancelled' : 'conflict';
  };

  return {
    cancelRequest(id, tenant) {
      return st('cancel').run({ id, tenant }).changes > 0 ? 'cancelled' : outcomeOf(id, tenant);
    },
    applyCancels(cancels) {
      let n = 0;
      for (const c of cancels) {
        if (st('cancel').run({ id: c.id, tenant: c.tenant }).changes > 0) n++;
        else if (!st('statusOf').get(c.id)) st('tombstone').run({ id: c.id, tenant: c.tenant, at: c.at, node: c.node });
        // Otherwise the request is claimed, completed, cancelled already, or another tenant's: nothing to do.
      }
      return n;
    },
    releaseDueRequests(limit) {
      return st('releaseDue').run({ now: Date.now(), limit }).changes;
    },
    honourTombstones(rows) {
      // Nearly always empty: one probe, and the drain's insert pays nothing more.
      if (!st('anyTombstone').get()) return;
      for (const r of rows) {
        const t = st('takeTombstone').get(r.id) as { tenant: string } | undefined;
        if (t && t.tenant === r.tenant) st('cancel').run({ id: r.id, tenant: r.tenant });
      }
    },
  };
}

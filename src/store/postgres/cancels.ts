// Delayed requests and cancels on PostgreSQL.
//
// A cancel and its request's insert can run at once on two connections. Under READ COMMITTED
// each could miss the other's uncommitted row (the cancel finds no request and leaves a
// tombstone, the insert finds no tombstone): the cancel would be lost. So a drain's insert
// holds a shared transaction-level advisory lock and a cancel that leaves a tombstone an
// exclusive one: drains still run side by side, and whichever of the two commits second sees
// the other's row.
import type pg from 'pg';
import type { CancelRecord } from '../../spool/records.js';
import type { CancelOutcome, Store } from '../store.js';

/** Arbitrary constant: the advisory lock key of tombstones against request inserts. */
export const TOMBSTONE_LOCK_KEY = 7_145_821_338;

export const cancelSql = {
  lockShared: `SELECT pg_advisory_xact_lock_shared(${TOMBSTONE_LOCK_KEY})`,
  lockExclusive: `SELECT pg_advisory_xact_lock(${TOMBSTONE_LOCK_KEY})`,
  cancel: `UPDATE requests SET status = 'cancelled', lease_token = NULL, lease_expires_at = NULL
    WHERE id = $1 AND tenant = $2 AND status IN ('pending', 'scheduled')`,
  statusOf: `SELECT status, tenant FROM requests WHERE id = $1`,
  tombstone: `INSERT INTO cancels (id, tenant, cancelled_at, node_id) VALUES ($1, $2, to_timestamp($3 / 1000.0), $4) ON CONFLICT (id) DO NOTHING`,
  // Run by the drain's insert after its rows went in (copy.ts), inside the same transaction.
  honourTombstones: `WITH hit AS (DELETE FROM cancels c USING intake_staging s WHERE c.id = s.id RETURNING c.id, c.tenant)
    UPDATE requests r SET status = 'cancelled' FROM hit
    WHERE r.id = hit.id AND r.tenant = hit.tenant AND r.status IN ('pending', 'scheduled')`,
  // Reads requests_scheduled_due (partial: scheduled rows only); SKIP LOCKED, so every save-mode
  // node may run it at once and none waits on another (or on a cancel of the same row).
  releaseDue: `UPDATE requests SET status = 'pending'
    WHERE id IN (SELECT id FROM requests WHERE status = 'scheduled' AND not_before <= now()
                 ORDER BY not_before LIMIT $1 FOR UPDATE SKIP LOCKED)`,
} as const;

type CancelPart = Pick<Store, 'cancelRequest' | 'applyCancels' | 'releaseDueRequests'>;

type InTransaction = <T>(fn: (c: pg.PoolClient) => Promise<T>) => Promise<T>;

export function postgresCancels(pool: pg.Pool, inTransaction: InTransaction): CancelPart {
  const outcomeOf = async (c: pg.ClientBase | pg.Pool, id: string, tenant: string): Promise<CancelOutcome> => {
    const row = (await c.query<{ status: string; tenant: string }>(cancelSql.statusOf, [id])).rows[0];
    if (!row || row.tenant !== tenant) return 'not-found';
    return row.status === 'cancelled' ? 'cancelled' : 'conflict';
  };
  /** In the caller's transaction, under the exclusive lock: cancel the request, or leave a tombstone if it is not stored yet. */
  const applyOne = async (c: pg.PoolClient, r: CancelRecord): Promise<boolean> => {
    if ((await c.query(cancelSql.cancel, [r.id, r.tenant])).rowCount) return true;
    // Otherwise stored and claimed, completed, cancelled already or another tenant's: nothing to do.
    if ((await c.query(cancelSql.statusOf, [r.id])).rowCount) return false;
    await c.query(cancelSql.tombstone, [r.id, r.tenant, r.at, r.node]);
    return false;
  };

  return {
    async cancelRequest(id, tenant) {
      if ((await pool.query(cancelSql.cancel, [id, tenant])).rowCount) return 'cancelled';
      return outcomeOf(pool, id, tenant);
    },
    async applyCancels(cancels) {
      if (cancels.length === 0) return 0;
      return inTransaction(async (c) => {
        // First, before any row lock, as a drain takes its shared lock first: no deadlock
        // between the two. Cancels are rare; a drain's commit is the longest wait.
        await c.query(cancelSql.lockExclusive);
        let n = 0;
        for (const r of cancels) if (await applyOne(c, r)) n++;
        return n;
      });
    },
    async releaseDueRequests(limit) {
      return (await pool.query(cancelSql.releaseDue, [limit])).rowCount ?? 0;
    },
  };
}

// Processing API and callback outbox on PostgreSQL.
import type pg from 'pg';
import type { CallbackState, ClaimedWork, LeaseItem, LeaseOutcome, Store } from '../store.js';
import { workSql as sql } from './work-sql.js';

type WorkPart = Pick<
  Store,
  'claimableLanes' | 'claimWork' | 'completeWork' | 'releaseWork' | 'extendWork' | 'claimCallbacks' | 'recordCallbackOutcomes' | 'getCallback'
>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** How often at most a claim first returns expired leases to the queue (a round trip saved on most claims). */
const REAP_EVERY_MS = 250;

export function postgresWork(pool: pg.Pool): WorkPart {
  const outcomeOf = async (changes: number | null, it: LeaseItem): Promise<LeaseOutcome> =>
    (changes ?? 0) > 0 ? 'ok' : (await pool.query(sql.exists, [it.id, it.tenant])).rowCount ? 'conflict' : 'not-found';
  /** Outcomes of a batch from the ids it changed: the rest are conflicts if the row exists in the item's tenant, else not found. */
  const outcomesOf = async (items: LeaseItem[], changed: Set<string>): Promise<LeaseOutcome[]> => {
    const missing = items.filter((it) => !changed.has(it.id)).map((it) => it.id);
    const tenantOf = new Map<string, string>();
    if (missing.length > 0) for (const r of (await pool.query<{ id: string; tenant: string }>(sql.existing, [missing])).rows) tenantOf.set(r.id, r.tenant);
    return items.map((it) => (changed.has(it.id) ? 'ok' : tenantOf.get(it.id) === it.tenant ? 'conflict' : 'not-found'));
  };
  let reapedAt = 0;

  return {
    async claimableLanes(tenant) {
      return (await pool.query<{ lane: string | null }>(sql.claimableLanes, [tenant])).rows.map((r) => r.lane);
    },
    async claimWork(o) {
      if (performance.now() - reapedAt >= REAP_EVERY_MS) {
        reapedAt = performance.now();
        await pool.query(sql.reapLeases);
      }
      const rows = (
        await pool.query<{
          id: string;
          tenant: string;
          lease_token: string;
          lease_expires_ms: number;
          attempts: number;
          lane: string | null;
          received_ms: number;
          callback_url: string;
          payload: string;
          metadata: string | null;
        }>(o.lane === null ? sql.claimNoLane : sql.claimInLane, [o.leaseMs, o.lane, o.limit, o.tenant])
      ).rows;
      return rows
        .map(
          (r): ClaimedWork => ({
            id: r.id,
            tenant: r.tenant,
            leaseToken: r.lease_token,
            leaseExpiresAt: Math.round(r.lease_expires_ms),
            attempts: r.attempts,
            lane: r.lane,
            receivedAt: Math.round(r.received_ms),
            callbackUrl: r.callback_url,
            payload: r.payload,
            metadata: r.metadata,
          }),
        )
        .sort((a, b) => a.receivedAt - b.receivedAt || (a.id < b.id ? -1 : 1));
    },
    async completeWork(items) {
      // A token that is not a UUID was never issued: the item is a conflict (or not found), never a query error.
      const valid = items.filter((it) => UUID.test(it.leaseToken));
      const changed = new Set<string>();
      if (valid.length > 0) {
        const r = await pool.query<{ id: string }>(sql.complete, [
          valid.map((it) => it.id),
          valid.map((it) => it.leaseToken),
          valid.map((it) => it.result),
          valid.map((it) => it.callback.id),
          valid.map((it) => it.callback.body),
          valid.map((it) => it.tenant),
        ]);
        for (const row of r.rows) changed.add(row.id);
        const again = valid.filter((it) => !changed.has(it.id));
        if (again.length > 0) {
          const args = [again.map((it) => it.id), again.map((it) => it.leaseToken), again.map((it) => it.result), again.map((it) => it.tenant)];
          for (const row of (await pool.query<{ id: string }>(sql.completedWith, args)).rows) changed.add(row.id);
        }
      }
      return outcomesOf(items, changed);
    },
    async releaseWork(items) {
      const valid = items.filter((it) => UUID.test(it.leaseToken));
      const changed = new Set<string>();
      if (valid.length > 0) {
        const r = await pool.query<{ id: string }>(sql.release, [valid.map((it) => it.id), valid.map((it) => it.leaseToken), valid.map((it) => it.tenant)]);
        for (const row of r.rows) changed.add(row.id);
      }
      return outcomesOf(items, changed);
    },
    async extendWork(it, leaseMs) {
      if (!UUID.test(it.leaseToken)) return outcomeOf(0, it);
      return outcomeOf((await pool.query(sql.extend, [it.id, it.leaseToken, leaseMs, it.tenant])).rowCount, it);
    },
    async claimCallbacks(o) {
      const rows = (
        await pool.query<{ id: string; request_id: string; tenant: string; url: string; body: string; attempts: number }>(sql.claimCallbacks, [o.limit, o.leaseMs])
      ).rows;
      return rows.map((r) => ({ id: r.id, requestId: r.request_id, tenant: r.tenant, url: r.url, body: r.body, attempts: r.attempts }));
    },
    async recordCallbackOutcomes(outcomes) {
      if (outcomes.length === 0) return;
      await pool.query(sql.recordOutcomes, [
        outcomes.map((o) => o.id),
        outcomes.map((o) => o.status),
        outcomes.map((o) => o.attempts),
        outcomes.map((o) => o.lastStatus),
        outcomes.map((o) => o.lastError),
        outcomes.map((o) => o.at),
      ]);
    },
    async getCallback(requestId) {
      const r = (
        await pool.query<{ id: string; status: CallbackState['status']; attempts: number; last_status: number | null; last_error: string | null; updated_ms: number }>(
          sql.getCallback,
          [requestId],
        )
      ).rows[0];
      return r ? { id: r.id, status: r.status, attempts: r.attempts, lastStatus: r.last_status, lastError: r.last_error, updatedAt: Math.round(r.updated_ms) } : null;
    },
  };
}

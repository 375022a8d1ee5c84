// Processing API and callback outbox on SQLite, as synchronous calls: they run in the SQLite
// thread (thread.ts), which wraps each call in a savepoint of the batch's one transaction.
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { CallbackOutcome, CallbackState, CallbackToSend, ClaimedWork, LeaseOutcome } from '../store.js';
import { sameJsonText } from '../same-json.js';
import type { SyncStore } from './sync.js';
import { workSql as sql } from './work-sql.js';

type WorkPart = Pick<
  SyncStore,
  'claimableLanes' | 'claimWork' | 'completeWork' | 'releaseWork' | 'extendWork' | 'claimCallbacks' | 'recordCallbackOutcomes' | 'getCallback'
>;

interface ClaimRow {
  id: string;
  tenant: string;
  lease_token: string;
  lease_expires_at: number;
  attempts: number;
  lane: string | null;
  received_at: number;
  callback_url: string;
  payload: string;
  metadata: string | null;
}

/** How often at most a claim first returns expired leases to the queue. */
const REAP_EVERY_MS = 250;

export function sqliteWork(db: Database.Database): WorkPart {
  // Each statement is prepared once, on first use (compiling per call was 7 % of a busy node's time).
  const cache = new Map<keyof typeof sql, Database.Statement>();
  const st = <K extends keyof typeof sql>(k: K): Database.Statement => {
    let s = cache.get(k);
    if (!s) cache.set(k, (s = db.prepare(sql[k])));
    return s;
  };
  const outcomeOf = (changes: number, id: string, tenant: string): LeaseOutcome => (changes > 0 ? 'ok' : st('exists').get({ id, tenant }) ? 'conflict' : 'not-found');
  let reapedAt = 0;

  type CallbackRow = { id: string; request_id: string; tenant: string; url: string; body: string; attempts: number };

  return {
    claimableLanes(tenant) {
      return (st('claimableLanes').all({ now: Date.now(), tenant }) as { lane: string | null }[]).map((r) => r.lane);
    },
    claimWork(o) {
      const now = Date.now();
      if (now - reapedAt >= REAP_EVERY_MS) {
        reapedAt = now;
        st('reapLeases').run({ now });
      }
      const ids = st('claimable').pluck().all({ tenant: o.tenant, lane: o.lane, now, limit: o.limit }) as string[];
      const out: ClaimedWork[] = [];
      for (const id of ids) {
        const r = st('claim').get({ id, token: randomUUID(), expires: now + o.leaseMs }) as ClaimRow;
        out.push({
          id: r.id,
          tenant: r.tenant,
          leaseToken: r.lease_token,
          leaseExpiresAt: r.lease_expires_at,
          attempts: r.attempts,
          lane: r.lane,
          receivedAt: r.received_at,
          callbackUrl: r.callback_url,
          payload: r.payload,
          metadata: r.metadata,
        });
      }
      return out;
    },
    completeWork(items) {
      const now = Date.now();
      return items.map((it): LeaseOutcome => {
        const row = st('complete').get({ id: it.id, tenant: it.tenant, token: it.leaseToken, result: it.result, now }) as
          | { tenant: string; callback_url: string }
          | undefined;
        if (!row) {
          // Completed before under this token: the same result is the same completion (the
          // worker retries after a lost answer), another result is a conflict.
          const done = st('completedWith').get({ id: it.id, tenant: it.tenant, token: it.leaseToken }) as { result: string } | undefined;
          return done && sameJsonText(done.result, it.result) ? 'ok' : outcomeOf(0, it.id, it.tenant);
        }
        st('insertCallback').run({ id: it.callback.id, requestId: it.id, tenant: row.tenant, url: row.callback_url, body: it.callback.body, now });
        return 'ok';
      });
    },
    releaseWork(items) {
      const now = Date.now();
      return items.map((it) => outcomeOf(st('release').run({ id: it.id, tenant: it.tenant, token: it.leaseToken, now }).changes, it.id, it.tenant));
    },
    extendWork(it, leaseMs) {
      const now = Date.now();
      return outcomeOf(st('extend').run({ id: it.id, tenant: it.tenant, token: it.leaseToken, now, expires: now + leaseMs }).changes, it.id, it.tenant);
    },
    claimCallbacks(o) {
      const now = Date.now();
      const p = { now, leaseUntil: now + o.leaseMs, limit: o.limit };
      const rows = st('claimExpiredCallbacks').all(p) as CallbackRow[];
      if (rows.length < o.limit) rows.push(...(st('claimDueCallbacks').all({ ...p, limit: o.limit - rows.length }) as CallbackRow[]));
      return rows.map((r): CallbackToSend => ({ id: r.id, requestId: r.request_id, tenant: r.tenant, url: r.url, body: r.body, attempts: r.attempts }));
    },
    recordCallbackOutcomes(outcomes: CallbackOutcome[]) {
      for (const o of outcomes) st('recordOutcome').run({ ...o });
    },
    getCallback(requestId) {
      const r = st('getCallback').get(requestId) as
        | { id: string; status: CallbackState['status']; attempts: number; last_status: number | null; last_error: string | null; updated_at: number }
        | undefined;
      return r ? { id: r.id, status: r.status, attempts: r.attempts, lastStatus: r.last_status, lastError: r.last_error, updatedAt: r.updated_at } : null;
    },
  };
}

// Processing API and callback outbox on SQLite. better-sqlite3 runs each call as one
// synchronous transaction, so claims from concurrent HTTP workers never interleave.
import type Database from 'better-sqlite3';
import type { CallbackOutcome, CallbackState, CallbackToSend, ClaimedWork, LeaseOutcome, Store } from '../store.js';
import { workSql as sql } from './work-sql.js';

type WorkPart = Pick<
  Store,
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

export function sqliteWork(db: Database.Database): WorkPart {
  // Each statement is prepared once, on first use (compiling per call was 7 % of a busy node's time).
  const cache = new Map<keyof typeof sql, Database.Statement>();
  const st = <K extends keyof typeof sql>(k: K): Database.Statement => {
    let s = cache.get(k);
    if (!s) cache.set(k, (s = db.prepare(sql[k])));
    return s;
  };
  const outcomeOf = (changes: number, id: string): LeaseOutcome => (changes > 0 ? 'ok' : st('exists').get(id) ? 'conflict' : 'not-found');

  const claim = db.transaction((lane: string | null, limit: number, leaseMs: number, token: string): ClaimedWork[] => {
    const now = Date.now();
    st('reapLeases').run({ now });
    const rows = st('claim').all({ token, expires: now + leaseMs, lane, now, limit }) as ClaimRow[];
    return rows
      .map((r) => ({
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
      }))
      .sort((a, b) => a.receivedAt - b.receivedAt || (a.id < b.id ? -1 : 1));
  });

  type CallbackRow = { id: string; request_id: string; tenant: string; url: string; body: string; attempts: number };
  const claimCallbacks = db.transaction((limit: number, leaseMs: number): CallbackToSend[] => {
    const now = Date.now();
    const p = { now, leaseUntil: now + leaseMs, limit };
    const rows = st('claimExpiredCallbacks').all(p) as CallbackRow[];
    if (rows.length < limit) rows.push(...(st('claimDueCallbacks').all({ ...p, limit: limit - rows.length }) as CallbackRow[]));
    return rows.map((r) => ({ id: r.id, requestId: r.request_id, tenant: r.tenant, url: r.url, body: r.body, attempts: r.attempts }));
  });

  const complete = db.transaction((id: string, token: string, result: string, cb: { id: string; body: string }): LeaseOutcome => {
    const now = Date.now();
    const row = st('complete').get({ id, token, result, now }) as { tenant: string; callback_url: string } | undefined;
    if (!row) return outcomeOf(0, id);
    st('insertCallback').run({ id: cb.id, requestId: id, tenant: row.tenant, url: row.callback_url, body: cb.body, now });
    return 'ok';
  });

  const record = db.transaction((outcomes: CallbackOutcome[]) => {
    for (const o of outcomes) st('recordOutcome').run({ ...o });
  });

  return {
    async claimableLanes() {
      return (st('claimableLanes').all({ now: Date.now() }) as { lane: string | null }[]).map((r) => r.lane);
    },
    async claimWork(o) {
      return claim(o.lane, o.limit, o.leaseMs, o.leaseToken);
    },
    async completeWork(id, token, result, cb) {
      return complete(id, token, result, cb);
    },
    async releaseWork(id, token) {
      return outcomeOf(st('release').run({ id, token, now: Date.now() }).changes, id);
    },
    async extendWork(id, token, leaseMs) {
      const now = Date.now();
      return outcomeOf(st('extend').run({ id, token, now, expires: now + leaseMs }).changes, id);
    },
    async claimCallbacks(o) {
      return claimCallbacks(o.limit, o.leaseMs);
    },
    async recordCallbackOutcomes(outcomes) {
      record(outcomes);
    },
    async getCallback(requestId) {
      const r = st('getCallback').get(requestId) as
        | { id: string; status: CallbackState['status']; attempts: number; last_status: number | null; last_error: string | null; updated_at: number }
        | undefined;
      return r ? { id: r.id, status: r.status, attempts: r.attempts, lastStatus: r.last_status, lastError: r.last_error, updatedAt: r.updated_at } : null;
    },
  };
}

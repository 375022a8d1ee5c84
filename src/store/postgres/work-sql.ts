// SQL of the processing API and the callback outbox, PostgreSQL engine. Claims use
// FOR UPDATE SKIP LOCKED, so concurrent workers never wait on, or take, each other's rows.
const ms = (col: string) => `(extract(epoch FROM ${col}) * 1000)::float8`;

export const workSql = {
  pendingLanes: `SELECT DISTINCT lane FROM requests WHERE status = 'pending'`,
  reapLeases: `UPDATE requests SET status = 'pending', lease_token = NULL, lease_expires_at = NULL
    WHERE id IN (SELECT id FROM requests WHERE status = 'claimed' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)`,
  claim: `UPDATE requests r SET status = 'claimed', lease_token = $1, lease_expires_at = now() + $2 * interval '1 millisecond',
      attempts = r.attempts + 1
    FROM (SELECT id FROM requests WHERE status = 'pending' AND lane IS NOT DISTINCT FROM $3
          AND (not_before IS NULL OR not_before <= now()) ORDER BY received_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) c
    WHERE r.id = c.id
    RETURNING r.id::text, r.tenant, r.lease_token::text, ${ms('r.lease_expires_at')} AS lease_expires_ms, r.attempts, r.lane,
      ${ms('r.received_at')} AS received_ms, r.callback_url, r.payload::text AS payload, r.metadata::text AS metadata`,
  complete: `UPDATE requests SET status = 'completed', result = $3::jsonb, completed_at = now(), lease_token = NULL, lease_expires_at = NULL
    WHERE id = $1 AND status = 'claimed' AND lease_token = $2 AND lease_expires_at >= now()
    RETURNING tenant, callback_url`,
  insertCallback: `INSERT INTO callbacks (id, request_id, tenant, url, body, status, attempts, next_attempt_at)
    VALUES ($1, $2, $3, $4, $5, 'pending', 0, now()) ON CONFLICT (id) DO NOTHING`,
  release: `UPDATE requests SET status = 'pending', lease_token = NULL, lease_expires_at = NULL
    WHERE id = $1 AND status = 'claimed' AND lease_token = $2 AND lease_expires_at >= now()`,
  extend: `UPDATE requests SET lease_expires_at = now() + $3 * interval '1 millisecond'
    WHERE id = $1 AND status = 'claimed' AND lease_token = $2 AND lease_expires_at >= now()`,
  exists: `SELECT 1 FROM requests WHERE id = $1`,
  claimCallbacks: `UPDATE callbacks c SET status = 'sending', lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
    FROM (SELECT id FROM callbacks
          WHERE (status = 'pending' AND next_attempt_at <= now()) OR (status = 'sending' AND lease_until < now())
          ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) d
    WHERE c.id = d.id
    RETURNING c.id, c.request_id::text, c.tenant, c.url, c.body, c.attempts`,
  // Ordered by attempt count, never by clocks of different hosts (see the SQLite twin).
  recordOutcome: `UPDATE callbacks SET status = $2, attempts = GREATEST(attempts, $3), last_status = $4, last_error = $5,
      updated_at = to_timestamp($6 / 1000.0), lease_until = NULL
    WHERE id = $1 AND status <> 'delivered' AND ($3 > attempts OR ($3 = attempts AND status IN ('pending', 'sending', 'parked')))`,
  getCallback: `SELECT id, status, attempts, last_status, last_error, ${ms('updated_at')} AS updated_ms FROM callbacks WHERE request_id = $1`,
} as const;

// SQL of the processing API and the callback outbox, PostgreSQL engine. Claims use
// FOR UPDATE SKIP LOCKED, so concurrent workers never wait on, or take, each other's rows.
import { claimableLanesSql } from '../lanes-sql.js';

/** The channel a completion is notified on (payload: the request id); src/store/postgres/completions.ts listens. */
export const COMPLETED_CHANNEL = 'intake_completed';

const ms = (col: string) => `(extract(epoch FROM ${col}) * 1000)::float8`;

// ORDER BY tenant and lane first, although both are fixed: PostgreSQL does not take \`lane IS NULL\` as an
// equality, so only this spelling matches requests_claim_tenant (status, tenant, lane, received_at, id)
// and lets the scan stop after LIMIT rows instead of sorting every pending row of the lane.
// Each row gets its own lease token, so items of one claim handed to different workers never share one.
const claimSql = (lanePredicate: string) => `UPDATE requests r SET status = 'claimed', lease_token = gen_random_uuid(),
      lease_expires_at = now() + $1 * interval '1 millisecond', attempts = r.attempts + 1
    FROM (SELECT id FROM requests WHERE status = 'pending' AND tenant = $4 AND ${lanePredicate}
          AND (not_before IS NULL OR not_before <= now()) ORDER BY tenant, lane, received_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) c
    WHERE r.id = c.id
    RETURNING r.id::text, r.tenant, r.lease_token::text, ${ms('r.lease_expires_at')} AS lease_expires_ms, r.attempts, r.lane,
      ${ms('r.received_at')} AS received_ms, r.callback_url, r.payload::text AS payload, r.metadata::text AS metadata`;

export const workSql = {
  claimableLanes: claimableLanesSql('now()', 'NULL::text', '$1'),
  reapLeases: `UPDATE requests SET status = 'pending', lease_token = NULL, lease_expires_at = NULL
    WHERE id IN (SELECT id FROM requests WHERE status = 'claimed' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)`,
  // Two forms of the claim, so the lane test is an equality (or IS NULL) the index
  // (status, lane, received_at) can serve; IS NOT DISTINCT FROM cannot use it.
  claimInLane: claimSql('lane = $2'),
  claimNoLane: claimSql('lane IS NULL AND $2::text IS NULL'),
  // A batch of completions in one statement, so one round trip and one commit (one WAL flush)
  // for all of them: the completions and their outbox rows commit together or not at all. A
  // data-modifying CTE runs to completion whether or not the outer query reads it. Items have
  // distinct ids (the work API never batches one id twice). Each completed id is notified on
  // COMPLETED_CHANNEL in the same transaction: listeners hear of it only if it commits.
  complete: `WITH input AS (
      SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(id, token, result, cb_id, cb_body, tenant)),
    done AS (
      UPDATE requests r SET status = 'completed', result = i.result::jsonb, completed_at = now(), lease_expires_at = NULL
      FROM input i
      WHERE r.id = i.id AND r.tenant = i.tenant AND r.status = 'claimed' AND r.lease_token = i.token AND r.lease_expires_at >= now()
      RETURNING r.id, r.tenant, r.callback_url),
    outbox AS (
      INSERT INTO callbacks (id, request_id, tenant, url, body, status, attempts, next_attempt_at)
      SELECT i.cb_id, d.id, d.tenant, d.callback_url, i.cb_body, 'pending', 0, now() FROM done d JOIN input i ON i.id = d.id
      ON CONFLICT (id) DO NOTHING)
    SELECT id::text, pg_notify('${COMPLETED_CHANNEL}', id::text) FROM done`,
  // The completing token stays on the row (with no lease expiry above). Of the items the complete
  // did not change, those completed before under the same token with the same result (jsonb
  // equality: keys as a set, numbers by value) are the same completion again: a worker that
  // lost the answer retries. A statement of its own, so it sees a completion another statement
  // committed while this one waited for the row.
  completedWith: `SELECT r.id::text FROM requests r
    JOIN unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS i(id, token, result, tenant) ON r.id = i.id AND r.tenant = i.tenant
    WHERE r.status = 'completed' AND r.lease_token = i.token AND r.result = i.result::jsonb`,
  release: `UPDATE requests r SET status = 'pending', lease_token = NULL, lease_expires_at = NULL
    FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS i(id, token, tenant)
    WHERE r.id = i.id AND r.tenant = i.tenant AND r.status = 'claimed' AND r.lease_token = i.token AND r.lease_expires_at >= now()
    RETURNING r.id::text`,
  extend: `UPDATE requests SET lease_expires_at = now() + $3 * interval '1 millisecond'
    WHERE id = $1 AND tenant = $4 AND status = 'claimed' AND lease_token = $2 AND lease_expires_at >= now()`,
  exists: `SELECT 1 FROM requests WHERE id = $1 AND tenant = $2`,
  existing: `SELECT id::text, tenant FROM requests WHERE id = ANY($1::uuid[])`,
  // Each part one index range of callbacks_due (status, next_attempt_at): first the sends whose
  // lease ran out (a dispatcher died), then due pending rows, oldest first. One condition with
  // OR read and sorted the whole outbox on every claim.
  claimCallbacks: `WITH expired AS (
      SELECT id FROM callbacks WHERE status = 'sending' AND lease_until < now() LIMIT $1 FOR UPDATE SKIP LOCKED),
    due AS (
      SELECT id FROM callbacks WHERE status = 'pending' AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
    UPDATE callbacks c SET status = 'sending', lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
    FROM (SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $1) d
    WHERE c.id = d.id
    RETURNING c.id, c.request_id::text, c.tenant, c.url, c.body, c.attempts`,
  // Ordered by attempt count, never by clocks of different hosts (see the SQLite twin). One
  // statement for a whole batch of outcomes; the latest attempt of each id wins within it.
  recordOutcomes: `UPDATE callbacks c SET status = o.status, attempts = GREATEST(c.attempts, o.attempts), last_status = o.last_status,
      last_error = o.last_error, updated_at = to_timestamp(o.at / 1000.0), lease_until = NULL
    FROM (SELECT DISTINCT ON (id) * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::float8[])
            AS u(id, status, attempts, last_status, last_error, at) ORDER BY id, attempts DESC) o
    WHERE c.id = o.id AND c.status <> 'delivered'
      AND (o.attempts > c.attempts OR (o.attempts = c.attempts AND c.status IN ('pending', 'sending', 'parked')))`,
  getCallback: `SELECT id, status, attempts, last_status, last_error, ${ms('updated_at')} AS updated_ms FROM callbacks WHERE request_id = $1`,
} as const;

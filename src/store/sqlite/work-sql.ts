// SQL of the processing API and the callback outbox, SQLite engine. Times are ms since epoch.
import { claimableLanesSql } from '../lanes-sql.js';

export const workSql = {
  claimableLanes: claimableLanesSql('@now', 'NULL', '@tenant'),
  reapLeases: `UPDATE requests SET status = 'pending', lease_token = NULL, lease_expires_at = NULL
    WHERE status = 'claimed' AND lease_expires_at < @now`,
  // The ids to claim; each row then gets its own lease token (claim), so items handed to
  // different workers never share one.
  claimable: `SELECT id FROM requests WHERE status = 'pending' AND tenant = @tenant AND lane IS @lane
                 AND (not_before IS NULL OR not_before <= @now) ORDER BY received_at, id LIMIT @limit`,
  claim: `UPDATE requests SET status = 'claimed', lease_token = @token, lease_expires_at = @expires, attempts = attempts + 1
    WHERE id = @id
    RETURNING id, tenant, lease_token, lease_expires_at, attempts, lane, received_at, callback_url, payload, metadata`,
  // The completing token stays on the row (with no lease expiry): a worker that lost the answer
  // and completes again with the same token and result is answered 200 again (completedWith).
  complete: `UPDATE requests SET status = 'completed', result = @result, completed_at = @now, lease_expires_at = NULL
    WHERE id = @id AND tenant = @tenant AND status = 'claimed' AND lease_token = @token AND lease_expires_at >= @now
    RETURNING tenant, callback_url`,
  insertCallback: `INSERT INTO callbacks (id, request_id, tenant, url, body, status, attempts, next_attempt_at, created_at, updated_at)
    VALUES (@id, @requestId, @tenant, @url, @body, 'pending', 0, @now, @now, @now) ON CONFLICT (id) DO NOTHING`,
  release: `UPDATE requests SET status = 'pending', lease_token = NULL, lease_expires_at = NULL
    WHERE id = @id AND tenant = @tenant AND status = 'claimed' AND lease_token = @token AND lease_expires_at >= @now`,
  extend: `UPDATE requests SET lease_expires_at = @expires
    WHERE id = @id AND tenant = @tenant AND status = 'claimed' AND lease_token = @token AND lease_expires_at >= @now`,
  exists: `SELECT 1 FROM requests WHERE id = @id AND tenant = @tenant`,
  completedWith: `SELECT result FROM requests WHERE id = @id AND tenant = @tenant AND status = 'completed' AND lease_token = @token`,
  // Two claims, each one index range of callbacks_due (status, next_attempt_at): first the
  // sends whose lease ran out (a dispatcher died), then due pending rows, oldest first. One
  // statement with OR scanned and sorted the whole table on every claim (half the
  // dispatcher's CPU with 20,000 rows in the outbox).
  claimExpiredCallbacks: `UPDATE callbacks SET lease_until = @leaseUntil, updated_at = @now
    WHERE id IN (SELECT id FROM callbacks WHERE status = 'sending' AND lease_until < @now LIMIT @limit)
    RETURNING id, request_id, tenant, url, body, attempts`,
  claimDueCallbacks: `UPDATE callbacks SET status = 'sending', lease_until = @leaseUntil, updated_at = @now
    WHERE id IN (SELECT id FROM callbacks WHERE status = 'pending' AND next_attempt_at <= @now
                 ORDER BY next_attempt_at LIMIT @limit)
    RETURNING id, request_id, tenant, url, body, attempts`,
  // Outcomes arrive from several nodes, through the spool, in any order. Order them by attempt
  // count (never by clocks of different hosts): a later attempt wins, the same attempt may move
  // a row out of pending/sending/parked, and 'delivered' is final.
  recordOutcome: `UPDATE callbacks SET status = @status, attempts = MAX(attempts, @attempts), last_status = @lastStatus,
      last_error = @lastError, updated_at = @at, lease_until = NULL
    WHERE id = @id AND status <> 'delivered'
      AND (@attempts > attempts OR (@attempts = attempts AND status IN ('pending', 'sending', 'parked')))`,
  getCallback: `SELECT id, status, attempts, last_status, last_error, updated_at FROM callbacks WHERE request_id = ?`,
} as const;

// Every SQL statement of the PostgreSQL engine, in one place.

/** Arbitrary constant: the advisory lock key that serialises `intake migrate` runs. */
export const MIGRATION_LOCK_KEY = 7_145_821_337;

export const sql = {
  createMigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
  hasMigrationsTable: `SELECT to_regclass('schema_migrations') IS NOT NULL AS present`,
  currentVersion: `SELECT COALESCE(MAX(version), 0)::int AS v FROM schema_migrations`,
  recordMigration: `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`,
  lockMigrations: `SELECT pg_advisory_lock($1)`,
  unlockMigrations: `SELECT pg_advisory_unlock($1)`,
  // The staging table of a drain (copy.ts): one per session, emptied by every commit.
  createStaging: `CREATE TEMP TABLE IF NOT EXISTS intake_staging (id uuid, tenant text, ikey text, received_ms float8,
      node text, url text, lane text, not_before_ms float8, payload text, metadata text) ON COMMIT DELETE ROWS`,
  copyStaging: `COPY intake_staging FROM STDIN`,
  // Rows go in id order, so two drainers loading overlapping rows (a re-drain after a stale
  // claim) take their row locks in the same order and cannot deadlock each other.
  // A request whose not_before is still ahead is stored 'scheduled', out of the claims' way.
  insertFromStaging: `INSERT INTO requests
    (id, tenant, idempotency_key, received_at, stored_at, node_id, callback_url, lane, not_before, payload, metadata, status)
    SELECT id, tenant, ikey, to_timestamp(received_ms / 1000.0), now(), node, url, lane,
           to_timestamp(not_before_ms / 1000.0), payload::jsonb, metadata::jsonb,
           CASE WHEN not_before_ms > extract(epoch FROM now()) * 1000 THEN 'scheduled' ELSE 'pending' END
    FROM intake_staging ORDER BY id
    ON CONFLICT (id) DO NOTHING`,
  getRequest: `SELECT id, tenant, idempotency_key,
      (extract(epoch FROM received_at) * 1000)::float8 AS received_ms,
      (extract(epoch FROM stored_at) * 1000)::float8 AS stored_ms,
      node_id, callback_url, lane, (extract(epoch FROM not_before) * 1000)::float8 AS not_before_ms,
      payload::text AS payload, metadata::text AS metadata, status, attempts, result::text AS result,
      (extract(epoch FROM completed_at) * 1000)::float8 AS completed_ms
    FROM requests WHERE id = $1`,
  countRequests: `SELECT COUNT(*)::int AS n FROM requests`,
} as const;

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
  // One statement per chunk: columns travel as arrays and unnest into rows (one round trip,
  // one plan, no per-row parameter limit).
  insertRequests: `INSERT INTO requests
    (id, tenant, idempotency_key, received_at, stored_at, node_id, callback_url, lane, not_before, payload, metadata)
    SELECT r.id, r.tenant, r.ikey, to_timestamp(r.received_ms / 1000.0), now(), r.node, r.url, r.lane,
           to_timestamp(r.not_before_ms / 1000.0), r.payload::jsonb, r.metadata::jsonb
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::text[], $10::text[])
      AS r(id, tenant, ikey, received_ms, node, url, lane, not_before_ms, payload, metadata)
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

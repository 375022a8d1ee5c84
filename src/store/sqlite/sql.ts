// Every SQL statement of the SQLite engine, in one place.
export const sql = {
  createMigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
  currentVersion: `SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations`,
  hasMigrationsTable: `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`,
  recordMigration: `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
  /** Insert-if-absent of `rows` requests: 12 positional parameters per row. */
  insertRequests: (rows: number) => `INSERT INTO requests
    (id, tenant, idempotency_key, received_at, stored_at, node_id, callback_url, lane, not_before, payload, metadata, status)
    VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}
    ON CONFLICT (id) DO NOTHING`,
  getRequest: `SELECT id, tenant, idempotency_key, received_at, stored_at, node_id, callback_url, lane, not_before,
    payload, metadata, status, attempts, result, completed_at FROM requests WHERE id = ?`,
  countRequests: `SELECT COUNT(*) AS n FROM requests`,
} as const;

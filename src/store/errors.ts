// Which database errors are about the data rather than the database. The drainer uses this to
// tell a record the database will refuse on every retry (quarantine it, store the rest) from an
// outage (back off, retry the whole segment later). Only `code` is read: errors may cross a
// thread boundary (the SQLite engine may run in a worker), where only code and message survive.

/**
 * better-sqlite3 codes for a refused value: every SQLITE_CONSTRAINT_* (CHECK, NOT NULL, a
 * trigger's RAISE(ABORT), ...), a datatype mismatch, a string or blob over the size limit, and a
 * value out of range.
 */
const SQLITE_DATA = /^SQLITE_(CONSTRAINT(_[A-Z]+)?|MISMATCH|TOOBIG|RANGE)$/;

/** PostgreSQL SQLSTATE class 22 (data exception) or 23 (integrity constraint violation). */
const PG_DATA = /^2[23][0-9A-Z]{3}$/;

/** True when the database refused the data itself; false for connection, lock or other transient errors. */
export function isDataError(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && (PG_DATA.test(code) || SQLITE_DATA.test(code));
}

/** The code and message of a database error, for logs and quarantine reports. */
export function describeDbError(err: unknown): { code: string; message: string } {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; message?: unknown };
  return { code: typeof e.code === 'string' ? e.code : 'UNKNOWN', message: typeof e.message === 'string' ? e.message : String(err) };
}

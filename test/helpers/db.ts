// Reads a test node's database directly, never through intake: what completions stored and how
// many outbox rows each request has. The API could hide a second outbox row or a result kept
// in another form; the tables cannot. SQLite is opened read-only per read (the node may be
// running, in WAL mode, or stopped); PostgreSQL through one small pool.
import Database from 'better-sqlite3';
import pg from 'pg';

/** A row of `requests` as the processing API leaves it. `result` is JSON text (jsonb's own spelling on PostgreSQL). */
export interface WorkRow {
  id: string;
  status: string;
  attempts: number;
  lease_token: string | null;
  result: string | null;
}

/** A row of the callback outbox. */
export interface OutboxRow {
  id: string;
  request_id: string;
  body: string;
}

export interface DbReader {
  /** Rows of `requests`, all of them or those with the given ids. */
  requests(ids?: readonly string[]): Promise<WorkRow[]>;
  /** Outbox rows, all of them or those of the given request ids. */
  outbox(requestIds?: readonly string[]): Promise<OutboxRow[]>;
  close(): Promise<void>;
}

/** A reader for the `--db` URL a test node was given (`sqlite:<path>` or `postgres://…`). */
export function dbReader(url: string): DbReader {
  return url.startsWith('sqlite:') ? sqliteReader(url.slice('sqlite:'.length)) : postgresReader(url);
}

function sqliteReader(path: string): DbReader {
  const read = <T>(sql: string, ids: readonly string[] | undefined): T[] => {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      // json_each, so a thousand ids are one bound parameter, not a thousand.
      return (ids ? db.prepare(sql).all(JSON.stringify(ids)) : db.prepare(sql).all()) as T[];
    } finally {
      db.close();
    }
  };
  return {
    async requests(ids) {
      const where = ids ? ' WHERE id IN (SELECT value FROM json_each(?))' : '';
      return read<WorkRow>(`SELECT id, status, attempts, lease_token, result FROM requests${where}`, ids);
    },
    async outbox(ids) {
      const where = ids ? ' WHERE request_id IN (SELECT value FROM json_each(?))' : '';
      return read<OutboxRow>(`SELECT id, request_id, body FROM callbacks${where}`, ids);
    },
    async close() {},
  };
}

function postgresReader(url: string): DbReader {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  return {
    async requests(ids) {
      const where = ids ? ' WHERE id::text = ANY($1::text[])' : '';
      return (await pool.query<WorkRow>(`SELECT id::text AS id, status, attempts, lease_token::text AS lease_token, result::text AS result FROM requests${where}`, ids ? [ids] : [])).rows;
    },
    async outbox(ids) {
      const where = ids ? ' WHERE request_id::text = ANY($1::text[])' : '';
      return (await pool.query<OutboxRow>(`SELECT id, request_id::text AS request_id, body FROM callbacks${where}`, ids ? [ids] : [])).rows;
    },
    close: () => pool.end(),
  };
}

// The books on PostgreSQL (schema v6): drained segments, the rows-inserted counter, and the
// counts `intake verify` and the gauges read. See the SQLite twin (../sqlite/books.ts).
import type pg from 'pg';
import { byStatus, emptyCallbackCounts } from '../counts.js';
import type { BooksCheckpoint, DrainedSegment, FoldRequest, Store } from '../store.js';

export const booksSql = {
  recordSegment: `INSERT INTO drained_segments (node, segment, requests, refused, conflicts, drained_by)
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node, segment) DO NOTHING`,
  // Run by every insert of requests (copy.ts), inside its transaction: a row appended, never one
  // counter row updated, so two drains committing at once do not wait on each other.
  countInserted: `INSERT INTO requests_inserted (n) VALUES ($1)`,
  rows: `SELECT COUNT(*)::bigint AS n FROM requests`,
  inserted: `SELECT COALESCE(SUM(n), 0)::bigint AS n FROM requests_inserted`,
  // One statement: the rows it deletes are those committed when it began, and their sum goes
  // back as one row; an insert committing meanwhile keeps its own row. Two at once never lose a
  // count: the second skips rows the first deleted (and does not see the first's new row).
  compactInserted: `WITH gone AS (DELETE FROM requests_inserted RETURNING n)
    INSERT INTO requests_inserted (n) SELECT SUM(n) FROM gone HAVING COUNT(*) > 0 RETURNING (SELECT COUNT(*) FROM gone)::int AS folded`,
  // The age by the database's own clock: no other host's clock is compared with it.
  segments: `SELECT node, segment, requests, refused, conflicts, drained_by AS "drainedBy",
    (EXTRACT(EPOCH FROM now() - drained_at) * 1000)::float8 AS "ageMs" FROM drained_segments`,
  completed: `SELECT COUNT(*)::bigint AS n FROM requests WHERE status = 'completed'`,
  callbacks: `SELECT status, COUNT(*)::bigint AS n FROM callbacks GROUP BY status`,
  requestBacklog: `SELECT status, COUNT(*)::bigint AS n FROM requests WHERE status IN ('pending', 'scheduled', 'claimed') GROUP BY status`,
  callbackBacklog: `SELECT status, COUNT(*)::bigint AS n FROM callbacks WHERE status IN ('pending', 'sending', 'parked', 'dead') GROUP BY status`,
} as const;

type BooksPart = Pick<Store, 'recordDrainedSegment' | 'books' | 'backlog' | 'compactCounts' | 'booksCheckpoints' | 'foldSegments'>;

// Schema v7 (books_checkpoints); a v6 database has no such table, and no checkpoints.
const v7 = {
  exists: `SELECT to_regclass('books_checkpoints') IS NOT NULL AS ok`,
  checkpoints: `SELECT node, log_offset::bigint AS "logOffset", segments::bigint AS segments, requests::bigint AS requests,
    refused::bigint AS refused, conflicts::bigint AS conflicts FROM books_checkpoints`,
  offset: `SELECT log_offset::bigint AS o FROM books_checkpoints WHERE node = $1 FOR UPDATE`,
  forget: `DELETE FROM drained_segments WHERE node = $1 AND segment = ANY($2::text[]) RETURNING requests, refused, conflicts`,
  upsert: `INSERT INTO books_checkpoints (node, log_offset, segments, requests, refused, conflicts)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (node) DO UPDATE SET log_offset = EXCLUDED.log_offset, segments = books_checkpoints.segments + EXCLUDED.segments,
      requests = books_checkpoints.requests + EXCLUDED.requests, refused = books_checkpoints.refused + EXCLUDED.refused,
      conflicts = books_checkpoints.conflicts + EXCLUDED.conflicts, folded_at = now()`,
} as const;

type Queryable = Pick<pg.PoolClient, 'query'>;

async function readCheckpoints(q: Queryable): Promise<BooksCheckpoint[]> {
  if (!(await q.query<{ ok: boolean }>(v7.exists)).rows[0]?.ok) return [];
  return (await q.query<Record<keyof BooksCheckpoint, string>>(v7.checkpoints)).rows.map((r) => ({
    node: r.node,
    logOffset: Number(r.logOffset),
    segments: Number(r.segments),
    requests: Number(r.requests),
    refused: Number(r.refused),
    conflicts: Number(r.conflicts),
  }));
}

export function postgresBooks(pool: pg.Pool): BooksPart {

  const grouped = async (q: string) => (await pool.query<{ status: string; n: string }>(q)).rows;
  return {
    async recordDrainedSegment(s: DrainedSegment) {
      await pool.query(booksSql.recordSegment, [s.node, s.segment, s.requests, s.refused, s.conflicts, s.drainedBy]);
    },
    async books() {
      // One snapshot, so rows and the counter are read at the same moment.
      const client = await pool.connect();
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const one = async (q: string) => Number((await client.query<{ n: string }>(q)).rows[0]?.n ?? 0);
        const out = {
          rows: await one(booksSql.rows),
          rowsInserted: await one(booksSql.inserted),
          segments: (await client.query<DrainedSegment>(booksSql.segments)).rows,
          checkpoints: await readCheckpoints(client),
          completed: await one(booksSql.completed),
          callbacks: byStatus((await client.query<{ status: string; n: string }>(booksSql.callbacks)).rows, emptyCallbackCounts()),
        };
        await client.query('COMMIT');
        return out;
      } finally {
        client.release();
      }
    },
    async compactCounts() {
      return (await pool.query<{ folded: number }>(booksSql.compactInserted)).rows[0]?.folded ?? 0;
    },
    booksCheckpoints: () => readCheckpoints(pool),
    async foldSegments(f: FoldRequest) {
      if (f.segments.length === 0) return false;
      const client = await pool.connect();
      try {
        if (!(await client.query<{ ok: boolean }>(v7.exists)).rows[0]?.ok) return false;
        await client.query('BEGIN');
        const now = Number((await client.query<{ o: string }>(v7.offset, [f.node])).rows[0]?.o ?? 0);
        // Another fold got there first: its rows are gone (a concurrent DELETE skips them once
        // the other commits), or the offset moved. Nothing changes.
        const gone = now === f.fromOffset ? await client.query<{ requests: number; refused: number; conflicts: number }>(v7.forget, [f.node, f.segments]) : null;
        if (!gone || gone.rowCount !== new Set(f.segments).size) {
          await client.query('ROLLBACK');
          return false;
        }
        const sum = (k: 'requests' | 'refused' | 'conflicts') => gone.rows.reduce((n, r) => n + Number(r[k]), 0);
        await client.query(v7.upsert, [f.node, f.toOffset, gone.rows.length, sum('requests'), sum('refused'), sum('conflicts')]);
        await client.query('COMMIT');
        return true;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    async backlog() {

      return {
        requests: byStatus(await grouped(booksSql.requestBacklog), { pending: 0, scheduled: 0, claimed: 0 }),
        callbacks: byStatus(await grouped(booksSql.callbackBacklog), { pending: 0, sending: 0, parked: 0, dead: 0 }),
      };
    },
  };
}

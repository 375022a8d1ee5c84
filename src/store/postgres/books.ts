// The books on PostgreSQL (schema v6): drained segments, the rows-inserted counter, and the
// counts `intake verify` and the gauges read. See the SQLite twin (../sqlite/books.ts).
import type pg from 'pg';
import { byStatus, emptyCallbackCounts } from '../counts.js';
import type { DrainedSegment, Store } from '../store.js';

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
  segments: `SELECT node, segment, requests, refused, conflicts, drained_by AS "drainedBy" FROM drained_segments`,
  completed: `SELECT COUNT(*)::bigint AS n FROM requests WHERE status = 'completed'`,
  callbacks: `SELECT status, COUNT(*)::bigint AS n FROM callbacks GROUP BY status`,
  requestBacklog: `SELECT status, COUNT(*)::bigint AS n FROM requests WHERE status IN ('pending', 'scheduled', 'claimed') GROUP BY status`,
  callbackBacklog: `SELECT status, COUNT(*)::bigint AS n FROM callbacks WHERE status IN ('pending', 'sending', 'parked', 'dead') GROUP BY status`,
} as const;

type BooksPart = Pick<Store, 'recordDrainedSegment' | 'books' | 'backlog' | 'compactCounts'>;

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
    async backlog() {

      return {
        requests: byStatus(await grouped(booksSql.requestBacklog), { pending: 0, scheduled: 0, claimed: 0 }),
        callbacks: byStatus(await grouped(booksSql.callbackBacklog), { pending: 0, sending: 0, parked: 0, dead: 0 }),
      };
    },
  };
}

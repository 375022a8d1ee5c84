// The books on SQLite (schema v6), as synchronous calls run in the SQLite thread: drained
// segments, the rows-inserted counter, and the counts `intake verify` and the gauges read.
import type Database from 'better-sqlite3';
import { byStatus, emptyCallbackCounts } from '../counts.js';
import type { DrainedSegment } from '../store.js';
import type { SyncStore } from './sync.js';

type BooksPart = Pick<SyncStore, 'recordDrainedSegment' | 'books' | 'backlog'>;

const sql = {
  recordSegment: `INSERT INTO drained_segments (node, segment, requests, refused, conflicts, drained_at, drained_by)
    VALUES (@node, @segment, @requests, @refused, @conflicts, @at, @drainedBy) ON CONFLICT (node, segment) DO NOTHING`,
  // Run by every insert of requests, inside its transaction.
  countInserted: `UPDATE requests_inserted SET n = n + ? WHERE k = 1`,
  rows: `SELECT COUNT(*) AS n FROM requests`,
  inserted: `SELECT COALESCE(SUM(n), 0) AS n FROM requests_inserted`,
  segments: `SELECT node, segment, requests, refused, conflicts, drained_by AS drainedBy FROM drained_segments`,
  completed: `SELECT COUNT(*) AS n FROM requests WHERE status = 'completed'`,
  callbacks: `SELECT status, COUNT(*) AS n FROM callbacks GROUP BY status`,
  // Index range scans of the unfinished states only (requests_claimable, callbacks_due).
  requestBacklog: `SELECT status, COUNT(*) AS n FROM requests WHERE status IN ('pending', 'scheduled', 'claimed') GROUP BY status`,
  callbackBacklog: `SELECT status, COUNT(*) AS n FROM callbacks WHERE status IN ('pending', 'sending', 'parked', 'dead') GROUP BY status`,
} as const;

export interface SqliteBooks extends BooksPart {
  /** After inserting requests: count the new rows in the same transaction. */
  countInserted(n: number): void;
}

export function sqliteBooks(db: Database.Database): SqliteBooks {
  const cache = new Map<keyof typeof sql, Database.Statement>();
  const st = (k: keyof typeof sql): Database.Statement => {
    let s = cache.get(k);
    if (!s) cache.set(k, (s = db.prepare(sql[k])));
    return s;
  };
  const count = (k: keyof typeof sql): number => (st(k).get() as { n: number }).n;
  const grouped = (k: keyof typeof sql) => st(k).all() as { status: string; n: number }[];
  return {
    countInserted(n) {
      if (n > 0) st('countInserted').run(n);
    },
    recordDrainedSegment(s: DrainedSegment) {
      st('recordSegment').run({ ...s, at: Date.now() });
    },
    books() {
      return {
        rows: count('rows'),
        rowsInserted: count('inserted'),
        segments: st('segments').all() as DrainedSegment[],
        completed: count('completed'),
        callbacks: byStatus(grouped('callbacks'), emptyCallbackCounts()),
      };
    },
    backlog() {
      return {
        requests: byStatus(grouped('requestBacklog'), { pending: 0, scheduled: 0, claimed: 0 }),
        callbacks: byStatus(grouped('callbackBacklog'), { pending: 0, sending: 0, parked: 0, dead: 0 }),
      };
    },
  };
}

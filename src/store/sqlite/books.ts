// The books on SQLite (schema v6), as synchronous calls run in the SQLite thread: drained
// segments, the rows-inserted counter, and the counts `intake verify` and the gauges read.
import type Database from 'better-sqlite3';
import { byStatus, emptyCallbackCounts } from '../counts.js';
import type { BooksCheckpoint, DrainedSegment, FoldRequest } from '../store.js';
import type { SyncStore } from './sync.js';

type BooksPart = Pick<SyncStore, 'recordDrainedSegment' | 'books' | 'backlog' | 'booksCheckpoints' | 'foldSegments'>;

const sql = {
  recordSegment: `INSERT INTO drained_segments (node, segment, requests, refused, conflicts, drained_at, drained_by)
    VALUES (@node, @segment, @requests, @refused, @conflicts, @at, @drainedBy) ON CONFLICT (node, segment) DO NOTHING`,
  // Run by every insert of requests, inside its transaction.
  countInserted: `UPDATE requests_inserted SET n = n + ? WHERE k = 1`,
  rows: `SELECT COUNT(*) AS n FROM requests`,
  inserted: `SELECT COALESCE(SUM(n), 0) AS n FROM requests_inserted`,
  segments: `SELECT node, segment, requests, refused, conflicts, drained_by AS drainedBy, drained_at AS drainedAt FROM drained_segments`,
  completed: `SELECT COUNT(*) AS n FROM requests WHERE status = 'completed'`,
  callbacks: `SELECT status, COUNT(*) AS n FROM callbacks GROUP BY status`,
  // Index range scans of the unfinished states only (requests_claimable, callbacks_due).
  requestBacklog: `SELECT status, COUNT(*) AS n FROM requests WHERE status IN ('pending', 'scheduled', 'claimed') GROUP BY status`,
  callbackBacklog: `SELECT status, COUNT(*) AS n FROM callbacks WHERE status IN ('pending', 'sending', 'parked', 'dead') GROUP BY status`,
} as const;

// Schema v7 (books_checkpoints): prepared only once the table exists (a v6 database has none).
const v7 = {
  exists: `SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'books_checkpoints'`,
  checkpoints: `SELECT node, log_offset AS logOffset, segments, requests, refused, conflicts FROM books_checkpoints`,
  offset: `SELECT log_offset AS o FROM books_checkpoints WHERE node = ?`,
  folded: `SELECT COUNT(*) AS segments, COALESCE(SUM(requests), 0) AS requests, COALESCE(SUM(refused), 0) AS refused,
    COALESCE(SUM(conflicts), 0) AS conflicts FROM drained_segments WHERE node = ? AND segment IN (SELECT value FROM json_each(?))`,
  forget: `DELETE FROM drained_segments WHERE node = ? AND segment IN (SELECT value FROM json_each(?))`,
  upsert: `INSERT INTO books_checkpoints (node, log_offset, segments, requests, refused, conflicts, folded_at)
    VALUES (@node, @logOffset, @segments, @requests, @refused, @conflicts, @at)
    ON CONFLICT (node) DO UPDATE SET log_offset = excluded.log_offset, segments = segments + excluded.segments,
      requests = requests + excluded.requests, refused = refused + excluded.refused, conflicts = conflicts + excluded.conflicts,
      folded_at = excluded.folded_at`,
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
  const hasV7 = () => (db.prepare(v7.exists).get() as { n: number }).n > 0;
  const checkpoints = (): BooksCheckpoint[] => (hasV7() ? (db.prepare(v7.checkpoints).all() as BooksCheckpoint[]) : []);
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
        // drained_at was written by this host (an embedded database is one node's alone).
        segments: (st('segments').all() as (DrainedSegment & { drainedAt?: number })[]).map(({ drainedAt, ...s }) => ({ ...s, ageMs: Date.now() - drainedAt! })),
        checkpoints: checkpoints(),
        completed: count('completed'),
        callbacks: byStatus(grouped('callbacks'), emptyCallbackCounts()),
      };
    },
    booksCheckpoints: checkpoints,
    // Runs in one transaction (a savepoint of the thread's batch): the check and the fold.
    foldSegments(f: FoldRequest) {
      if (!hasV7() || f.segments.length === 0) return false;
      const now = (db.prepare(v7.offset).get(f.node) as { o: number } | undefined)?.o ?? 0;
      if (now !== f.fromOffset) return false;
      const list = JSON.stringify(f.segments);
      const sums = db.prepare(v7.folded).get(f.node, list) as { segments: number; requests: number; refused: number; conflicts: number };
      if (sums.segments !== new Set(f.segments).size) return false;
      db.prepare(v7.forget).run(f.node, list);
      db.prepare(v7.upsert).run({ node: f.node, logOffset: f.toOffset, ...sums, at: Date.now() });
      return true;
    },
    backlog() {
      return {
        requests: byStatus(grouped('requestBacklog'), { pending: 0, scheduled: 0, claimed: 0 }),
        callbacks: byStatus(grouped('callbackBacklog'), { pending: 0, sending: 0, parked: 0, dead: 0 }),
      };
    },
  };
}

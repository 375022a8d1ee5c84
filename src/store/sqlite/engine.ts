// SQLite engine (better-sqlite3): WAL, synchronous=FULL, for a single node on local disk only
// (SQLite's locking is not safe on NFS). better-sqlite3 is synchronous, so this engine runs in
// its own thread (thread.ts); the node talks to it through client.ts.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { Errors } from '../../errors.js';
import type { RequestRecord } from '../../spool/records.js';
import { loadMigrations, MIN_SCHEMA } from '../migrations.js';
import type { SchemaState, StoredRequest } from '../store.js';
import type { SyncStore } from './sync.js';
import { sql } from './sql.js';
import { sqliteWork } from './work.js';
import { sqliteCancels } from './cancels.js';
import { sqliteBooks } from './books.js';

/** Rows bound to one multi-row INSERT statement. */
const ROWS_PER_INSERT = 100;
const REQUEST_COLUMNS = 12;

/** The columns of sql.insertRequests, in order, for one row starting at `o`. */
function bindRequest(p: unknown[], o: number, r: RequestRecord, storedAt: number): void {
  p[o] = r.id;
  p[o + 1] = r.tenant;
  p[o + 2] = r.idempotencyKey;
  p[o + 3] = r.receivedAt;
  p[o + 4] = storedAt;
  p[o + 5] = r.node;
  p[o + 6] = r.callbackUrl;
  p[o + 7] = r.lane;
  p[o + 8] = r.notBefore;
  p[o + 9] = r.payload;
  p[o + 10] = r.metadata;
  // Delayed requests wait as 'scheduled', out of the claims' way (cancels.ts makes them pending when due).
  p[o + 11] = r.notBefore !== null && r.notBefore > storedAt ? 'scheduled' : 'pending';
}

interface Row {
  id: string;
  tenant: string;
  idempotency_key: string | null;
  received_at: number;
  stored_at: number;
  node_id: string;
  callback_url: string;
  lane: string | null;
  not_before: number | null;
  payload: string;
  metadata: string | null;
  status: StoredRequest['status'];
  attempts: number;
  result: string | null;
  completed_at: number | null;
}

/** The engine and the transaction wrapper the thread runs batches in (nested calls become savepoints). */
export interface SqliteEngine {
  store: SyncStore;
  transaction<T>(fn: () => T): T;
}

export function openSqliteEngine(path: string): SqliteEngine {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  // busy_timeout first: a second process opening the same file waits instead of failing.
  db.pragma('busy_timeout = 10000');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  const migrations = loadMigrations('sqlite');
  const latest = migrations.length;

  const currentVersion = (): number =>
    db.prepare(sql.hasMigrationsTable).get() ? (db.prepare(sql.currentVersion).get() as { v: number }).v : 0;

  // Positional parameters: binding by name costs an object per row and a lookup per field.
  // Rows go ROWS_PER_INSERT to a statement (83k rows/s against 68k one row per statement,
  // docs/benchmarks.md); the rest of a chunk one by one.
  const cancels = sqliteCancels(db);
  const books = sqliteBooks(db);
  let insertOne: Database.Statement | null = null;
  let insertMany: Database.Statement | null = null;
  const params = new Array<unknown>(ROWS_PER_INSERT * REQUEST_COLUMNS);
  const insertRows = (rows: RequestRecord[], storedAt: number): number => {
    insertOne ??= db.prepare(sql.insertRequests(1));
    insertMany ??= db.prepare(sql.insertRequests(ROWS_PER_INSERT));
    let n = 0;
    let i = 0;
    for (; i + ROWS_PER_INSERT <= rows.length; i += ROWS_PER_INSERT) {
      for (let k = 0; k < ROWS_PER_INSERT; k++) bindRequest(params, k * REQUEST_COLUMNS, rows[i + k]!, storedAt);
      n += insertMany.run(params).changes;
    }
    const one = new Array<unknown>(REQUEST_COLUMNS);
    for (; i < rows.length; i++) {
      bindRequest(one, 0, rows[i]!, storedAt);
      n += insertOne.run(one).changes;
    }
    cancels.honourTombstones(rows);
    books.countInserted(n);
    return n;
  };

  const store: SyncStore = {
    ...sqliteWork(db),
    cancelRequest: cancels.cancelRequest,
    applyCancels: cancels.applyCancels,
    releaseDueRequests: cancels.releaseDueRequests,
    recordDrainedSegment: books.recordDrainedSegment,
    books: books.books,
    backlog: books.backlog,
    booksCheckpoints: books.booksCheckpoints,
    foldSegments: books.foldSegments,
    compactCounts: () => 0, // one counter row: nothing to fold
    migrate(opts = {}) {
      // BEGIN EXCLUSIVE: a second migrator waits (busy_timeout) and then sees the work done.
      const applied: number[] = [];
      db.exec('BEGIN EXCLUSIVE');
      try {
        db.exec(sql.createMigrationsTable);
        const from = currentVersion();
        if (from > latest) throw Errors.schemaUnsupported(`database schema v${from} is newer than this build knows (v${latest}); upgrade intake`);
        for (const m of migrations.slice(from)) {
          if (!opts.dryRun) {
            db.exec(m.sql);
            db.prepare(sql.recordMigration).run(m.version, m.name, new Date().toISOString());
          }
          applied.push(m.version);
        }
        db.exec(opts.dryRun ? 'ROLLBACK' : 'COMMIT');
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
      return applied;
    },
    schema(): SchemaState {
      return { current: currentVersion(), latest, minSupported: MIN_SCHEMA };
    },
    insertRequests(records) {
      return insertRows(records, Date.now());
    },
    getRequest(id) {
      const r = db.prepare(sql.getRequest).get(id) as Row | undefined;
      if (!r) return null;
      return {
        id: r.id,
        tenant: r.tenant,
        idempotencyKey: r.idempotency_key,
        receivedAt: r.received_at,
        storedAt: r.stored_at,
        node: r.node_id,
        callbackUrl: r.callback_url,
        lane: r.lane,
        notBefore: r.not_before,
        payload: r.payload,
        metadata: r.metadata,
        status: r.status,
        attempts: r.attempts,
        result: r.result,
        completedAt: r.completed_at,
      };
    },
    countRequests() {
      return (db.prepare(sql.countRequests).get() as { n: number }).n;
    },
    close() {
      if (db.open) db.close();
    },
  };
  return { store, transaction: (fn) => db.transaction(fn)() };
}

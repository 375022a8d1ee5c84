// PostgreSQL engine (pg with a pool): the store a cluster shares. Drains insert whole segments
// in one transaction (COPY into a staging table, then insert-if-absent on the id: copy.ts).
import pg from 'pg';
import { Errors } from '../../errors.js';
import type { RequestRecord } from '../../spool/records.js';
import { loadMigrations, MIN_SCHEMA } from '../migrations.js';
import { postgresBooks } from './books.js';
import type { SchemaState, Store, StoredRequest } from '../store.js';
import { MIGRATION_LOCK_KEY, sql } from './sql.js';
import { insertByCopy } from './copy.js';
import { postgresWork } from './work.js';
import { postgresCancels } from './cancels.js';

/** A node analyzes `requests` itself after inserting this many rows, at most every ANALYZE_EVERY_MS. */
const ANALYZE_AFTER_ROWS = 10_000;
const ANALYZE_EVERY_MS = 30_000;

/** SQLSTATEs worth one more try of the whole transaction: deadlock_detected, serialization_failure. */
const RETRYABLE = new Set(['40P01', '40001']);

interface Row {
  id: string;
  tenant: string;
  idempotency_key: string | null;
  received_ms: number;
  stored_ms: number;
  node_id: string;
  callback_url: string;
  lane: string | null;
  not_before_ms: number | null;
  payload: string;
  metadata: string | null;
  status: StoredRequest['status'];
  attempts: number;
  result: string | null;
  completed_ms: number | null;
}

export function openPostgresStore(url: string, opts: { poolSize?: number; onError?: (err: Error) => void } = {}): Store {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize ?? 8,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    // A statement that hangs (server gone, network cut) must fail so the drainer can back off.
    query_timeout: 60_000,
    application_name: 'intake',
  });
  // An idle client losing its connection (database restart) is reported here; without a
  // listener it would crash the process. The next query gets a fresh connection.
  pool.on('error', (err) => opts.onError?.(err));
  // A checked-out client has no listener of the pool's: if the server goes away between two
  // queries of a transaction (a restart, `pg_ctl stop -m immediate`) its 'error' event would
  // crash the process. This one stays for the client's life; the failed query rejects as usual.
  pool.on('connect', (client) => client.on('error', (err) => opts.onError?.(err)));
  const migrations = loadMigrations('postgres');
  const latest = migrations.length;

  async function currentVersion(c: pg.ClientBase | pg.Pool): Promise<number> {
    const present = (await c.query<{ present: boolean }>(sql.hasMigrationsTable)).rows[0]?.present;
    if (!present) return 0;
    return (await c.query<{ v: number }>(sql.currentVersion)).rows[0]?.v ?? 0;
  }

  /** BEGIN … COMMIT on one pooled client; a client whose transaction failed is not reused. */
  async function inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      client.release();
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(err as Error);
      throw err;
    }
  }

  // Claims walk the claim index only if the planner knows the table is big. Right after a large
  // drain into a table whose statistics are stale (a new cluster, the backlog of a rolling
  // upgrade), it plans a sort of every pending row instead: measured 620 ms for a claim of one
  // with 60k pending rows, 6 ms after ANALYZE. Autovacuum gets there within minutes; a node
  // that has just inserted many rows analyzes the table itself (a sample: tens of ms).
  let grownSinceAnalyze = 0;
  let analyzedAt = -Infinity;
  let analyzing = false;
  const analyzeIfGrown = (inserted: number) => {
    grownSinceAnalyze += inserted;
    if (analyzing || grownSinceAnalyze < ANALYZE_AFTER_ROWS || performance.now() - analyzedAt < ANALYZE_EVERY_MS) return;
    analyzing = true;
    grownSinceAnalyze = 0;
    analyzedAt = performance.now();
    pool
      .query('ANALYZE requests')
      .catch((err: Error) => opts.onError?.(err))
      .finally(() => {
        analyzing = false;
      });
  };

  return {
    engine: 'postgres',
    ...postgresWork(pool),
    ...postgresCancels(pool, inTransaction),
    ...postgresBooks(pool),
    async migrate(o = {}) {
      const client = await pool.connect();
      const applied: number[] = [];
      try {
        // A second `intake migrate` waits here, then finds nothing left to do.
        await client.query(sql.lockMigrations, [MIGRATION_LOCK_KEY]);
        try {
          await client.query(sql.createMigrationsTable);
          const from = await currentVersion(client);
          if (from > latest) throw Errors.schemaUnsupported(`database schema v${from} is newer than this build knows (v${latest}); upgrade intake`);
          for (const m of migrations.slice(from)) {
            applied.push(m.version);
            if (o.dryRun) continue;
            await client.query('BEGIN');
            try {
              await client.query(m.sql);
              await client.query(sql.recordMigration, [m.version, m.name]);
              await client.query('COMMIT');
            } catch (err) {
              await client.query('ROLLBACK').catch(() => undefined);
              throw err;
            }
          }
        } finally {
          await client.query(sql.unlockMigrations, [MIGRATION_LOCK_KEY]).catch(() => undefined);
        }
      } finally {
        client.release();
      }
      return applied;
    },
    async schema(): Promise<SchemaState> {
      return { current: await currentVersion(pool), latest, minSupported: MIN_SCHEMA };
    },
    async insertRequests(records: RequestRecord[]) {
      if (records.length === 0) return 0;
      for (let attempt = 1; ; attempt++) {
        try {
          const n = await inTransaction((client) => insertByCopy(client, records));
          analyzeIfGrown(n);
          return n;
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (attempt >= 3 || !code || !RETRYABLE.has(code)) throw err;
        }
      }
    },
    async getRequest(id) {
      const r = (await pool.query<Row>(sql.getRequest, [id])).rows[0];
      if (!r) return null;
      return {
        id: r.id,
        tenant: r.tenant,
        idempotencyKey: r.idempotency_key,
        receivedAt: Math.round(r.received_ms),
        storedAt: Math.round(r.stored_ms),
        node: r.node_id,
        callbackUrl: r.callback_url,
        lane: r.lane,
        notBefore: r.not_before_ms === null ? null : Math.round(r.not_before_ms),
        payload: r.payload,
        metadata: r.metadata,
        status: r.status,
        attempts: r.attempts,
        result: r.result,
        completedAt: r.completed_ms === null ? null : Math.round(r.completed_ms),
      };
    },
    async countRequests() {
      return (await pool.query<{ n: number }>(sql.countRequests)).rows[0]?.n ?? 0;
    },
    async close() {
      await pool.end();
    },
  };
}

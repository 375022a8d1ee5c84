// Poison records: intact, valid records that the database itself refuses. The test databases
// refuse them for real (a trigger's RAISE(ABORT) on SQLite; a CHECK constraint (SQLSTATE 23514)
// and a trigger raising 22023 on PostgreSQL). The real Drainer, with its decode worker, over the
// real store must store every other record of the segment and of the segments after it, put
// each refused record's bytes in quarantine/ as db-refused, and remove the segment files.
// A segment the database fails for another reason waits for its own retry, loses nothing, and
// does not hold up the segments after it.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import pino from 'pino';
import { Drainer } from '../../src/drain/drainer.js';
import { createMetrics } from '../../src/metrics.js';
import { listAllSegments } from '../../src/spool/layout.js';
import type { RequestRecord } from '../../src/spool/records.js';
import { isDataError } from '../../src/store/errors.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { waitFor } from '../helpers/http.js';
import { postgresForTests } from '../helpers/postgres.js';
import { dropSegment, quarantinedOf, quarantinedRange, requestFrame, testRequest, type Dropped } from '../helpers/segments.js';
import { tempDir } from '../helpers/tmp.js';

const WRITER = 'writer-poison';
const tmp = tempDir('intake-poison-');
after(() => tmp.cleanup());
const postgres = postgresForTests();

async function sqliteExec(url: string, sql: string): Promise<void> {
  const db = new Database(url.slice('sqlite:'.length));
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

async function pgExec(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

interface Engine {
  name: 'sqlite' | 'postgres';
  fresh(): Promise<string>;
  exec(url: string, sql: string): Promise<void>;
  /** SQL that makes the database refuse payloads holding POISON or TOXIC. */
  refuse: string;
  /** The database's code for a refused record, by marker. */
  codes: { POISON: string; TOXIC: string };
}

let dbs = 0;
const engines: Engine[] = [
  {
    name: 'sqlite',
    fresh: async () => `sqlite:${join(tmp.path, `poison-${++dbs}.db`)}`,
    exec: sqliteExec,
    refuse: `CREATE TRIGGER refuse_poison BEFORE INSERT ON requests
               WHEN NEW.payload LIKE '%POISON%' OR NEW.payload LIKE '%TOXIC%'
             BEGIN SELECT RAISE(ABORT, 'payload refused by the test trigger'); END;`,
    codes: { POISON: 'SQLITE_CONSTRAINT_TRIGGER', TOXIC: 'SQLITE_CONSTRAINT_TRIGGER' },
  },
  {
    name: 'postgres',
    fresh: () => postgres.server.createDatabase(),
    exec: pgExec,
    refuse: `ALTER TABLE requests ADD CONSTRAINT no_poison CHECK (payload::text NOT LIKE '%POISON%');
             CREATE FUNCTION refuse_toxic() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.payload::text LIKE '%TOXIC%' THEN
                 RAISE EXCEPTION 'toxic payload refused by the test trigger' USING ERRCODE = '22023';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_toxic BEFORE INSERT ON requests FOR EACH ROW EXECUTE FUNCTION refuse_toxic();`,
    codes: { POISON: '23514', TOXIC: '22023' },
  },
];

/** A migrated database that runs `sql` (the test's guard) from now on. */
async function prepare(engine: Engine, url: string, sql: string): Promise<void> {
  const store = await openStore(url);
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  await engine.exec(url, sql);
}

/** A real Drainer over a real store, started, its log lines kept for the assertions. */
async function drainerOn(engine: Engine, url: string, spool: string) {
  const store: Store = await openStore(url);
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  const metrics = createMetrics();
  const drainer = new Drainer({
    root: spool,
    node: `drainer-${engine.name}`,
    store,
    log,
    metrics,
    scanIntervalMs: 50,
    lockStaleMs: 10_000,
    archive: false,
    concurrency: engine.name === 'postgres' ? 2 : 1,
  });
  await drainer.start();
  return {
    store,
    drainer,
    metrics,
    logged: (msg: string) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg),
    async close() {
      await drainer.close();
      await store.close();
    },
  };
}

/** drainAll() that fails the test instead of waiting for ever on a segment that never drains. */
function drainWithin(drainer: Drainer, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`drainAll did not finish within ${ms} ms`)), ms)));
  return Promise.race([drainer.drainAll(), late]).finally(() => clearTimeout(timer));
}

for (const engine of engines) {
  describe(`poison records: ${engine.name}`, () => {
    test('each record the database refuses is quarantined as db-refused; every other record is stored; the files are removed', async () => {
      const url = await engine.fresh();
      const spool = join(tmp.path, `spool-${engine.name}`);
      const dir = join(spool, 'nodes', WRITER);
      mkdirSync(dir, { recursive: true });
      await prepare(engine, url, engine.refuse);

      let i = 0;
      const good = (): RequestRecord => testRequest(i++, WRITER);
      const bad = (marker: 'POISON' | 'TOXIC'): RequestRecord => testRequest(i++, WRITER, { n: i, text: `a ${marker} payload` });
      const goods: RequestRecord[] = [];
      const poisons: { r: RequestRecord; f: Dropped; at: number; marker: 'POISON' | 'TOXIC' }[] = [];
      /** A segment of records in this order; poison ones are noted with their offsets. */
      const segment = (recs: { r: RequestRecord; marker?: 'POISON' | 'TOXIC' }[]): Dropped => {
        const f = dropSegment(dir, WRITER, recs.map(({ r }) => requestFrame(r)));
        recs.forEach(({ r, marker }, k) => (marker ? poisons.push({ r, f, at: f.offsets[k]!, marker }) : goods.push(r)));
        return f;
      };
      const g = () => ({ r: good() });
      const p = (marker: 'POISON' | 'TOXIC') => ({ r: bad(marker), marker });
      const files = [
        // Poison in the middle of a segment, two kinds, not next to each other.
        segment([g(), g(), g(), p('POISON'), g(), g(), g(), g(), p('TOXIC'), g(), g(), g()]),
        // A segment that is nothing but a refused record, and one with two refused neighbours at its end.
        segment([p('TOXIC')]),
        segment([g(), g(), p('POISON'), p('POISON')]),
        // Good segments after them.
        segment([g(), g(), g(), g(), g()]),
        segment(Array.from({ length: 300 }, g)),
      ];

      const d = await drainerOn(engine, url, spool);
      try {
        await drainWithin(d.drainer, 30_000);

        assert.deepEqual(await listAllSegments(spool), [], 'every segment file is gone');
        for (const r of goods) {
          const row = await d.store.getRequest(r.id);
          assert.ok(row, `good record ${r.id} stored`);
          assert.deepEqual(JSON.parse(row.payload), JSON.parse(r.payload));
        }
        assert.equal(await d.store.countRequests(), goods.length, 'every good record stored, and nothing else');
        for (const { r, f, at, marker } of poisons) {
          assert.equal(await d.store.getRequest(r.id), null, `refused record ${r.id} not stored`);
          const report = quarantinedRange(spool, f, at, requestFrame(r).length);
          assert.equal(report.reason, 'db-refused');
          assert.equal(report.dbCode, engine.codes[marker]);
          assert.match(report.detail ?? '', /refused by the test trigger|no_poison/, 'the database message is in the report');
          assert.equal(report.quarantinedBy, `drainer-${engine.name}`);
        }
        const perFile = files.map((f) => quarantinedOf(spool, f).length / 2);
        assert.deepEqual(perFile, [2, 1, 2, 0, 0], 'nothing else quarantined');

        const refused = (await d.metrics.quarantined.get()).values.find((v) => v.labels.reason === 'db-refused');
        assert.equal(refused?.value, poisons.length, 'intake_quarantine_total{reason="db-refused"}');
        const lines = d.logged('quarantined a record the database refused');
        assert.deepEqual(lines.map((l) => l.id).sort(), poisons.map(({ r }) => r.id).sort(), 'one error line per refused record, with its id');
        assert.ok(lines.every((l) => l.code === 'INTAKE_RECORD_REFUSED' && l.level === 50));
        assert.deepEqual(d.logged('drain failed; backing off and retrying'), [], 'a refused record is not an outage');
      } finally {
        await d.close();
      }
    });
  });
}

describe('a segment the database fails for a reason that is not its data (postgres)', () => {
  test('it waits for its own retry, the segments after it drain, and it drains whole once the database takes it', async () => {
    const engine = engines.find((e) => e.name === 'postgres')!;
    const url = await engine.fresh();
    const spool = join(tmp.path, 'spool-stall');
    const dir = join(spool, 'nodes', WRITER);
    mkdirSync(dir, { recursive: true });
    // 57014 (query_canceled): what a statement timeout or an operator's cancel gives; not the data's fault.
    await prepare(
      engine,
      url,
      `CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.payload::text LIKE '%STALL%' THEN RAISE EXCEPTION 'canceling statement (test)' USING ERRCODE = '57014'; END IF;
         RETURN NEW;
       END $$;
       CREATE TRIGGER stall BEFORE INSERT ON requests FOR EACH ROW EXECUTE FUNCTION stall();`,
    );
    const stuckRecs = [testRequest(0, WRITER), testRequest(1, WRITER, { text: 'STALL' }), testRequest(2, WRITER)];
    const stuck = dropSegment(dir, WRITER, stuckRecs.map(requestFrame));
    const laterRecs = Array.from({ length: 6 }, (_, k) => testRequest(10 + k, WRITER));
    const later = [dropSegment(dir, WRITER, laterRecs.slice(0, 3).map(requestFrame)), dropSegment(dir, WRITER, laterRecs.slice(3).map(requestFrame))];

    const d = await drainerOn(engine, url, spool);
    try {
      await waitFor('the segments after the failing one drained', async () => (await listAllSegments(spool)).map((f) => f.segment).join() === stuck.segment, 20_000);
      for (const r of laterRecs) assert.ok(await d.store.getRequest(r.id), `${r.id} of a later segment stored`);
      for (const r of stuckRecs) assert.equal(await d.store.getRequest(r.id), null, 'the failing segment is not half stored');
      // Retried by itself (its own backoff), still failing, never quarantined or lost.
      const attempts = async () => (await d.metrics.drainErrors.get()).values[0]?.value ?? 0;
      await waitFor('a second failed attempt of the segment', async () => (await attempts()) >= 2, 10_000);
      assert.deepEqual(quarantinedOf(spool, stuck), [], 'nothing of it quarantined: the database, not the data, failed it');
      const warn = d.logged('segment drain failed; retrying it later')[0]!;
      assert.equal(warn.segment, stuck.segment);
      assert.equal((warn.err as { code?: string }).code, '57014');
      assert.deepEqual(d.logged('drain failed; backing off and retrying'), [], 'one failing segment does not back the drainer off');

      await engine.exec(url, 'DROP TRIGGER stall ON requests');
      await waitFor('the failing segment drained once the database takes it', async () => (await listAllSegments(spool)).length === 0, 20_000);
      for (const r of stuckRecs) assert.ok(await d.store.getRequest(r.id), `${r.id} stored`);
      assert.equal(await d.store.countRequests(), stuckRecs.length + laterRecs.length);
    } finally {
      await d.close();
    }
  });
});

describe('isDataError on real errors of both engines', () => {
  test('a refused value is a data error; a refused connection or a busy database is not', async () => {
    const url = `sqlite:${join(tmp.path, 'classify.db')}`;
    const store = await openStore(url);
    await store.migrate();
    await sqliteExec(url, engines[0]!.refuse);
    await assert.rejects(store.insertRequests([testRequest(0, WRITER, 'POISON')]), (err) => isDataError(err));
    // Another connection holds the write lock and this one does not wait: SQLITE_BUSY.
    const holder = new Database(url.slice('sqlite:'.length));
    const other = new Database(url.slice('sqlite:'.length));
    try {
      other.pragma('busy_timeout = 0');
      holder.exec('BEGIN EXCLUSIVE');
      assert.throws(
        () => other.prepare('INSERT INTO requests (id, tenant, received_at, stored_at, node_id, callback_url, payload) VALUES (?, ?, 0, 0, ?, ?, ?)').run('x', 't', 'n', 'u', '{}'),
        (err: { code?: string }) => err.code === 'SQLITE_BUSY' && !isDataError(err),
      );
      holder.exec('ROLLBACK');
    } finally {
      holder.close();
      other.close();
      await store.close();
    }

    const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${postgres.server.port}/postgres` });
    await c.connect();
    try {
      await assert.rejects(c.query(`SELECT '{' :: jsonb`), (err: { code?: string }) => err.code === '22P02' && isDataError(err));
      await assert.rejects(c.query(`SELECT 1/0`), (err: { code?: string }) => err.code === '22012' && isDataError(err));
      await assert.rejects(c.query(`SELECT * FROM no_such_table`), (err: { code?: string }) => err.code === '42P01' && !isDataError(err));
    } finally {
      await c.end();
    }
    const closed = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:1/postgres', connectionTimeoutMillis: 2000 });
    await assert.rejects(closed.connect(), (err: { code?: string }) => err.code === 'ECONNREFUSED' && !isDataError(err));
  });
});

// Versioned migrations on both engines, through the real CLI where an operator would use it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { loadMigrations, MIN_SCHEMA } from '../../src/store/migrations.js';
import { openStore } from '../../src/store/open.js';
import { runCli, startDaemon } from '../helpers/daemon.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir();
let pgServer: PgServer;
let seq = 0;

before(async () => {
  pgServer = await startPostgres();
});
after(async () => {
  await pgServer?.close();
  tmp.cleanup();
});

/** Raw SQL access to a database, to set up states the CLI would never produce. */
async function exec(url: string, statements: string[]): Promise<unknown[][]> {
  const results: unknown[][] = [];
  if (url.startsWith('sqlite:')) {
    const db = new Database(url.slice('sqlite:'.length));
    try {
      for (const s of statements) {
        if (/^\s*select/i.test(s)) results.push(db.prepare(s).all());
        else db.exec(s);
      }
    } finally {
      db.close();
    }
  } else {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      for (const s of statements) results.push((await c.query(s)).rows);
    } finally {
      await c.end();
    }
  }
  return results;
}

const engines = [
  { name: 'sqlite' as const, fresh: async () => `sqlite:${join(tmp.path, `m${++seq}.db`)}` },
  { name: 'postgres' as const, fresh: () => pgServer.createDatabase() },
];

for (const engine of engines) {
  describe(`migrations: ${engine.name}`, () => {
    test('intake migrate takes an empty database to the newest version; db version reports it', async () => {
      const url = await engine.fresh();
      const latest = loadMigrations(engine.name).length;
      const dry = await runCli(['migrate', '--db', url, '--dry-run', '--json']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.equal(JSON.parse(dry.stdout).current, 0, 'a dry run changes nothing');
      const r = await runCli(['migrate', '--db', url]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`schema is v${latest}`));
      const v = await runCli(['db', 'version', '--db', url, '--json']);
      assert.equal(v.code, 0, v.stderr);
      assert.deepEqual(JSON.parse(v.stdout), { current: latest, latest, minSupported: MIN_SCHEMA });
      const again = await runCli(['migrate', '--db', url]);
      assert.equal(again.code, 0);
      assert.match(again.stdout, /up to date/);
    });

    test('from every older version, with data present, to the newest', async () => {
      const migrations = loadMigrations(engine.name);
      for (let from = 0; from < migrations.length; from++) {
        const url = await engine.fresh();
        // The state an older build's `intake migrate` left: its migrations and their records.
        const record = (v: number, name: string) =>
          engine.name === 'sqlite'
            ? `INSERT INTO schema_migrations VALUES (${v}, '${name}', 'test')`
            : `INSERT INTO schema_migrations (version, name) VALUES (${v}, '${name}')`;
        await exec(url, [
          engine.name === 'sqlite'
            ? 'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)'
            : 'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
          ...migrations.slice(0, from).flatMap((m) => [m.sql, record(m.version, m.name)]),
        ]);
        const id = uuidv7();
        if (from >= 1) {
          await exec(url, [
            engine.name === 'sqlite'
              ? `INSERT INTO requests (id, tenant, received_at, stored_at, node_id, callback_url, payload) VALUES ('${id}', 't', 1, 1, 'n', 'https://e.x', '{"a":1}')`
              : `INSERT INTO requests (id, tenant, received_at, stored_at, node_id, callback_url, payload) VALUES ('${id}', 't', now(), now(), 'n', 'https://e.x', '{"a":1}')`,
          ]);
        }
        const store = await openStore(url);
        try {
          assert.equal((await store.schema()).current, from);
          await store.migrate();
          assert.equal((await store.schema()).current, migrations.length);
          if (from >= 1) {
            const row = await store.getRequest(id);
            assert.ok(row, `row written at v${from} survives the migration`);
            assert.deepEqual(JSON.parse(row.payload), { a: 1 });
          }
        } finally {
          await store.close();
        }
      }
    });

    test('a newer schema than this build knows is refused by migrate and by save mode, not by receive mode', async () => {
      const url = await engine.fresh();
      assert.equal((await runCli(['migrate', '--db', url])).code, 0);
      await exec(url, [
        engine.name === 'sqlite'
          ? `INSERT INTO schema_migrations VALUES (99, 'from_the_future', 'test')`
          : `INSERT INTO schema_migrations (version, name) VALUES (99, 'from_the_future')`,
      ]);
      const m = await runCli(['migrate', '--db', url]);
      assert.notEqual(m.code, 0);
      assert.match(m.stderr, /newer than this build knows/);
      const spool = join(tmp.path, `spool-${++seq}`);
      await assert.rejects(startDaemon({ spool, db: url, mode: 'save' }), /newer than this build knows/);
      const recv = await startDaemon({ spool, db: url, mode: 'receive' });
      assert.equal(await recv.kill('SIGTERM'), 0);
    });

    test('two intake migrate at once: both succeed, each migration applied once', async () => {
      const url = await engine.fresh();
      const [a, b] = await Promise.all([runCli(['migrate', '--db', url]), runCli(['migrate', '--db', url])]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      const [rows] = await exec(url, ['SELECT version FROM schema_migrations ORDER BY version']);
      assert.deepEqual(
        (rows as { version: number }[]).map((r) => Number(r.version)),
        loadMigrations(engine.name).map((m) => m.version),
      );
    });
  });
}

describe('save mode on PostgreSQL', () => {
  test('refuses an unmigrated database and names the command to run', async () => {
    const url = await pgServer.createDatabase();
    await assert.rejects(startDaemon({ spool: join(tmp.path, `spool-${++seq}`), db: url, mode: 'save' }), /intake migrate/);
  });
});

// The crash test of the core, with PostgreSQL as the store: SIGKILL at random moments, every
// 202-acknowledged id in the database exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import pg from 'pg';
import { runCli } from '../helpers/daemon.js';
import { startPostgres } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { CRASH_ROUNDS, runCrashTest, type DbTarget, type KeyedRow } from './checker.js';

function postgresTarget(url: string): DbTarget {
  return {
    url,
    async readRows() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (await c.query<KeyedRow>('SELECT id::text AS id, idempotency_key FROM requests')).rows;
      } finally {
        await c.end();
      }
    },
  };
}

test(`SIGKILL at random moments, ${CRASH_ROUNDS} rounds: every 202 in PostgreSQL exactly once`, { timeout: 240_000 }, async (t) => {
  const tmp = tempDir('intake-crash-pg-');
  const server = await startPostgres();
  try {
    const url = await server.createDatabase();
    const m = await runCli(['migrate', '--db', url]);
    assert.equal(m.code, 0, m.stderr);
    await runCrashTest(t, postgresTarget(url), join(tmp.path, 'spool'));
  } finally {
    await server.close();
    tmp.cleanup();
  }
});

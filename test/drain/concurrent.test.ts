// Two drainer processes on one spool and one database (each engine): every record exactly once.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { listAllSegments } from '../../src/spool/layout.js';
import { runCli, startDaemon } from '../helpers/daemon.js';
import { post, waitFor } from '../helpers/http.js';
import { postgresForTests } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const postgres = postgresForTests();

async function rowIds(url: string): Promise<string[]> {
  if (url.startsWith('sqlite:')) {
    const db = new Database(url.slice(7), { readonly: true });
    try {
      return (db.prepare('SELECT id FROM requests').all() as { id: string }[]).map((r) => r.id);
    } finally {
      db.close();
    }
  }
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ id: string }>('SELECT id FROM requests')).rows.map((r) => r.id);
  } finally {
    await c.end();
  }
}

const engines = [
  { name: 'sqlite', fresh: async () => `sqlite:${join(tmp.path, 'shared.db')}` },
  { name: 'postgres', fresh: () => postgres.server.createDatabase() },
];

for (const engine of engines) {
  describe(`two drainers, one spool: ${engine.name}`, () => {
    test('every acknowledged record is stored exactly once, and the spool empties', async () => {
      const url = await engine.fresh();
      assert.equal((await runCli(['migrate', '--db', url])).code, 0);
      const spool = join(tmp.path, `spool-${engine.name}`);
      // Small segments and fast sealing: many segments for the two drainers to race on.
      const recvArgs = ['--seal-after-ms', '50', '--max-segment-bytes', '65536'];
      const receivers = await Promise.all([
        startDaemon({ spool, db: url, mode: 'receive', nodeId: 'recv-a', args: recvArgs }),
        startDaemon({ spool, db: url, mode: 'receive', nodeId: 'recv-b', args: recvArgs }),
      ]);
      const drainers = await Promise.all([
        startDaemon({ spool, db: url, mode: 'save', nodeId: 'drain-a', args: ['--scan-interval-ms', '20'] }),
        startDaemon({ spool, db: url, mode: 'save', nodeId: 'drain-b', args: ['--scan-interval-ms', '20'] }),
      ]);
      try {
        const acked: string[] = [];
        let next = 0;
        const total = 3000;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (next < total) {
              const i = next++;
              const target = receivers[i % 2]!;
              const r = await post(`${target.url}/v1/requests`, { payload: { i, pad: 'x'.repeat(400) }, callback_url: 'https://example.com/h' });
              assert.equal(r.status, 202);
              acked.push(r.body.id as string);
            }
          }),
        );
        await waitFor('spool drained', async () => (await listAllSegments(spool)).length === 0 && (await rowIds(url)).length >= total, 60_000, 100);
        const ids = await rowIds(url);
        assert.equal(ids.length, total, 'one row per acknowledged request');
        assert.equal(new Set(ids).size, ids.length, 'no duplicate ids');
        const stored = new Set(ids);
        assert.deepEqual(acked.filter((id) => !stored.has(id)), [], 'no acknowledged id missing');
        // A drainer logs "segment drained" after the unlink the wait above saw (and logs asynchronously).
        const drained = () => drainers.map((d) => (d.output().match(/"segment drained"/g) ?? []).length);
        await waitFor('both drainers logged a drained segment', () => drained().every((n) => n > 0), 10_000).catch(() => undefined);
        assert.ok(drained().every((n) => n > 0), `both drainers took segments (${drained().join(', ')})`);
      } finally {
        await Promise.all([...receivers, ...drainers].map((d) => d.kill('SIGTERM')));
      }
    });
  });
}

// PostgreSQL stops (immediate: like a crash) in the middle of the load. Receive keeps answering
// 202 because it never touches the database; the drainer backs off and resumes by itself when
// the database returns; nothing acknowledged is lost or stored twice.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import pg from 'pg';
import { listAllSegments } from '../../src/spool/layout.js';
import { outputOnceLogged, runCli, startDaemon } from '../helpers/daemon.js';
import { post, sleep, waitFor } from '../helpers/http.js';
import { postgresForTests } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const postgres = postgresForTests();

async function keysInDb(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ k: string }>('SELECT idempotency_key AS k FROM requests')).rows.map((r) => r.k);
  } finally {
    await c.end();
  }
}

test('database outage under load: 202s continue, drain resumes by itself, nothing lost', async (t) => {
  const url = await postgres.server.createDatabase();
  assert.equal((await runCli(['migrate', '--db', url])).code, 0);
  const spool = join(tmp.path, 'spool');
  const node = await startDaemon({ spool, db: url, mode: 'both', args: ['--seal-after-ms', '100', '--scan-interval-ms', '100'] });
  try {
    const acked = new Set<string>();
    const refused: (number | string)[] = [];
    let ackedDuringOutage = 0;
    let outage = false;
    let stop = false;
    let seq = 0;
    const clients = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const key = `k-${seq++}`;
        let r;
        try {
          r = await post(`${node.url}/v1/requests`, { payload: { key }, callback_url: 'https://example.com/h' }, { 'idempotency-key': key });
        } catch (err) {
          refused.push(`${key}: ${(err as Error).message}`);
          await sleep(50);
          continue;
        }
        if (r.status === 202) {
          acked.add(key);
          if (outage) ackedDuringOutage++;
        } else refused.push(r.status);
        await sleep(2);
      }
    });
    await sleep(1500);
    outage = true;
    await postgres.server.stopImmediate();
    await sleep(4000);
    outage = false;
    await postgres.server.restart();
    await sleep(1500);
    stop = true;
    await Promise.all(clients);

    await waitFor('backlog drained after the outage', async () => (await listAllSegments(spool)).length === 0, 60_000, 200);
    const keys = await keysInDb(url);
    const stored = new Set(keys);
    const lost = [...acked].filter((k) => !stored.has(k));
    const unexpected = keys.filter((k) => !k.startsWith('k-'));
    t.diagnostic(`acked ${acked.size}, during outage ${ackedDuringOutage}, stored ${keys.length}, refused ${refused.length}`);
    assert.deepEqual(refused, [], `no request refused during the outage; node output:\n${node.output().slice(-3000)}`);
    assert.ok(ackedDuringOutage > 50, `requests kept being acknowledged during the outage (${ackedDuringOutage})`);
    assert.deepEqual(lost, [], 'no acknowledged request lost');
    assert.equal(keys.length, stored.size, 'no duplicates');
    assert.deepEqual(unexpected, []);
    assert.match(node.output(), /drain failed; backing off/, 'the drainer noticed the outage');
    // Logged after the first drain that follows the outage, which may end after the rows are seen.
    assert.match(await outputOnceLogged(node, /drain recovered/), /drain recovered/, 'and recovered by itself');
  } finally {
    await node.kill('SIGTERM');
  }
});

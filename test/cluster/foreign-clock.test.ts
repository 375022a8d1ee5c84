// Foreign clocks: two receive nodes whose clocks are an hour behind and an hour ahead (libfaketime)
// share the spool with a leader in mode both whose clock is right. The leader would judge a node
// lock by its mtime, set with the holder's clock, if it compared clocks; it must judge by progress
// instead. Clients send to the skewed nodes for many stale periods: no node is taken over or
// stops, no client sees a refusal or a connection error, and every acknowledged id is stored once.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { assertNoLossNoDuplicate, checkDelivery, formatReport } from '../chaos/checker.js';
import { faketimeEnv } from '../helpers/faketime.js';
import { sleep } from '../helpers/http.js';
import { LoadClient, startCluster, type Cluster } from './harness.js';

/** Above NODE_FLAGS' 2000: a node refreshes its lock every second, and a loaded machine may stall a process for a second or two (a real stall, judged rightly, is not what this test is about). */
const LOCK_STALE_MS = 3000;
const LOAD_MS = 6 * LOCK_STALE_MS;
const HOUR = 3_600_000;

let cluster: Cluster | null = null;
const clients: LoadClient[] = [];
after(async () => {
  for (const c of clients) await c.stop(0).catch(() => undefined);
  await cluster?.close();
});

test('nodes an hour behind and an hour ahead are never taken over; their clients see no refusal', { timeout: 180_000 }, async (t) => {
  // Fails loudly, naming the package, when libfaketime is missing or does not move Node's clock.
  const skews = { behind: { env: faketimeEnv('-1h', -HOUR), ms: -HOUR }, ahead: { env: faketimeEnv('+1h', HOUR), ms: HOUR } };
  cluster = await startCluster({
    nodes: ['lead', 'behind', 'ahead'],
    prefix: 'intake-clock-',
    modes: { lead: 'both', behind: 'receive', ahead: 'receive' },
    nodeEnv: { behind: skews.behind.env, ahead: skews.ahead.env },
    nodeFlags: Object.fromEntries(['lead', 'behind', 'ahead'].map((id) => [id, ['--lock-stale-ms', String(LOCK_STALE_MS)]])),
  });
  const c = cluster;
  // Started first: lead takes the lowest registration number and leads.
  for (const id of ['lead', 'behind', 'ahead']) await c.startNode(id);
  await c.waitAllUp();

  // The skew is real where it matters: each node's lock carries its own clock's time.
  for (const [id, s] of Object.entries(skews)) {
    const lockAgeMs = Date.now() - statSync(join(c.spool, 'nodes', `${id}.lock`)).mtimeMs;
    assert.ok(Math.abs(lockAgeMs + s.ms) < 60_000, `${id}'s node lock mtime is ${lockAgeMs} ms old by this clock, not ${-s.ms}`);
  }

  for (const id of ['behind', 'ahead']) clients.push(new LoadClient({ url: `http://127.0.0.1:${c.nodes.get(id)!.port}`, rate: 60, concurrency: 16 }));
  for (const cl of clients) cl.start();
  await sleep(LOAD_MS);
  for (const cl of clients) await cl.stop(30_000);

  const drained = await c.waitDrained(60_000);
  const acked = new Map(clients.flatMap((cl) => [...cl.acked]));
  const sent = new Set(clients.flatMap((cl) => [...cl.sent]));
  const report = checkDelivery({ acked, sent, rows: drained.rows });
  const leadLog = c.logTail('lead', 10_000_000);
  const selfExits = [...c.nodes.values()].flatMap((n) => n.selfExits);
  const answers = clients.map((cl, i) => `${['behind', 'ahead'][i]}: {${cl.summary()}}`).join(' ');
  const figures = {
    loadSeconds: LOAD_MS / 1000,
    stalePeriods: LOAD_MS / LOCK_STALE_MS,
    sent: sent.size,
    acked: acked.size,
    refused: clients.reduce((n, cl) => n + cl.raw5xx, 0),
    connErrors: clients.reduce((n, cl) => n + cl.connErrors, 0),
    lost: report.lost.length,
    duplicated: report.duplicated.length,
    unexpected: report.unexpected.length,
    takeovers: (leadLog.match(/took over/g) ?? []).length,
    nodesStopped: selfExits.length,
  };
  t.diagnostic(`foreign clock figures: ${JSON.stringify(figures)}`);
  t.diagnostic(`answers: ${answers}; ${formatReport(report)}`);

  assert.deepEqual(selfExits, [], 'no node stopped by itself');
  assert.doesNotMatch(leadLog, /took over/, 'the leader took nothing over from a live node');
  for (const id of ['behind', 'ahead']) assert.doesNotMatch(c.logTail(id, 10_000_000), /node lock lost|taken over/, `${id} never lost its lock`);
  assert.equal(figures.refused, 0, `refusals seen by clients (${answers})`);
  assert.equal(figures.connErrors, 0, `connection errors seen by clients (${answers})`);
  assert.equal(report.acked, report.sent, 'every request sent was acknowledged');
  assert.deepEqual(drained.leftover, [], 'segments left in the spool after the final drain');
  assertNoLossNoDuplicate(report);
  for (const cl of clients) assert.deepEqual(cl.wrongAnswers, []);
});

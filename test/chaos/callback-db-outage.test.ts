// The database goes away under a save-only node whose callbacks are failing. The node has no
// spool writer, so while PostgreSQL is down the failed-callback retrier can record no outcome
// anywhere. It must still back off: a callback that gets through during the outage is not sent
// again, a callback that keeps failing gets no more attempts than the policy allows, and each
// webhook-id keeps one retry chain (one file in the failed-callback spool). A few more callbacks
// are held by the receiver on their first attempt until the database is down, then answered 200:
// the outbox dispatcher cannot record them, and must not send them again when their lease ends.
// Once PostgreSQL is back, every outcome reaches the database: delivered, or dead (one file in
// dead/), once.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import pg from 'pg';
import { listAll } from '../../src/callbacks/failed-spool.js';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { post, sleep, waitFor } from '../helpers/http.js';
import { postgresForTests } from '../helpers/postgres.js';
import { startReceiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/tmp.js';
import { submitAndStore, WORK_ARGS, WORK_ENV } from '../helpers/work.js';

const N = 16;
/** Callbacks whose first attempt the receiver holds until the database is down. */
const HELD = 4;
const MAX_ATTEMPTS = 5;
/** The first attempt's 503 asks for this much quiet, so every callback is parked, not yet retried, when the database stops. */
const FIRST_RETRY_AFTER_S = 5;
/** After the last expected attempt the outage goes on this long: a node that resends would be seen. */
const WATCH_MS = 3000;
/** Two files of one webhook-id for this long are two retry chains, not a move under way. */
const TWO_FILES_MS = 3000;

const tmp = tempDir('intake-cb-outage-');
const postgres = postgresForTests();
let node: Daemon | null = null;
after(async () => {
  await node?.kill('SIGKILL');
  tmp.cleanup();
});

interface Attempt {
  at: number;
  status: number;
}

test('database outage under a save-only node: failing callbacks back off, one retry chain per webhook-id, every outcome recorded once', { timeout: 180_000 }, async (t) => {
  const url = await postgres.server.createDatabase();
  assert.equal((await runCli(['migrate', '--db', url])).code, 0);
  const spool = join(tmp.path, 'spool');

  // The receiver: before the outage every attempt gets 503 with a Retry-After; during it, the
  // "good" half gets 200 and the rest keeps getting 503 until it is out of attempts. In the hold
  // phase, first attempts of callbacks it has not seen yet wait for the outage, then get 200.
  const attempts = new Map<string, Attempt[]>();
  const good = new Set<string>();
  const held: (() => void)[] = [];
  let phase: 'before' | 'hold' | 'outage' = 'before';
  const receiver = await startReceiver((req, res) => {
    const id = String(req.headers['webhook-id']);
    const hold = phase === 'hold' && !attempts.has(id);
    const status = hold || (phase === 'outage' && good.has(id)) ? 200 : 503;
    const list = attempts.get(id) ?? [];
    list.push({ at: Date.now(), status });
    attempts.set(id, list);
    const answer = () => res.writeHead(status, phase === 'before' ? { 'retry-after': String(FIRST_RETRY_AFTER_S) } : {}).end();
    if (hold) {
      good.add(id);
      held.push(answer);
    } else answer();
  });
  const env = { ...WORK_ENV, INTAKE_CALLBACK_BASE_MS: '200', INTAKE_CALLBACK_CAP_MS: '1000', INTAKE_CALLBACK_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    // The outbox lease is 4 × this + 5 s: over before the database is back, so an unrecorded send would be sent again.
    INTAKE_CALLBACK_TIMEOUT_MS: '4000' };
  node = await startDaemon({ spool, db: url, mode: 'both', args: WORK_ARGS, env });
  const d = node;
  await submitAndStore(d, `${receiver.url}/hook`, N + HELD);
  const claim = await post(`${d.url}/v1/work/claim`, { limit: N + HELD, lease_seconds: 300 });
  assert.equal(claim.status, 200, JSON.stringify(claim.body));
  const claimed = claim.body.items as { id: string; lease_token: string }[];
  assert.equal(claimed.length, N + HELD);
  const complete = async (items: typeof claimed) => {
    const done = await post(`${d.url}/v1/work/complete`, { items: items.map((it) => ({ id: it.id, lease_token: it.lease_token, result: { ok: true } })) });
    assert.equal(done.status, 200, JSON.stringify(done.body));
  };

  // Save only: no spool writer, the database is the only place an outcome can go.
  const m = await runCli(['mode', 'save', '--node', d.nodeId, '--wait', '--timeout', '30', '--spool', spool]);
  assert.equal(m.code, 0, m.stderr + m.stdout);
  await complete(claimed.slice(0, N));

  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const parked = await waitFor('every callback parked after its first attempt', async () => {
    const rows = await callbackRows(db);
    return rows.length === N && rows.every((r) => r.status === 'parked') ? rows : null;
  }, 30_000, 100).then((rows) => rows!);
  const firstIds = parked.map((r) => r.id).sort();
  for (const id of firstIds.slice(0, N / 2)) good.add(id);
  const bad = firstIds.filter((id) => !good.has(id));
  phase = 'hold';
  await complete(claimed.slice(N));
  await waitFor('the receiver holds the first attempts of the held callbacks', () => held.length === HELD, 30_000);
  const webhookIds = (await callbackRows(db)).map((r) => r.id).sort();
  await db.end();
  assert.equal(webhookIds.length, N + HELD);

  // The outage. The held attempts are answered 200 only now: the dispatcher cannot record them.
  await postgres.server.stopImmediate();
  const outageStart = Date.now();
  phase = 'outage';
  for (const answer of held) answer();
  const files = async () => [...(await listAll(spool, 'retry')), ...(await listAll(spool, 'dead'))];
  const twoChains = new Set<string>();
  /** "file file" of each webhook-id now in two files, with when that pair was first seen. */
  let pairsSince = new Map<string, { pair: string; since: number }>();
  const allSeen = () => [...good].every((id) => attempts.get(id)!.some((a) => a.status === 200)) && bad.every((id) => attempts.get(id)!.length >= MAX_ATTEMPTS);
  let seenAt = 0;
  while (Date.now() - outageStart < 60_000) {
    // Two files of one webhook-id are allowed for the moment of a move (new file written, old
    // one not yet removed), which a loaded machine may stretch; the same two files for seconds
    // are two retry chains.
    const byId = new Map<string, string[]>();
    for (const f of await files()) byId.set(f.id, [...(byId.get(f.id) ?? []), f.path]);
    const now = Date.now();
    const pairs = new Map<string, { pair: string; since: number }>();
    for (const [id, paths] of byId) {
      if (paths.length < 2) continue;
      const pair = paths.sort().join(' ');
      const before = pairsSince.get(id);
      const since = before?.pair === pair ? before.since : now;
      pairs.set(id, { pair, since });
      if (now - since >= TWO_FILES_MS) twoChains.add(`${id}: ${pair}`);
    }
    pairsSince = pairs;
    if (!seenAt && allSeen()) seenAt = Date.now();
    if (seenAt && Date.now() - seenAt >= WATCH_MS) break;
    await sleep(100);
  }
  const outageMs = Date.now() - outageStart;
  assert.ok(seenAt, `within a minute of outage, not every good callback got through or not every bad one ran out of attempts: ${JSON.stringify(Object.fromEntries([...attempts].map(([id, a]) => [id, a.map((x) => x.status)])))}`);
  const sentInOutage = (id: string) => attempts.get(id)!.filter((a) => a.at >= outageStart && a.at < outageStart + outageMs).length;
  await postgres.server.restart();

  // Back: every outcome reaches the database, and the spool holds just the dead, once each.
  const db2 = new pg.Client({ connectionString: url });
  await db2.connect();
  try {
    // Recorded first, then the file removed or moved: wait for both.
    const restarted = Date.now();
    const settled = async () => {
      const rows = await callbackRows(db2);
      const retry = await listAll(spool, 'retry');
      const dead = await listAll(spool, 'dead');
      const final = rows.every((r) => r.status === (good.has(r.id) ? 'delivered' : 'dead')) && retry.length === 0 && dead.length === bad.length;
      return { rows, retry, dead, final };
    };
    let end = await settled();
    while (!end.final && Date.now() - restarted < 60_000) {
      await sleep(200);
      end = await settled();
    }
    const { rows: final, retry: retryLeft, dead } = end;
    const perId = webhookIds.map((id) => attempts.get(id)!);
    const deliveries = [...good].map((id) => attempts.get(id)!.filter((a) => a.status === 200).length);
    const afterOk = [...good].map((id) => {
      const a = attempts.get(id)!;
      return a.length - 1 - a.findIndex((x) => x.status === 200);
    });
    const maxInOutage = Math.max(...webhookIds.map(sentInOutage));
    const attemptsMismatch = final.filter((r) => r.attempts !== attempts.get(r.id)!.length).map((r) => `${r.id}: db ${r.attempts}, received ${attempts.get(r.id)!.length}`);
    console.log(
      `callback db outage (save-only node): callbacks=${N + HELD} held-until-outage=${HELD} outage=${(outageMs / 1000).toFixed(1)}s sends-in-outage=${webhookIds.reduce((n, id) => n + sentInOutage(id), 0)} ` +
        `max-sends-per-id-in-outage=${maxInOutage} (policy: at most ${MAX_ATTEMPTS} in all) max-sends-per-id=${Math.max(...perId.map((a) => a.length))} ` +
        `delivered=${final.filter((r) => r.status === 'delivered').length} deliveries-per-id=${Math.min(...deliveries)}..${Math.max(...deliveries)} sends-after-delivery=${afterOk.reduce((a, b) => a + b, 0)} ` +
        `dead=${dead.length} retry-left=${retryLeft.length} two-chains=${twoChains.size} attempts-mismatch=${attemptsMismatch.length} settled-in=${((Date.now() - restarted) / 1000).toFixed(1)}s`,
    );
    assert.deepEqual(final.filter((r) => r.status !== (good.has(r.id) ? 'delivered' : 'dead')), [], 'every outcome recorded');
    assert.deepEqual([...twoChains], [], 'a webhook-id under two files of the failed-callback spool');
    for (const id of bad) assert.ok(attempts.get(id)!.length <= MAX_ATTEMPTS, `${id}: ${attempts.get(id)!.length} attempts, the policy allows ${MAX_ATTEMPTS}`);
    assert.deepEqual(deliveries, deliveries.map(() => 1), 'each good callback delivered exactly once');
    assert.deepEqual(afterOk, afterOk.map(() => 0), 'nothing sent again after a 200');
    assert.deepEqual(retryLeft.map((f) => f.id), [], 'nothing left waiting');
    assert.deepEqual(dead.map((f) => f.id).sort(), [...bad].sort(), 'each bad callback dead, in one file');
    assert.deepEqual(attemptsMismatch, [], 'the database counts the attempts the receiver saw');
  } finally {
    await db2.end();
    await receiver.close();
  }
});

async function callbackRows(c: pg.Client) {
  return (await c.query<{ id: string; request_id: string; status: string; attempts: number }>('SELECT id, request_id::text, status, attempts FROM callbacks')).rows;
}

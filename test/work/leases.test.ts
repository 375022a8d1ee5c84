// The processing API on a real daemon, for both engines: claim/complete, leases that expire
// (a dead worker loses nothing), release, extend, round-robin lanes, not_before, concurrent
// claimers (one node and two nodes sharing PostgreSQL), and the example worker as a real process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { repoRoot, runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, sleep, waitFor, type Answer } from '../helpers/http.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('intake-leases-');
let pgServer: PgServer | null = null;
let seq = 0;
const daemons: Daemon[] = [];

// Completing a request sends its callback: to this receiver on 127.0.0.1, never anywhere else.
let receiver: http.Server;
let hookUrl = '';
const received: string[] = [];

const ENV = {
  INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32',
  INTAKE_CALLBACK_POLL_MS: '100',
  INTAKE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
};
const ARGS = ['--seal-after-ms', '100', '--scan-interval-ms', '100', '--lock-stale-ms', '2000'];

interface Db {
  url: string;
  spool: string;
}

const engines: { name: string; fresh: () => Promise<Db> }[] = [
  {
    name: 'sqlite',
    fresh: async () => ({ url: `sqlite:${join(tmp.path, `w${++seq}.db`)}`, spool: join(tmp.path, `spool${seq}`) }),
  },
  {
    name: 'postgres',
    fresh: async () => {
      pgServer ??= await startPostgres();
      const url = await pgServer.createDatabase();
      const m = await runCli(['migrate', '--db', url]);
      assert.equal(m.code, 0, m.stderr);
      return { url, spool: join(tmp.path, `spool${++seq}`) };
    },
  },
];

async function node(db: Db, nodeId?: string): Promise<Daemon> {
  const d = await startDaemon({ spool: db.spool, db: db.url, args: ARGS, env: ENV, ...(nodeId ? { nodeId } : {}) });
  daemons.push(d);
  return d;
}

/** Submit requests and wait until each is in the database; returns their ids in order. */
async function submit(d: Daemon, n: number, extra: Record<string, unknown> = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await post(`${d.url}/v1/requests`, { payload: { i, tag: randomUUID() }, callback_url: hookUrl, metadata: { i }, ...extra });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    ids.push(r.body.id);
  }
  await stored(d, ids);
  return ids;
}

async function stored(d: Daemon, ids: string[]): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (i < ids.length) {
        const id = ids[i++]!;
        await waitFor(`request ${id} in the database`, async () => (await get(`${d.url}/v1/requests/${id}`)).status === 200, 20000, 50);
      }
    }),
  );
}

const claim = (d: Daemon, body: Record<string, unknown>): Promise<Answer> => post(`${d.url}/v1/work/claim`, body);
const act = (d: Daemon, id: string, what: 'complete' | 'release' | 'extend', body: Record<string, unknown>) => post(`${d.url}/v1/work/${id}/${what}`, body);

function assertConflict(a: Answer, what: string): void {
  assert.equal(a.status, 409, `${what}: ${JSON.stringify(a.body)}`);
  assert.equal(a.body.error.code, 'INTAKE_LEASE_CONFLICT', what);
}

before(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push(String(req.headers['webhook-id']));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});

after(async () => {
  await Promise.all(daemons.map((d) => d.kill('SIGKILL')));
  receiver?.closeAllConnections();
  await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
  await pgServer?.close();
  tmp.cleanup();
});

for (const engine of engines) {
  describe(`processing API: ${engine.name}`, () => {
    let d: Daemon;
    before(async () => {
      d = await node(await engine.fresh());
    });

    test('claim, complete: the result is stored and its callback is sent; a second completion is refused', async () => {
      const lane = `rt-${engine.name}`;
      const [id] = await submit(d, 1, { lane });
      const c = await claim(d, { lane, limit: 5, lease_seconds: 30 });
      assert.equal(c.status, 200, JSON.stringify(c.body));
      assert.equal(c.body.items.length, 1);
      const it = c.body.items[0];
      assert.equal(it.id, id);
      assert.match(it.lease_token, /^[0-9a-f-]{36}$/);
      assert.equal(it.attempts, 1);
      assert.equal(it.lane, lane);
      assert.equal(it.payload.i, 0);
      assert.deepEqual(it.metadata, { i: 0 });
      assert.ok(Date.parse(it.received_at) <= Date.now());
      const left = Date.parse(it.lease_expires_at) - Date.now();
      assert.ok(left > 25_000 && left <= 30_500, `lease_expires_at ${it.lease_expires_at} is not ~30 s ahead`);
      const g1 = await get(`${d.url}/v1/requests/${id}`);
      assert.equal(g1.body.status, 'claimed');

      const done = await act(d, id!, 'complete', { lease_token: it.lease_token, result: { answer: 42 } });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.deepEqual(done.body, { id, status: 'completed' });
      const g2 = await get(`${d.url}/v1/requests/${id}`);
      assert.equal(g2.body.status, 'completed');
      assert.deepEqual(g2.body.result, { answer: 42 });
      assert.equal(g2.body.callback.webhook_id, `msg_${id}`);

      const same = await act(d, id!, 'complete', { lease_token: it.lease_token, result: { answer: 42 } });
      assert.deepEqual([same.status, same.body], [200, { id, status: 'completed' }], 'the same completion again (a lost answer) is answered 200 again');
      assertConflict(await act(d, id!, 'complete', { lease_token: it.lease_token, result: { answer: 43 } }), 'second completion, same token, another result');
      assertConflict(await act(d, id!, 'complete', { lease_token: randomUUID(), result: { answer: 44 } }), 'completion with a made-up token');
      assertConflict(await act(d, id!, 'release', { lease_token: it.lease_token }), 'release after completion');
      assert.deepEqual((await get(`${d.url}/v1/requests/${id}`)).body.result, { answer: 42 }, 'the first result stands');
      // Bad input to the API: 400s and 404s, nothing changed.
      assert.equal((await act(d, id!, 'complete', { result: 1 })).status, 400);
      assert.equal((await act(d, id!, 'complete', { lease_token: it.lease_token })).status, 400);
      assert.equal((await claim(d, { limit: 0 })).status, 400);
      assert.equal((await claim(d, { lease_seconds: -1 })).status, 400);
      assert.equal((await act(d, '00000000-0000-7000-8000-000000000000', 'complete', { lease_token: randomUUID(), result: 1 })).status, 404);
      // The callback reaches the receiver.
      await waitFor('callback received', () => received.includes(`msg_${id}`), 15000);
      await waitFor('callback delivered', async () => (await get(`${d.url}/v1/requests/${id}`)).body.callback.status === 'delivered', 15000);
    });

    test('an id that is not a request id is 404 INTAKE_NOT_FOUND (never a 500) for complete, release, extend', async () => {
      const problems: string[] = [];
      for (const what of ['complete', 'release', 'extend'] as const) {
        for (const tok of [randomUUID(), 'not-a-uuid-token']) {
          const bad = await act(d, 'not-a-request-id', what, { lease_token: tok, result: 1, lease_seconds: 10 });
          if (bad.status !== 404 || bad.body?.error?.code !== 'INTAKE_NOT_FOUND') problems.push(`${what} (token ${tok.length === 36 ? 'a uuid' : tok}): ${bad.status} ${JSON.stringify(bad.body)}`);
        }
      }
      assert.deepEqual(problems, []);
    });

    test('a worker that dies mid-lease loses its claim to another after expiry; its late complete gets 409', async () => {
      const lane = `die-${engine.name}`;
      const [id] = await submit(d, 1, { lane });
      const a = await claim(d, { lane, limit: 1, lease_seconds: 3 });
      assert.equal(a.body.items.length, 1);
      const dead = a.body.items[0];
      // While the lease is valid nobody else gets it. Judged once answered: the node decided
      // before now, so while the lease was valid if now is (a stalled machine may answer later,
      // when a hand-over is correct).
      const early = await claim(d, { lane, limit: 1, lease_seconds: 30 });
      if (Date.now() < Date.parse(dead.lease_expires_at)) assert.equal(early.body.items.length, 0, 'claimed while another lease was valid');
      // Worker A "dies" (never completes). After the second, worker B gets the request.
      // (The deadline bounds the hand-over: an expired lease is claimable again within seconds.)
      const b = early.body.items.length > 0 ? early.body.items[0] : await waitFor('the expired claim to be claimable again', async () => {
        const r = await claim(d, { lane, limit: 1, lease_seconds: 30 });
        return r.body.items.length > 0 ? r.body.items[0] : null;
      }, 10000, 100);
      assert.equal(b.id, id);
      assert.notEqual(b.lease_token, dead.lease_token);
      assert.equal(b.attempts, 2);
      assert.ok(Date.now() >= Date.parse(dead.lease_expires_at), 'claimed again before the first lease expired');
      // The first worker wakes up: every action with its token is refused.
      assertConflict(await act(d, id!, 'complete', { lease_token: dead.lease_token, result: { by: 'A' } }), 'late complete');
      assertConflict(await act(d, id!, 'extend', { lease_token: dead.lease_token, lease_seconds: 30 }), 'late extend');
      assertConflict(await act(d, id!, 'release', { lease_token: dead.lease_token }), 'late release');
      const ok = await act(d, id!, 'complete', { lease_token: b.lease_token, result: { by: 'B' } });
      assert.equal(ok.status, 200);
      const g = await get(`${d.url}/v1/requests/${id}`);
      assert.deepEqual(g.body.result, { by: 'B' });
      assert.equal(g.body.attempts, 2);
    });

    test('an expired lease that nobody else claimed still cannot be completed with the old token', async () => {
      const lane = `exp-${engine.name}`;
      const [id] = await submit(d, 1, { lane });
      const a = (await claim(d, { lane, limit: 1, lease_seconds: 1 })).body.items[0];
      await sleep(1300);
      assertConflict(await act(d, id!, 'complete', { lease_token: a.lease_token, result: 1 }), 'complete after expiry');
      const again = (await claim(d, { lane, limit: 1, lease_seconds: 30 })).body.items;
      assert.equal(again.length, 1);
      assert.equal((await act(d, id!, 'complete', { lease_token: again[0].lease_token, result: 2 })).status, 200);
    });

    test('a claim without a lane finds work whose only claimable rows are expired leases', async () => {
      // A claim whose answer was lost (the worker or the node died) leaves rows 'claimed' with no
      // pending row beside them. Round-robin claims must still see those lanes once the lease ends.
      const f = await node(await engine.fresh());
      const ids = await submit(f, 3, { lane: 'lost-answer' });
      const lost = await claim(f, { limit: 3, lease_seconds: 1 });
      assert.equal(lost.body.items.length, 3);
      await sleep(1300);
      const again = await claim(f, { limit: 10, lease_seconds: 30 });
      assert.deepEqual(again.body.items.map((x: { id: string }) => x.id), ids, 'expired leases were not claimable without a lane');
      assert.ok(again.body.items.every((x: { attempts: number }) => x.attempts === 2));
    });

    test('release returns the request to pending; the released token is dead', async () => {
      const lane = `rel-${engine.name}`;
      const [id] = await submit(d, 1, { lane });
      const a = (await claim(d, { lane, limit: 1, lease_seconds: 60 })).body.items[0];
      const r = await act(d, id!, 'release', { lease_token: a.lease_token });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { id, status: 'pending' });
      assert.equal((await get(`${d.url}/v1/requests/${id}`)).body.status, 'pending');
      const b = (await claim(d, { lane, limit: 1, lease_seconds: 60 })).body.items;
      assert.equal(b.length, 1, 'a released request is claimable at once');
      assert.equal(b[0].id, id);
      assert.equal(b[0].attempts, 2);
      assertConflict(await act(d, id!, 'complete', { lease_token: a.lease_token, result: 1 }), 'complete with the released token');
      assertConflict(await act(d, id!, 'release', { lease_token: a.lease_token }), 'second release');
      assert.equal((await act(d, id!, 'complete', { lease_token: b[0].lease_token, result: 1 })).status, 200);
    });

    test('extend keeps the claim past its first expiry', async () => {
      const lane = `ext-${engine.name}`;
      const [id] = await submit(d, 1, { lane });
      const a = (await claim(d, { lane, limit: 1, lease_seconds: 3 })).body.items[0];
      const e = await act(d, id!, 'extend', { lease_token: a.lease_token, lease_seconds: 30 });
      assert.equal(e.status, 200, JSON.stringify(e.body));
      assert.equal(e.body.status, 'claimed');
      assert.ok(Date.parse(e.body.lease_expires_at) - Date.now() > 25_000);
      await sleep(Math.max(0, Date.parse(a.lease_expires_at) - Date.now()) + 600); // past the first expiry
      const other = await claim(d, { lane, limit: 1, lease_seconds: 30 });
      assert.equal(other.body.items.length, 0, 'an extended claim was handed to another worker');
      assert.equal((await get(`${d.url}/v1/requests/${id}`)).body.status, 'claimed');
      assert.equal((await act(d, id!, 'extend', { lease_token: a.lease_token, lease_seconds: 0 })).status, 400);
      assert.equal((await act(d, id!, 'complete', { lease_token: a.lease_token, result: 'late but leased' })).status, 200);
    });

    test('not_before in the future is not claimable until it is due', async () => {
      const lane = `nb-${engine.name}`;
      const soon = new Date(Date.now() + 6000).toISOString(); // room for three stored submits on a loaded machine
      const later = new Date(Date.now() + 3600_000).toISOString();
      const past = new Date(Date.now() - 60_000).toISOString();
      const [idSoon] = await submit(d, 1, { lane, not_before: soon });
      const [idLater] = await submit(d, 1, { lane, not_before: later });
      const [idPast] = await submit(d, 1, { lane, not_before: past });
      const first = await claim(d, { lane, limit: 10, lease_seconds: 60 });
      assert.deepEqual(first.body.items.map((x: { id: string }) => x.id), [idPast], 'only the request already due is claimable');
      const notYet = await claim(d, { lane, limit: 10, lease_seconds: 60 });
      if (Date.now() < Date.parse(soon)) assert.equal(notYet.body.items.length, 0, 'claimed before not_before');
      const due = notYet.body.items.length > 0 ? notYet.body.items : await waitFor('the delayed request to become claimable', async () => {
        const r = await claim(d, { lane, limit: 10, lease_seconds: 60 });
        return r.body.items.length > 0 ? r.body.items : null;
      }, 10000, 100);
      assert.ok(Date.now() >= Date.parse(soon), 'claimed before not_before');
      assert.deepEqual(due.map((x: { id: string }) => x.id), [idSoon]);
      assert.equal((await claim(d, { lane, limit: 10, lease_seconds: 60 })).body.items.length, 0, 'the request due in an hour was claimed');
      assert.equal((await get(`${d.url}/v1/requests/${idLater}`)).body.status, 'scheduled', 'a request due in an hour waits as scheduled');
    });

    test('round-robin across lanes: 50 long then 2 short, a claim of 2 gets one of each', async () => {
      const f = await node(await engine.fresh());
      const longIds = await submit(f, 50, { lane: 'long' });
      const shortIds = await submit(f, 2, { lane: 'short' });
      const c = await claim(f, { limit: 2, lease_seconds: 60 });
      assert.equal(c.status, 200);
      const lanes = c.body.items.map((x: { lane: string }) => x.lane).sort();
      assert.deepEqual(lanes, ['long', 'short'], `claimed ${JSON.stringify(c.body.items.map((x: { id: string; lane: string }) => [x.lane, x.id]))}`);
      // Within a lane, oldest first.
      const byLane = Object.fromEntries(c.body.items.map((x: { lane: string; id: string }) => [x.lane, x.id]));
      assert.equal(byLane.long, longIds[0]);
      assert.equal(byLane.short, shortIds[0]);
      // A following claim still serves the short lane before the long lane is empty.
      const c2 = await claim(f, { limit: 2, lease_seconds: 60 });
      assert.ok(c2.body.items.some((x: { lane: string }) => x.lane === 'short'), 'the second short request waited behind the long lane');

      // The example worker, as a real process, completes what is left here.
      const ex = spawn(process.execPath, [join(repoRoot, 'examples', 'worker.mjs'), f.url, '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      ex.stdout!.on('data', (b) => (out += b));
      ex.stderr!.on('data', (b) => (out += b));
      try {
        const extra = await submit(f, 10, { lane: 'short' });
        await waitFor('the example worker to complete the new requests', async () => {
          const states = await Promise.all(extra.map(async (id) => (await get(`${f.url}/v1/requests/${id}`)).body.status));
          return states.every((s) => s === 'completed');
        }, 30000, 200);
        // The worker prints its line once the node's answer reaches it, which can be after a GET sees the row.
        await waitFor('the example worker to report every completion', () => extra.every((id) => out.includes(`completed ${id}`)), 10_000);
        for (const id of extra) {
          const g = await get(`${f.url}/v1/requests/${id}`);
          assert.deepEqual(g.body.result.echoed, g.body.payload, 'the example worker echoes the payload');
        }
        // The 48 long requests and the one short request still pending were picked up too.
        const rest = [...longIds, ...shortIds].filter((id) => !c.body.items.some((x: { id: string }) => x.id === id) && !c2.body.items.some((x: { id: string }) => x.id === id));
        await waitFor('the example worker to drain the queue', async () => {
          const states = await Promise.all(rest.map(async (id) => (await get(`${f.url}/v1/requests/${id}`)).body.status));
          return states.every((s) => s === 'completed');
        }, 30000, 200);
      } finally {
        ex.kill('SIGKILL');
      }
    });

    test('16 concurrent claimers never get the same id twice while leases are valid', async (t) => {
      const f = await node(await engine.fresh());
      const targets: Daemon[] = [f];
      const n = 300;
      const ids = await submit(f, n, { lane: 'c' });
      const got = await claimAll(targets, 16);
      t.diagnostic(`${engine.name}, one node: ${got.claims} claims by 16 workers, ${got.ids.length} items, ${got.dupes.length} duplicates`);
      assert.deepEqual(got.dupes, [], 'an id was handed to two workers');
      assert.deepEqual([...got.ids].sort(), [...ids].sort(), 'every request claimed exactly once');
      // Every lease is valid: each completes.
      const codes = await Promise.all(got.items.map((it) => act(f, it.id, 'complete', { lease_token: it.lease_token, result: 'ok' }).then((a) => a.status)));
      assert.ok(codes.every((c) => c === 200), `completions: ${codes.filter((c) => c !== 200).length} refused`);
    });
  });
}

interface Claimed {
  id: string;
  lease_token: string;
}

/** `workers` loops claiming (limit 1-5, lease 60 s) round the given nodes until two empty answers in a row each. */
async function claimAll(nodes: Daemon[], workers: number): Promise<{ ids: string[]; items: Claimed[]; dupes: string[]; claims: number }> {
  const items: Claimed[] = [];
  const seen = new Set<string>();
  const dupes: string[] = [];
  let claims = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      let empty = 0;
      for (let k = 0; empty < 2; k++) {
        const target = nodes[(w + k) % nodes.length]!;
        const r = await claim(target, { limit: 1 + ((w + k) % 5), lease_seconds: 60, lane: 'c' });
        claims++;
        assert.equal(r.status, 200, JSON.stringify(r.body));
        if (r.body.items.length === 0) {
          empty++;
          continue;
        }
        empty = 0;
        for (const it of r.body.items as Claimed[]) {
          if (seen.has(it.id)) dupes.push(it.id);
          seen.add(it.id);
          items.push(it);
        }
      }
    }),
  );
  return { ids: items.map((i) => i.id), items, dupes, claims };
}

describe('processing API: two nodes sharing PostgreSQL', () => {
  test('16 workers across two nodes never get the same id twice', async (t) => {
    const db = await engines[1]!.fresh();
    const a = await node(db, `lease-a-${process.pid}`);
    const b = await node(db, `lease-b-${process.pid}`);
    const n = 400;
    // Requests arrive through both nodes.
    const half = Math.floor(n / 2);
    const ids = [...(await submit(a, half, { lane: 'c' })), ...(await submit(b, n - half, { lane: 'c' }))];
    const t0 = Date.now();
    const got = await claimAll([a, b], 16);
    const ms = Date.now() - t0;
    t.diagnostic(`postgres, two nodes: ${got.claims} claims by 16 workers in ${ms} ms, ${got.ids.length} items, ${got.dupes.length} duplicates`);
    assert.deepEqual(got.dupes, [], 'an id was handed to two workers');
    assert.deepEqual([...got.ids].sort(), [...ids].sort(), 'every request claimed exactly once');
    // Completing through the other node than the one that claimed works (the lease is in the database).
    const codes = await Promise.all(got.items.map((it, i) => act(i % 2 ? a : b, it.id, 'complete', { lease_token: it.lease_token, result: 'ok' }).then((x) => x.status)));
    assert.ok(codes.every((c) => c === 200), `completions refused: ${codes.filter((c) => c !== 200).length}`);
    // And now the same requests can never be claimed or completed again.
    assert.equal((await claim(a, { lane: 'c', limit: 100 })).body.items.length, 0);
    assertConflict(await act(b, got.items[0]!.id, 'complete', { lease_token: got.items[0]!.lease_token, result: 'again' }), 'second completion through the other node');
  });
});

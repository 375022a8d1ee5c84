// Dead callbacks and the operator's CLI: a receiver that fails makes callbacks go dead after
// INTAKE_CALLBACK_MAX_ATTEMPTS; `intake callbacks ls --dead` lists them; once the receiver
// recovers, `intake callbacks replay` (--id, --host, --all) delivers them; `purge --id` removes one
// for good. All against a real daemon, a real receiver on 127.0.0.1, and the real CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, sleep, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';
const segs = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.seg')) : []);

describe('dead callbacks: ls, replay, purge', () => {
  const tmp = tempDir('intake-replay-');
  const spool = join(tmp.path, 'spool');
  const deadDir = join(spool, 'callbacks', 'dead');
  const retryDir = join(spool, 'callbacks', 'retry');
  let d: Daemon;
  let receiver: http.Server;
  let port = 0;
  let failing = true;
  const seen = new Map<string, { status: number; valid: boolean; host: string; body: string }[]>();
  const daemons: Daemon[] = [];
  const ids: string[] = []; // request ids; the first 4 call back to 127.0.0.1, the last 2 to localhost
  const wid = (id: string) => `msg_${id}`;
  const cli = (...args: string[]) => runCli(['callbacks', ...args, '--spool', spool]);
  const attemptsOf = (id: string) => seen.get(wid(id)) ?? [];
  const delivered = (id: string) => attemptsOf(id).some((a) => a.status === 200);
  const start = async (mode: 'both' | 'receive', nodeId: string): Promise<Daemon> => {
    const x = await startDaemon({
      spool,
      db: `sqlite:${join(tmp.path, 'intake.db')}`,
      mode,
      nodeId,
      args: ['--seal-after-ms', '100', '--scan-interval-ms', '100', '--lock-stale-ms', '2000'],
      env: {
        INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32',
        INTAKE_CALLBACK_MAX_ATTEMPTS: '2',
        INTAKE_CALLBACK_BASE_MS: '50',
        INTAKE_CALLBACK_CAP_MS: '200',
        INTAKE_CALLBACK_POLL_MS: '100',
        INTAKE_CALLBACK_TIMEOUT_MS: '2000',
        INTAKE_WEBHOOK_SECRET: SECRET,
      },
    });
    daemons.push(x);
    return x;
  };
  const statusOf = async (id: string) => (await get(`${d.url}/v1/requests/${id}`)).body.callback?.status as string | undefined;

  before(async () => {
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const id = String(req.headers['webhook-id']);
        let valid = true;
        try {
          new Webhook(SECRET).verify(body, req.headers as Record<string, string>);
        } catch {
          valid = false;
        }
        const status = failing ? 503 : 200;
        seen.set(id, [...(seen.get(id) ?? []), { status, valid, host: String(req.headers.host), body }]);
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    port = (receiver.address() as AddressInfo).port;
    d = await start('both', `replay-save-${process.pid}`);
  });
  after(async () => {
    await Promise.all(daemons.map((x) => x.kill('SIGKILL')));
    receiver?.closeAllConnections();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    tmp.cleanup();
  });

  test('a failing receiver: callbacks go dead after 2 attempts and `callbacks ls --dead --json` lists them', async (t) => {
    for (let i = 0; i < 6; i++) {
      const host = i < 4 ? '127.0.0.1' : 'localhost';
      const r = await post(`${d.url}/v1/requests`, { payload: { i }, callback_url: `http://${host}:${port}/hook/${i}`, lane: 'rp' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      ids.push(r.body.id);
    }
    const done = new Set<string>();
    await waitFor('all six claimed and completed', async () => {
      const c = await post(`${d.url}/v1/work/claim`, { lane: 'rp', limit: 10, lease_seconds: 60 });
      for (const it of c.body.items) {
        const r = await post(`${d.url}/v1/work/${it.id}/complete`, { lease_token: it.lease_token, result: { i: it.payload.i } });
        assert.equal(r.status, 200);
        done.add(it.id);
      }
      return done.size === 6;
    }, 20000, 100);
    await waitFor('six dead entries', () => segs(deadDir).length === 6, 20000, 50);
    await waitFor('dead recorded in the database', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'dead'), 10000, 100);
    await sleep(1000); // a dead callback gets no further attempts
    for (const id of ids) {
      assert.deepEqual(attemptsOf(id).map((a) => a.status), [503, 503], `attempts of ${wid(id)}`);
      assert.ok(attemptsOf(id).every((a) => a.valid), 'signed');
    }
    assert.deepEqual(segs(retryDir), []);

    const ls = await cli('ls', '--dead', '--json');
    assert.equal(ls.code, 0, ls.stderr);
    const list = JSON.parse(ls.stdout) as { id: string; requestId: string; url: string; attempts: number; lastStatus: number | null; dueAt: string | null }[];
    assert.deepEqual(list.map((e) => e.id).sort(), ids.map(wid).sort());
    for (const e of list) {
      assert.equal(e.requestId, e.id.slice(4));
      assert.equal(e.attempts, 2);
      assert.equal(e.lastStatus, 503);
      assert.equal(e.dueAt, null);
      assert.match(e.url, new RegExp(`^http://(127\\.0\\.0\\.1|localhost):${port}/hook/\\d$`));
    }
    const waiting = await cli('ls', '--json');
    assert.equal(waiting.code, 0);
    assert.deepEqual(JSON.parse(waiting.stdout), []);
    const plain = await cli('ls', '--dead');
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /6 dead callback\(s\)/);
    t.diagnostic(`dead after 2 attempts each: ${list.length}`);
  });

  test('purge --id deletes one dead callback for good', async () => {
    const victim = ids[0]!;
    const r = await cli('purge', '--id', wid(victim));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(segs(deadDir).length, 5);
    assert.ok(!segs(deadDir).includes(`${wid(victim)}.seg`));
    const again = await cli('purge', '--id', wid(victim));
    assert.notEqual(again.code, 0, 'purging a missing entry succeeded');
    assert.match(again.stderr, /no dead callback/);
  });

  test('nothing is replayed by itself, and bad replays are refused', async () => {
    failing = false; // the receiver recovers
    await sleep(800);
    for (const id of ids) assert.equal(attemptsOf(id).length, 2, `${wid(id)} was sent again without a replay`);
    const none = await cli('replay');
    assert.notEqual(none.code, 0, 'replay without a selector succeeded');
    const unknown = await cli('replay', '--id', 'msg_00000000-0000-7000-8000-000000000000');
    assert.notEqual(unknown.code, 0);
    const badSince = await cli('replay', '--since', 'yesterday-ish');
    assert.notEqual(badSince.code, 0);
    const future = await cli('replay', '--since', new Date(Date.now() + 3600_000).toISOString());
    assert.equal(future.code, 0, future.stderr);
    assert.match(future.stdout, /replayed 0 callback/);
    assert.equal(segs(deadDir).length, 5);
  });

  test('replay --id delivers that one once the receiver is up', async () => {
    const one = ids[1]!;
    const r = await cli('replay', '--id', wid(one));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /replayed 1 callback/);
    await waitFor('the replayed callback delivered', () => delivered(one), 10000, 50);
    await waitFor('delivered in the database', async () => (await statusOf(one)) === 'delivered', 10000, 100);
    assert.equal(segs(deadDir).length, 4);
    for (const id of ids.filter((x) => x !== one)) assert.ok(!delivered(id), `${wid(id)} was delivered without a replay`);
  });

  test('replay --host replays only callbacks to that host', async () => {
    const r = await cli('replay', '--host', 'localhost');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /replayed 2 callback/);
    for (const id of ids.slice(4)) {
      await waitFor(`${wid(id)} delivered`, () => delivered(id), 10000, 50);
      await waitFor(`${wid(id)} delivered in the database`, async () => (await statusOf(id)) === 'delivered', 10000, 100);
      assert.ok(attemptsOf(id).every((a) => a.host === `localhost:${port}`));
    }
    assert.equal(segs(deadDir).length, 2);
    for (const id of ids.slice(2, 4)) assert.ok(!delivered(id));
  });

  test('replay --all delivers the rest, retried by a receive-mode node; the purged one never arrives', async (t) => {
    // The save node is gone: a receive-mode node (no database) retries the failed-callback spool
    // and writes the outcomes into its spool, which the save node drains when it is back.
    const saveId = d.nodeId;
    const rx = await start('receive', `replay-receive-${process.pid}`);
    await d.kill('SIGKILL');
    const r = await cli('replay', '--all');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /replayed 2 callback/);
    for (const id of ids.slice(2, 4)) await waitFor(`${wid(id)} delivered by the receive-mode node`, () => delivered(id), 10000, 50);
    await waitFor('the failed-callback spool empty', () => segs(retryDir).length === 0, 10000, 50);
    assert.equal(rx.proc.exitCode, null);
    d = await start('both', saveId);
    for (const id of ids.slice(1)) {
      await waitFor(`${wid(id)} delivered`, () => delivered(id), 10000, 50);
      const bodies = new Set(attemptsOf(id).map((a) => a.body));
      assert.equal(bodies.size, 1, `${wid(id)}: a replay sent another body`);
      await waitFor(`${wid(id)} delivered in the database`, async () => (await statusOf(id)) === 'delivered', 10000, 100);
      assert.ok(attemptsOf(id).every((a) => a.valid), 'replayed callbacks are signed');
      assert.equal(attemptsOf(id).filter((a) => a.status === 200).length, 1, `${wid(id)} delivered more than once`);
    }
    await sleep(500);
    assert.deepEqual(segs(deadDir), []);
    assert.deepEqual(segs(retryDir), []);
    const ls = await cli('ls', '--dead', '--json');
    assert.deepEqual(JSON.parse(ls.stdout), []);
    assert.ok(!delivered(ids[0]!), 'the purged callback was delivered');
    assert.equal(attemptsOf(ids[0]!).length, 2);
    assert.equal(await statusOf(ids[0]!), 'dead');
    t.diagnostic(`attempts per callback: ${ids.map((id) => attemptsOf(id).length).join(', ')}`);
  });
});

describe('the limits that make a callback dead', () => {
  const tmp = tempDir('intake-limits-');
  const daemons: Daemon[] = [];
  let receiver: http.Server;
  let port = 0;
  const seen = new Map<string, number[]>();

  before(async () => {
    receiver = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const id = String(req.headers['webhook-id']);
        seen.set(id, [...(seen.get(id) ?? []), Date.now()]);
        res.writeHead(500).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    port = (receiver.address() as AddressInfo).port;
  });
  after(async () => {
    await Promise.all(daemons.map((x) => x.kill('SIGKILL')));
    receiver?.closeAllConnections();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    tmp.cleanup();
  });

  /** A node with these limits; one request completed; resolves when its callback is dead. */
  async function deadAfter(name: string, env: Record<string, string>): Promise<{ attempts: number[]; dead: string[]; ms: number; deadSeenAt: number }> {
    const spool = join(tmp.path, name);
    const d = await startDaemon({
      spool,
      db: `sqlite:${join(tmp.path, `${name}.db`)}`,
      args: ['--seal-after-ms', '100', '--scan-interval-ms', '100'],
      env: { INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32', INTAKE_CALLBACK_BASE_MS: '50', INTAKE_CALLBACK_CAP_MS: '200', INTAKE_CALLBACK_POLL_MS: '100', ...env },
    });
    daemons.push(d);
    const r = await post(`${d.url}/v1/requests`, { payload: 1, callback_url: `http://127.0.0.1:${port}/${name}` });
    assert.equal(r.status, 202);
    const id = r.body.id as string;
    const it = await waitFor('claimed', async () => (await post(`${d.url}/v1/work/claim`, { limit: 1 })).body.items[0], 10000, 100);
    assert.equal((await post(`${d.url}/v1/work/${id}/complete`, { lease_token: it.lease_token, result: 1 })).status, 200);
    const t0 = Date.now();
    const dead = join(spool, 'callbacks', 'dead');
    await waitFor('the callback dead', () => segs(dead).length === 1, 15000, 20);
    const deadSeenAt = Date.now();
    const ms = deadSeenAt - t0;
    await sleep(1000); // no attempts after it is dead
    const g = await get(`${d.url}/v1/requests/${id}`);
    assert.equal(g.body.callback.status, 'dead');
    return { attempts: seen.get(`msg_${id}`) ?? [], dead: segs(dead), ms, deadSeenAt };
  }

  test('INTAKE_CALLBACK_MAX_ATTEMPTS=1: one attempt, then dead', async (t) => {
    const r = await deadAfter('max1', { INTAKE_CALLBACK_MAX_ATTEMPTS: '1' });
    t.diagnostic(`attempts: ${r.attempts.length}, dead after ${r.ms} ms`);
    assert.equal(r.attempts.length, 1, `INTAKE_CALLBACK_MAX_ATTEMPTS=1 made ${r.attempts.length} attempts`);
  });

  test('INTAKE_CALLBACK_MAX_ATTEMPTS=3: three attempts, then dead', async () => {
    const r = await deadAfter('max3', { INTAKE_CALLBACK_MAX_ATTEMPTS: '3' });
    assert.equal(r.attempts.length, 3);
  });

  test('INTAKE_CALLBACK_MAX_AGE_MS: retried until the age is reached, then dead', async (t) => {
    const r = await deadAfter('age', { INTAKE_CALLBACK_MAX_ATTEMPTS: '1000', INTAKE_CALLBACK_MAX_AGE_MS: '1500' });
    const span = r.attempts[r.attempts.length - 1]! - r.attempts[0]!;
    t.diagnostic(`attempts: ${r.attempts.length} over ${span} ms, dead after ${r.ms} ms`);
    assert.ok(r.attempts.length >= 3, `only ${r.attempts.length} attempts before the age limit`);
    // The node judges the age on its own clock after each answer, so the receiver's span can be a
    // response latency short of 1500 ms; the moment it was found dead cannot be.
    const deadAfterMs = r.deadSeenAt - r.attempts[0]!;
    assert.ok(deadAfterMs >= 1500, `dead ${deadAfterMs} ms after the first attempt, before the 1500 ms age limit`);
    // Ignoring the age, it would retry every 200 ms at most for 1000 attempts (minutes).
    assert.ok(span < 1500 + 3000, `kept trying for ${span} ms past a 1500 ms age limit`);
  });
});

// SSRF guard: callbacks never reach a forbidden address, whatever its spelling. Two levels:
//  (a) a real daemon refuses literal forbidden callback URLs at intake (400 INTAKE_BAD_CALLBACK_URL),
//      and for names that pass intake (localhost, this machine's host name) and for a redirect to
//      loopback, the callback is attempted, refused, and our loopback listeners get no connection;
//  (b) CallbackSender + SsrfGuard refuse every target, and no socket is even opened for literals.
// Only this machine is ever a target: listeners on 127.0.0.1, 127.255.255.254, 127.0.0.2, ::1. The
// other private ranges (10/8, 169.254/16, ...) are checked with guard.refuse BEFORE any send, so
// a broken guard fails the test instead of sending traffic off the machine.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { hostname } from 'node:os';
import { lookup } from 'node:dns/promises';
import { join } from 'node:path';
import { CallbackSender } from '../../src/callbacks/sender.js';
import { SsrfGuard } from '../../src/callbacks/ssrf.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

/** Raw TCP listeners on one port on several loopback addresses; every connection is recorded. */
interface Trap {
  port: number;
  hits: { local: string; remote: string }[];
  close(): Promise<void>;
}

const TRAP_ADDRESSES = ['127.0.0.1', '127.255.255.254', '::1'];

async function listenOn(host: string, port: number, hits: Trap['hits']): Promise<net.Server> {
  const s = net.createServer((c) => {
    hits.push({ local: `${c.localAddress}:${c.localPort}`, remote: `${c.remoteAddress}` });
    c.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, host, () => resolve());
  });
  return s;
}

async function trap(): Promise<Trap> {
  for (let tries = 0; ; tries++) {
    const hits: Trap['hits'] = [];
    const first = await listenOn(TRAP_ADDRESSES[0]!, 0, hits);
    const port = (first.address() as net.AddressInfo).port;
    const servers = [first];
    try {
      for (const h of TRAP_ADDRESSES.slice(1)) servers.push(await listenOn(h, port, hits));
    } catch (err) {
      for (const s of servers) s.close();
      if (tries < 10) continue; // the port was taken on another address: another one
      throw err;
    }
    return {
      port,
      hits,
      close: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined),
    };
  }
}

/** The listener works: a plain connection to each trap address is recorded (so zero hits later means something). */
async function selfTest(t: Trap): Promise<void> {
  const before = t.hits.length;
  for (const h of TRAP_ADDRESSES) {
    await new Promise<void>((resolve, reject) => {
      const c = net.connect(t.port, h, () => {
        c.destroy();
        resolve();
      });
      c.once('error', reject);
    });
  }
  await waitFor('trap self-test connections', () => t.hits.length === before + TRAP_ADDRESSES.length, 2000, 10);
  t.hits.length = before;
}

// Targets on this machine (each must reach a trap if the guard let it through).
const loopbackSpellings = [
  '127.0.0.1',
  '127.1',
  '2130706433',
  '0x7f000001',
  '0177.0.0.1',
  '0x7f.1',
  '127.255.255.254',
  '[::1]',
  '[::ffff:127.0.0.1]',
  '[0:0:0:0:0:ffff:7f00:1]',
  '[::ffff:7f00:1]',
  '0.0.0.0', // Linux connects 0.0.0.0 to the local host
  '0',
  '[::]',
];
// Forbidden ranges that are not on this machine: never sent to unless the guard refuses first.
const offMachine = ['169.254.169.254', '10.0.0.1', '172.16.0.1', '192.168.1.1', '100.64.0.1', '[fc00::1]', '[fe80::1]', '[64:ff9b::7f00:1]', '198.18.0.1', '224.0.0.1'];

const bareHost = (h: string) => h.replace(/^\[|\]$/g, '');

describe('SSRF guard', () => {
  const tmp = tempDir('intake-ssrf-');
  let t1: Trap;
  let redirector: http.Server;
  let redirectorHits = 0;
  let redirectPort = 0;
  let d: Daemon;
  const hostNames: string[] = [];

  before(async () => {
    t1 = await trap();
    await selfTest(t1);
    // The one allowed receiver (127.0.0.2/32 only): it redirects to the 127.0.0.1 trap.
    redirector = http.createServer((req, res) => {
      redirectorHits++;
      req.resume();
      res.writeHead(302, { location: `http://127.0.0.1:${t1.port}/stolen` }).end();
    });
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.2', () => r()));
    redirectPort = (redirector.address() as net.AddressInfo).port;
    // Names that resolve to loopback here: localhost, and this machine's own host name when it does.
    hostNames.push('localhost');
    for (const n of [hostname(), 'ip6-localhost', 'ip6-loopback']) {
      const a = await lookup(n, { all: true }).catch(() => []);
      if (a.length > 0 && a.every((x) => x.address === '127.0.0.1' || x.address === '::1') && !hostNames.includes(n)) hostNames.push(n);
    }
    d = await startDaemon({
      spool: join(tmp.path, 'spool'),
      db: `sqlite:${join(tmp.path, 'intake.db')}`,
      args: ['--seal-after-ms', '100', '--scan-interval-ms', '100'],
      env: {
        INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.2/32',
        INTAKE_CALLBACK_BASE_MS: '50',
        INTAKE_CALLBACK_CAP_MS: '200',
        INTAKE_CALLBACK_MAX_ATTEMPTS: '3',
        INTAKE_CALLBACK_POLL_MS: '100',
        INTAKE_CALLBACK_CONNECT_TIMEOUT_MS: '500',
        INTAKE_CALLBACK_TIMEOUT_MS: '1000',
      },
    });
  });
  after(async () => {
    await d?.kill('SIGKILL');
    await t1?.close();
    redirector?.closeAllConnections();
    await new Promise<void>((r) => (redirector ? redirector.close(() => r()) : r()));
    tmp.cleanup();
  });

  test('(a) intake refuses literal forbidden callback URLs with 400 INTAKE_BAD_CALLBACK_URL', async () => {
    const literals = [...loopbackSpellings, ...offMachine];
    assert.ok(literals.length >= 20);
    for (const h of literals) {
      for (const url of [`http://${h}:${t1.port}/hook`, `https://${h}/hook`]) {
        const r = await post(`${d.url}/v1/requests`, { payload: { h }, callback_url: url });
        assert.equal(r.status, 400, `${url}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body?.error?.code, 'INTAKE_BAD_CALLBACK_URL', url);
      }
    }
    // The operator's allowed range passes; its neighbours do not.
    assert.equal((await post(`${d.url}/v1/requests`, { payload: 1, callback_url: `http://127.0.0.2:${redirectPort}/x`, lane: 'probe' })).status, 202);
    assert.equal((await post(`${d.url}/v1/requests`, { payload: 1, callback_url: `http://127.0.0.3:${redirectPort}/x` })).status, 400);
    assert.deepEqual(t1.hits, []);
  });

  test('(a) names that resolve to loopback and a redirect to loopback pass intake, but no callback reaches loopback', async (t) => {
    t.diagnostic(`names resolving to loopback here: ${hostNames.join(', ')}`);
    const urls = [
      ...hostNames.map((n) => `http://${n}:${t1.port}/hook`),
      `http://localhost.:${t1.port}/hook`, // absolute name: resolves to loopback or not at all
      `http://127.0.0.2:${redirectPort}/redirect`, // allowed, answers 302 to http://127.0.0.1:<trap>/
    ];
    const ids: string[] = [];
    for (const url of urls) {
      const r = await post(`${d.url}/v1/requests`, { payload: { url }, callback_url: url, lane: 'ssrf' });
      assert.equal(r.status, 202, `${url}: ${JSON.stringify(r.body)}`);
      ids.push(r.body.id);
    }
    for (const id of ids) await waitFor(`request ${id} stored`, async () => (await get(`${d.url}/v1/requests/${id}`)).status === 200, 15000);
    // Complete each, so intake dispatches its callback.
    const claimed = new Set<string>();
    await waitFor('every ssrf request claimed', async () => {
      const c = await post(`${d.url}/v1/work/claim`, { limit: 50, lane: 'ssrf', lease_seconds: 60 });
      assert.equal(c.status, 200, JSON.stringify(c.body));
      for (const it of c.body.items) {
        const done = await post(`${d.url}/v1/work/${it.id}/complete`, { lease_token: it.lease_token, result: { ok: true } });
        assert.equal(done.status, 200, JSON.stringify(done.body));
        claimed.add(it.id);
      }
      return claimed.size === ids.length;
    }, 10000, 100);
    // Every attempt fails (3 attempts, then dead), each with the guard's or the resolver's error.
    const states = await waitFor('every callback dead after its attempts', async () => {
      const all = await Promise.all(ids.map(async (id) => (await get(`${d.url}/v1/requests/${id}`)).body.callback));
      return all.every((c) => c && c.status === 'dead') ? all : null;
    }, 30000, 100);
    for (let i = 0; i < urls.length; i++) {
      const cb = states![i]!;
      t.diagnostic(`${urls[i]}: ${cb.status} after ${cb.attempts} attempts, last_status=${cb.last_status} last_error=${cb.last_error}`);
      assert.equal(cb.attempts, 3);
      if (urls[i]!.includes('/redirect')) {
        assert.equal(cb.last_status, 302);
        assert.match(cb.last_error, /redirect 302 not followed/);
      } else if (!urls[i]!.includes('localhost.')) {
        assert.equal(cb.last_status, null);
        assert.match(cb.last_error, /callback refused/);
      } else {
        assert.match(cb.last_error, /callback refused|ENOTFOUND|EAI_AGAIN/);
      }
    }
    assert.equal(redirectorHits, 3, 'the allowed redirector was reached on every attempt (the test can see attempts)');
    assert.deepEqual(t1.hits, [], 'no callback connected to a loopback listener');
  });

  test('(b) the sender refuses every forbidden target without opening a socket, and loopback listeners get nothing', async (t) => {
    const guard = new SsrfGuard([]);
    const sender = new CallbackSender({ guard, connectTimeoutMs: 300, timeoutMs: 1000 });
    // Count every TCP connect the process makes during the sends (calls through; nothing is faked).
    const original = net.Socket.prototype.connect;
    const connects: string[] = [];
    net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
      const o = (Array.isArray(args[0]) ? args[0][0] : args[0]) as { host?: string; port?: number } | number;
      connects.push(typeof o === 'object' && o !== null ? `${o.host}:${o.port}` : String(o));
      return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    } as typeof original;
    try {
      const literals = [...loopbackSpellings, ...offMachine];
      for (const h of literals) {
        const url = `http://${h}:${t1.port}/hook`;
        const host = bareHost(new URL(url).hostname);
        // Off-machine addresses are only handed to the sender once the guard is known to refuse them.
        const why = guard.refuse(host);
        assert.ok(why, `the guard lets ${h} (${host}) through`);
        const r = await sender.send(url, { 'webhook-id': 'msg_x' }, '{}');
        assert.equal(r.ok, false, url);
        assert.equal(r.status, null, url);
        assert.match(r.error ?? '', /^callback refused/, url);
      }
      assert.deepEqual(connects, [], 'a socket was opened for a literal forbidden address');
      t.diagnostic(`literal targets refused without a socket: ${literals.length}`);

      // Names: resolved at connect time by the guard's lookup, which refuses loopback answers.
      for (const n of [...hostNames, 'localhost.']) {
        const r = await sender.send(`http://${n}:${t1.port}/hook`, {}, '{}');
        assert.equal(r.ok, false, n);
        assert.equal(r.status, null, n);
        if (n !== 'localhost.') assert.match(r.error ?? '', /callback refused: .* resolves to/, n);
      }
      // The spy sees sockets: names get one (the guard's lookup then fails it before any connection).
      assert.ok(connects.length >= hostNames.length, `the connect spy saw ${connects.length} sockets for ${hostNames.length} names`);
      // The guard's lookup itself, in both forms the agents call it.
      for (const all of [false, true]) {
        const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => guard.lookup('localhost', { all }, (e) => resolve(e as NodeJS.ErrnoException | null)));
        assert.equal(err?.code, 'INTAKE_SSRF_BLOCKED');
      }
    } finally {
      net.Socket.prototype.connect = original;
      sender.close();
    }
    assert.deepEqual(t1.hits, [], 'a loopback listener got a connection');
  });

  test('(b) a redirect to loopback is not followed (only 127.0.0.2/32 allowed)', async () => {
    const guard = new SsrfGuard(['127.0.0.2/32']);
    assert.equal(guard.refuse('127.0.0.2'), null);
    assert.ok(guard.refuse('127.0.0.1'));
    assert.ok(guard.refuse('127.0.0.3'));
    const sender = new CallbackSender({ guard, connectTimeoutMs: 500, timeoutMs: 2000 });
    try {
      const before = redirectorHits;
      for (let i = 0; i < 5; i++) {
        const r = await sender.send(`http://127.0.0.2:${redirectPort}/redirect`, {}, '{}');
        assert.equal(r.ok, false);
        assert.equal(r.status, 302);
        assert.match(r.error ?? '', /redirect 302 not followed/);
      }
      assert.equal(redirectorHits - before, 5);
      // With the allowed receiver reachable, the loopback trap still must not be.
      const r = await sender.send(`http://127.0.0.1:${t1.port}/direct`, {}, '{}');
      assert.match(r.error ?? '', /^callback refused/);
    } finally {
      sender.close();
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(t1.hits, [], 'the redirect was followed to loopback');
  });

  test('(b) the trap does record a connection when the operator allows loopback (the test can fail)', async () => {
    const sender = new CallbackSender({ guard: new SsrfGuard(['127.0.0.1/32']), connectTimeoutMs: 500, timeoutMs: 1000 });
    try {
      const r = await sender.send(`http://127.0.0.1:${t1.port}/allowed`, {}, '{}');
      assert.equal(r.ok, false); // the trap drops the connection without an answer
      await waitFor('trap hit', () => t1.hits.length === 1, 2000, 10);
    } finally {
      sender.close();
      t1.hits.length = 0;
    }
  });
});

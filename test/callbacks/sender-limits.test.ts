// What bounds one callback attempt, against real receivers that misbehave: one that never
// answers (the deadline), a resolver that never answers (the connect timeout covers the lookup),
// attempts that wait for a connection past their deadline (never sent), a body that trickles,
// never ends or is cut off (the status stands, the connection is closed, memory stays flat).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { CallbackSender } from '../../src/callbacks/sender.js';
import { SsrfGuard } from '../../src/callbacks/ssrf.js';
import { sleep, waitFor } from '../helpers/http.js';
import { startReceiver, type TestReceiver } from '../helpers/receiver.js';

const guard = new SsrfGuard(['127.0.0.1/32']);
const GiB = 1024 ** 3;

interface Stream {
  sent: number;
  closed: boolean;
}

/** Write `status` and then up to `limit` bytes of body as fast as the client reads them. */
function flood(res: http.ServerResponse, status: number, limit: number, streams: Stream[]): void {
  const s: Stream = { sent: 0, closed: false };
  streams.push(s);
  res.on('close', () => (s.closed = true));
  res.writeHead(status, { 'content-length': String(limit) });
  const chunk = Buffer.alloc(64 * 1024, 120);
  const pump = () => {
    while (!res.destroyed && s.sent < limit) {
      s.sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
  };
  pump();
}

async function timed<T>(fn: () => Promise<T>): Promise<{ v: T; ms: number }> {
  const t0 = performance.now();
  const v = await fn();
  return { v, ms: performance.now() - t0 };
}

describe('callback attempt limits', () => {
  let rcv: TestReceiver;
  const hanging: http.ServerResponse[] = [];
  const streams: Stream[] = [];
  before(async () => {
    rcv = await startReceiver((req, res) => {
      if (req.path.startsWith('/hang')) hanging.push(res);
      else if (req.path.startsWith('/flood/')) flood(res, Number(req.path.slice('/flood/'.length)), GiB, streams);
      else if (req.path.startsWith('/trickle')) {
        res.writeHead(200);
        const t = setInterval(() => res.write('.'), 50);
        res.on('close', () => clearInterval(t));
      } else if (req.path.startsWith('/cut')) {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('part of the body');
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (req.path.startsWith('/reset')) res.socket?.destroy();
      else res.writeHead(200).end();
    });
  });
  after(async () => {
    for (const r of hanging) r.destroy();
    await rcv.close();
  });

  test('a receiver that never answers: the attempt fails at its deadline', async () => {
    const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 300 });
    try {
      const { v, ms } = await timed(() => sender.send(`${rcv.url}/hang`, {}, '{}'));
      assert.deepEqual(v, { ok: false, status: null, retryAfterMs: null, gone: false, error: 'timed out after 300 ms' });
      assert.ok(ms >= 290 && ms < 2000, `${ms} ms`);
    } finally {
      await sender.close();
    }
  });

  test('attempts still waiting for a connection at their deadline fail then and are never sent', async () => {
    // The one connection allowed waits for its lookup, which this test answers only later.
    const lookup: { answer?: () => void } = {};
    const slow = new SsrfGuard(['127.0.0.1/32'], (_name, cb) => (lookup.answer = () => cb(null, [{ address: '127.0.0.1', family: 4 }])));
    const sender = new CallbackSender({ guard: slow, connectTimeoutMs: 5000, timeoutMs: 300, maxSockets: 1 });
    const before = rcv.requests.length;
    try {
      const url = `http://hooks.slow.test:${rcv.port}`;
      const [a, b] = await Promise.all([sender.send(`${url}/a`, {}, '{}'), sender.send(`${url}/b`, {}, '{}')]);
      assert.equal(a.error, 'timed out after 300 ms');
      assert.equal(b.error, 'timed out after 300 ms');
      assert.ok(lookup.answer, 'no lookup');
      const connections = rcv.connections;
      lookup.answer();
      await waitFor('the late connection made', () => rcv.connections > connections, 2000, 10);
      await sleep(200); // a late send would arrive now
      assert.deepEqual(rcv.requests.slice(before).map((r) => r.path), []);
    } finally {
      await sender.close();
    }
  });

  test('a resolver that never answers: the connect timeout covers the lookup', async () => {
    const silent = new SsrfGuard(['127.0.0.1/32'], () => undefined);
    const sender = new CallbackSender({ guard: silent, connectTimeoutMs: 200, timeoutMs: 5000 });
    try {
      const { v, ms } = await timed(() => sender.send(`http://hooks.silent.test:${rcv.port}/x`, {}, '{}'));
      assert.equal(v.ok, false);
      assert.equal(v.status, null);
      assert.match(v.error ?? '', /^UND_ERR_CONNECT_TIMEOUT/);
      assert.ok(ms < 2000, `${ms} ms`);
    } finally {
      await sender.close();
    }
  });

  test('the status is in but the body trickles: at the deadline the connection is closed and the answer stands', async () => {
    const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 400 });
    try {
      const { v, ms } = await timed(() => sender.send(`${rcv.url}/trickle`, {}, '{}'));
      assert.deepEqual(v, { ok: true, status: 200, retryAfterMs: null, gone: false, error: null });
      assert.ok(ms >= 390 && ms < 2000, `${ms} ms`);
      await waitFor('the trickling connection closed', () => rcv.open.size === 0, 2000, 10);
      assert.equal((await sender.send(`${rcv.url}/ok`, {}, '{}')).ok, true, 'a new connection after the closed one');
    } finally {
      await sender.close();
    }
  });

  test('a connection lost during the body keeps the status; lost before it, the attempt fails', async () => {
    const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 5000 });
    try {
      assert.deepEqual(await sender.send(`${rcv.url}/cut`, {}, '{}'), { ok: true, status: 200, retryAfterMs: null, gone: false, error: null });
      const r = await sender.send(`${rcv.url}/reset`, {}, '{}');
      assert.equal(r.ok, false);
      assert.equal(r.status, null);
      assert.match(r.error ?? '', /^UND_ERR_SOCKET: /);
    } finally {
      await sender.close();
    }
  });

  test('a body of 1 GiB: the answer comes at once, about 64 KiB is read, the connection closed, memory flat', async () => {
    const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 10_000 });
    try {
      const rss0 = process.memoryUsage().rss;
      for (let i = 0; i < 20; i++) {
        const status = i % 2 === 0 ? 200 : 500;
        const { v, ms } = await timed(() => sender.send(`${rcv.url}/flood/${status}`, {}, '{}'));
        assert.equal(v.status, status);
        assert.equal(v.ok, status === 200);
        assert.ok(ms < 2000, `${ms} ms for a 1 GiB body`);
      }
      await waitFor('every flooded connection closed', () => streams.length === 20 && streams.every((s) => s.closed), 5000, 10);
      // The receiver wrote what fitted into the socket buffers before the close, nowhere near 1 GiB.
      const most = Math.max(...streams.map((s) => s.sent));
      assert.ok(most < 64 * 1024 * 1024, `the receiver could write ${most} bytes`);
      const grew = process.memoryUsage().rss - rss0;
      assert.ok(grew < 64 * 1024 * 1024, `RSS grew by ${grew} bytes`);
    } finally {
      await sender.close();
    }
  });
});

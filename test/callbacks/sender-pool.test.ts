// The callback client's connections, seen from a real node:http receiver: callbacks to one
// receiver reuse kept-alive connections, at most maxSockets of them, whatever the answers are
// (a 4xx, 5xx or 3xx does not cost a connection); close() closes them all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CallbackSender } from '../../src/callbacks/sender.js';
import { SsrfGuard } from '../../src/callbacks/ssrf.js';
import { waitFor } from '../helpers/http.js';
import { startReceiver, type TestReceiver } from '../helpers/receiver.js';

const guard = new SsrfGuard(['127.0.0.1/32']);
const body = (i: number) => JSON.stringify({ type: 'request.completed', data: { i, text: 'x'.repeat(400) } });

/** Send `n` callbacks with `inFlight` at a time; every one must be delivered. */
async function sendMany(sender: CallbackSender, url: string, n: number, inFlight: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const r = await sender.send(`${url}/hook/${i}`, { 'webhook-id': `msg_${i}` }, body(i));
      assert.deepEqual(r, { ok: true, status: 200, retryAfterMs: null, gone: false, error: null }, `callback ${i}`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

describe('callback client connections', () => {
  let rcv: TestReceiver;
  before(async () => {
    rcv = await startReceiver((req, res) => {
      const status = Number(/^\/status\/(\d+)/.exec(req.path)?.[1] ?? 200);
      const headers: Record<string, string> = status === 429 ? { 'retry-after': '7' } : status === 302 ? { location: '/elsewhere' } : {};
      res.writeHead(status, headers).end('fine');
    });
  });
  after(() => rcv.close());

  test('one after another, 300 callbacks use one connection; every body and header arrives intact', async () => {
    const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 5000 });
    const before = rcv.connections;
    rcv.requests.length = 0;
    try {
      await sendMany(sender, rcv.url, 300, 1);
      assert.equal(rcv.connections - before, 1);
      assert.equal(rcv.requests.length, 300);
      for (const [i, got] of rcv.requests.entries()) {
        assert.equal(got.path, `/hook/${i}`);
        assert.equal(got.body, body(i));
        assert.equal(got.headers['webhook-id'], `msg_${i}`);
        assert.equal(got.headers['content-type'], 'application/json');
        assert.equal(got.headers['user-agent'], 'intake-callbacks');
        assert.equal(got.headers['content-length'], String(Buffer.byteLength(body(i))));
      }
    } finally {
      await sender.close();
    }
  });

  test('16 in flight use at most 16 connections; maxSockets 4 bounds them to 4', async () => {
    for (const [maxSockets, inFlight] of [[64, 16], [4, 16]] as const) {
      const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 5000, maxSockets });
      const before = rcv.connections;
      try {
        await sendMany(sender, rcv.url, 800, inFlight);
        const used = rcv.connections - before;
        assert.ok(used >= 1 && used <= Math.min(maxSockets, inFlight), `${used} connections for ${inFlight} in flight, maxSockets ${maxSockets}`);
      } finally {
        await sender.close();
      }
    }
  });

  test('the answer decides, and no answer costs the connection: 410, 429 Retry-After, 503, 302 not followed', async () => {
    const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 5000 });
    const before = rcv.connections;
    try {
      const at = (s: number) => sender.send(`${rcv.url}/status/${s}`, {}, '{}');
      assert.deepEqual(await at(204), { ok: true, status: 204, retryAfterMs: null, gone: false, error: null });
      assert.deepEqual(await at(410), { ok: false, status: 410, retryAfterMs: null, gone: true, error: 'HTTP 410' });
      assert.deepEqual(await at(429), { ok: false, status: 429, retryAfterMs: 7000, gone: false, error: 'HTTP 429' });
      assert.deepEqual(await at(503), { ok: false, status: 503, retryAfterMs: null, gone: false, error: 'HTTP 503' });
      assert.deepEqual(await at(302), { ok: false, status: 302, retryAfterMs: null, gone: false, error: 'redirect 302 not followed' });
      assert.ok(!rcv.requests.some((r) => r.path === '/elsewhere'), 'the redirect was followed');
      assert.equal(rcv.connections - before, 1);
    } finally {
      await sender.close();
    }
  });

  test('close() closes the kept-alive connections; a send afterwards fails at once', async () => {
    const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 5000 });
    await sendMany(sender, rcv.url, 20, 4);
    assert.ok(rcv.open.size > 0, 'no connection kept alive');
    await sender.close();
    await waitFor('the receiver sees every connection closed', () => rcv.open.size === 0, 2000, 10);
    const r = await sender.send(`${rcv.url}/late`, {}, '{}');
    assert.equal(r.ok, false);
    assert.equal(r.status, null);
    assert.match(r.error ?? '', /destroyed|closed/i);
  });
});

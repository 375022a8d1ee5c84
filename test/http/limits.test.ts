// Abuse limits on a real daemon over real sockets: every refusal at the HTTP layer (malformed
// HTTP, oversized headers, slow clients, deep JSON) is a 4xx in the shape {error: {code,
// message}}; slow clients are cut off while the node keeps serving others; over
// --max-connections a connection is closed unanswered and the node serves again below it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { outputOnceLogged, runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { post, waitFor } from '../helpers/http.js';
import { collect, rawConnect, rawExchange, slowClient, type RawAnswer } from '../helpers/raw-http.js';
import { tempDir } from '../helpers/tmp.js';

function assertRefused(a: RawAnswer, status: number, code: string, what: string): void {
  assert.equal(a.status, status, `${what}: status (got ${JSON.stringify(a.text.slice(0, 300))})`);
  assert.match(a.headers['content-type'] ?? '', /^application\/json/, `${what}: content type`);
  assert.equal(a.body?.error?.code, code, `${what}: code`);
  assert.equal(typeof a.body.error.message, 'string', `${what}: message`);
}

/** JSON arrays nested `levels` deep around 1. */
const nested = (levels: number) => '['.repeat(levels) + '1' + ']'.repeat(levels);
const metric = async (url: string, name: string): Promise<number> => {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : 0;
};

describe('abuse limits: answers of the HTTP layer, slow clients, deep JSON', () => {
  const tmp = tempDir();
  let d: Daemon;
  const HEADER_COUNT = 32;

  before(async () => {
    d = await startDaemon({
      spool: join(tmp.path, 'spool'),
      db: `sqlite:${join(tmp.path, 'intake.db')}`,
      args: ['--headers-timeout-ms', '1000', '--request-timeout-ms', '2000', '--max-header-bytes', '8192', '--max-header-count', String(HEADER_COUNT), '--max-json-depth', '64'],
    });
  });
  after(async () => {
    await d.kill('SIGTERM');
    tmp.cleanup();
  });

  const valid = { payload: { doc: 1 }, callback_url: 'https://example.com/hook' };
  const someId = '01a22c7a-e525-75a9-95f3-3ead60f45baa';

  test('JSON nested 4,100 levels deep is a 400 INTAKE_JSON_TOO_DEEP on every JSON route, never a 500', async () => {
    const deep = nested(4100);
    const bodies: [string, string][] = [
      ['/v1/requests', `{"payload":${deep},"callback_url":"https://example.com/hook"}`],
      [`/v1/work/${someId}/complete`, `{"lease_token":"t","result":${deep}}`],
      ['/v1/work/complete', `{"items":[{"id":"${someId}","lease_token":"t","result":${deep}}]}`],
      ['/v1/work/claim', deep],
    ];
    for (const [path, body] of bodies) {
      const r = await post(`${d.url}${path}`, body);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'INTAKE_JSON_TOO_DEEP', path);
    }
    // The same parser passes an ordinary body of the work API.
    const claim = await post(`${d.url}/v1/work/claim`, { limit: 1, lease_seconds: 30, lane: null });
    assert.equal(claim.status, 200, JSON.stringify(claim.body));
    assert.ok(Array.isArray(claim.body.items));
  });

  test('the depth limit counts the whole body, and brackets inside strings do not count', async () => {
    // The body object is one level: the payload may nest 63 more.
    const atLimit = await post(`${d.url}/v1/requests`, `{"payload":${nested(63)},"callback_url":"https://example.com/hook"}`);
    assert.equal(atLimit.status, 202, JSON.stringify(atLimit.body));
    const over = await post(`${d.url}/v1/requests`, `{"payload":${nested(64)},"callback_url":"https://example.com/hook"}`);
    assert.equal(over.status, 400);
    assert.equal(over.body.error.code, 'INTAKE_JSON_TOO_DEEP');
    const inString = await post(`${d.url}/v1/requests`, { ...valid, payload: { s: `\\"${'[{'.repeat(5000)}` } });
    assert.equal(inString.status, 202, JSON.stringify(inString.body));
    const bad = await post(`${d.url}/v1/requests`, '{"payload":[[[');
    assert.equal(bad.body.error.code, 'INTAKE_BAD_JSON');
  });

  test('malformed HTTP answers 400 INTAKE_BAD_REQUEST in the error shape', async () => {
    const cases: [string, string][] = [
      ['garbage request line', 'GARBAGE\r\n\r\n'],
      ['invalid method', 'G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n'],
      ['invalid HTTP version', 'GET /healthz HTTP/9.Z\r\nHost: x\r\n\r\n'],
      ['header line without a colon', 'GET /healthz HTTP/1.1\r\nHost x\r\n\r\n'],
      ['bad percent-encoding in the URL', 'GET /v1/requests/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
      ['Content-Length and Transfer-Encoding together', 'POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ];
    for (const [what, data] of cases) assertRefused(await rawExchange(d.url, data), 400, 'INTAKE_BAD_REQUEST', what);
  });

  test('a truncated body (the client half-closes mid-body) answers 400 INTAKE_BAD_REQUEST', async () => {
    const head = 'POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';
    assertRefused(await rawExchange(d.url, `${head}Content-Length: 100\r\n\r\n{"payload":`, { halfClose: true }), 400, 'INTAKE_BAD_REQUEST', 'content-length body');
    assertRefused(await rawExchange(d.url, `${head}Transfer-Encoding: chunked\r\n\r\n5\r\n{"pay`, { halfClose: true }), 400, 'INTAKE_BAD_REQUEST', 'chunked body');
  });

  test('headers over --max-header-bytes or --max-header-count answer 431 INTAKE_HEADERS_TOO_LARGE', async () => {
    const big = await rawExchange(d.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`);
    assertRefused(big, 431, 'INTAKE_HEADERS_TOO_LARGE', 'one 10 KB header');
    const longUrl = await rawExchange(d.url, `GET /healthz?${'q'.repeat(10_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertRefused(longUrl, 431, 'INTAKE_HEADERS_TOO_LARGE', 'a 10 KB request line');
    const headers = (n: number) => `GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${Array.from({ length: n - 2 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`;
    assertRefused(await rawExchange(d.url, headers(HEADER_COUNT + 1)), 431, 'INTAKE_HEADERS_TOO_LARGE', `${HEADER_COUNT + 1} headers`);
    assertRefused(await rawExchange(d.url, headers(500)), 431, 'INTAKE_HEADERS_TOO_LARGE', '500 headers');
    const repeated = `GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${'X-Same: v\r\n'.repeat(HEADER_COUNT)}\r\n`;
    assertRefused(await rawExchange(d.url, repeated), 431, 'INTAKE_HEADERS_TOO_LARGE', 'one name repeated');
    const atLimit = await rawExchange(d.url, headers(HEADER_COUNT));
    assert.equal(atLimit.status, 200, `${HEADER_COUNT} headers pass: ${atLimit.text.slice(0, 200)}`);
  });

  test('a path segment over the router limit answers 414 INTAKE_URL_TOO_LONG', async () => {
    const r = await rawExchange(d.url, `GET /v1/requests/${'a'.repeat(150)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assertRefused(r, 414, 'INTAKE_URL_TOO_LONG', 'a 150-character id');
  });

  test('slow clients are cut off with 408 INTAKE_REQUEST_TIMEOUT: headers never finished, a body slower than the request timeout, a silent connection', async () => {
    const before = await metric(d.url, 'intake_http_client_errors_total{code="INTAKE_REQUEST_TIMEOUT"}');
    const headers = slowClient(d.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', { everyMs: 100 });
    const body = slowClient(d.url, 'POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"payload":"', { everyMs: 100 });
    const silent = rawConnect(d.url).then((s) => collect(s));
    assertRefused(await headers, 408, 'INTAKE_REQUEST_TIMEOUT', 'headers a byte at a time');
    assertRefused(await body, 408, 'INTAKE_REQUEST_TIMEOUT', 'body a byte at a time');
    assertRefused(await silent, 408, 'INTAKE_REQUEST_TIMEOUT', 'a connection that sends nothing');
    // Every answer above came with the server closing the connection (the clients never stop).
    for (const a of [await headers, await body, await silent]) assert.notEqual(a.end, 'waited');
    assert.ok((await metric(d.url, 'intake_http_client_errors_total{code="INTAKE_REQUEST_TIMEOUT"}')) >= before + 3);
  });

  test('a slowloris of 50 connections is cut off by the headers timeout while a normal client keeps getting 202', async () => {
    const ATTACKERS = 50;
    let attacking = true;
    const cutOff: RawAnswer[] = [];
    let open = 0;
    // Each attacker keeps one connection open, sending a header a byte at a time and never
    // finishing; when the node cuts it off it connects again, as a real attacker would.
    const attacker = async () => {
      while (attacking) {
        open++;
        const a = await slowClient(d.url, 'POST /v1/requests HTTP/1.1\r\nHost: x\r\nX-Slowloris: ', { everyMs: 100, waitMs: 30_000 }).finally(() => open--);
        cutOff.push(a);
      }
    };
    const attack = Array.from({ length: ATTACKERS }, attacker);
    // The normal client starts once the first wave is cut off: the attack has held the node's
    // connections for a whole headers timeout by then, and keeps doing so.
    await waitFor('first wave cut off', () => cutOff.length >= ATTACKERS, 30_000);
    let accepted = 0;
    const openWhenServed: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await post(`${d.url}/v1/requests`, { ...valid, payload: { i } });
      assert.equal(r.status, 202, `normal request ${i} during the attack: ${JSON.stringify(r.body)}`);
      openWhenServed.push(open);
      accepted++;
    }
    attacking = false;
    await Promise.all(attack);
    assert.equal(accepted, 20);
    assert.ok(cutOff.length >= ATTACKERS, `${cutOff.length} cut off`);
    assert.ok(Math.max(...openWhenServed) > 0, 'the attack was under way while the normal client was served');
    for (const a of cutOff) assertRefused(a, 408, 'INTAKE_REQUEST_TIMEOUT', 'slowloris connection');
    assert.equal(cutOff.filter((a) => a.end === 'waited').length, 0, 'every slowloris connection was closed by the node');
  });
});

describe('abuse limits: --max-connections', () => {
  const tmp = tempDir();
  let d: Daemon;
  const MAX = 4;
  const healthz = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

  before(async () => {
    d = await startDaemon({ spool: join(tmp.path, 'spool'), db: `sqlite:${join(tmp.path, 'intake.db')}`, args: ['--max-connections', String(MAX)] });
  });
  after(async () => {
    await d.kill('SIGTERM');
    tmp.cleanup();
  });

  test('over the limit a connection is closed unanswered; below it again the node answers', async () => {
    // MAX keep-alive connections the node has surely accepted: each got an answer.
    const held = await Promise.all(
      Array.from({ length: MAX }, async () => {
        const s = await rawConnect(d.url);
        const first = new Promise<string>((resolve) => s.once('data', (b: Buffer) => resolve(b.toString('utf8'))));
        s.on('error', () => undefined);
        s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.match(await first, /^HTTP\/1\.1 200 /);
        return s;
      }),
    );
    const refused = await rawExchange(d.url, healthz);
    assert.equal(refused.status, null, `over the limit: ${refused.text.slice(0, 200)}`);
    assert.equal(refused.text, '', 'nothing is sent on a refused connection');
    assert.notEqual(refused.end, 'waited', 'the node closed the connection');

    held[0]!.destroy();
    const served = await waitFor('an answer once below the limit', async () => {
      const a = await rawExchange(d.url, healthz);
      return a.status === 200 ? a : null;
    });
    assert.equal(served?.status, 200);
    const metrics = await rawExchange(d.url, 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(metrics.text, /intake_http_connections_dropped_total [1-9]/);
    assert.match(await outputOnceLogged(d, /connections refused: over --max-connections/), /connections refused: over --max-connections/);
    for (const s of held) s.destroy();
  });
});

describe('abuse limits: configuration', () => {
  test('a limit out of range, or a headers timeout above the request timeout, stops `intake start` with INTAKE_BAD_CONFIG', async () => {
    const tmp = tempDir();
    try {
      const base = ['start', '--port', '0', '--spool', join(tmp.path, 'spool'), '--db', `sqlite:${join(tmp.path, 'intake.db')}`];
      const bad: [string[], RegExp][] = [
        [['--headers-timeout-ms', '5000', '--request-timeout-ms', '1000'], /--headers-timeout-ms \(INTAKE_HEADERS_TIMEOUT_MS\) \(5000\) must not be above --request-timeout-ms \(INTAKE_REQUEST_TIMEOUT_MS\) \(1000\)/],
        [['--max-json-depth', '0'], /--max-json-depth \(INTAKE_MAX_JSON_DEPTH\) must be an integer from 1 to 512/],
        [['--max-header-count', '5000'], /--max-header-count \(INTAKE_MAX_HEADER_COUNT\) must be an integer from 8 to 1000/],
        [['--max-connections', 'lots'], /--max-connections \(INTAKE_MAX_CONNECTIONS\) must be an integer/],
      ];
      for (const [args, message] of bad) {
        const r = await runCli([...base, ...args]);
        assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
      }
      const env = await runCli(base, { env: { INTAKE_MAX_HEADER_BYTES: '10' } });
      assert.equal(env.code, 1);
      assert.match(env.stderr, /INTAKE_BAD_CONFIG: --max-header-bytes \(INTAKE_MAX_HEADER_BYTES\) must be an integer from 1024/);
    } finally {
      tmp.cleanup();
    }
  });
});

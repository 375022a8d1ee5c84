// The client-facing contract on a real daemon: 202 only with an id that reaches the database,
// every kind of bad input a 4xx with {error: {code, message}} and nothing written.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

describe('POST /v1/requests and GET /v1/requests/:id', () => {
  const tmp = tempDir();
  const spool = join(tmp.path, 'spool');
  const dbPath = join(tmp.path, 'intake.db');
  let d: Daemon;

  before(async () => {
    d = await startDaemon({ spool, db: `sqlite:${dbPath}`, args: ['--body-limit-bytes', '4096', '--seal-after-ms', '100'] });
  });
  after(async () => {
    await d.kill('SIGTERM');
    tmp.cleanup();
  });

  const valid = { payload: { doc: 42 }, callback_url: 'https://example.com/hook', metadata: { team: 'a' }, lane: 'short' };

  test('a valid request is acknowledged with 202 and stored once drained', async () => {
    const r = await post(`${d.url}/v1/requests`, valid);
    assert.equal(r.status, 202);
    assert.match(r.body.id, /^[0-9a-f-]{36}$/);
    assert.equal(r.body.status_url, `/v1/requests/${r.body.id}`);
    const stored = await waitFor('request in database', async () => {
      const g = await get(`${d.url}/v1/requests/${r.body.id}`);
      return g.status === 200 ? g.body : null;
    });
    assert.deepEqual(stored.payload, valid.payload);
    assert.deepEqual(stored.metadata, valid.metadata);
    assert.equal(stored.callback_url, valid.callback_url);
    assert.equal(stored.lane, 'short');
    assert.equal(stored.status, 'pending');
  });

  test('a payload with keys named __proto__ and constructor is accepted and stored as sent', async () => {
    // The client's data, not ours to judge: these keys are legal JSON.
    const raw = '{"payload":{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},"ok":1},"callback_url":"https://example.com/hook"}';
    const r = await post(`${d.url}/v1/requests`, raw);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const stored = await waitFor('request in database', async () => {
      const g = await get(`${d.url}/v1/requests/${r.body.id}`);
      return g.status === 200 ? g.body : null;
    });
    assert.deepEqual(JSON.parse(JSON.stringify(stored.payload)), JSON.parse('{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},"ok":1}'));
    assert.ok(Object.prototype.hasOwnProperty.call(stored.payload, '__proto__'), 'the __proto__ key did not survive');
    assert.equal(({} as Record<string, unknown>).admin, undefined, 'the prototype of plain objects changed');
  });

  test('a payload with the text \\u0000 (a backslash, not the character U+0000) is accepted and stored as sent', async () => {
    const payload = { s: 'a\\u0000b', t: '\\\\u0000' };
    const r = await post(`${d.url}/v1/requests`, { ...valid, payload });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const stored = await waitFor('request in database', async () => {
      const g = await get(`${d.url}/v1/requests/${r.body.id}`);
      return g.status === 200 ? g.body : null;
    });
    assert.deepEqual(stored.payload, payload);
  });

  test('the same Idempotency-Key gives the same id and one row', async () => {
    const key = `key-${Date.now()}`;
    const a = await post(`${d.url}/v1/requests`, valid, { 'idempotency-key': key });
    const b = await post(`${d.url}/v1/requests`, valid, { 'idempotency-key': key });
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.equal(a.body.id, b.body.id);
    await waitFor('row', async () => (await get(`${d.url}/v1/requests/${a.body.id}`)).status === 200);
    const db = new Database(dbPath, { readonly: true });
    try {
      const n = db.prepare('SELECT COUNT(*) AS n FROM requests WHERE id = ?').get(a.body.id) as { n: number };
      assert.equal(n.n, 1);
    } finally {
      db.close();
    }
  });

  test('unknown ids answer 404 with an error code', async () => {
    const r = await get(`${d.url}/v1/requests/00000000-0000-7000-8000-000000000000`);
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'INTAKE_NOT_FOUND');
    const bad = await get(`${d.url}/v1/requests/not-a-uuid`);
    assert.equal(bad.status, 404);
  });

  const cases: [string, unknown, Record<string, string>, number, string][] = [
    ['bad JSON', '{"payload":', {}, 400, 'INTAKE_BAD_JSON'],
    ['empty body', '', {}, 400, 'INTAKE_BAD_JSON'],
    ['array body', [1, 2], {}, 400, 'INTAKE_BAD_REQUEST'],
    ['missing payload', { callback_url: 'https://example.com' }, {}, 400, 'INTAKE_BAD_REQUEST'],
    ['missing callback_url', { payload: 1 }, {}, 400, 'INTAKE_BAD_CALLBACK_URL'],
    ['ftp callback_url', { payload: 1, callback_url: 'ftp://example.com/x' }, {}, 400, 'INTAKE_BAD_CALLBACK_URL'],
    ['relative callback_url', { payload: 1, callback_url: '/hook' }, {}, 400, 'INTAKE_BAD_CALLBACK_URL'],
    ['callback_url with credentials', { payload: 1, callback_url: 'https://u:p@example.com/' }, {}, 400, 'INTAKE_BAD_CALLBACK_URL'],
    ['unknown field', { ...valid, extra: 1 }, {}, 400, 'INTAKE_BAD_REQUEST'],
    ['bad lane', { ...valid, lane: 'has space' }, {}, 400, 'INTAKE_BAD_REQUEST'],
    ['bad not_before', { ...valid, not_before: 'tomorrow' }, {}, 400, 'INTAKE_BAD_REQUEST'],
    ['metadata not an object', { ...valid, metadata: [1] }, {}, 400, 'INTAKE_BAD_REQUEST'],
    // U+0000 cannot be stored by PostgreSQL (jsonb nor text): refused up front, in values and keys.
    ['payload with U+0000', { ...valid, payload: { s: 'a\u0000b' } }, {}, 400, 'INTAKE_BAD_REQUEST'],
    ['payload key with U+0000', '{"payload":{"k\\u0000":1},"callback_url":"https://example.com/hook"}', {}, 400, 'INTAKE_BAD_REQUEST'],
    ['metadata with U+0000', { ...valid, metadata: { s: '\u0000' } }, {}, 400, 'INTAKE_BAD_REQUEST'],
    ['callback_url with U+0000', { ...valid, callback_url: 'https://example.com/a\u0000b' }, {}, 400, 'INTAKE_BAD_CALLBACK_URL'],
    ['Idempotency-Key too long', valid, { 'idempotency-key': 'k'.repeat(300) }, 400, 'INTAKE_BAD_IDEMPOTENCY_KEY'],
    ['body over the limit', { payload: 'x'.repeat(5000), callback_url: 'https://example.com' }, {}, 413, 'INTAKE_BODY_TOO_LARGE'],
    ['not JSON content type', 'hello', { 'content-type': 'text/plain' }, 415, 'INTAKE_UNSUPPORTED_MEDIA_TYPE'],
  ];

  test('bad input gets a 4xx with {error: {code, message}} and writes nothing', async () => {
    // Let everything accepted so far drain, so the spool is empty before the bad requests.
    // owner.json (the lock's owner) and segments.log (the segments this node acknowledged in, for
    // `intake verify`) stay; no segment may.
    const segments = () => readdirSync(join(spool, 'nodes', d.nodeId)).filter((f) => f !== 'owner.json' && f !== 'segments.log');
    await waitFor('empty spool', () => segments().length === 0);
    const db = new Database(dbPath, { readonly: true });
    const count = () => (db.prepare('SELECT COUNT(*) AS n FROM requests').get() as { n: number }).n;
    const before = count();
    try {
      for (const [name, body, headers, status, code] of cases) {
        const r = await post(`${d.url}/v1/requests`, body, headers);
        assert.equal(r.status, status, `${name}: status`);
        assert.equal(r.body?.error?.code, code, `${name}: code`);
        assert.equal(typeof r.body.error.message, 'string', `${name}: message`);
      }
      assert.deepEqual(segments(), [], 'no segment was written for refused requests');
      assert.equal(count(), before, 'no row was written for refused requests');
      assert.equal(existsSync(join(spool, 'quarantine')), false);
    } finally {
      db.close();
    }
  });

  test('unknown routes answer 404 in the same error shape; health and readiness answer', async () => {
    const r = await get(`${d.url}/v2/nothing`);
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'INTAKE_ROUTE_NOT_FOUND');
    assert.equal((await get(`${d.url}/healthz`)).status, 200);
    assert.equal((await get(`${d.url}/readyz`)).status, 200);
    const m = await fetch(`${d.url}/metrics`).then((x) => x.text());
    assert.match(m, /intake_requests_total\{outcome="accepted"\} \d+/);
  });
});

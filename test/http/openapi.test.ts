// GET /openapi.json from a real node (HTTP, spool, SQLite): a valid OpenAPI 3.1 document that
// lists every route the server registers, readable without a key; and the route schemas it is
// made from change nothing in what the routes accept or answer (the routes validate their
// own input, with their own codes, and no answer loses a field).
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { createKey } from '../../src/cluster/keys.js';
import { loadConfig } from '../../src/config.js';
import { IntakeNode } from '../../src/node/node.js';
import { waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'] as const;
const HOOK = 'https://example.com/hook';

/** fastify's `/v1/requests/:id` is OpenAPI's `/v1/requests/{id}`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

describe('GET /openapi.json', () => {
  const tmp = tempDir('intake-openapi-');
  const spool = join(tmp.path, 'spool');
  const routes: { method: string; url: string }[] = [];
  let node: IntakeNode;
  let key: string;

  // fastify announces every instance it creates on this channel before any route exists, so
  // the test sees every route the node registers, whichever file registers it.
  const onInstance = (message: unknown) => {
    const app = (message as { fastify: FastifyInstance }).fastify;
    app.addHook('onRoute', (r: RouteOptions) => {
      for (const method of [r.method].flat()) routes.push({ method, url: r.url });
    });
  };

  before(async () => {
    // With a key in the cluster every route but the public ones needs one.
    key = (await createKey(spool, { tenant: 'acme', scopes: ['submit', 'process'], lanes: null })).key;
    subscribe('fastify.initialization', onInstance);
    try {
      node = new IntakeNode(loadConfig({ port: 0, spool, db: `sqlite:${join(tmp.path, 'intake.db')}`, nodeId: 'openapi-1' }, {}), { log: pino({ level: 'silent' }) });
      await node.start();
    } finally {
      unsubscribe('fastify.initialization', onInstance);
    }
  });

  after(async () => {
    await node?.close();
    tmp.cleanup();
  });

  const call = async (method: string, path: string, body?: unknown, auth = true) => {
    const headers: Record<string, string> = auth ? { authorization: `Bearer ${key}` } : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${node.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as any };
  };

  test('is a valid OpenAPI 3.1 document, served without a key', async () => {
    const r = await call('GET', '/openapi.json', undefined, false);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(r.body.openapi, '3.1.0');
    const validator = new Validator();
    const result = await validator.validate(r.body);
    assert.deepEqual(result.errors, undefined, JSON.stringify(result.errors, null, 2));
    assert.equal(result.valid, true);
    assert.equal(validator.version, '3.1');
    // The other routes still need the key: the document opens nothing else.
    assert.equal((await call('GET', '/v1/cluster', undefined, false)).status, 401);
  });

  test('lists every route the server registers, and nothing else', async () => {
    const doc = (await call('GET', '/openapi.json')).body;
    // HEAD routes are fastify's automatic twins of the GET routes.
    const registered = routes.filter((r) => r.method !== 'HEAD').map((r) => `${r.method} ${openApiPath(r.url)}`);
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
      Object.keys(item).filter((m) => (METHODS as readonly string[]).includes(m)).map((m) => `${m.toUpperCase()} ${path}`),
    );
    assert.ok(registered.length >= 13, `only ${registered.length} routes seen: ${registered.join(', ')}`);
    assert.deepEqual([...documented].sort(), [...new Set(registered)].sort());
    console.log(`openapi: ${registered.length} routes registered, ${documented.length} operations documented`);
  });

  test('every operation says its answers, its errors in the shared shape, and its security', async () => {
    const doc = (await call('GET', '/openapi.json')).body;
    const error = doc.components.schemas.Error;
    assert.deepEqual(error.required, ['error']);
    assert.deepEqual(error.properties.error.required, ['code', 'message']);
    assert.equal(doc.components.securitySchemes.apiKey.scheme, 'bearer');
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        const statuses = Object.keys(op.responses);
        assert.ok(statuses.some((s) => s.startsWith('2')), `${where}: no success answer`);
        const errors = statuses.filter((s) => Number(s) >= 400 && op.responses[s].content?.['application/json']?.schema?.$ref === '#/components/schemas/Error');
        assert.ok(errors.length > 0, `${where}: no error answer in the {error: {code, message}} shape`);
        assert.ok(op.summary, `${where}: no summary`);
        const scope = op['x-intake-scope'];
        if (scope === 'public') assert.deepEqual(op.security, [], `${where}: public but asks for a key`);
        else {
          assert.deepEqual(op.security, [{ apiKey: [] }], `${where}: no security`);
          assert.ok(statuses.includes('401') && statuses.includes('403'), `${where}: 401/403 missing`);
        }
        if (path.includes('{id}')) assert.ok(op.parameters?.some((p: any) => p.in === 'path' && p.name === 'id' && p.required), `${where}: no id parameter`);
      }
    }
    assert.equal(doc.paths['/healthz'].get['x-intake-scope'], 'public');
    assert.equal(doc.paths['/metrics'].get['x-intake-scope'], 'admin');
    assert.equal(doc.paths['/v1/requests'].post['x-intake-scope'], 'submit');
    assert.deepEqual(doc.paths['/v1/requests'].post.requestBody.content['application/json'].schema.required, ['payload', 'callback_url']);
    assert.equal(doc.paths['/v1/requests'].post.requestBody.required, true);
    assert.equal(doc.paths['/v1/work/claim'].post.requestBody.required, false, 'a claim may come without a body');
    assert.equal(JSON.stringify(doc).includes('x-optional-body'), false);
  });

  test('the schemas validate nothing and drop nothing: the routes answer as without them', async () => {
    // An unknown field: the route's own check and message, not a schema validator's.
    const extra = await call('POST', '/v1/requests', { payload: 1, callback_url: HOOK, extra: 1 });
    assert.equal(extra.status, 400);
    assert.equal(extra.body.error.code, 'INTAKE_BAD_REQUEST');
    assert.match(extra.body.error.message, /unknown field "extra"/);
    // A string where an integer belongs is refused, not coerced.
    const claim = await call('POST', '/v1/work/claim', { limit: '5' });
    assert.equal(claim.status, 400);
    assert.match(claim.body.error.message, /limit must be an integer/);
    // A missing callback_url keeps its own code.
    assert.equal((await call('POST', '/v1/requests', { payload: 1 })).body.error.code, 'INTAKE_BAD_CALLBACK_URL');
    // Every field of a stored request comes back, each one named in the document too.
    const accepted = await call('POST', '/v1/requests', { payload: { doc: 42 }, callback_url: HOOK, metadata: { m: 1 } });
    assert.equal(accepted.status, 202);
    assert.deepEqual(Object.keys(accepted.body).sort(), ['id', 'status_url']);
    const stored = await waitFor('the request in the database', async () => {
      const r = await call('GET', `/v1/requests/${accepted.body.id}`);
      return r.status === 200 ? r.body : null;
    });
    const doc = (await call('GET', '/openapi.json')).body;
    const documented = Object.keys(doc.paths['/v1/requests/{id}'].get.responses['200'].content['application/json'].schema.properties);
    assert.deepEqual(Object.keys(stored).sort(), [...documented].sort());
    assert.deepEqual(stored.payload, { doc: 42 });
    assert.deepEqual(stored.metadata, { m: 1 });
  });
});

// Who may do what, against real daemons: API keys and their scopes, tenant walls, ids nobody
// else can compute, idempotency reuse, revocation on every node, and the open mode that only a
// loopback address (or --insecure-no-auth) allows.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { v5 as uuidv5 } from 'uuid';
import { call, createKey } from '../helpers/auth.js';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const HOOK = 'https://example.com/hook';
const HEARTBEAT_MS = 500;

describe('who may do what', () => {
  const tmp = tempDir('intake-security-');
  const spool = join(tmp.path, 'spool');
  const db = `sqlite:${join(tmp.path, 'intake.db')}`;
  let n1: Daemon;
  let n2: Daemon;
  const k: Record<string, { id: string; key: string }> = {};

  before(async () => {
    k.aSubmit = await createKey(spool, 'acme', 'submit');
    k.aProcess = await createKey(spool, 'acme', 'process');
    k.aAdmin = await createKey(spool, 'acme', 'admin');
    k.aLaneX = await createKey(spool, 'acme', 'process', 'x');
    k.bSubmit = await createKey(spool, 'globex', 'submit');
    k.bProcess = await createKey(spool, 'globex', 'process');
    k.revoked = await createKey(spool, 'acme', 'submit,process,admin');
    const r = await runCli(['keys', 'revoke', k.revoked.id, '--spool', spool]);
    assert.equal(r.code, 0, r.stderr);
    const args = ['--heartbeat-ms', String(HEARTBEAT_MS), '--dead-after-ms', '3000', '--seal-after-ms', '50', '--scan-interval-ms', '50'];
    n1 = await startDaemon({ spool, db, mode: 'both', nodeId: 'n1', args });
    n2 = await startDaemon({ spool, db, mode: 'receive', nodeId: 'n2', args });
  });
  after(async () => {
    await n1?.kill('SIGKILL');
    await n2?.kill('SIGKILL');
    tmp.cleanup();
  });

  /** POST a request as tenant A and wait until it is in the database. */
  async function submitted(key: string, body: unknown = { payload: { n: 1 }, callback_url: HOOK }, headers: Record<string, string> = {}): Promise<string> {
    const r = await call('POST', `${n1.url}/v1/requests`, { key, body, headers });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const id = r.body.id as string;
    await waitFor('the request in the database', async () => (await call('GET', `${n1.url}/v1/requests/${id}`, { key })).status === 200);
    return id;
  }

  test('every route without a key, with a malformed, unknown or revoked key: 401 in the error shape', async () => {
    const id = '0192f0c1-0000-7000-8000-000000000000';
    const routes: [string, string, unknown?][] = [
      ['POST', '/v1/requests', { payload: {}, callback_url: HOOK }],
      ['GET', `/v1/requests/${id}`],
      ['POST', '/v1/work/claim', {}],
      ['POST', `/v1/work/${id}/complete`, { lease_token: 't', result: 1 }],
      ['POST', '/v1/work/complete', { items: [{ id, lease_token: 't', result: 1 }] }],
      ['POST', `/v1/work/${id}/release`, { lease_token: 't' }],
      ['POST', '/v1/work/release', { items: [{ id, lease_token: 't' }] }],
      ['POST', `/v1/work/${id}/extend`, { lease_token: 't' }],
      ['GET', '/metrics'],
      ['GET', '/v1/cluster'],
      ['GET', '/no/such/route'],
    ];
    const bad = [undefined, 'not-a-key', `ik_0123456789abcdef_${'A'.repeat(43)}`, k.revoked!.key, `${k.aAdmin!.key}x`];
    for (const [method, path, body] of routes) {
      for (const key of bad) {
        const r = await call(method, `${n1.url}${path}`, { key, body });
        assert.equal(r.status, 401, `${method} ${path} with ${key ? 'a bad key' : 'no key'}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'INTAKE_UNAUTHORIZED');
        assert.equal(typeof r.body.error.message, 'string');
      }
    }
    // The load balancer's checks stay open.
    assert.equal((await call('GET', `${n1.url}/healthz`)).status, 200);
    assert.equal((await call('GET', `${n1.url}/readyz`)).status, 200);
  });

  test('a key of the wrong scope: 403', async () => {
    const cases: [string, string, string, unknown?][] = [
      [k.aProcess!.key, 'POST', '/v1/requests', { payload: {}, callback_url: HOOK }],
      [k.aAdmin!.key, 'POST', '/v1/requests', { payload: {}, callback_url: HOOK }],
      [k.aSubmit!.key, 'POST', '/v1/work/claim', {}],
      [k.aSubmit!.key, 'POST', '/v1/work/complete', { items: [{ id: 'x', lease_token: 't', result: 1 }] }],
      [k.aSubmit!.key, 'GET', '/metrics'],
      [k.aProcess!.key, 'GET', '/metrics'],
      [k.aSubmit!.key, 'GET', '/v1/cluster'],
      [k.aProcess!.key, 'GET', '/v1/cluster'],
      [k.aLaneX!.key, 'POST', '/v1/work/claim', { lane: 'y' }],
      [k.aLaneX!.key, 'POST', '/v1/work/claim', { lane: null }],
    ];
    for (const [key, method, path, body] of cases) {
      const r = await call(method, `${n1.url}${path}`, { key, body });
      assert.equal(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'INTAKE_FORBIDDEN');
    }
    assert.equal((await call('GET', `${n1.url}/metrics`, { key: k.aAdmin!.key })).status, 200);
  });

  test('tenants are walls: another tenant gets 404 on GET, never claims, and cannot complete or release', async () => {
    const id = await submitted(k.aSubmit!.key);
    assert.equal((await call('GET', `${n1.url}/v1/requests/${id}`, { key: k.bSubmit!.key })).status, 404);
    // B's process key sees nothing to claim while A's request is pending.
    const bClaim = await call('POST', `${n1.url}/v1/work/claim`, { key: k.bProcess!.key, body: { limit: 100 } });
    assert.equal(bClaim.status, 200);
    assert.deepEqual(bClaim.body.items, []);
    const aClaim = await call('POST', `${n1.url}/v1/work/claim`, { key: k.aProcess!.key, body: { limit: 100 } });
    const item = (aClaim.body.items as { id: string; lease_token: string }[]).find((w) => w.id === id);
    assert.ok(item, `A claims its own request: ${JSON.stringify(aClaim.body)}`);
    // Even with A's lease token, B cannot complete, release or extend it: not found.
    for (const [path, body] of [
      [`/v1/work/${id}/complete`, { lease_token: item.lease_token, result: { forged: true } }],
      [`/v1/work/${id}/release`, { lease_token: item.lease_token }],
      [`/v1/work/${id}/extend`, { lease_token: item.lease_token, lease_seconds: 60 }],
    ] as const) {
      const r = await call('POST', `${n1.url}${path}`, { key: k.bProcess!.key, body });
      assert.equal(r.status, 404, `${path}: ${JSON.stringify(r.body)}`);
    }
    const batch = await call('POST', `${n1.url}/v1/work/complete`, { key: k.bProcess!.key, body: { items: [{ id, lease_token: item.lease_token, result: { forged: true } }] } });
    assert.equal(batch.status, 200);
    assert.equal(batch.body.items[0].error.code, 'INTAKE_NOT_FOUND');
    // A completes it; the stored result is A's.
    const done = await call('POST', `${n1.url}/v1/work/${id}/complete`, { key: k.aProcess!.key, body: { lease_token: item.lease_token, result: { ok: 1 } } });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    const row = await call('GET', `${n1.url}/v1/requests/${id}`, { key: k.aSubmit!.key });
    assert.deepEqual(row.body.result, { ok: 1 });
  });

  test('the idempotency hijack: another tenant with the same key gets its own id and cannot read the first', async () => {
    const headers = { 'idempotency-key': 'order-1' };
    const aId = await submitted(k.aSubmit!.key, { payload: { who: 'a' }, callback_url: HOOK }, headers);
    const b = await call('POST', `${n1.url}/v1/requests`, { key: k.bSubmit!.key, body: { payload: { who: 'b' }, callback_url: 'https://attacker.example/hook' }, headers });
    assert.equal(b.status, 202);
    assert.notEqual(b.body.id, aId, 'the same key in another tenant is another request');
    assert.equal((await call('GET', `${n1.url}/v1/requests/${aId}`, { key: k.bSubmit!.key })).status, 404);
    // The id is not the old public formula (UUIDv5 of tenant and key): nobody can compute it.
    assert.notEqual(aId, uuidv5('acme\norder-1', '6f1d4c52-2d1e-4d8a-9a53-8f3b1f0c7a10'));
    // A retry through another node gets the same id (the secret is shared under the spool root).
    const retry = await call('POST', `${n2.url}/v1/requests`, { key: k.aSubmit!.key, body: { payload: { who: 'a' }, callback_url: HOOK }, headers });
    assert.equal(retry.status, 202);
    assert.equal(retry.body.id, aId);
    const row = await call('GET', `${n1.url}/v1/requests/${aId}`, { key: k.aSubmit!.key });
    assert.deepEqual(row.body.payload, { who: 'a' });
    assert.equal(row.body.callback_url, HOOK);
  });

  test('an idempotency key reused with another body answers 422 on the node that took the first; the same body is a retry', async () => {
    const headers = { 'idempotency-key': 'invoice-7' };
    const first = await call('POST', `${n2.url}/v1/requests`, { key: k.aSubmit!.key, body: { payload: { amount: 1 }, callback_url: HOOK }, headers });
    assert.equal(first.status, 202);
    const other = await call('POST', `${n2.url}/v1/requests`, { key: k.aSubmit!.key, body: { payload: { amount: 2 }, callback_url: HOOK }, headers });
    assert.equal(other.status, 422, JSON.stringify(other.body));
    assert.equal(other.body.error.code, 'INTAKE_IDEMPOTENCY_CONFLICT');
    const again = await call('POST', `${n2.url}/v1/requests`, { key: k.aSubmit!.key, body: { payload: { amount: 1 }, callback_url: HOOK }, headers });
    assert.equal(again.status, 202);
    assert.equal(again.body.id, first.body.id);
  });

  test('an idempotency key reused with another body through another node: the first stands, the second is quarantined as idempotency-conflict', async () => {
    const headers = { 'idempotency-key': 'shipment-9' };
    const id = await submitted(k.aSubmit!.key, { payload: { to: 'first' }, callback_url: HOOK }, headers);
    // n2 never saw the first body: it accepts the second (it cannot know), and the drain finds it.
    const second = await call('POST', `${n2.url}/v1/requests`, { key: k.aSubmit!.key, body: { payload: { to: 'second' }, callback_url: HOOK }, headers });
    assert.equal(second.status, 202);
    assert.equal(second.body.id, id);
    const reports = join(spool, 'quarantine');
    const report = await waitFor('the conflict in quarantine', (): { bin: Buffer } | null => {
      for (const f of (existsSync(reports) ? readdirSync(reports) : []).filter((x) => x.endsWith('.json'))) {
        const r = JSON.parse(readFileSync(join(reports, f), 'utf8')) as { reason: string; detail?: string };
        if (r.reason === 'idempotency-conflict' && r.detail?.includes(id)) return { bin: readFileSync(join(reports, f.replace(/\.json$/, '.bin'))) };
      }
      return null;
    });
    assert.ok(report!.bin.includes(Buffer.from('second')) && !report!.bin.includes(Buffer.from('first')), 'the quarantined bytes are the second request');
    const row = await call('GET', `${n1.url}/v1/requests/${id}`, { key: k.aSubmit!.key });
    assert.deepEqual(row.body.payload, { to: 'first' }, 'the first body stands');
    // The drainer counts the quarantine once the report is durable, after a reader can see it.
    await waitFor('the quarantine counted', async () =>
      /^intake_quarantine_total\{reason="idempotency-conflict"\} 1$/m.test((await call('GET', `${n1.url}/metrics`, { key: k.aAdmin!.key })).body as string),
    );
  });

  test('a revoked key is refused by every node within two heartbeats', async (t) => {
    const victim = await createKey(spool, 'acme', 'submit');
    const body = { payload: {}, callback_url: HOOK };
    // A new key is accepted by both nodes (within a heartbeat of its creation).
    for (const n of [n1, n2]) {
      await waitFor(`${n.nodeId} accepts the new key`, async () => (await call('POST', `${n.url}/v1/requests`, { key: victim.key, body })).status === 202, 10 * HEARTBEAT_MS);
    }
    const r = await runCli(['keys', 'revoke', victim.id, '--spool', spool]);
    assert.equal(r.code, 0, r.stderr);
    const t0 = performance.now();
    for (const n of [n1, n2]) {
      await waitFor(`${n.nodeId} refuses the revoked key`, async () => (await call('POST', `${n.url}/v1/requests`, { key: victim.key, body })).status === 401, 2 * HEARTBEAT_MS + 1000);
    }
    const ms = Math.round(performance.now() - t0);
    const ls = JSON.parse((await runCli(['keys', 'ls', '--json', '--spool', spool])).stdout) as { id: string; revoked_at: string | null; hash?: string }[];
    const entry = ls.find((x) => x.id === victim.id);
    assert.ok(entry?.revoked_at, 'keys ls shows the revocation');
    assert.equal(entry?.hash, undefined, 'keys ls never prints a hash');
    t.diagnostic(`revocation refused on both nodes ${ms} ms after the revoke command returned (heartbeat ${HEARTBEAT_MS} ms)`);
  });

  test('GET /v1/cluster (admin): every node, its mode, the leader, as the node sees them', async () => {
    const view = await waitFor('both nodes live in the view', async () => {
      const r = await call('GET', `${n2.url}/v1/cluster`, { key: k.aAdmin!.key });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const nodes = r.body.nodes as { id: string; live: boolean }[];
      return nodes.length === 2 && nodes.every((n) => n.live) ? r.body : null;
    });
    const byId = new Map((view.nodes as { id: string; mode: string; leader: boolean }[]).map((n) => [n.id, n]));
    assert.equal(byId.get('n1')?.mode, 'both');
    assert.equal(byId.get('n2')?.mode, 'receive');
    assert.equal(view.leader, 'n1', 'the longest-running node leads');
    assert.equal(byId.get('n1')?.leader, true);
  });

  test('readiness per role: a receive node is ready for ingest only, a both node for both', async () => {
    assert.equal((await call('GET', `${n2.url}/readyz?role=ingest`)).status, 200);
    assert.equal((await call('GET', `${n2.url}/readyz?role=work`)).status, 503);
    assert.equal((await call('GET', `${n1.url}/readyz?role=work`)).status, 200);
    assert.equal((await call('GET', `${n1.url}/readyz?role=nonsense`)).status, 400);
  });
});

describe('open mode: only on loopback or when asked for', () => {
  test("the README's first run works without a key on 127.0.0.1", async () => {
    const tmp = tempDir('intake-open-');
    const d = await startDaemon({ spool: join(tmp.path, 'spool'), db: `sqlite:${join(tmp.path, 'intake.db')}`, args: ['--seal-after-ms', '50'] });
    try {
      const r = await call('POST', `${d.url}/v1/requests`, { body: { payload: { doc: 42 }, callback_url: HOOK }, headers: { 'idempotency-key': 'order-1' } });
      assert.equal(r.status, 202);
      await waitFor('stored', async () => (await call('GET', `${d.url}/v1/requests/${r.body.id}`)).status === 200);
      assert.equal((await call('POST', `${d.url}/v1/work/claim`, { body: {} })).status, 200);
      assert.equal((await call('GET', `${d.url}/metrics`)).status, 200);
    } finally {
      await d.kill('SIGTERM');
      tmp.cleanup();
    }
  });

  test('a node on a non-loopback address without keys refuses to start, saying why; --insecure-no-auth starts it', async () => {
    const tmp = tempDir('intake-open-public-');
    const spool = join(tmp.path, 'spool');
    const db = `sqlite:${join(tmp.path, 'intake.db')}`;
    try {
      await assert.rejects(startDaemon({ spool, db, args: ['--host', '0.0.0.0'] }), (err: Error) => {
        assert.match(err.message, /refusing to listen on 0\.0\.0\.0 without API keys/);
        assert.match(err.message, /INTAKE_BAD_CONFIG|--insecure-no-auth/);
        return true;
      });
      const d = await startDaemon({ spool, db, args: ['--host', '0.0.0.0', '--insecure-no-auth'] });
      await d.kill('SIGTERM');
      // Once a key exists, the same address needs no flag: every request needs a key instead.
      await createKey(spool, 'acme', 'submit');
      const e = await startDaemon({ spool, db, args: ['--host', '0.0.0.0'] });
      try {
        const url = e.url.replace('0.0.0.0', '127.0.0.1');
        assert.equal((await call('POST', `${url}/v1/requests`, { body: { payload: {}, callback_url: HOOK } })).status, 401);
      } finally {
        await e.kill('SIGTERM');
      }
    } finally {
      tmp.cleanup();
    }
  });
});

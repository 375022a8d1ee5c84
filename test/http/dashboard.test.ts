// The dashboard against a real node with API keys, a real callback receiver, and Debian's
// chromium driven by playwright-core: the data endpoints need an admin key (401 without,
// 403 with another scope), the page asks for the key, shows the node, its mode, the rates and
// the schema without a console error, and its replay button moves a dead callback back to be
// retried, so that it is delivered once the receiver accepts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { call, createKey } from '../helpers/auth.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { sleep, waitFor } from '../helpers/http.js';
import { startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/tmp.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('the dashboard', () => {
  const tmp = tempDir('intake-dashboard-');
  const spool = join(tmp.path, 'spool');
  let d: Daemon;
  let receiver: TestReceiver;
  let failing = true;
  let browser: BrowserContext | null = null;
  const k: Record<string, string> = {};
  let requestId = '';
  const webhookId = () => `msg_${requestId}`;
  const answers = () => receiver.requests.filter((r) => r.headers['webhook-id'] === webhookId());

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install the Debian package chromium (.ci/run does)`);
    // Keys first: the node then runs with keys from its start.
    k.admin = (await createKey(spool, 'ops', 'admin')).key;
    k.submit = (await createKey(spool, 'acme', 'submit')).key;
    k.process = (await createKey(spool, 'acme', 'process')).key;
    receiver = await startReceiver((_req, res) => res.writeHead(failing ? 503 : 200).end());
    d = await startDaemon({
      spool,
      db: `sqlite:${join(tmp.path, 'intake.db')}`,
      args: ['--seal-after-ms', '100', '--scan-interval-ms', '100'],
      startTimeoutMs: 60_000,
      // One attempt and the callback is dead; retried spool entries are looked at every 100 ms.
      env: { INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32', INTAKE_CALLBACK_MAX_ATTEMPTS: '1', INTAKE_CALLBACK_POLL_MS: '100', INTAKE_CALLBACK_TIMEOUT_MS: '5000' },
    });
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    await d?.kill('SIGKILL');
    await receiver?.close();
    tmp.cleanup();
  });

  test('the page is public, its data needs an admin key: 401 without one, 403 with another scope', async () => {
    for (const path of ['/dashboard', '/dashboard/app.js', '/dashboard/style.css']) {
      const r = await call('GET', `${d.url}${path}`);
      assert.equal(r.status, 200, path);
    }
    const auth = await call('GET', `${d.url}/dashboard/auth`);
    assert.deepEqual(auth.body, { key_required: true });
    const data = [
      ['GET', '/v1/cluster'],
      ['GET', '/v1/callbacks/dead'],
      ['GET', '/v1/callbacks/waiting'],
      ['POST', '/v1/callbacks/msg_00000000-0000-7000-8000-000000000000/replay'],
    ] as const;
    for (const [method, path] of data) {
      const none = await call(method, `${d.url}${path}`);
      assert.equal(none.status, 401, `${method} ${path} without a key`);
      assert.equal(none.body.error.code, 'INTAKE_UNAUTHORIZED');
      const submit = await call(method, `${d.url}${path}`, { key: k.submit });
      assert.equal(submit.status, 403, `${method} ${path} with a submit key`);
      assert.equal(submit.body.error.code, 'INTAKE_FORBIDDEN');
      const process = await call(method, `${d.url}${path}`, { key: k.process });
      assert.equal(process.status, 403, `${method} ${path} with a process key`);
    }
    const missing = await call('POST', `${d.url}${data[3][1]}`, { key: k.admin });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'INTAKE_NOT_FOUND');
    const outside = await call('POST', `${d.url}/v1/callbacks/..%2F..%2Fcluster%2Fkeys/replay`, { key: k.admin });
    assert.equal(outside.status, 404, 'a webhook-id that leaves dead/ is not looked up');
    const badLimit = await call('GET', `${d.url}/v1/callbacks/dead?limit=0`, { key: k.admin });
    assert.equal(badLimit.status, 400);
    const cluster = await call('GET', `${d.url}/v1/cluster`, { key: k.admin });
    assert.equal(cluster.status, 200);
    assert.deepEqual(cluster.body.schema.current, cluster.body.schema.latest);
    const self = cluster.body.nodes.find((n: { id: string }) => n.id === d.nodeId);
    assert.equal(self.mode, 'both');
    assert.equal(typeof self.counters.uptime_ms, 'number');
    // The books: taken at the node's start by the node itself (its one save-mode node).
    const books = await waitFor('the first books', async () => (await call('GET', `${d.url}/v1/cluster`, { key: k.admin })).body.books, 20_000, 100);
    assert.equal(books.taken_by, d.nodeId);
    assert.equal(books.balanced, true, JSON.stringify(books.differences));
    assert.equal(books.total.accepted, books.total.stored + books.total.in_spool + books.total.quarantined);
  });

  /** A request completed whose callback the (failing) receiver refuses once: dead. Returns its listing. */
  async function deadCallback(n: number): Promise<{ requestId: string; listed: any }> {
    const r = await call('POST', `${d.url}/v1/requests`, { key: k.submit, body: { payload: { n }, callback_url: `${receiver.url}/hook/${n}`, lane: `dead-${n}` } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const id = r.body.id as string;
    const item = await waitFor('the request claimed', async () => (await call('POST', `${d.url}/v1/work/claim`, { key: k.process, body: { limit: 1, lane: `dead-${n}` } })).body.items?.[0], 20000, 100);
    const done = await call('POST', `${d.url}/v1/work/${id}/complete`, { key: k.process, body: { lease_token: item.lease_token, result: { ok: true } } });
    assert.equal(done.status, 200);
    const listed = await waitFor('the callback dead', async () => {
      const l = await call('GET', `${d.url}/v1/callbacks/dead`, { key: k.admin });
      return l.body.callbacks.find((c: { id: string }) => c.id === `msg_${id}`);
    }, 20000, 100);
    return { requestId: id, listed };
  }
  const sentTo = (id: string) => receiver.requests.filter((r) => r.headers['webhook-id'] === `msg_${id}`).length;

  test('a callback the receiver refuses is dead and listed', async () => {
    const { requestId: id, listed } = await deadCallback(1);
    requestId = id;
    assert.equal(listed.request_id, requestId);
    assert.equal(listed.tenant, 'acme');
    assert.equal(listed.attempts, 1);
    assert.equal(listed.last_status, 503);
    assert.equal(listed.due_at, null);
    assert.equal(answers().length, 1);
  });

  test('two replays of one dead callback at once: one is taken (202), the other finds nothing (404), one attempt follows', async (t) => {
    const { requestId: id } = await deadCallback(2);
    const url = `${d.url}/v1/callbacks/msg_${id}/replay`;
    const both = await Promise.all([call('POST', url, { key: k.admin }), call('POST', url, { key: k.admin })]);
    assert.deepEqual(both.map((r) => r.status).sort(), [202, 404], JSON.stringify(both.map((r) => r.body)));
    // The receiver still refuses: the one retry makes it dead again, after exactly one more attempt.
    await waitFor('the replayed callback dead again', async () => {
      const l = await call('GET', `${d.url}/v1/callbacks/dead`, { key: k.admin });
      return l.body.callbacks.find((c: { id: string; attempts: number }) => c.id === `msg_${id}` && c.attempts === 2);
    }, 20000, 100);
    await sleep(1000); // a second retry entry would have been sent by now (polled every 100 ms)
    t.diagnostic(`attempts after two simultaneous replays: ${sentTo(id)}`);
    assert.equal(sentTo(id), 2, 'the first attempt and one replay');
  });

  test('in chromium: the key is asked for, the node and its mode shown, and replay delivers the dead callback', async () => {
    // A fresh profile, removed with the test's folder after the browser is closed.
    const profile = join(tmp.path, 'chromium-profile');
    mkdirSync(profile);
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
    const page: Page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(30_000);
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

    await page.goto(`${d.url}/dashboard`);
    await page.locator('#key-form').waitFor({ state: 'visible' });
    await page.fill('#key', k.admin!);
    await page.click('#key-form button[type=submit]');

    const row = page.locator(`#nodes tr[data-node="${d.nodeId}"]`);
    await row.waitFor();
    await page.locator('#key-form').waitFor({ state: 'hidden' });
    assert.equal(await page.locator('#forget').isVisible(), true, 'a page opened with a key offers to forget it');
    assert.equal(await row.locator('td.mode').textContent(), 'both');
    assert.match((await page.textContent('#schema')) ?? '', /^schema v\d+$/);
    assert.match((await page.textContent('#summary')) ?? '', /^1 live node of 1/);
    // The books this node took at its start (intake verify's figures) balance.
    await page.locator('#books', { hasText: /^books balance$/ }).waitFor();
    assert.match((await page.getAttribute('#books', 'title')) ?? '', /^taken .* by .* in \d+ ms\naccepted \d+ = stored \d+ \+ in spool \d+ \+ quarantined \d+\ncallbacks: completed/);

    // Rates from the heartbeats' running totals: requests sent now show as ingest.
    let sent = 0;
    const ingest = page.locator('[data-rate=ingest] .rate-value');
    await waitFor('the page to show an ingest rate', async () => {
      const r = await call('POST', `${d.url}/v1/requests`, { key: k.submit, body: { payload: { n: sent }, callback_url: `${receiver.url}/later` } });
      assert.equal(r.status, 202);
      sent++;
      const shown = Number(await ingest.textContent());
      return shown > 0;
    }, 40_000, 200);

    // The dead callback, and its replay once the receiver is back.
    const dead = page.locator(`#dead tr[data-callback="${webhookId()}"]`);
    await dead.waitFor();
    failing = false;
    await dead.locator('button.replay').click();
    await dead.waitFor({ state: 'detached' });
    await waitFor('the replayed callback delivered', () => answers().some((a) => a.headers['webhook-id'] === webhookId()) && answers().length === 2, 20_000, 50);
    await waitFor('delivered in the database', async () => {
      const g = await call('GET', `${d.url}/v1/requests/${requestId}`, { key: k.submit });
      return g.body.callback?.status === 'delivered';
    }, 20_000, 100);
    const left = await call('GET', `${d.url}/v1/callbacks/dead`, { key: k.admin });
    assert.ok(!left.body.callbacks.some((c: { id: string }) => c.id === webhookId()), 'the replayed callback is still dead');
    assert.equal(left.body.total, 1, 'the other dead callback stays');
    assert.deepEqual(errors, []);
    console.log(`dashboard: ${sent} requests sent until the page showed an ingest rate of ${await ingest.textContent()}/s; dead callback replayed from the page, attempts ${answers().length} (503, then 200)`);
  });

  test("the heartbeat's running totals count what happened: accepted, drained, completed, callbacks", async (t) => {
    // Two requests completed (the first callback failed once, then was delivered after the
    // replay; the second failed twice), the rest accepted and drained; the totals reach /v1/cluster with the next heartbeat.
    const c = await waitFor('the totals in the heartbeat', async () => {
      const r = await call('GET', `${d.url}/v1/cluster`, { key: k.admin });
      const n = r.body.nodes.find((x: { id: string }) => x.id === d.nodeId);
      const x = n?.counters;
      return x && x.callbacks_delivered >= 1 && x.drained >= x.accepted ? x : null;
    }, 20_000, 200);
    t.diagnostic(JSON.stringify(c));
    assert.ok(c.accepted >= 2, `accepted ${c.accepted}`);
    assert.equal(c.drained, c.accepted, 'every accepted request drained, none twice');
    assert.equal(c.completed, 2);
    assert.equal(c.callbacks_failed, 3, 'the 503s: one for the first callback, two for the second');
    assert.equal(c.callbacks_delivered, 1, 'the replayed callback');
  });
});

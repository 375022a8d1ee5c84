// `intake verify` and the metrics of a real node after real traffic: requests (a client retry
// with the same Idempotency-Key among them), claims, completes, callbacks delivered and failed.
// The books balance (exit 0) and add up to what was sent; then each injected difference (a
// segment file removed from the spool, a row deleted from the database, a quarantine report
// removed) makes verify exit 1 naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Books } from '../../src/drain/books.js';
import { archiveDir, nodeDir } from '../../src/spool/layout.js';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, waitFor } from '../helpers/http.js';
import { booksFigures, booksMetrics, sample } from '../helpers/metrics.js';
import { startReceiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/tmp.js';
import { WORK_ARGS, WORK_ENV } from '../helpers/work.js';

type Verified = { code: number | null; books: Books & { balanced: boolean }; text: string };

async function verify(spool: string, db: string): Promise<Verified> {
  const j = await runCli(['verify', '--spool', spool, '--db', db, '--json']);
  assert.ok(j.stdout.startsWith('{'), `verify --json printed: ${j.stdout}${j.stderr}`);
  const t = await runCli(['verify', '--spool', spool, '--db', db]);
  assert.equal(t.code, j.code, 'the table and --json agree on the exit code');
  return { code: j.code, books: JSON.parse(j.stdout) as Verified['books'], text: t.stdout };
}

async function claimAndComplete(d: Daemon, n: number): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < n) {
    const c = await post(`${d.url}/v1/work/claim`, { limit: n - ids.length });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    for (const it of c.body.items as { id: string; lease_token: string }[]) {
      const r = await post(`${d.url}/v1/work/${it.id}/complete`, { lease_token: it.lease_token, result: { ok: true } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      ids.push(it.id);
    }
  }
  return ids;
}

test('intake verify balances the books after traffic, the node exports every metric, and each injected difference is named', { timeout: 180_000 }, async () => {
  const tmp = tempDir('intake-verify-');
  const spool = join(tmp.path, 'spool');
  const dbPath = join(tmp.path, 'intake.db');
  const db = `sqlite:${dbPath}`;
  // Callbacks to /ok are delivered, callbacks to /fail are parked (503).
  const hooks = await startReceiver((req, res) => res.writeHead(req.path.startsWith('/ok') ? 204 : 503).end());
  // --archive: drained segments are kept, so one can be put back as if its delete had not happened.
  // --books-interval-ms: the books as metrics, taken twice a second.
  let d: Daemon | null = await startDaemon({ spool, db, nodeId: 'verify-a', args: [...WORK_ARGS, '--archive', '--books-interval-ms', '500'], env: { ...WORK_ENV, INTAKE_CALLBACK_BASE_MS: '3600000', INTAKE_CALLBACK_CAP_MS: '86400000' } });
  try {
    // 10 plain requests (3 of them with a failing callback), and one keyed request sent 3 times.
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await post(`${d.url}/v1/requests`, { payload: { i }, callback_url: `${hooks.url}/${i < 7 ? 'ok' : 'fail'}` });
      assert.equal(r.status, 202);
      ids.push(r.body.id);
    }
    for (let i = 0; i < 3; i++) {
      const r = await post(`${d.url}/v1/requests`, { payload: { keyed: true }, callback_url: `${hooks.url}/ok` }, { 'idempotency-key': 'order-1' });
      assert.equal(r.status, 202);
      if (i === 0) ids.push(r.body.id);
      else assert.equal(r.body.id, ids[10], 'a retry gets the same id');
    }
    for (const id of ids) await waitFor(`request ${id} stored`, async () => (await get(`${d!.url}/v1/requests/${id}`)).status === 200, 30_000);
    const completed = await claimAndComplete(d, ids.length);
    await waitFor('every callback attempted', () => hooks.requests.length >= completed.length, 30_000);
    // The receiver records a send before it answers: the node counts it once the answer is back
    // and records the outcome at the end of its batch, after both counters.
    for (const id of completed) {
      await waitFor(`the callback of ${id} delivered or parked`, async () =>
        ['delivered', 'parked'].includes((await get(`${d!.url}/v1/requests/${id}`)).body.callback?.status), 30_000);
    }

    // Metrics, from the node itself.
    const text: string = await waitFor(
      'the backlog gauges refreshed after the traffic',
      async () => {
        const m = (await get(`${d!.url}/metrics`)).body as string;
        return sample(m, 'intake_outbox_callbacks', 'status="parked"') === 3 ? m : '';
      },
      30_000,
      250,
    );
    const figures = {
      accepted: sample(text, 'intake_requests_total', 'outcome="accepted"'),
      delivered: sample(text, 'intake_callbacks_total', 'outcome="delivered"'),
      parked: sample(text, 'intake_callbacks_total', 'outcome="parked"'),
      failed5xx: sample(text, 'intake_callback_failures_total', 'class="http_5xx"'),
      sendCount: sample(text, 'intake_callback_send_seconds_count'),
      claims: sample(text, 'intake_work_items_total', 'op="claim",outcome="ok"'),
      completes: sample(text, 'intake_work_items_total', 'op="complete",outcome="ok"'),
      pending: sample(text, 'intake_work_requests', 'status="pending"'),
      outboxParked: sample(text, 'intake_outbox_callbacks', 'status="parked"'),
      loopP99: sample(text, 'intake_event_loop_delay_seconds', 'quantile="0.99"'),
    };
    console.log(`metrics after traffic: ${JSON.stringify(figures)}`);
    // Retry delays are drawn with full jitter (from 0 up), so a parked callback may, rarely, be
    // tried again within the test: the counters are checked against what the receiver saw.
    const failedSends = hooks.requests.filter((r) => r.path.startsWith('/fail')).length;
    assert.ok(failedSends >= 3, `3 failing callbacks sent at least once (${failedSends})`);
    assert.equal(figures.accepted, 13);
    assert.equal(figures.delivered, 8);
    assert.equal(figures.parked, failedSends, 'every failed send parked');
    assert.equal(figures.failed5xx, failedSends);
    assert.equal(figures.sendCount, hooks.requests.length, 'every attempt timed');
    assert.equal(figures.claims, 11);
    assert.equal(figures.completes, 11);
    assert.equal(figures.pending, 0);
    assert.equal(figures.outboxParked, 3);
    assert.ok(figures.loopP99 !== undefined && figures.loopP99 >= 0);

    // The books as metrics: taken in the background by this save-mode node, exported by it.
    const booksText: string = await waitFor(
      'the books taken after the traffic',
      async () => {
        const m = (await get(`${d!.url}/metrics`)).body as string;
        const settled =
          sample(m, 'intake_books_requests', 'spool_node="verify-a",place="stored"') === 13 &&
          sample(m, 'intake_books_callbacks', 'status="delivered"') === 8 &&
          sample(m, 'intake_books_callbacks', 'status="parked"') === 3 &&
          sample(m, 'intake_books_differences') === 0;
        return settled ? m : '';
      },
      30_000,
      250,
    );
    const booksJson = JSON.parse(readFileSync(join(spool, 'cluster', 'books.json'), 'utf8')) as Books & { takenBy: string; balanced: boolean };
    assert.equal(booksJson.takenBy, 'verify-a');
    assert.equal(booksJson.balanced, true, JSON.stringify(booksJson.differences));
    assert.equal(await d.kill('SIGTERM'), 0);
    d = null;

    // The books: 13 acknowledged records, 11 distinct ids; 11 completed, 8 delivered, 3 parked.
    const ok = await verify(spool, db);
    console.log(ok.text);
    console.log(`verify: ${JSON.stringify({ code: ok.code, total: ok.books.total, database: ok.books.database, callbacks: ok.books.callbacks })}`);
    assert.equal(ok.code, 0, ok.text);
    assert.equal(ok.books.balanced, true);
    assert.match(ok.text, /the books balance/);
    assert.deepEqual({ ...ok.books.total, segments: undefined }, { accepted: 13, stored: 13, inSpool: 0, quarantined: 0, damaged: 0, segments: undefined });
    assert.deepEqual(ok.books.database, { rows: 11, rowsInserted: 11 });
    assert.equal(ok.books.callbacks.completed, 11);
    assert.equal(ok.books.callbacks.delivered, 8);
    assert.equal(ok.books.callbacks.parked, 3);
    assert.equal(ok.books.callbacks.spool.retry, 3);
    // The metrics hold the same figures as verify.
    assert.deepEqual(booksMetrics(booksText, ['verify-a']), booksFigures(ok.books), 'the intake_books_* metrics are the figures of intake verify');
    console.log(`books as metrics: ${JSON.stringify(booksMetrics(booksText, ['verify-a']))}`);

    // A drain killed after noting its segment in drained_segments and before deleting the file
    // leaves both: the segment counts once, from the database.
    const archived = readdirSync(archiveDir(spool, 'verify-a')).find((f) => f.endsWith('.seg'))!;
    copyFileSync(join(archiveDir(spool, 'verify-a'), archived), join(nodeDir(spool, 'verify-a'), archived));
    const both = await verify(spool, db);
    assert.equal(both.code, 0, both.text);
    assert.deepEqual(both.books.total, ok.books.total, 'a segment both drained and present counts once');
    rmSync(join(nodeDir(spool, 'verify-a'), archived));

    // A receive-mode node spools 4 requests that no one drains: in the spool, still balanced.
    d = await startDaemon({ spool, db, nodeId: 'verify-b', mode: 'receive', args: WORK_ARGS, env: WORK_ENV });
    for (let i = 0; i < 4; i++) assert.equal((await post(`${d.url}/v1/requests`, { payload: { late: i }, callback_url: `${hooks.url}/ok` })).status, 202);
    // A receive-mode node takes no books (it has no database) but exports the cluster's last ones.
    const fromReceiver = await waitFor('a receive-mode node exports the books', async () => {
      const m = (await get(`${d!.url}/metrics`)).body as string;
      return sample(m, 'intake_books_differences') === 0 ? m : '';
    }, 20_000, 250);
    assert.deepEqual(booksMetrics(fromReceiver, ['verify-a']), booksFigures(ok.books));
    assert.equal(await d.kill('SIGTERM'), 0);
    d = null;
    const spooled = await verify(spool, db);
    assert.equal(spooled.code, 0, spooled.text);
    assert.equal(spooled.books.total.accepted, 17);
    assert.equal(spooled.books.total.inSpool, 4);

    // Injected: the receive node's sealed segment removed from the spool.
    const seg = readdirSync(nodeDir(spool, 'verify-b')).find((f) => f.endsWith('.seg'))!;
    rmSync(join(nodeDir(spool, 'verify-b'), seg));
    const gone = await verify(spool, db);
    console.log(gone.text);
    assert.equal(gone.code, 1);
    assert.deepEqual(gone.books.nodes.find((n) => n.node === 'verify-b')!.segments.missing, [seg.replace(/\.seg$/, '')]);
    assert.match(gone.text, new RegExp(`node verify-b: segment ${seg.replace(/\.seg$/, '')} is listed in nodes/verify-b/segments.log but is neither drained`));

    // Injected: a row deleted from the database (the receive node's folder and log gone first:
    // one difference at a time).
    rmSync(join(nodeDir(spool, 'verify-b')), { recursive: true });
    const sql = new Database(dbPath);
    sql.prepare('DELETE FROM requests WHERE id = ?').run(ids[0]);
    sql.close();
    const lost = await verify(spool, db);
    console.log(lost.text);
    assert.equal(lost.code, 1);
    // The row was a completed request's: its callback now stands without a completion too.
    assert.deepEqual(lost.books.differences, [
      'database: requests holds 10 rows, but 11 were inserted (requests_inserted): 1 row(s) lost',
      'callbacks: 10 completed request(s), but 11 callback(s) (delivered 8, pending 0, parked 3, dead 0, gone 0)',
    ]);
    // A save-mode node started on these books takes them and exports the two differences.
    d = await startDaemon({ spool, db, nodeId: 'verify-c', args: [...WORK_ARGS, '--books-interval-ms', '500'], env: { ...WORK_ENV, INTAKE_CALLBACK_BASE_MS: '3600000', INTAKE_CALLBACK_CAP_MS: '86400000' } });
    await waitFor('the books metrics name the differences', async () => sample((await get(`${d!.url}/metrics`)).body as string, 'intake_books_differences') === 2, 30_000, 250);
    const taken = JSON.parse(readFileSync(join(spool, 'cluster', 'books.json'), 'utf8')) as Books & { takenBy: string; balanced: boolean };
    assert.equal(taken.takenBy, 'verify-c');
    assert.equal(taken.balanced, false);
    assert.deepEqual(taken.differences, lost.books.differences, 'cluster/books.json names what verify names');
    console.log(`verify after injected faults: segment removed -> exit ${gone.code} (${gone.books.differences.length} difference), row deleted -> exit ${lost.code} (${lost.books.differences.length} difference)`);
  } finally {
    await d?.kill('SIGKILL');
    await hooks.close();
    tmp.cleanup();
  }
});

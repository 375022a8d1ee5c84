// Synchronous answers on real daemons: `Prefer: wait=N` on POST /v1/requests and `?wait=N` on
// GET /v1/requests/:id, on both engines; a wait across two nodes on PostgreSQL (LISTEN/NOTIFY);
// a stopping node answering its waiting clients 202; tenant walls. Diagnostics (printed, not
// asserted): the memory of 5,000 waiting clients, and the synchronous round trip against the plain 202.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { outputOnceLogged, runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, sleep, waitFor, type Answer } from '../helpers/http.js';
import { ENGINES, startWorkNode, WORK_ARGS, WORK_ENV, workTestSetup, type TestDb } from '../helpers/work.js';

const setup = workTestSetup('intake-wait-');
const { dbs, daemons } = setup;

async function node(db: TestDb, extra: string[] = [], env: Record<string, string> = {}): Promise<Daemon> {
  const d = await startDaemon({ spool: db.spool, db: db.url, args: [...WORK_ARGS, ...extra], env: { ...WORK_ENV, ...env } });
  daemons.push(d);
  return d;
}

/** A worker that claims and completes everything it can, at once, with {echo: payload}. */
function worker(url: string, headers: Record<string, string> = {}): { stop(): Promise<void>; completed: number } {
  const state = { stop: false, completed: 0 };
  const done = (async () => {
    while (!state.stop) {
      const c = await post(`${url}/v1/work/claim`, { limit: 100, lease_seconds: 30 }, headers);
      const items = (c.body?.items ?? []) as { id: string; lease_token: string; payload: unknown }[];
      if (items.length === 0) {
        await sleep(5);
        continue;
      }
      const r = await post(`${url}/v1/work/complete`, { items: items.map((it) => ({ id: it.id, lease_token: it.lease_token, result: { echo: it.payload } })) }, headers);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      state.completed += items.length;
    }
  })();
  return {
    get completed() {
      return state.completed;
    },
    async stop() {
      state.stop = true;
      await done;
    },
  };
}

/** Run `fn` while a worker completes everything on `url`. */
async function withWorker<T>(url: string, fn: (w: { completed: number }) => Promise<T>, headers: Record<string, string> = {}): Promise<T> {
  const w = worker(url, headers);
  try {
    return await fn(w);
  } finally {
    await w.stop();
  }
}

const request = (i: number | string) => ({ payload: { i }, callback_url: setup.hooks.url });
const waitHeader = (s: number) => ({ prefer: `wait=${s}` });

function rssKiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function waitingOn(d: Daemon): Promise<number> {
  const text = await fetch(`${d.url}/metrics`).then((r) => r.text());
  return Number(/^intake_requests_waiting (\d+)/m.exec(text)?.[1] ?? NaN);
}

for (const engine of ENGINES) {
  describe(`Prefer: wait and ?wait=N (${engine})`, () => {
    let d: Daemon;
    before(async () => {
      d = await node(await dbs.fresh(engine));
    });

    test('a worker that completes at once: 200 with the result and Preference-Applied', async () => {
      const r = await withWorker(d.url, () => post(`${d.url}/v1/requests`, request('fast'), waitHeader(10), 20_000));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.headers.get('preference-applied'), 'wait=10');
      assert.deepEqual(r.body, { id: r.body.id, status: 'completed', result: { echo: { i: 'fast' } } });
      assert.equal((await get(`${d.url}/v1/requests/${r.body.id}`)).body.status, 'completed');
    });

    test('a wait above --max-wait-s is capped (the header says what was applied)', async () => {
      const r = await withWorker(d.url, () => post(`${d.url}/v1/requests`, request('capped'), waitHeader(999_999), 40_000));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.headers.get('preference-applied'), 'wait=30');
    });

    test('nobody completes it: the usual 202 after N seconds', async () => {
      const t0 = performance.now();
      const r = await post(`${d.url}/v1/requests`, request('slow'), waitHeader(1), 20_000);
      const ms = performance.now() - t0;
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.headers.get('preference-applied'), null);
      assert.equal(r.body.status_url, `/v1/requests/${r.body.id}`);
      assert.ok(ms >= 900, `answered after ${ms} ms, before the wait ran out`);
      // The wait made it claimable at once: it is in the database already.
      assert.equal((await get(`${d.url}/v1/requests/${r.body.id}`)).body.status, 'pending');
    });

    test('GET ?wait=N: the current state after N seconds, or at once when completed', async () => {
      const r = await post(`${d.url}/v1/requests`, request('poll'));
      assert.equal(r.status, 202);
      const url = `${d.url}/v1/requests/${r.body.id}`;
      await waitFor('stored', async () => (await get(url)).status === 200);
      const t0 = performance.now();
      const pending = await get(`${url}?wait=1`);
      assert.equal(pending.status, 200);
      assert.equal(pending.body.status, 'pending');
      assert.ok(performance.now() - t0 >= 900);
      const polling = get(`${url}?wait=20`, 30_000);
      await sleep(200);
      const done = await withWorker(d.url, () => polling);
      assert.equal(done.status, 200);
      assert.equal(done.body.status, 'completed');
      assert.deepEqual(done.body.result, { echo: { i: 'poll' } });
      assert.equal((await get(`${url}?wait=5`)).body.status, 'completed', 'a completed request answers at once');
      assert.equal((await get(`${url}?wait=soon`)).status, 400);
      assert.equal((await get(`${d.url}/v1/requests/00000000-0000-7000-8000-000000000000?wait=5`)).status, 404);
    });
  });
}

describe('a wait across two nodes (PostgreSQL LISTEN/NOTIFY)', () => {
  let db: TestDb;
  let a: Daemon;
  let b: Daemon;
  before(async () => {
    db = await dbs.fresh('postgres');
    a = await node(db);
    b = await node(db);
  });

  test('POST with wait on node A, completed through node B: A answers 200', async () => {
    await withWorker(b.url, async (w) => {
      for (let i = 0; i < 5; i++) {
        const r = await post(`${a.url}/v1/requests`, request(`ab${i}`), waitHeader(15), 30_000);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.deepEqual(r.body.result, { echo: { i: `ab${i}` } });
      }
      // A may answer its client before B's answer to the worker arrives: wait for B's answers.
      await waitFor('node B answered the worker for all 5 completes', () => w.completed >= 5, 10_000);
    });
  });

  test('the listeners lose their connections: waits are answered all the same (polling, then LISTEN again)', async () => {
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const cut = async () =>
        (await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'intake-listen' AND datname = current_database()`)).rowCount;
      assert.ok((await cut())! >= 2, 'both nodes listen');
      await withWorker(b.url, async () => {
        for (let i = 0; i < 3; i++) {
          const r = await post(`${a.url}/v1/requests`, request(`cut${i}`), waitHeader(15), 30_000);
          assert.equal(r.status, 200, JSON.stringify(r.body));
          await cut();
        }
      });
      await waitFor('listening again', async () => (await admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'intake-listen' AND datname = current_database()`)).rowCount! >= 2);
      await withWorker(b.url, async () => {
        const r = await post(`${a.url}/v1/requests`, request('after'), waitHeader(15), 30_000);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      });
      assert.match(await outputOnceLogged(a, /completion listener lost its connection/), /completion listener lost its connection/);
    } finally {
      await admin.end();
    }
  });
});

describe('a node that stops', () => {
  test('SIGTERM while 50 clients wait: every one gets its 202', async () => {
    const d = await node(await dbs.fresh('sqlite'), ['--stop-idle-ms', '200']);
    const answers = Promise.all(Array.from({ length: 50 }, (_, i) => post(`${d.url}/v1/requests`, request(`term${i}`), waitHeader(30), 60_000)));
    await waitFor('50 waiting', async () => (await waitingOn(d)) === 50);
    const t0 = performance.now();
    assert.equal(await d.kill('SIGTERM'), 0);
    const all: Answer[] = await answers;
    assert.deepEqual(
      all.map((r) => r.status),
      all.map(() => 202),
    );
    assert.equal(new Set(all.map((r) => r.body.id)).size, 50);
    assert.ok(performance.now() - t0 < 20_000);
  });

  test('diagnostic: memory of 5,000 waiting clients', async () => {
    const d = await node(await dbs.fresh('sqlite'), ['--stop-idle-ms', '200']);
    await post(`${d.url}/v1/requests`, request('warm'));
    await sleep(500);
    const rssBefore = rssKiB(d.proc.pid!);
    const n = 5000;
    const t0 = performance.now();
    const answers = Promise.all(Array.from({ length: n }, (_, i) => post(`${d.url}/v1/requests`, request(`mem${i}`), waitHeader(30), 120_000)));
    await waitFor(`${n} waiting`, async () => (await waitingOn(d)) === n, 60_000, 200);
    const rssWaiting = rssKiB(d.proc.pid!);
    const tWaiting = performance.now();
    if (rssBefore !== null && rssWaiting !== null) {
      console.log(
        `# diagnostic: ${n} waiting clients: RSS ${(rssBefore / 1024).toFixed(1)} MiB -> ${(rssWaiting / 1024).toFixed(1)} MiB ` +
          `(${(((rssWaiting - rssBefore) * 1024) / n / 1024).toFixed(1)} KiB per waiting client, sockets and HTTP state included); ` +
          `all waiting after ${Math.round(tWaiting - t0)} ms`,
      );
    }
    assert.equal(await d.kill('SIGTERM'), 0);
    const all = await answers;
    console.log(`# diagnostic: SIGTERM to ${n} answers: ${Math.round(performance.now() - tWaiting)} ms`);
    assert.equal(all.filter((r) => r.status === 202).length, n);
  });
});

describe('tenant walls with wait', () => {
  test('another tenant\u2019s id answers 404 even with wait; the owner waits and gets 200', async () => {
    const db = await dbs.fresh('sqlite');
    const key = async (tenant: string, scope: string) => {
      const r = await runCli(['keys', 'create', '--tenant', tenant, '--scope', scope, '--json', '--spool', db.spool]);
      assert.equal(r.code, 0, r.stderr);
      return { authorization: `Bearer ${(JSON.parse(r.stdout) as { key: string }).key}` };
    };
    const aSubmit = await key('acme', 'submit');
    const aProcess = await key('acme', 'process');
    const bSubmit = await key('globex', 'submit');
    const d = await node(db);
    const r = await post(`${d.url}/v1/requests`, request('walls'), { ...aSubmit, ...waitHeader(1) }, 20_000);
    assert.equal(r.status, 202);
    const url = `${d.url}/v1/requests/${r.body.id}`;
    const fetchAs = async (h: Record<string, string>, q = '') => {
      const res = await fetch(`${url}${q}`, { headers: h, signal: AbortSignal.timeout(20_000) });
      return { status: res.status, body: (await res.json()) as any };
    };
    const t0 = performance.now();
    const foreign = await fetchAs(bSubmit, '?wait=5');
    assert.equal(foreign.status, 404);
    assert.equal(foreign.body.error.code, 'INTAKE_NOT_FOUND');
    assert.ok(performance.now() - t0 < 4000, 'answered at once, as for an id that does not exist');
    assert.equal((await fetchAs(aProcess, '?wait=1')).status, 403, 'reading requests is the submit scope');
    const owner = fetchAs(aSubmit, '?wait=20');
    await sleep(200);
    const o = await withWorker(d.url, () => owner, aProcess);
    assert.equal(o.status, 200);
    assert.equal(o.body.status, 'completed');
  });
});

describe('diagnostic: synchronous round trip against the plain 202', () => {
  for (const engine of ENGINES) {
    test(engine, async () => {
      const d = await startWorkNode(await dbs.fresh(engine));
      daemons.push(d);
      const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
      await withWorker(d.url, async () => {
        const n = 200;
        const plain: number[] = [];
        const sync: number[] = [];
        for (let i = 0; i < n; i++) {
          let t0 = performance.now();
          assert.equal((await post(`${d.url}/v1/requests`, request(`p${i}`))).status, 202);
          plain.push(performance.now() - t0);
          t0 = performance.now();
          const r = await post(`${d.url}/v1/requests`, request(`s${i}`), waitHeader(10), 20_000);
          assert.equal(r.status, 200, JSON.stringify(r.body));
          sync.push(performance.now() - t0);
        }
        const f = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms`;
        console.log(`# diagnostic (${engine}, ${n} sequential each, a worker polling claims): plain 202 ${f(plain)}; Prefer: wait -> 200 ${f(sync)}`);
      });
    });
  }
});

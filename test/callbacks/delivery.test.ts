// Callback delivery under chaos: two nodes (mode both, one spool, one PostgreSQL) are SIGKILLed
// at random and restarted while a worker completes requests; the receiver on 127.0.0.1 fails 40%
// of attempts with 500, never answers 10% (the sender times out), resets 10%, answers 429 with
// Retry-After: 2 on one path and 410 on another. Afterwards, from the receiver's own records:
//   - every completed request's callback arrived at least once, every attempt validly signed
//     (checked by the reference library, under both rotated secrets);
//   - every attempt of one callback carries the same webhook-id and the same body;
//   - nothing reached the 410 endpoint for a callback after its 410;
//   - no retry after a 429 came before its Retry-After had elapsed;
//   - the failed-callback spool is empty and the database shows every callback delivered (or gone).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { prng } from '../chaos/checker.js';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, sleep } from '../helpers/http.js';
import { startPostgres } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';

const N = 200;
const GONE = 10; // requests whose callback URL is the 410 endpoint
const SLOW = 20; // requests on the "429 tenant" path
const RETRY_AFTER_S = 2;
const SLOW_429_ATTEMPTS = 2; // the first attempts of each slow callback get 429
const CHAOS_MIN_MS = 20_000; // SIGKILLs go on at least this long, and until the worker is done...
const CHAOS_MAX_MS = 40_000; // ...but not longer than this (the worker finishes in peace)

type Fate = 'ok' | '500' | 'timeout' | 'reset' | '429' | '410';
interface Attempt {
  webhookId: string;
  path: string;
  at: number;
  fate: Fate;
  body: string;
  sigNew: boolean;
  sigOld: boolean;
}

const listDir = (dir: string) => {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.seg'));
  } catch {
    return [];
  }
};

test('callbacks under chaos: at least once, same webhook-id, 410 stops, Retry-After honoured', { timeout: 300_000 }, async (t) => {
  const seed = process.env.INTAKE_CHAOS_SEED ? Number(process.env.INTAKE_CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  const rand = prng(seed);
  t.diagnostic(`seed=${seed}`);
  const tmp = tempDir('intake-delivery-');
  const spool = join(tmp.path, 'spool');
  const secretNew = `whsec_${randomBytes(32).toString('base64')}`;
  const secretOld = `whsec_${randomBytes(32).toString('base64')}`;

  // ---- the receiver
  const attempts: Attempt[] = [];
  const byId = new Map<string, Attempt[]>();
  const hanging = new Set<http.ServerResponse>();
  const receiver = http.createServer((req, res) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = { 'webhook-id': String(req.headers['webhook-id'] ?? ''), 'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''), 'webhook-signature': String(req.headers['webhook-signature'] ?? '') };
      const check = (s: string) => {
        try {
          new Webhook(s).verify(body, headers);
          return true;
        } catch {
          return false;
        }
      };
      const path = req.url ?? '';
      const prior = byId.get(headers['webhook-id']) ?? [];
      let fate: Fate;
      // The 410 endpoint fails some first attempts with 500, so the 410 reaches the failed-callback
      // spool's retrier as well as the outbox dispatcher.
      if (path.startsWith('/gone')) fate = prior.length === 0 && Math.random() < 0.5 ? '500' : '410';
      else if (path.startsWith('/tenant-slow/') && prior.length < SLOW_429_ATTEMPTS) fate = '429';
      else {
        const r = Math.random();
        fate = r < 0.4 ? '500' : r < 0.5 ? 'timeout' : r < 0.6 ? 'reset' : 'ok';
      }
      const a: Attempt = { webhookId: headers['webhook-id'], path, at, fate, body, sigNew: check(secretNew), sigOld: check(secretOld) };
      attempts.push(a);
      byId.set(a.webhookId, [...prior, a]);
      switch (fate) {
        case 'ok':
          res.writeHead(200).end('ok');
          break;
        case '500':
          res.writeHead(500).end('boom');
          break;
        case '429':
          res.writeHead(429, { 'retry-after': String(RETRY_AFTER_S) }).end('slow down');
          break;
        case '410':
          res.writeHead(410).end('gone');
          break;
        case 'reset':
          req.socket.destroy();
          break;
        case 'timeout':
          hanging.add(res); // never answered; the sender gives up after its timeout
          res.on('close', () => hanging.delete(res));
          break;
      }
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  const rport = (receiver.address() as AddressInfo).port;

  // ---- the cluster
  const server = await startPostgres();
  let dbPool: pg.Pool | null = null;
  const nodes: (Daemon | null)[] = [null, null];
  const allDaemons: Daemon[] = [];
  const kills: { at: number; node: number }[] = [];
  let stopKilling = false;
  let killer: Promise<void> = Promise.resolve();
  try {
    const url = await server.createDatabase();
    const m = await runCli(['migrate', '--db', url]);
    assert.equal(m.code, 0, m.stderr);
    dbPool = new pg.Pool({ connectionString: url, max: 4 });
    const startNode = async (i: number): Promise<Daemon> => {
      const d = await startDaemon({
        spool,
        db: url,
        mode: 'both',
        nodeId: `dlv-${i}`,
        args: ['--seal-after-ms', '100', '--scan-interval-ms', '100', '--lock-stale-ms', '3000', '--heartbeat-ms', '200'],
        env: {
          INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32',
          INTAKE_WEBHOOK_SECRET: `${secretNew} ${secretOld}`,
          INTAKE_CALLBACK_BASE_MS: '100',
          INTAKE_CALLBACK_CAP_MS: '2000',
          INTAKE_CALLBACK_MAX_ATTEMPTS: '1000',
          INTAKE_CALLBACK_TIMEOUT_MS: '500',
          INTAKE_CALLBACK_CONNECT_TIMEOUT_MS: '500',
          INTAKE_CALLBACK_POLL_MS: '100',
        },
        startTimeoutMs: 30_000,
      });
      allDaemons.push(d);
      return d;
    };
    nodes[0] = await startNode(0);
    nodes[1] = await startNode(1);
    const alive = (): Daemon | null => {
      const up = nodes.filter((d): d is Daemon => d !== null);
      return up.length === 0 ? null : up[Math.floor(Math.random() * up.length)]!;
    };

    // ---- requests
    const ids: string[] = [];
    const kind = new Map<string, 'gone' | 'slow' | 'hook'>();
    for (let i = 0; i < N; i++) {
      const k = i < GONE ? 'gone' : i < GONE + SLOW ? 'slow' : 'hook';
      const cb = k === 'gone' ? `http://127.0.0.1:${rport}/gone` : k === 'slow' ? `http://127.0.0.1:${rport}/tenant-slow/${i}` : `http://127.0.0.1:${rport}/hook/${i}`;
      const r = await post(nodes[i % 2]!.url + '/v1/requests', { payload: { i }, callback_url: cb }, { 'idempotency-key': `dlv-${seed}-${i}` });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      ids.push(r.body.id);
      kind.set(r.body.id, k);
    }
    const countWhere = async (sql: string): Promise<number> => Number((await dbPool!.query<{ n: string }>(sql)).rows[0]!.n);
    const t0 = Date.now();
    while ((await countWhere('SELECT count(*) AS n FROM requests')) < N) {
      assert.ok(Date.now() - t0 < 30_000, 'requests did not reach the database');
      await sleep(100);
    }

    // ---- the killer: SIGKILL one node at a random moment, restart it, again, until told to stop
    const chaosStart = Date.now();
    // One killer per node, each on its own random schedule (so sometimes both are down at once).
    const killLoop = async (i: number) => {
      while (!stopKilling && Date.now() - chaosStart < CHAOS_MAX_MS) {
        await sleep(500 + rand() * 2500);
        if (stopKilling) break;
        const d = nodes[i];
        if (!d) continue;
        nodes[i] = null;
        kills.push({ at: Date.now(), node: i });
        await d.kill('SIGKILL');
        nodes[i] = await startNode(i);
      }
    };
    killer = Promise.all([killLoop(0), killLoop(1)]).then(() => undefined);

    // ---- the worker: claims and completes, paced so completions spread over the chaos
    let workerErrors = 0;
    let completes = 0;
    const doneCount = () => countWhere(`SELECT count(*) AS n FROM requests WHERE status = 'completed'`);
    while ((await doneCount()) < N) {
      if (Date.now() - chaosStart > 120_000) {
        const states: unknown[] = (await dbPool!.query(`SELECT status, count(*)::int AS n, bool_or(lease_expires_at < now()) AS expired FROM requests GROUP BY status`)).rows;
        assert.fail(`the worker did not complete every request in time: ${JSON.stringify(states)}`);
      }
      const d = alive();
      if (!d) {
        await sleep(50);
        continue;
      }
      let items: { id: string; lease_token: string }[] = [];
      try {
        const c = await post(`${d.url}/v1/work/claim`, { limit: 3, lease_seconds: 5 }, {}, 3000);
        items = c.status === 200 ? c.body.items : [];
      } catch {
        workerErrors++;
      }
      for (const it of items) {
        for (let k = 0; k < 30; k++) {
          const d2 = alive();
          if (!d2) {
            await sleep(100);
            continue;
          }
          try {
            const r = await post(`${d2.url}/v1/work/${it.id}/complete`, { lease_token: it.lease_token, result: { done: it.id } }, {}, 3000);
            if (r.status === 200) completes++;
            if (r.status === 200 || r.status === 409) break; // 409: an earlier try committed, or the lease ran out (claimed again later)
          } catch {
            workerErrors++;
          }
          await sleep(100);
        }
      }
      await sleep(items.length === 0 ? 200 : 250);
    }
    const workMs = Date.now() - chaosStart;
    while (Date.now() - chaosStart < CHAOS_MIN_MS) await sleep(100);
    stopKilling = true;
    await killer;
    const chaosMs = Date.now() - chaosStart;
    t.diagnostic(`worker: ${N} completed in ${workMs} ms (${completes} complete calls answered 200, ${workerErrors} connection errors); chaos ${chaosMs} ms, ${kills.length} SIGKILLs`);

    // ---- settle: the failed-callback spool empties and the database shows every outcome
    const settleStart = Date.now();
    const nonFinal = async () =>
      (
        await dbPool!.query<{ id: string; status: string | null; url: string | null }>(
          `SELECT r.id::text AS id, c.status, c.url FROM requests r LEFT JOIN callbacks c ON c.request_id = r.id
           WHERE c.status IS NULL OR NOT (c.status = 'delivered' OR (c.status = 'gone' AND c.url LIKE '%/gone'))`,
        )
      ).rows;
    let left = await nonFinal();
    let retryFiles = listDir(join(spool, 'callbacks', 'retry'));
    let nextReport = settleStart;
    let stuckSince = 0;
    while (left.length > 0 || retryFiles.length > 0) {
      if (Date.now() - settleStart > 90_000) break; // a SIGKILLed dispatcher's outbox lease is 60 s
      // Nothing left to send and only "parked" rows the receiver has answered 2xx: nothing will
      // ever change them (no file to retry, no lease to run out). Stop waiting after 5 s of that.
      const stuck = retryFiles.length === 0 && left.every((r) => r.status === 'parked' && (byId.get(`msg_${r.id}`) ?? []).some((a) => a.fate === 'ok'));
      stuckSince = stuck ? stuckSince || Date.now() : 0;
      if (stuck && Date.now() - stuckSince > 5000) break;
      if (Date.now() >= nextReport) {
        nextReport += 10_000;
        const counts = new Map<string, number>();
        for (const r of left) counts.set(String(r.status), (counts.get(String(r.status)) ?? 0) + 1);
        t.diagnostic(`settling +${Math.round((Date.now() - settleStart) / 1000)} s: not final ${JSON.stringify(Object.fromEntries(counts))}, retry files ${retryFiles.length}`);
      }
      await sleep(250);
      left = await nonFinal();
      retryFiles = listDir(join(spool, 'callbacks', 'retry'));
    }
    const settleMs = Date.now() - settleStart;
    const describeLeft = left.slice(0, 10).map((r) => {
      const got = byId.get(`msg_${r.id}`) ?? [];
      // With the nearest SIGKILL after each attempt: an outcome lost in a crash shows here.
      const near = got.map((a) => {
        const k = kills.find((x) => x.at >= a.at);
        return `${a.fate}${k ? ` (SIGKILL of node ${k.node} ${k.at - a.at} ms later)` : ''}`;
      });
      return `${r.id} ${r.status} ${r.url}: received ${got.length} attempts: ${near.join(', ')}`;
    });
    t.diagnostic(`settled in ${settleMs} ms: ${left.length} callbacks not final, ${retryFiles.length} retry files`);
    assert.deepEqual(retryFiles, [], 'the failed-callback spool did not empty');
    assert.deepEqual(listDir(join(spool, 'callbacks', 'dead')), [], 'a callback went dead (max attempts is 1000)');
    await sleep(1000); // anything still in flight arrives now

    // ---- what the receiver saw
    const fates = new Map<Fate, number>();
    for (const a of attempts) fates.set(a.fate, (fates.get(a.fate) ?? 0) + 1);
    let duplicates = 0;
    let maxPer = 0;
    const post410: string[] = [];
    const post410Explained: string[] = [];
    const early: string[] = [];
    let minGapAfter429 = Infinity;
    let gone410ByRetrier = 0;
    for (const id of ids) {
      const wid = `msg_${id}`;
      const got = byId.get(wid) ?? [];
      assert.ok(got.length > 0, `callback ${wid} never arrived`);
      maxPer = Math.max(maxPer, got.length);
      // Every attempt validly signed with both secrets (rotation), same id, same body.
      for (const a of got) {
        assert.ok(a.sigNew && a.sigOld, `attempt of ${wid} at ${a.at} has a bad signature (new ${a.sigNew}, old ${a.sigOld})`);
        assert.equal(a.body, got[0]!.body, `attempts of ${wid} carry different bodies`);
      }
      const body = JSON.parse(got[0]!.body);
      assert.equal(body.type, 'request.completed');
      assert.equal(body.data.id, id, `${wid} carries the body of ${body.data.id}`);
      assert.deepEqual(body.data.result, { done: id });
      const oks = got.filter((a) => a.fate === 'ok').length;
      if (kind.get(id) !== 'gone') assert.ok(oks >= 1, `${wid} was never answered 2xx (${got.map((a) => a.fate).join(',')})`);
      if (oks > 1) duplicates += oks - 1;
      // 410: nothing after the first 410 (unless a SIGKILL hit between the two: crash window).
      const first410 = got.findIndex((a) => a.fate === '410');
      if (kind.get(id) === 'gone') {
        assert.ok(first410 >= 0, `${wid} never got its 410`);
        gone410ByRetrier += first410 > 0 ? 1 : 0;
      }
      if (first410 >= 0) {
        for (const a of got.slice(first410 + 1)) {
          const t410 = got[first410]!.at;
          const line = `${wid}: attempt ${a.at - t410} ms after its 410`;
          // Explained only by a kill between the 410 and this attempt (the 410 may not have been
          // recorded yet; under fsync load that can take over a second): with no kill, it is a bug.
          if (kills.some((k) => k.at >= t410 && k.at <= a.at)) post410Explained.push(line);
          else post410.push(line);
        }
      }
      // 429: the next attempt no sooner than Retry-After.
      for (let i = 1; i < got.length; i++) {
        if (got[i - 1]!.fate !== '429') continue;
        const gap = got[i]!.at - got[i - 1]!.at;
        minGapAfter429 = Math.min(minGapAfter429, gap);
        if (gap < RETRY_AFTER_S * 1000 - 5) early.push(`${wid}: attempt ${i + 1} came ${gap} ms after a 429 with Retry-After: ${RETRY_AFTER_S}`);
      }
    }
    // Attempts the receiver saw for ids it was never given would be a mix-up.
    const known = new Set(ids.map((id) => `msg_${id}`));
    const strangers = attempts.filter((a) => !known.has(a.webhookId));
    t.diagnostic(
      `receiver: ${attempts.length} attempts for ${N} callbacks (${[...fates].map(([k, v]) => `${k}:${v}`).join(' ')}); ` +
        `duplicate 2xx deliveries ${duplicates}; most attempts for one callback ${maxPer}; ` +
        `min gap after a 429 ${minGapAfter429} ms; attempts after a 410: ${post410.length} (+${post410Explained.length} with a SIGKILL between the 410 and the attempt); ` +
        `410s answered to a retry (not the first attempt): ${gone410ByRetrier}/${GONE}`,
    );
    for (const l of post410Explained) t.diagnostic(`crash-window resend: ${l}`);
    assert.deepEqual(strangers.map((a) => a.webhookId), [], 'attempts with an unknown webhook-id');
    assert.deepEqual(post410, [], 'callbacks sent again after their 410 Gone');
    assert.deepEqual(early, [], 'retries before Retry-After elapsed');
    assert.ok(kills.length >= 8, `only ${kills.length} SIGKILLs: too few for the test to mean much`);
    assert.ok((fates.get('timeout') ?? 0) > 0 && (fates.get('reset') ?? 0) > 0 && (fates.get('500') ?? 0) > 0, 'every failure kind happened');
    // Last (so a failure here does not hide the receiver-side checks above): the database, and the
    // API, show every outcome. A delivery whose outcome was never recorded stays "parked" forever.
    assert.deepEqual(describeLeft, [], 'callbacks whose status never became delivered (or gone for the 410 endpoint)');
    const d = alive()!;
    for (const id of ids.slice(0, 40)) {
      const g = await get(`${d.url}/v1/requests/${id}`);
      assert.equal(g.body.status, 'completed');
      assert.equal(g.body.callback.webhook_id, `msg_${id}`);
      assert.equal(g.body.callback.status, kind.get(id) === 'gone' ? 'gone' : 'delivered', `${id}: ${JSON.stringify(g.body.callback)}`);
      if (kind.get(id) === 'gone') assert.equal(g.body.callback.last_status, 410);
    }
  } finally {
    stopKilling = true;
    await killer.catch(() => undefined);
    await Promise.all(allDaemons.map((d) => d.kill('SIGKILL')));
    for (const r of hanging) r.destroy();
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
    await dbPool?.end().catch(() => undefined);
    await server.close();
    tmp.cleanup();
  }
});

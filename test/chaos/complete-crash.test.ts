// The completion crash test: one node in mode both holds N drained requests; concurrent workers
// claim them (2 s leases) and complete them, by the per-id form and by batches of 10-50, while
// the node is SIGKILLed at random moments and restarted on the same spool and database.
// Workers retry on connection errors; claims whose answer was lost come back when their lease
// ends. At the end every request is completed, each completion answered 200 is the one the
// database holds, no request was answered 200 twice, and each has exactly one outbox row
// (counted in the tables after the node stopped, not by deliveries). completion-checker.ts
// does the accounting. Set INTAKE_CHAOS_SEED to replay a run's kill times and choices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Daemon } from '../helpers/daemon.js';
import { dbReader } from '../helpers/db.js';
import { post, sleep, waitFor, type Answer } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';
import { ENGINES, startHookReceiver, startWorkNode, submitAndStore, testDatabases, type TestDb } from '../helpers/work.js';
import { prng } from './checker.js';
import { assertCompletedExactlyOnce, checkCompletions, CompletionLedger, formatCompletionReport } from './completion-checker.js';

const N = 800;
const WORKERS = 6;
const KILLS = 12;
const LEASE_S = 2;
/**
 * The kill comes this long after the node is up, uniformly in [KILL_MIN_MS, KILL_MAX_MS], and
 * then at the first moment (within BUSY_WAIT_MS) that a complete call is in flight: a kill
 * between two calls would test nothing the restart does not.
 */
const KILL_MIN_MS = 150;
const KILL_MAX_MS = 1500;
const BUSY_WAIT_MS = 2000;
/** Time allowed, after the last kill, for the last node to see every request completed. */
const SETTLE_MS = 120_000;

interface Item {
  id: string;
  lease_token: string;
  lease_expires_at: string;
}

/**
 * Answers a correct node never gives these workers, counted by kind (a missing batch route
 * would otherwise be thousands of lines), with the first example of each.
 */
class WrongAnswers {
  readonly kinds = new Map<string, { n: number; example: string }>();
  note(kind: string, example: string): void {
    const k = this.kinds.get(kind);
    if (k) k.n++;
    else this.kinds.set(kind, { n: 1, example: example.slice(0, 400) });
  }
  list(): string[] {
    return [...this.kinds].map(([kind, { n, example }]) => `${kind} x${n}, e.g. ${example}`);
  }
}

async function runCompleteCrash(t: { diagnostic(msg: string): void }, db: TestDb): Promise<void> {
  const seed = process.env.INTAKE_CHAOS_SEED ? Number(process.env.INTAKE_CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  const rand = prng(seed);
  const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const hooks = await startHookReceiver();
  const reader = dbReader(db.url);
  const nodeId = `complete-crash-${process.pid}`;
  const all: Daemon[] = [];
  const start = async () => {
    const d = await startWorkNode(db, nodeId);
    all.push(d);
    return d;
  };
  let node: Daemon | null = null;
  try {
    node = await start();
    const ids = await submitAndStore(node, hooks.url, N, { lane: 'crash' }, 16);
    t.diagnostic(`${db.engine}: seed=${seed}, ${N} requests in the database`);

    const ledger = new CompletionLedger();
    const wrong = new WrongAnswers();
    const counts = new Map<string, number>();
    const count = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
    /** Per request, the last lease a claim answered 200 handed out: a second one before it ends is a double lease. */
    const leases = new Map<string, { token: string; until: number }>();
    const doubleLeased: string[] = [];
    let kills = 0;
    let inFlight = 0;
    /** Complete calls (per id or batch) sent and not answered yet; and how many there were at each kill. */
    let completing = 0;
    const completingAtKill: number[] = [];
    let done = false;

    // Pacing, so the work spans the kills instead of finishing before the second one: until the
    // last kill, the workers complete no more than their share of N per round, and claims come
    // at about one share per 1.2 s of uptime (longer than most rounds, so most kills find work
    // in flight). A claim reserves its time slot and its items at once (so workers that wake
    // together do not all claim at once); what it did not get is given back. After the last
    // kill: full speed.
    const share = N / (KILLS + 1);
    const perItemMs = 1200 / share;
    let nextSlot = 0;
    const budget = () => (kills >= KILLS ? Infinity : share * (kills + 1));
    /** Reserve up to `want` items for the next claim (0 once the work is done); they count as in flight. */
    const reserve = async (want: number): Promise<number> => {
      for (;;) {
        if (done) return 0;
        const room = Math.floor(budget() - ledger.acked.size - inFlight);
        const wait = kills >= KILLS ? 0 : nextSlot - Date.now();
        if (room > 0 && wait <= 0 && node) {
          const n = Math.min(want, room);
          nextSlot = Math.max(Date.now(), nextSlot) + n * perItemMs;
          inFlight += n;
          return n;
        }
        await sleep(Math.min(Math.max(wait, 20), 200));
      }
    };
    const giveBack = (n: number) => {
      nextSlot -= n * perItemMs;
      inFlight -= n;
    };

    /** POST to whichever node is up; null on a connection error or when none is. */
    const call = async (path: string, body: unknown): Promise<Answer | null> => {
      const d = node;
      if (!d) {
        await sleep(50);
        return null;
      }
      const completion = path !== '/v1/work/claim';
      if (completion) completing++;
      try {
        return await post(`${d.url}${path}`, body, {}, 5000);
      } catch {
        count('conn');
        return null;
      } finally {
        if (completion) completing--;
      }
    };
    const retryable = (a: Answer | null) => {
      if (a?.status === 503) count('503');
      return a === null || a.status === 503;
    };

    /** Complete one item by the per-id form, retrying connection errors while its lease may hold. */
    const completeOne = async (it: Item, result: unknown): Promise<void> => {
      const deadline = Date.parse(it.lease_expires_at) + 500;
      ledger.noteSent(it.id, result);
      for (;;) {
        const a = await call(`/v1/work/${it.id}/complete`, { lease_token: it.lease_token, result });
        if (retryable(a)) {
          if (Date.now() > deadline) return; // the lease is gone: the request comes back to a claim
          await sleep(50);
          continue;
        }
        count(`per-id ${a!.status}`);
        if (a!.status === 200) {
          if (a!.body?.id !== it.id || a!.body?.status !== 'completed') wrong.note('per-id 200 with a wrong body', JSON.stringify(a!.body));
          ledger.noteAcked(it.id, result, 'perId');
        } else if (a!.status !== 409) {
          wrong.note(`per-id ${a!.status} ${a!.body?.error?.code}`, JSON.stringify(a!.body));
        }
        return;
      }
    };

    /** Complete items by one batch call, retried as a whole on connection errors. */
    const completeBatch = async (items: Item[], results: unknown[]): Promise<void> => {
      const deadline = Math.max(...items.map((it) => Date.parse(it.lease_expires_at))) + 500;
      items.forEach((it, i) => ledger.noteSent(it.id, results[i]));
      const body = { items: items.map((it, i) => ({ id: it.id, lease_token: it.lease_token, result: results[i] })) };
      for (;;) {
        const a = await call('/v1/work/complete', body);
        if (retryable(a)) {
          if (Date.now() > deadline) return;
          await sleep(50);
          continue;
        }
        count(`batch ${a!.status}`);
        if (a!.status !== 200) {
          wrong.note(`batch ${a!.status} ${a!.body?.error?.code}`, JSON.stringify(a!.body));
          return;
        }
        const answers = a!.body?.items;
        if (!Array.isArray(answers) || answers.length !== items.length) {
          wrong.note('batch 200 without one answer per item', JSON.stringify(a!.body));
          return;
        }
        items.forEach((it, i) => {
          const x = answers[i];
          if (x?.id !== it.id) wrong.note('batch answer out of request order', JSON.stringify(x));
          else if (x.status === 'completed') ledger.noteAcked(it.id, results[i], 'batch');
          else if (x.error?.code === 'INTAKE_LEASE_CONFLICT') count('batch item conflict');
          else wrong.note(`batch item ${x.error?.code ?? JSON.stringify(x)}`, JSON.stringify(x));
        });
        return;
      }
    };

    const worker = async (w: number) => {
      let seq = 0;
      while (!done) {
        const limit = await reserve(between(10, 50));
        if (limit === 0) continue;
        let held = limit;
        try {
          const c = await call('/v1/work/claim', { lane: 'crash', limit, lease_seconds: LEASE_S });
          if (retryable(c) || c!.status !== 200) {
            if (c && c.status !== 200 && c.status !== 503) wrong.note(`claim ${c.status} ${c.body?.error?.code}`, JSON.stringify(c.body));
            giveBack(limit);
            held = 0;
            await sleep(50);
            continue;
          }
          const items = c!.body.items as Item[];
          count('claim 200');
          giveBack(limit - items.length);
          held = items.length;
          if (items.length === 0) {
            await sleep(100); // the rest is leased to claims whose answers were lost, or done
            continue;
          }
          const now = Date.now();
          for (const it of items) {
            const prev = leases.get(it.id);
            // 100 ms of slack: the lease times come from the node's (or PostgreSQL's) clock, the same host's.
            if (prev && prev.token !== it.lease_token && now < prev.until - 100) {
              doubleLeased.push(`${it.id}: claimed again ${prev.until - now} ms before its lease ran out`);
            }
            leases.set(it.id, { token: it.lease_token, until: Date.parse(it.lease_expires_at) });
          }
          const results = items.map((it) => ({ by: `w${w}`, seq: ++seq, id: it.id, note: 'ünïcødé 🎉', n: [1, 2.5, null, true] }));
          if (rand() < 0.5) {
            // Per id, four at a time.
            let next = 0;
            await Promise.all(
              Array.from({ length: 4 }, async () => {
                while (next < items.length) {
                  const i = next++;
                  await completeOne(items[i]!, results[i]);
                }
              }),
            );
          } else {
            // In batches of 10 to 50 (a claim holds at most 50, so one to five batches), concurrently.
            const cuts: Promise<void>[] = [];
            for (let i = 0; i < items.length; ) {
              const size = between(10, 50);
              cuts.push(completeBatch(items.slice(i, i + size), results.slice(i, i + size)));
              i += size;
            }
            await Promise.all(cuts);
          }
        } finally {
          inFlight -= held; // done with them, answered or not
        }
      }
    };

    const chaosStart = Date.now();
    const workers = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    try {
      for (let k = 0; k < KILLS; k++) {
        const up = Date.now();
        await sleep(between(KILL_MIN_MS, KILL_MAX_MS));
        const busyBy = Date.now() + BUSY_WAIT_MS;
        while (completing === 0 && Date.now() < busyBy) await sleep(1);
        const d: Daemon = node!;
        node = null;
        assert.equal(d.proc.exitCode, null, `kill ${k + 1}: the node exited by itself before the kill:\n${d.output().slice(-4000)}`);
        completingAtKill.push(completing);
        await d.kill('SIGKILL');
        assert.equal(d.proc.signalCode, 'SIGKILL');
        kills++;
        t.diagnostic(`kill ${kills}/${KILLS} at ${Date.now() - up} ms of uptime: ${completingAtKill[k]} complete calls in flight, ${ledger.acked.size} acked so far`);
        node = await start();
      }
      // The last node is left alone until the tables show every request completed.
      const settleStart = Date.now();
      await waitFor('every request completed', async () => {
        const rows = await reader.requests();
        const n = rows.filter((r) => r.status === 'completed').length;
        if (Date.now() - settleStart > SETTLE_MS - 1000) {
          const by = new Map<string, number>();
          for (const r of rows) by.set(r.status, (by.get(r.status) ?? 0) + 1);
          t.diagnostic(`not done: ${JSON.stringify(Object.fromEntries(by))}`);
        }
        return n === N;
      }, SETTLE_MS, 300);
    } finally {
      done = true;
      await workers;
    }
    const chaosMs = Date.now() - chaosStart;
    const finalExit = await node!.kill('SIGTERM');
    node = null;

    const report = checkCompletions({ submitted: ids, ledger, rows: await reader.requests(), outbox: await reader.outbox() });
    const answers = [...counts].map(([k, v]) => `${k}:${v}`).join(' ');
    t.diagnostic(
      `complete crash (${db.engine}): seed=${seed} kills=${kills} (complete calls in flight at each: ${completingAtKill.join(',')}) ` +
        `answered-200: per-id=${ledger.ackedBy.perId} batch=${ledger.ackedBy.batch} ${formatCompletionReport(report)} ` +
        `double-leased=${doubleLeased.length} answers={${answers}} elapsed=${(chaosMs / 1000).toFixed(1)}s`,
    );
    for (const line of wrong.list()) t.diagnostic(`wrong answer: ${line}`);

    // The accounting first: it holds for whatever answers came, so a wrong answer below (say, a
    // batch route that is missing) does not hide a lost or doubled completion.
    assertCompletedExactlyOnce(report);
    assert.deepEqual(doubleLeased.slice(0, 10), [], 'a request leased to two workers at once');
    assert.deepEqual(wrong.list(), [], 'answers a correct node never gives');
    assert.equal(kills, KILLS);
    const busyKills = completingAtKill.filter((n) => n > 0).length;
    // Claims are paced so every kill finds work left, so between bursts the workers may be idle
    // and a kill can find nothing in flight (on a quiet machine a complete takes a few ms). A
    // quarter of the kills landing inside a complete call still exercises the commit path.
    assert.ok(busyKills >= KILLS / 4, `only ${busyKills} of ${KILLS} kills came while a complete call was in flight`);
    assert.ok(ledger.ackedBy.perId > 0 && ledger.ackedBy.batch > 0, 'both forms of completion were answered 200');
    assert.equal(finalExit, 0, 'the last node stopped cleanly');
  } finally {
    await Promise.all(all.map((d) => d.kill('SIGKILL')));
    await reader.close();
    await hooks.close();
  }
}

for (const engine of ENGINES) {
  test(`completions under SIGKILL (${engine}): every completion answered 200 is stored once, with one outbox row`, { timeout: 400_000 }, async (t) => {
    const tmp = tempDir(`intake-complete-crash-${engine}-`);
    const dbs = testDatabases(tmp.path);
    try {
      await runCompleteCrash(t, await dbs.fresh(engine));
    } finally {
      await dbs.close();
      tmp.cleanup();
    }
  });
}

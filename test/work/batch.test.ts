// The batch forms of the processing API, POST /v1/work/complete and POST /v1/work/release, on a
// real daemon over HTTP, for both engines. The contract: one answer per item, in request order,
// either the item's success or its own error (INTAKE_NOT_FOUND, INTAKE_LEASE_CONFLICT); the good
// items of a batch are done even when others fail; a malformed batch is refused whole with 400
// and writes nothing. Each claimed item has its own lease token. What a completion stored is
// read back through GET and from the tables themselves (the result as sent, exactly one outbox
// row per completed request, none for anything else).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Daemon } from '../helpers/daemon.js';
import { dbReader, type DbReader } from '../helpers/db.js';
import { get, post, sleep, waitFor, type Answer } from '../helpers/http.js';
import { claimAll, ENGINES, startWorkNode, workTestSetup, type ClaimedItem } from '../helpers/work.js';

const MAX_ITEMS = 1000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const setup = workTestSetup('intake-batch-');
const { dbs, daemons } = setup;

type Item = ClaimedItem;

/** What a result looks like after the trip over the wire (JSON has no -0, no undefined). */
const wire = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

// Results of every JSON shape, with the characters and numbers that a careless encoder changes.
// null is a result like any other: only a missing `result` is refused.
const RESULTS: unknown[] = [
  { answer: 42, nested: { list: [1, 'two', null, true, { deep: [] }], empty: {} } },
  'quotes " and \\ backslash, ünïcødé, 🎉, 漢字, \u2028 line separator, \t tab',
  [0, -1, 1.5, 1e-7, 2 ** 53 - 1, -(2 ** 31), 6.02214076e23],
  null,
  { '': 'empty key', 'key with spaces': false, z: 1, a: 2 },
  12345.678,
  true,
];

/** One item's outcome as the test compares it: success as given, an error reduced to its code. */
type Outcome = { id: string; status: string } | { id: string; code: string };

/** Check a batch answer's shape (200, one well-formed entry per item) and reduce it to outcomes. */
function outcomes(a: Answer, what: string): Outcome[] {
  assert.equal(a.status, 200, `${what}: ${JSON.stringify(a.body)}`);
  assert.ok(Array.isArray(a.body?.items), `${what}: no items array in ${JSON.stringify(a.body)}`);
  return (a.body.items as Record<string, any>[]).map((x) => {
    if (x.error === undefined) return x as Outcome;
    assert.deepEqual(Object.keys(x).sort(), ['error', 'id'], `${what}: an error entry has exactly id and error: ${JSON.stringify(x)}`);
    assert.ok(typeof x.error.message === 'string' && x.error.message.length > 0, `${what}: error without a message: ${JSON.stringify(x)}`);
    return { id: x.id, code: x.error.code };
  });
}

const completed = (id: string): Outcome => ({ id, status: 'completed' });
const pending = (id: string): Outcome => ({ id, status: 'pending' });
const conflict = (id: string): Outcome => ({ id, code: 'INTAKE_LEASE_CONFLICT' });
const notFound = (id: string): Outcome => ({ id, code: 'INTAKE_NOT_FOUND' });

function assertBadRequest(a: Answer, what: string): void {
  assert.equal(a.status, 400, `${what}: ${JSON.stringify(a.body)}`);
  assert.equal(a.body?.error?.code, 'INTAKE_BAD_REQUEST', `${what}: ${JSON.stringify(a.body)}`);
}

for (const engine of ENGINES) {
  describe(`batch processing API: ${engine}`, () => {
    let d: Daemon;
    let db: DbReader;
    let lanes = 0;

    before(async () => {
      const t = await dbs.fresh(engine);
      d = await startWorkNode(t);
      daemons.push(d);
      db = dbReader(t.url);
    });
    after(async () => {
      await db?.close();
    });

    /** Submit `n` requests in a lane of their own and claim them all; items in claim order. */
    async function claimed(n: number, leaseSeconds = 60): Promise<{ lane: string; items: Item[] }> {
      const lane = `b${++lanes}`;
      return { lane, items: await claimAll(d, setup.hooks.url, n, lane, leaseSeconds) };
    }

    const batch = (what: 'complete' | 'release', body: unknown): Promise<Answer> => post(`${d.url}/v1/work/${what}`, body);

    /**
     * What the tables hold for `ids`: each request's status, attempts, lease token and result,
     * and its outbox rows. Compared before and after a call to prove that it wrote nothing.
     */
    async function snapshot(ids: readonly string[]) {
      const rows = new Map((await db.requests(ids)).map((r) => [r.id, r] as const));
      const outbox = await db.outbox(ids);
      return ids.map((id) => ({ id, row: rows.get(id) ?? null, outbox: outbox.filter((o) => o.request_id === id).map((o) => o.id) }));
    }

    /** A completed request: status, the result exactly as sent, and exactly one outbox row carrying it. */
    async function assertCompletedWith(id: string, result: unknown): Promise<void> {
      const g = await get(`${d.url}/v1/requests/${id}`);
      assert.equal(g.body.status, 'completed', `${id}: ${JSON.stringify(g.body)}`);
      assert.deepEqual(g.body.result, wire(result), `${id}: the result read through GET`);
      assert.equal(g.body.callback?.webhook_id, `msg_${id}`);
      const [row] = await db.requests([id]);
      assert.equal(row?.status, 'completed');
      assert.notEqual(row!.result, null, `${id}: no result in the table (a JSON null result is the text "null")`);
      assert.deepEqual(JSON.parse(row!.result!), wire(result), `${id}: the result in the table`);
      assert.match(row!.lease_token ?? '', UUID, `${id}: a completed request keeps the token that completed it (a repeated complete is answered 200)`);
      const outbox = await db.outbox([id]);
      assert.equal(outbox.length, 1, `${id}: ${outbox.length} outbox rows`);
      assert.equal(outbox[0]!.id, `msg_${id}`);
      const body = JSON.parse(outbox[0]!.body);
      assert.equal(body.type, 'request.completed');
      assert.deepEqual(body.data, { id, status: 'completed', result: wire(result) }, `${id}: the callback body`);
    }

    /** Claimed under `token` (or any token), no result, no outbox row. */
    async function assertStillClaimed(id: string, token?: string): Promise<void> {
      const [s] = await snapshot([id]);
      assert.equal(s!.row?.status, 'claimed', `${id}: ${JSON.stringify(s)}`);
      if (token !== undefined) assert.equal(s!.row!.lease_token, token, `${id}: claimed under another token`);
      assert.equal(s!.row!.result, null, `${id}: a result was stored`);
      assert.deepEqual(s!.outbox, [], `${id}: an outbox row was written`);
    }

    test('a batch of good items: all completed, answered in request order, results stored as sent, one outbox row each', async () => {
      const { items } = await claimed(RESULTS.length);
      // Answered in the order of the request, not of the claim or of the table.
      const order = [...items].reverse();
      const resultOf = new Map(order.map((it, i) => [it.id, RESULTS[i]] as const));
      const a = await batch('complete', { items: order.map((it) => ({ id: it.id, lease_token: it.lease_token, result: resultOf.get(it.id) })) });
      assert.deepEqual(outcomes(a, 'good batch'), order.map((it) => completed(it.id)));
      assert.deepEqual(a.body.items, order.map((it) => ({ id: it.id, status: 'completed' })), 'a success is exactly {id, status}');
      for (const it of order) await assertCompletedWith(it.id, resultOf.get(it.id));

      // The same batch again (a worker that lost the answer): completed again, nothing written twice.
      const same = await batch('complete', { items: order.map((it) => ({ id: it.id, lease_token: it.lease_token, result: resultOf.get(it.id) })) });
      assert.deepEqual(outcomes(same, 'the same batch again'), order.map((it) => completed(it.id)));
      // Another result under the same tokens: the first completion stands, nothing changes, still one outbox row each.
      const again = await batch('complete', { items: order.map((it) => ({ id: it.id, lease_token: it.lease_token, result: 'second' })) });
      assert.deepEqual(outcomes(again, 'second completion'), order.map((it) => conflict(it.id)));
      const rel = await batch('release', { items: order.map((it) => ({ id: it.id, lease_token: it.lease_token })) });
      assert.deepEqual(outcomes(rel, 'release after completion'), order.map((it) => conflict(it.id)));
      for (const it of order) await assertCompletedWith(it.id, resultOf.get(it.id));
      // The callbacks are sent, as for the per-id form.
      await waitFor('every callback received', () => order.every((it) => setup.hooks.received.includes(`msg_${it.id}`)), 15000);
    });

    test('each claimed item has its own lease token, good for that item only', async () => {
      const { items } = await claimed(4);
      const tokens = items.map((it) => it.lease_token);
      for (const t of tokens) assert.match(t, UUID);
      assert.equal(new Set(tokens).size, tokens.length, `the items of one claim share a lease token: ${JSON.stringify(tokens)}`);
      const [a, b, c, e] = items as [Item, Item, Item, Item];
      const ids = items.map((it) => it.id);
      const before = await snapshot(ids);

      // Another item's token, in both directions, in both batch forms and the per-id form.
      const swapped = await batch('complete', {
        items: [
          { id: a.id, lease_token: b.lease_token, result: 'a with the token of b' },
          { id: b.id, lease_token: a.lease_token, result: 'b with the token of a' },
        ],
      });
      assert.deepEqual(outcomes(swapped, 'complete with swapped tokens'), [conflict(a.id), conflict(b.id)]);
      // A token that is not even a UUID was never issued: a conflict too (PostgreSQL stores tokens as uuid).
      const rel = await batch('release', { items: [{ id: c.id, lease_token: e.lease_token }, { id: e.id, lease_token: 'not-a-uuid-token' }] });
      assert.deepEqual(outcomes(rel, 'release with the token of another item'), [conflict(c.id), conflict(e.id)]);
      const one = await post(`${d.url}/v1/work/${e.id}/complete`, { lease_token: c.lease_token, result: 'e with the token of c' });
      assert.equal(one.status, 409, `per-id complete with another item's token: ${JSON.stringify(one.body)}`);
      assert.equal(one.body.error.code, 'INTAKE_LEASE_CONFLICT');
      assert.deepEqual(await snapshot(ids), before, 'a refused token changed the table');

      // Each with its own token: all good.
      const ok = await batch('complete', { items: items.map((it) => ({ id: it.id, lease_token: it.lease_token, result: { own: it.id } })) });
      assert.deepEqual(outcomes(ok, 'own tokens'), items.map((it) => completed(it.id)));
      for (const it of items) await assertCompletedWith(it.id, { own: it.id });
    });

    test('partial failure: the good item is completed; a stale token, an unknown id and a non-UUID id get their own errors and change nothing', async () => {
      const { lane, items } = await claimed(2);
      const [good, stale] = items as [Item, Item];
      // The stale token: released, then the request is claimed again under a new token.
      assert.equal((await post(`${d.url}/v1/work/${stale.id}/release`, { lease_token: stale.lease_token })).status, 200);
      const again = await post(`${d.url}/v1/work/claim`, { lane, limit: 1, lease_seconds: 60 });
      assert.equal(again.body.items[0]?.id, stale.id);
      const fresh = again.body.items[0] as Item;
      assert.notEqual(fresh.lease_token, stale.lease_token);
      const unknown = '00000000-0000-7000-8000-000000000000';
      const notUuid = 'not-a-uuid';
      const before = await snapshot([stale.id, unknown, notUuid]);

      const a = await batch('complete', {
        items: [
          { id: good.id, lease_token: good.lease_token, result: { by: 'good' } },
          { id: stale.id, lease_token: stale.lease_token, result: { by: 'stale' } },
          { id: unknown, lease_token: randomUUID(), result: { by: 'unknown' } },
          { id: notUuid, lease_token: randomUUID(), result: { by: 'not a uuid' } },
        ],
      });
      assert.deepEqual(outcomes(a, 'mixed batch'), [completed(good.id), conflict(stale.id), notFound(unknown), notFound(notUuid)]);
      await assertCompletedWith(good.id, { by: 'good' });
      assert.deepEqual(await snapshot([stale.id, unknown, notUuid]), before, 'a failed item changed the table');
      await assertStillClaimed(stale.id, fresh.lease_token);
      assert.deepEqual(await db.requests([unknown, notUuid]), [], 'a row appeared for an unknown id');

      // The same kinds of failure in a release batch; the request's current owner is untouched.
      const r = await batch('release', {
        items: [
          { id: stale.id, lease_token: stale.lease_token },
          { id: unknown, lease_token: randomUUID() },
          { id: notUuid, lease_token: randomUUID() },
          { id: good.id, lease_token: good.lease_token },
        ],
      });
      assert.deepEqual(outcomes(r, 'mixed release'), [conflict(stale.id), notFound(unknown), notFound(notUuid), conflict(good.id)]);
      await assertStillClaimed(stale.id, fresh.lease_token);

      // The new owner completes it.
      const done = await batch('complete', { items: [{ id: stale.id, lease_token: fresh.lease_token, result: { by: 'new owner' } }] });
      assert.deepEqual(outcomes(done, 'new owner'), [completed(stale.id)]);
      await assertCompletedWith(stale.id, { by: 'new owner' });
      await assertCompletedWith(good.id, { by: 'good' });
    });

    test('stale tokens: a lease that expired and was claimed by another worker gets a conflict; the new owner still completes', async () => {
      // Worker A claims three requests for one second; once the leases ran out, worker B claims
      // two of them. The third stays expired and unclaimed: a stale token of another kind.
      const { lane, items: old } = await claimed(3, 1);
      const mine: Item[] = await waitFor('the expired leases to be claimable again', async () => {
        const r = await post(`${d.url}/v1/work/claim`, { lane, limit: 2, lease_seconds: 60 });
        return r.body.items.length > 0 ? r.body.items : null;
      }, 10000, 100);
      assert.deepEqual(mine.map((it) => it.id), old.slice(0, 2).map((it) => it.id), 'B claimed the two oldest');
      assert.ok(mine.every((it) => it.attempts === 2));
      const ids = old.map((it) => it.id);
      const before = await snapshot(ids);

      const late = await batch('complete', { items: old.map((it) => ({ id: it.id, lease_token: it.lease_token, result: { by: 'A' } })) });
      assert.deepEqual(outcomes(late, 'late completion by A'), old.map((it) => conflict(it.id)));
      const lateRel = await batch('release', { items: old.map((it) => ({ id: it.id, lease_token: it.lease_token })) });
      assert.deepEqual(outcomes(lateRel, 'late release by A'), old.map((it) => conflict(it.id)));
      assert.deepEqual(await snapshot(ids), before, "A's late calls changed the table");
      for (const it of mine) await assertStillClaimed(it.id, it.lease_token);

      const ok = await batch('complete', { items: mine.map((it) => ({ id: it.id, lease_token: it.lease_token, result: { by: 'B' } })) });
      assert.deepEqual(outcomes(ok, 'completion by B'), mine.map((it) => completed(it.id)));
      for (const it of mine) await assertCompletedWith(it.id, { by: 'B' });
    });

    test('a lease that expired with nobody else claiming it cannot be completed with its token', async () => {
      const { items } = await claimed(2, 1);
      await sleep(1300);
      const ids = items.map((it) => it.id);
      const before = await snapshot(ids);
      const a = await batch('complete', { items: items.map((it) => ({ id: it.id, lease_token: it.lease_token, result: 'too late' })) });
      assert.deepEqual(outcomes(a, 'completion after expiry'), items.map((it) => conflict(it.id)));
      assert.deepEqual(await snapshot(ids), before);
    });

    test('release batch: the requests are pending at once and claimable again; the released tokens are dead', async () => {
      const { lane, items } = await claimed(3);
      const unknown = randomUUID();
      const r = await batch('release', { items: [...items.map((it) => ({ id: it.id, lease_token: it.lease_token })), { id: unknown, lease_token: randomUUID() }] });
      assert.deepEqual(outcomes(r, 'release'), [...items.map((it) => pending(it.id)), notFound(unknown)]);
      for (const s of await snapshot(items.map((it) => it.id))) {
        assert.equal(s.row?.status, 'pending', JSON.stringify(s));
        assert.equal(s.row!.lease_token, null);
        assert.equal(s.row!.result, null);
        assert.deepEqual(s.outbox, []);
        assert.equal((await get(`${d.url}/v1/requests/${s.id}`)).body.status, 'pending');
      }

      const c = await post(`${d.url}/v1/work/claim`, { lane, limit: 3, lease_seconds: 60 });
      assert.deepEqual(c.body.items.map((x: Item) => x.id), items.map((it) => it.id), 'released requests are claimable at once, oldest first');
      const next = c.body.items as Item[];
      for (const [i, it] of next.entries()) {
        assert.equal(it.attempts, 2);
        assert.notEqual(it.lease_token, items[i]!.lease_token);
      }
      const dead = await batch('complete', { items: items.map((it) => ({ id: it.id, lease_token: it.lease_token, result: 'released token' })) });
      assert.deepEqual(outcomes(dead, 'complete with released tokens'), items.map((it) => conflict(it.id)));
      const twice = await batch('release', { items: items.map((it) => ({ id: it.id, lease_token: it.lease_token })) });
      assert.deepEqual(outcomes(twice, 'second release'), items.map((it) => conflict(it.id)));
      for (const it of next) await assertStillClaimed(it.id, it.lease_token);

      const ok = await batch('complete', { items: next.map((it) => ({ id: it.id, lease_token: it.lease_token, result: { n: it.attempts } })) });
      assert.deepEqual(outcomes(ok, 'complete after the second claim'), next.map((it) => completed(it.id)));
      for (const it of next) await assertCompletedWith(it.id, { n: 2 });
    });

    test('the same id twice in one batch is refused whole with 400 and nothing is written', async () => {
      const { items } = await claimed(2);
      const [a, b] = items as [Item, Item];
      const ids = [a.id, b.id];
      const before = await snapshot(ids);
      const twice = [
        { id: a.id, lease_token: a.lease_token, result: 1 },
        { id: b.id, lease_token: b.lease_token, result: 2 },
        { id: a.id, lease_token: a.lease_token, result: 3 },
      ];
      assertBadRequest(await batch('complete', { items: twice }), 'complete, the same id twice');
      assertBadRequest(await batch('complete', { items: [twice[0], { ...twice[0], lease_token: randomUUID() }] }), 'complete, the same id twice with different tokens');
      assertBadRequest(await batch('release', { items: [{ id: b.id, lease_token: b.lease_token }, { id: b.id, lease_token: b.lease_token }] }), 'release, the same id twice');
      assert.deepEqual(await snapshot(ids), before, 'a refused batch changed the table');
      // The refused batches spent nothing: the tokens still work.
      const ok = await batch('complete', { items: twice.slice(0, 2) });
      assert.deepEqual(outcomes(ok, 'after the refusals'), [completed(a.id), completed(b.id)]);
      await assertCompletedWith(a.id, 1);
      await assertCompletedWith(b.id, 2);
    });

    test('a malformed batch is refused whole with 400 INTAKE_BAD_REQUEST and nothing is written', async () => {
      const { items } = await claimed(2);
      const [g, h] = items as [Item, Item];
      const good = { id: g.id, lease_token: g.lease_token, result: 'good' };
      const other = { id: h.id, lease_token: h.lease_token, result: 'other' };
      const filler = (n: number) => Array.from({ length: n }, () => ({ id: randomUUID(), lease_token: randomUUID(), result: 0 }));
      // [what, batch form, body]. Every batch that has items starts with a good one, so "nothing
      // is written" means something: the good item would have been completed or released.
      const cases: [string, 'complete' | 'release', unknown][] = [
        ['body is an array', 'complete', [good]],
        ['body is a string', 'complete', JSON.stringify('items')],
        ['body is a number', 'complete', 42],
        ['body is an empty object', 'complete', {}],
        ['items is null', 'complete', { items: null }],
        ['items is an object', 'complete', { items: { 0: good } }],
        ['items is a string', 'complete', { items: 'good' }],
        ['items is empty', 'complete', { items: [] }],
        [`${MAX_ITEMS + 1} items`, 'complete', { items: [good, ...filler(MAX_ITEMS)] }],
        ['an item is null', 'complete', { items: [good, null] }],
        ['an item is a number', 'complete', { items: [good, 7] }],
        ['an item is a string', 'complete', { items: [good, h.id] }],
        ['an item is an array', 'complete', { items: [good, [other]] }],
        ['an item has no id', 'complete', { items: [good, { lease_token: h.lease_token, result: 'other' }] }],
        ['an item has an id that is not a string', 'complete', { items: [good, { ...other, id: 7 }] }],
        ['an item has no lease_token', 'complete', { items: [good, { id: h.id, result: 'other' }] }],
        ['an item has an empty lease_token', 'complete', { items: [good, { ...other, lease_token: '' }] }],
        ['an item has a lease_token that is not a string', 'complete', { items: [good, { ...other, lease_token: 12345 }] }],
        ['an item has no result', 'complete', { items: [good, { id: h.id, lease_token: h.lease_token }] }],
        ['body is an array', 'release', [good]],
        ['items is empty', 'release', { items: [] }],
        ['items is missing', 'release', { id: g.id, lease_token: g.lease_token }],
        [`${MAX_ITEMS + 1} items`, 'release', { items: [good, ...filler(MAX_ITEMS)] }],
        ['an item is null', 'release', { items: [good, null] }],
        ['an item has no id', 'release', { items: [good, { lease_token: h.lease_token }] }],
        ['an item has no lease_token', 'release', { items: [good, { id: h.id }] }],
        ['an item has an empty lease_token', 'release', { items: [good, { id: h.id, lease_token: '' }] }],
      ];
      const before = await snapshot([g.id, h.id]);
      const problems: string[] = [];
      for (const [what, form, body] of cases) {
        const a = await batch(form, body);
        if (a.status !== 400 || a.body?.error?.code !== 'INTAKE_BAD_REQUEST') problems.push(`${form}, ${what}: ${a.status} ${JSON.stringify(a.body).slice(0, 300)}`);
        const now = await snapshot([g.id, h.id]);
        if (JSON.stringify(now) !== JSON.stringify(before)) problems.push(`${form}, ${what}: the table changed: ${JSON.stringify(now)}`);
      }
      assert.deepEqual(problems, [], 'malformed batches that were not refused whole');
      const ok = await batch('complete', { items: [good, other] });
      assert.deepEqual(outcomes(ok, 'the good batch after the refusals'), [completed(g.id), completed(h.id)]);
    });

    test(`${MAX_ITEMS} items is within the limit: each gets its own answer, in order`, async () => {
      const { items } = await claimed(2);
      const [g, h] = items as [Item, Item];
      const unknown = Array.from({ length: MAX_ITEMS - 1 }, () => randomUUID());
      const rel = await batch('release', { items: [{ id: h.id, lease_token: h.lease_token }, ...unknown.map((id) => ({ id, lease_token: randomUUID() }))] });
      assert.deepEqual(outcomes(rel, `release of ${MAX_ITEMS}`), [pending(h.id), ...unknown.map(notFound)]);
      // The good item in the middle, the just released one last.
      const head = unknown.slice(0, 500);
      const tail = unknown.slice(500, MAX_ITEMS - 2);
      const filler = (id: string) => ({ id, lease_token: randomUUID(), result: 0 });
      const a = await batch('complete', {
        items: [...head.map(filler), { id: g.id, lease_token: g.lease_token, result: { middle: true } }, ...tail.map(filler), { id: h.id, lease_token: h.lease_token, result: 0 }],
      });
      assert.deepEqual(outcomes(a, `complete of ${MAX_ITEMS}`), [...head.map(notFound), completed(g.id), ...tail.map(notFound), conflict(h.id)]);
      await assertCompletedWith(g.id, { middle: true });
      assert.deepEqual(await db.requests(unknown), []);
      assert.deepEqual(await db.outbox(unknown), []);
    });

    // PostgreSQL stores U+0000 neither in jsonb nor in text, and jsonb refuses an unpaired
    // surrogate; intake refuses such a payload at intake with 400 on both engines. A result is
    // client input like a payload: it must get a clear 400 (never a 500 that depends on the
    // engine), and one such item must not fail the other items of its batch or its commit group.
    test('a result the database cannot store (U+0000, an unpaired surrogate) is refused with 400 and writes nothing', async () => {
      const cases: [string, unknown][] = [
        ['U+0000 in a string', { s: 'a\u0000b' }],
        ['U+0000 in a key', { 'k\u0000': 1 }],
        ['an unpaired surrogate', { s: '\ud800' }],
      ];
      // Per case: an item for the per-id form, one for the batch form, and a good item beside it in the batch.
      const { items } = await claimed(3 * cases.length);
      const ids = items.map((it) => it.id);
      const before = await snapshot(ids);
      const problems: string[] = [];
      for (const [i, [what, result]] of cases.entries()) {
        const [one, inBatch, good] = items.slice(3 * i, 3 * i + 3) as [Item, Item, Item];
        const a = await post(`${d.url}/v1/work/${one.id}/complete`, { lease_token: one.lease_token, result });
        if (a.status !== 400) problems.push(`per-id, ${what}: ${a.status} ${JSON.stringify(a.body)}`);
        const b = await batch('complete', { items: [{ id: good.id, lease_token: good.lease_token, result: 'good' }, { id: inBatch.id, lease_token: inBatch.lease_token, result }] });
        if (b.status !== 400) problems.push(`batch, ${what}: ${b.status} ${JSON.stringify(b.body)}`);
      }
      if (JSON.stringify(await snapshot(ids)) !== JSON.stringify(before)) problems.push('the table changed');
      assert.deepEqual(problems, []);
    });

    // Completions are group-committed: what arrives while earlier ones are written shares the
    // next store call. A completion the database refuses must fail alone, not the other
    // workers' completions that happen to share its call. Three large batches of unknown ids
    // keep the store busy first, so that the refused one and the good ones queue up together;
    // a few rounds, since which calls share a group is up to timing.
    test('completions queued together with one the database cannot store are all completed', async () => {
      const rounds = 4;
      const perRound = 10;
      const { items } = await claimed(1 + rounds * perRound);
      const [bad, ...good] = items as [Item, ...Item[]];
      const badResult = { s: 'a\u0000b' };
      const blocker = () =>
        batch('complete', { items: Array.from({ length: MAX_ITEMS }, () => ({ id: randomUUID(), lease_token: randomUUID(), result: { pad: 'x'.repeat(200) } })) });
      const problems: string[] = [];
      let badAnswer: Answer | null = null;
      for (let r = 0; r < rounds; r++) {
        const mine = good.slice(r * perRound, (r + 1) * perRound);
        const blockers = [blocker(), blocker(), blocker()];
        await sleep(30);
        const [b, perId, inBatch] = await Promise.all([
          post(`${d.url}/v1/work/${bad.id}/complete`, { lease_token: bad.lease_token, result: badResult }),
          Promise.all(mine.slice(0, 7).map((it) => post(`${d.url}/v1/work/${it.id}/complete`, { lease_token: it.lease_token, result: { ok: it.id } }))),
          batch('complete', { items: mine.slice(7).map((it) => ({ id: it.id, lease_token: it.lease_token, result: { ok: it.id } })) }),
        ]);
        badAnswer ??= b;
        perId.forEach((a, i) => a.status !== 200 && problems.push(`round ${r + 1}, ${mine[i]!.id} (per id): ${a.status} ${JSON.stringify(a.body)}`));
        if (inBatch.status !== 200 || inBatch.body.items.some((x: { status?: string }) => x.status !== 'completed')) problems.push(`round ${r + 1}, batch: ${inBatch.status} ${JSON.stringify(inBatch.body)}`);
        for (const a of await Promise.all(blockers)) if (a.status !== 200) problems.push(`round ${r + 1}, a batch of unknown ids: ${a.status} ${JSON.stringify(a.body).slice(0, 200)}`);
      }
      assert.deepEqual(problems, [], 'good completions failed beside a refused one');
      for (const it of good) await assertCompletedWith(it.id, { ok: it.id });
      // Whether that one is refused is the test above; here only that its answer tells the truth.
      if (badAnswer!.status === 200) await assertCompletedWith(bad.id, badResult);
      else await assertStillClaimed(bad.id, bad.lease_token);
    });
  });
}

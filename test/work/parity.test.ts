// Engine parity of the processing API's edge cases: the same calls against a node on SQLite and
// a node on a throwaway PostgreSQL must get the same status and error code, and each the one the
// contract names (docs/callbacks.md, docs/errors.md): results the database could not keep
// exactly (U+0000, a lone surrogate, too deep, a key twice, big numbers, bytes that are not
// UTF-8) are refused and write nothing; stale tokens conflict; a complete repeated with the same
// token and result answers 200 again (also two at once, and with the keys in another order),
// with another result 409; unknown ids 404; release and extend after completion 409; a batch
// with an id twice 400. Each engine's answers are listed, checked against the expected ones,
// then the two lists are compared.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Daemon } from '../helpers/daemon.js';
import { dbReader, type DbReader } from '../helpers/db.js';
import { get, post, type Answer } from '../helpers/http.js';
import { claimAll, ENGINES, startWorkNode, workTestSetup, type ClaimedItem, type Engine } from '../helpers/work.js';

const setup = workTestSetup('intake-parity-');
const { dbs, daemons } = setup;
/** Each engine's answers, in step order: "step: status code". */
const answers = new Map<Engine, string[]>();

/** An answer as the lists hold it: the status and, for an error, its code; for a batch, each item's outcome. */
function summary(a: Answer): string {
  if (a.body?.error) return `${a.status} ${a.body.error.code}`;
  if (Array.isArray(a.body?.items)) return `${a.status} [${a.body.items.map((x: { status?: string; error?: { code: string } }) => x.status ?? x.error?.code).join(', ')}]`;
  return String(a.status);
}

const deep = (n: number) => `${'['.repeat(n)}1${']'.repeat(n)}`;
const notUtf8 = (head: string, tail: string) => Buffer.concat([Buffer.from(head), Buffer.from([0xc3, 0x28]), Buffer.from(tail)]);
const UNKNOWN_ID = '01a22c7a-e525-75a9-95f3-3ead60f45baa';
const RESULT = { a: 1, b: [1.5, 'x', { c: null }] };

/** [step, expected answer] in order; the steps are run by `run` below. */
const EXPECTED: [string, string][] = [
  ['result with U+0000', '400 INTAKE_BAD_REQUEST'],
  ['result with a lone surrogate', '400 INTAKE_BAD_REQUEST'],
  ['result nested too deep', '400 INTAKE_JSON_TOO_DEEP'],
  ['result with a key twice', '400 INTAKE_JSON_DUPLICATE_KEY'],
  ['result 1e400', '400 INTAKE_JSON_INEXACT_NUMBER'],
  ['result 123456789012345678901234567890', '400 INTAKE_JSON_INEXACT_NUMBER'],
  ['result not UTF-8', '400 INTAKE_BAD_UTF8'],
  ['row after the refusals', 'claimed, no result, 0 outbox rows'],
  ['stale token', '409 INTAKE_LEASE_CONFLICT'],
  ['token that is not a UUID', '409 INTAKE_LEASE_CONFLICT'],
  ['complete', '200'],
  ['the same complete again', '200'],
  ['the same result, keys in another order, 1.50 and 1.0', '200'],
  ['same token, another result', '409 INTAKE_LEASE_CONFLICT'],
  ['another request token', '409 INTAKE_LEASE_CONFLICT'],
  ['release after complete', '409 INTAKE_LEASE_CONFLICT'],
  ['extend after complete', '409 INTAKE_LEASE_CONFLICT'],
  ['row after the repeats', 'completed, the first result, 1 outbox row'],
  ['unknown id', '404 INTAKE_NOT_FOUND'],
  ['not a request id', '404 INTAKE_NOT_FOUND'],
  ['result -0', '200'],
  ['result -0 read back', '0'],
  ['result null', '200'],
  ['result null again', '200'],
  ['result "x" after null', '409 INTAKE_LEASE_CONFLICT'],
  ['two identical completes at once', '200 200'],
  ['two different completes at once', '200 409 INTAKE_LEASE_CONFLICT'],
  ['batch: two good items and an unknown id', '200 [completed, completed, INTAKE_NOT_FOUND]'],
  ['the same batch again', '200 [completed, completed, INTAKE_NOT_FOUND]'],
  ['batch: another result, the same result', '200 [INTAKE_LEASE_CONFLICT, completed]'],
  ['batch release after complete', '200 [INTAKE_LEASE_CONFLICT]'],
  ['batch with an id twice', '400 INTAKE_BAD_REQUEST'],
  ['batch with a key twice in a result', '400 INTAKE_JSON_DUPLICATE_KEY'],
  ['batch with U+0000 in a result', '400 INTAKE_BAD_REQUEST'],
  ['batch nested too deep', '400 INTAKE_JSON_TOO_DEEP'],
  ['batch with 2^64', '400 INTAKE_JSON_INEXACT_NUMBER'],
  ['rows after the refused batches', 'claimed, claimed'],
  ['release', '200'],
  ['complete with the released token', '409 INTAKE_LEASE_CONFLICT'],
];

/** Runs every step on one node; returns the answers in EXPECTED's order. */
async function run(d: Daemon, db: DbReader, it: ClaimedItem[]): Promise<string[]> {
  const out: string[] = [];
  const note = (s: string) => out.push(s);
  const complete = async (i: ClaimedItem, body: unknown) => summary(await post(`${d.url}/v1/work/${i.id}/complete`, body));
  const completeRaw = (i: ClaimedItem, result: string | Buffer) =>
    complete(i, typeof result === 'string' ? `{"lease_token":"${i.lease_token}","result":${result}}` : result);
  const batch = async (what: 'complete' | 'release', body: unknown) => summary(await post(`${d.url}/v1/work/${what}`, body));
  const row = async (i: ClaimedItem) => {
    const [r] = await db.requests([i.id]);
    return { status: r?.status, result: r?.result === null || r?.result === undefined ? null : JSON.parse(r.result), outbox: (await db.outbox([i.id])).length };
  };
  const [a, b, c, e, f, g, h, k, m] = it as [ClaimedItem, ClaimedItem, ClaimedItem, ClaimedItem, ClaimedItem, ClaimedItem, ClaimedItem, ClaimedItem, ClaimedItem];

  // What the database could not keep exactly: refused, nothing written.
  note(await complete(a, { lease_token: a.lease_token, result: 'a\u0000b' }));
  note(await completeRaw(a, '"\\ud800"'));
  note(await completeRaw(a, deep(70)));
  note(await completeRaw(a, '{"k":1,"k":2}'));
  note(await completeRaw(a, '1e400'));
  note(await completeRaw(a, '123456789012345678901234567890'));
  note(await completeRaw(a, notUtf8(`{"lease_token":"${a.lease_token}","result":"`, '"}')));
  const r0 = await row(a);
  note(`${r0.status}, ${r0.result === null ? 'no result' : 'a result'}, ${r0.outbox} outbox rows`);
  // Tokens that do not hold the lease.
  note(await complete(a, { lease_token: randomUUID(), result: RESULT }));
  note(await complete(a, { lease_token: 'not-a-uuid', result: RESULT }));
  // Complete, then again: the same is 200, anything else 409.
  note(await complete(a, { lease_token: a.lease_token, result: RESULT }));
  note(await complete(a, { lease_token: a.lease_token, result: RESULT }));
  note(await completeRaw(a, '{"b":[1.50,"x",{"c":null}],"a":1.0}'));
  note(await complete(a, { lease_token: a.lease_token, result: { ...RESULT, a: 2 } }));
  note(await complete(a, { lease_token: b.lease_token, result: RESULT }));
  note(summary(await post(`${d.url}/v1/work/${a.id}/release`, { lease_token: a.lease_token })));
  note(summary(await post(`${d.url}/v1/work/${a.id}/extend`, { lease_token: a.lease_token, lease_seconds: 60 })));
  const r1 = await row(a);
  assert.deepEqual(r1.result, RESULT, 'the first result stands');
  note(`${r1.status}, the first result, ${r1.outbox} outbox row${r1.outbox === 1 ? '' : 's'}`);
  // Ids.
  note(summary(await post(`${d.url}/v1/work/${UNKNOWN_ID}/complete`, { lease_token: randomUUID(), result: 1 })));
  note(summary(await post(`${d.url}/v1/work/not-a-request-id/complete`, { lease_token: randomUUID(), result: 1 })));
  // -0 is kept as 0; null is a result like any other.
  note(await completeRaw(b, '-0'));
  note(JSON.stringify((await get(`${d.url}/v1/requests/${b.id}`)).body.result));
  note(await complete(c, { lease_token: c.lease_token, result: null }));
  note(await complete(c, { lease_token: c.lease_token, result: null }));
  note(await complete(c, { lease_token: c.lease_token, result: 'x' }));
  // At once: the same complete twice is 200 twice; two different ones, one wins.
  note((await Promise.all([complete(e, { lease_token: e.lease_token, result: 'same' }), complete(e, { lease_token: e.lease_token, result: 'same' })])).join(' '));
  note((await Promise.all([complete(f, { lease_token: f.lease_token, result: 'one' }), complete(f, { lease_token: f.lease_token, result: 'two' })])).sort().join(' '));
  // Batch forms.
  const good = { items: [{ id: g.id, lease_token: g.lease_token, result: [1, 2] }, { id: h.id, lease_token: h.lease_token, result: { z: 'ü' } }, { id: UNKNOWN_ID, lease_token: randomUUID(), result: 1 }] };
  note(await batch('complete', good));
  note(await batch('complete', good));
  note(await batch('complete', { items: [{ id: g.id, lease_token: g.lease_token, result: [2, 1] }, { id: h.id, lease_token: h.lease_token, result: { z: 'ü' } }] }));
  note(await batch('release', { items: [{ id: g.id, lease_token: g.lease_token }] }));
  note(await batch('complete', { items: [{ id: k.id, lease_token: k.lease_token, result: 1 }, { id: k.id, lease_token: k.lease_token, result: 1 }] }));
  const items = (result: string) => `{"items":[{"id":"${m.id}","lease_token":"${m.lease_token}","result":1},{"id":"${k.id}","lease_token":"${k.lease_token}","result":${result}}]}`;
  note(await batch('complete', items('{"a":1,"a":1}')));
  note(await batch('complete', items('"\\u0000"')));
  note(await batch('complete', items(deep(62))));
  note(await batch('complete', items('18446744073709551616')));
  note(`${(await row(k)).status}, ${(await row(m)).status}`);
  // A released token is dead.
  note(summary(await post(`${d.url}/v1/work/${k.id}/release`, { lease_token: k.lease_token })));
  note(await complete(k, { lease_token: k.lease_token, result: 1 }));
  return out;
}

for (const engine of ENGINES) {
  describe(`work API edge cases: ${engine}`, () => {
    let d: Daemon;
    let db: DbReader;
    before(async () => {
      const t = await dbs.fresh(engine);
      d = await startWorkNode(t);
      daemons.push(d);
      db = dbReader(t.url);
    });
    after(async () => {
      await db?.close();
    });

    test('every edge case gets the status and code the contract names', async () => {
      const items = await claimAll(d, setup.hooks.url, 9, 'parity');
      const got = await run(d, db, items);
      answers.set(engine, got);
      assert.deepEqual(
        EXPECTED.map(([step], i) => `${step}: ${got[i]}`),
        EXPECTED.map(([step, want]) => `${step}: ${want}`),
      );
      assert.equal(got.length, EXPECTED.length);
    });
  });
}

test('both engines answer every edge case alike', () => {
  const [s, p] = ENGINES.map((e) => answers.get(e));
  assert.ok(s && p, 'an engine did not run its edge cases (see its failure above)');
  assert.deepEqual(
    p.map((x, i) => `${EXPECTED[i]?.[0]}: ${x}`),
    s.map((x, i) => `${EXPECTED[i]?.[0]}: ${x}`),
  );
  console.log(`parity: ${s.length} edge cases, the same answer on SQLite and PostgreSQL`);
});

// What was acknowledged is what is stored: generated JSON texts (big numbers, keys twice, deep
// nesting, odd whitespace, unicode escapes, bytes that are not UTF-8; test/helpers/json-texts.ts)
// are sent to a real node (SQLite, mode both) as a request's payload, inside its metadata, and
// as a work result (per-id and batch complete). Each is either refused with 400 and nothing is
// written, or read back through GET as the same value, compared exactly (test/helpers/exact-json.ts:
// keys as sets, numbers as decimals, strings exactly), never rounded, merged or replaced.
// Texts that hold nothing to refuse must be accepted. fast-check prints the seed and the texts
// of a failing run (INTAKE_EXACT_SEED replays one).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Daemon } from '../helpers/daemon.js';
import { dbReader, type DbReader } from '../helpers/db.js';
import { canonical, member, parseExact, type Exact } from '../helpers/exact-json.js';
import { getText, post, waitFor } from '../helpers/http.js';
import { bytesOf, CODES, jsonText, notUtf8, type JsonPiece } from '../helpers/json-texts.js';
import { tempDir } from '../helpers/tmp.js';
import { claimAll, startHookReceiver, startWorkNode, testDatabases, type HookReceiver } from '../helpers/work.js';

/** --max-json-depth's default. */
const MAX_DEPTH = 64;
const RUNS = 4;
const CASES_PER_RUN = 30;
const CALLBACK = 'https://example.com/hook';

type Where = 'payload' | 'metadata' | 'result' | 'batch-result';

interface Case {
  text: JsonPiece;
  where: Where;
  bad: number[] | null;
}

const oneCase: fc.Arbitrary<Case> = fc.record({
  text: jsonText,
  where: fc.constantFrom<Where>('payload', 'metadata', 'result', 'batch-result'),
  bad: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: notUtf8 }),
});

/** Levels the body adds around the text. */
const LEVELS: Record<Where, number> = { payload: 1, metadata: 2, result: 1, 'batch-result': 3 };

/** The codes the case must be refused with (any one of them), or [] when it must be kept. */
function mustRefuse(c: Case): string[] {
  const must = [...c.text.must];
  if (c.bad) must.push(CODES.badUtf8);
  if (LEVELS[c.where] + c.text.depth > MAX_DEPTH) must.push(CODES.tooDeep);
  if (c.where === 'payload' && c.text.text.trim() === 'null') must.push(CODES.badRequest); // a payload is required
  return must;
}

/** The body around the case's bytes. */
function body(c: Case, item?: { id: string; lease_token: string }): Buffer {
  const around: Record<Where, [string, string]> = {
    payload: ['{"callback_url":"' + CALLBACK + '","payload":', '}'],
    metadata: ['{"callback_url":"' + CALLBACK + '","payload":1,"metadata":{"m":', '}}'],
    result: [`{"lease_token":"${item?.lease_token}","result":`, '}'],
    'batch-result': [`{"items":[{"id":"${item?.id}","lease_token":"${item?.lease_token}","result":`, '}]}'],
  };
  const [head, tail] = around[c.where];
  return Buffer.concat([Buffer.from(head), bytesOf(c.text.text, c.bad), Buffer.from(tail)]);
}

/** Where the case's value is in GET /v1/requests/:id. */
function readBack(c: Case, got: Exact): Exact | undefined {
  if (c.where === 'payload') return member(got, 'payload');
  if (c.where === 'metadata') return member(member(got, 'metadata') ?? null, 'm');
  return member(got, 'result');
}

const tmp = tempDir('intake-exact-');
const dbs = testDatabases(tmp.path);
let d: Daemon;
let db: DbReader;
let hooks: HookReceiver;
let lanes = 0;
const tally = new Map<string, number>();
const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);

before(async () => {
  hooks = await startHookReceiver();
  const t = await dbs.fresh('sqlite');
  d = await startWorkNode(t);
  db = dbReader(t.url);
});

after(async () => {
  await d?.kill('SIGKILL');
  await db?.close();
  await hooks?.close();
  await dbs.close();
  tmp.cleanup();
});

/** One case: its answer is checked now; what must be read back is returned for later. */
async function send(c: Case, item?: { id: string; lease_token: string }): Promise<{ id: string; c: Case } | null> {
  const url = c.where === 'payload' || c.where === 'metadata' ? '/v1/requests' : c.where === 'result' ? `/v1/work/${item!.id}/complete` : '/v1/work/complete';
  const a = await post(`${d.url}${url}`, body(c, item), {}, 60000);
  const must = mustRefuse(c);
  const allowed = c.text.risky ? [...must, CODES.inexactNumber] : must;
  const what = `${c.where} ${JSON.stringify(c.text.text.slice(0, 300))}${c.bad ? ` with bytes ${c.bad}` : ''}: ${a.status} ${JSON.stringify(a.body)}`;
  if (a.status === 400) {
    assert.ok(allowed.includes(a.body?.error?.code), `refused, but it should be ${must.length ? must.join(' or ') : 'kept'}: ${what}`);
    count(`400 ${a.body.error.code}`);
    return null;
  }
  assert.equal(must.length, 0, `accepted, but it should be refused with ${must.join(' or ')}: ${what}`);
  const ok = c.where === 'payload' || c.where === 'metadata' ? 202 : 200;
  assert.equal(a.status, ok, what);
  if (c.where === 'batch-result') assert.equal(a.body.items[0]?.status, 'completed', what);
  count(`${ok} ${c.where}`);
  return { id: item?.id ?? a.body.id, c };
}

/** GET shows exactly the value that was sent. */
async function assertKept(id: string, c: Case): Promise<void> {
  const text = await waitFor(`request ${id} readable`, async () => {
    const r = await getText(`${d.url}/v1/requests/${id}`);
    return r.status === 200 ? r.text : '';
  });
  const got = readBack(c, parseExact(text));
  assert.ok(got !== undefined, `${c.where} missing in ${text.slice(0, 300)}`);
  assert.equal(canonical(got), canonical(parseExact(c.text.text)), `${c.where} read back differs from what was sent: ${c.text.text.slice(0, 300)}`);
}

test('every JSON text is refused with 400 and nothing written, or kept exactly: payload, metadata, work results (SQLite)', async () => {
  let accepted = 0;
  let completes = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(oneCase, { minLength: CASES_PER_RUN, maxLength: CASES_PER_RUN }), async (cases) => {
      const forResults = cases.filter((c) => c.where === 'result' || c.where === 'batch-result');
      const items = forResults.length > 0 ? await claimAll(d, hooks.url, forResults.length, `x${++lanes}`) : [];
      completes += items.length;
      const kept = await Promise.all(cases.map((c) => send(c, c.where === 'result' || c.where === 'batch-result' ? items[forResults.indexOf(c)] : undefined)));
      accepted += kept.filter((k) => k && (k.c.where === 'payload' || k.c.where === 'metadata')).length;
      for (const k of kept) if (k) await assertKept(k.id, k.c);
      // A refused result wrote nothing: its request is still claimed, with no result.
      const refused = items.filter((_, i) => kept[cases.indexOf(forResults[i]!)] === null).map((it) => it.id);
      for (const row of await db.requests(refused)) assert.deepEqual([row.status, row.result], ['claimed', null], `refused result of ${row.id} was written`);
    }),
    { numRuns: RUNS, endOnFailure: true, ...(process.env.INTAKE_EXACT_SEED ? { seed: Number(process.env.INTAKE_EXACT_SEED) } : {}) },
  );
  // A refused request wrote nothing: the table holds the accepted ones and the ones made for results.
  await waitFor('every accepted request in the database', async () => (await db.requests()).length >= accepted + completes, 30000);
  assert.equal((await db.requests()).length, accepted + completes, 'a refused request was stored');
  console.log(`exact: ${RUNS * CASES_PER_RUN} texts, ${[...tally].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}`);
});

// The exactly-once checker for completions, in the style of checker.ts: the workers' ledger of
// what they sent and what was answered 200 on one side, the tables read directly on the other.
//   lost        = requests whose completion was answered 200 but that are not completed, or
//                 that are completed without an outbox row (the callback would never be sent)
//   duplicated  = requests answered 200 by more than one completion (the first one's commit
//                 was lost, or a lease was handed out twice), or with more than one outbox row
//   unexpected  = rows of requests never submitted; completed rows or callback bodies whose
//                 result no worker ever sent for that request; outbox rows of requests not completed
//   mismatched  = completed rows (or their callback body) whose result is not the one answered 200
// A request completed by a call that got no answer (the node died under it) is allowed: its
// stored result must still be one that was sent for it, which is what `unexpected` checks.
import { isDeepStrictEqual } from 'node:util';
import assert from 'node:assert/strict';
import type { OutboxRow, WorkRow } from '../helpers/db.js';

/** What the workers did, as they saw it. Results are kept as they went over the wire (parsed JSON). */
export class CompletionLedger {
  /** Every result sent in a completion of each request, answered or not. */
  readonly sent = new Map<string, unknown[]>();
  /** Results of completions answered 200, per request (more than one is a failure). */
  readonly acked = new Map<string, unknown[]>();
  /** Completions answered 200, by form. */
  readonly ackedBy = { perId: 0, batch: 0 };

  noteSent(id: string, result: unknown): void {
    push(this.sent, id, result);
  }

  noteAcked(id: string, result: unknown, form: 'perId' | 'batch'): void {
    push(this.acked, id, result);
    this.ackedBy[form]++;
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const xs = m.get(k);
  if (xs) xs.push(v);
  else m.set(k, [v]);
}

export interface CompletionInput {
  /** Ids of every request submitted (each one must end up completed). */
  submitted: readonly string[];
  ledger: CompletionLedger;
  rows: readonly WorkRow[];
  outbox: readonly OutboxRow[];
}

export interface CompletionReport {
  submitted: number;
  completed: number;
  /** Requests with a completion answered 200. */
  acked: number;
  /** Completed requests whose completion got no answer (the node died before it answered). */
  completedUnacked: number;
  outboxRows: number;
  notCompleted: string[];
  lost: string[];
  duplicated: string[];
  unexpected: string[];
  mismatched: string[];
}

const parse = (text: string | null): unknown => (text === null ? undefined : JSON.parse(text));
const among = (v: unknown, xs: readonly unknown[] | undefined): boolean => (xs ?? []).some((x) => isDeepStrictEqual(x, v));

export function checkCompletions(input: CompletionInput): CompletionReport {
  const submitted = new Set(input.submitted);
  const rows = new Map<string, WorkRow>();
  const unexpected: string[] = [];
  const duplicated: string[] = [];
  const lost: string[] = [];
  const mismatched: string[] = [];
  for (const r of input.rows) {
    if (!submitted.has(r.id)) unexpected.push(`row ${r.id} was never submitted`);
    if (rows.has(r.id)) duplicated.push(`request ${r.id} in two rows`);
    rows.set(r.id, r);
  }
  const outbox = new Map<string, OutboxRow[]>();
  for (const o of input.outbox) push(outbox, o.request_id, o);

  for (const [id, results] of input.ledger.acked) {
    if (results.length > 1) duplicated.push(`${id} answered 200 by ${results.length} completions: ${JSON.stringify(results)}`);
  }
  const notCompleted: string[] = [];
  let completed = 0;
  let completedUnacked = 0;
  for (const id of submitted) {
    const row = rows.get(id);
    const acked = input.ledger.acked.get(id);
    if (!row || row.status !== 'completed') {
      notCompleted.push(`${id} (${row ? row.status : 'no row'})`);
      if (acked) lost.push(`${id} answered 200 but ${row ? row.status : 'has no row'}`);
      continue;
    }
    completed++;
    if (!acked) completedUnacked++;
    const stored = parse(row.result);
    if (acked && !among(stored, acked)) mismatched.push(`${id} stores ${row.result}, answered 200 for ${JSON.stringify(acked)}`);
    else if (!among(stored, input.ledger.sent.get(id))) unexpected.push(`${id} stores ${row.result}, which no worker sent for it`);
    const cbs = outbox.get(id) ?? [];
    if (cbs.length === 0) lost.push(`${id} completed without an outbox row`);
    if (cbs.length > 1) duplicated.push(`${id} has ${cbs.length} outbox rows: ${cbs.map((c) => c.id).join(', ')}`);
    for (const cb of cbs) {
      const body = JSON.parse(cb.body) as { type?: string; data?: { id?: string; status?: string; result?: unknown } };
      if (cb.id !== `msg_${id}` || body.type !== 'request.completed' || body.data?.id !== id || body.data.status !== 'completed') {
        mismatched.push(`${id}: outbox row ${cb.id} carries ${cb.body.slice(0, 200)}`);
      } else if (!isDeepStrictEqual(body.data.result, stored)) {
        mismatched.push(`${id}: the callback body's result ${JSON.stringify(body.data.result)} is not the stored ${row.result}`);
      }
    }
  }
  for (const [id, cbs] of outbox) {
    const row = rows.get(id);
    if (!row || row.status !== 'completed') unexpected.push(`${cbs.length} outbox row(s) for ${id}, which is ${row ? row.status : 'not a request'}`);
  }
  return {
    submitted: submitted.size,
    completed,
    acked: input.ledger.acked.size,
    completedUnacked,
    outboxRows: input.outbox.length,
    notCompleted,
    lost,
    duplicated,
    unexpected,
    mismatched,
  };
}

export function formatCompletionReport(r: CompletionReport): string {
  return (
    `submitted=${r.submitted} completed=${r.completed} acked=${r.acked} completed-unacked=${r.completedUnacked} outbox=${r.outboxRows} ` +
    `not-completed=${r.notCompleted.length} lost=${r.lost.length} duplicated=${r.duplicated.length} unexpected=${r.unexpected.length} mismatched=${r.mismatched.length}`
  );
}

/** Fail with the first few offenders of each kind named. */
export function assertCompletedExactlyOnce(r: CompletionReport): void {
  const first = (xs: string[]) => xs.slice(0, 10).join('; ') + (xs.length > 10 ? `; ... (${xs.length} in all)` : '');
  assert.equal(r.lost.length, 0, `completions answered 200 that the database lost: ${first(r.lost)}`);
  assert.equal(r.duplicated.length, 0, `completions recorded more than once: ${first(r.duplicated)}`);
  assert.equal(r.unexpected.length, 0, `rows no completion explains: ${first(r.unexpected)}`);
  assert.equal(r.mismatched.length, 0, `stored results that are not the acknowledged ones: ${first(r.mismatched)}`);
  assert.equal(r.notCompleted.length, 0, `requests never completed: ${first(r.notCompleted)}`);
  assert.equal(r.outboxRows, r.completed, 'one outbox row per completed request');
}

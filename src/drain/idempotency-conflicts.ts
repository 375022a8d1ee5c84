// An Idempotency-Key reused with a different body on another node (or after the first node
// forgot it) reaches the drain as a record whose id is already stored with other content. The
// database keeps the first (its key on the id), but the second must not vanish without a trace:
// such records are found here and quarantined with reason `idempotency-conflict` (the bytes the
// client sent, for the operator), counted and logged. Only keyed records of a segment that
// held duplicates are looked at: a plain duplicate (a retry, a re-drain after a crash) has the
// same content and is not a conflict.
import { isDeepStrictEqual } from 'node:util';
import type { RequestRecord } from '../spool/records.js';
import type { Store, StoredRequest } from '../store/store.js';
import type { Located } from './isolate.js';

/** Lookups in flight at once (the SQLite thread batches them; PostgreSQL spreads them on its pool). */
const CONCURRENCY = 16;

const parse = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

/** Same request as far as the client is concerned. JSON is compared as values: PostgreSQL's jsonb re-spaces and re-orders keys. */
function sameRequest(row: StoredRequest, r: RequestRecord): boolean {
  return (
    row.callbackUrl === r.callbackUrl &&
    row.lane === r.lane &&
    // A delay_seconds retry through another node has its own notBefore, the same delay.
    (typeof r.delaySeconds === 'number' && row.notBefore !== null ? row.notBefore - row.receivedAt === r.delaySeconds * 1000 : row.notBefore === r.notBefore) &&
    isDeepStrictEqual(parse(row.payload), parse(r.payload)) &&
    isDeepStrictEqual(parse(row.metadata), parse(r.metadata))
  );
}

export async function findIdempotencyConflicts(store: Store, requests: Located<RequestRecord>[]): Promise<Located<RequestRecord>[]> {
  const keyed = requests.filter((r) => r.value.idempotencyKey !== null);
  const out: Located<RequestRecord>[] = [];
  let next = 0;
  const worker = async () => {
    while (next < keyed.length) {
      const r = keyed[next++]!;
      const row = await store.getRequest(r.value.id);
      if (row && !sameRequest(row, r.value)) out.push(r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, keyed.length) }, worker));
  return out.sort((a, b) => a.offset - b.offset);
}

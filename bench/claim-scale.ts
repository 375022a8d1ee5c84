// Claim latency against the size of the backlog: the store is filled to 10k, 100k and 1M
// pending requests (untimed), and at each size claims of 1 and of 100 are timed one after the
// other through the Store API (the node's own path to the database, without HTTP). A claim
// that does work growing with the backlog would show it here as a rising line; the target is
// a flat one, and a claim of 100 costing about what a claim of 1 costs, per claim.
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import { percentile, say } from './common.js';
import { makeRecord } from './drain.js';

export interface ClaimScaleRow {
  pending: number;
  /** Delayed requests (not_before in the future, scattered) waiting beside the pending ones. */
  delayed: number;
  limit: number;
  claims: number;
  p50Ms: number;
  p99Ms: number;
  /** Rows claimed per second when claims run back to back. */
  rowsPerS: number;
}

export interface ClaimScaleResult {
  engine: 'sqlite' | 'postgres';
  rows: ClaimScaleRow[];
  fillSeconds: number;
}

async function fill(store: Store, from: number, to: number, delayed = false): Promise<void> {
  const now = Date.now();
  for (let i = from; i < to; i += 10_000) {
    const recs = [];
    // Received one millisecond apart in the past: claims take the oldest first. Delayed ones are
    // due at scattered times between an hour and 30 days from now.
    for (let j = i; j < Math.min(to, i + 10_000); j++) {
      const r = { ...makeRecord(j, now), receivedAt: now - 3_600_000 + j };
      recs.push(delayed ? { ...r, notBefore: now + 3_600_000 + Math.floor(Math.random() * 29 * 86_400_000) } : r);
    }
    await store.insertRequests(recs);
  }
}

/** Rows claimed (and completed) so far in this run: they left the pending queue. */
let claimedTotal = 0;

async function timeClaims(store: Store, limit: number, claims: number): Promise<Omit<ClaimScaleRow, 'pending' | 'delayed'>> {
  const lat: number[] = [];
  let rows = 0;
  const t0 = performance.now();
  for (let i = 0; i < claims; i++) {
    const t = performance.now();
    const got = await store.claimWork({ tenant: 'default', lane: null, limit, leaseMs: 3_600_000 });
    lat.push(performance.now() - t);
    rows += got.length;
    // Complete what was claimed (untimed), as a worker would: the claimed rows leave the queue.
    const done = await store.completeWork(got.map((w) => ({ id: w.id, tenant: 'default', leaseToken: w.leaseToken, result: '1', callback: { id: `msg_${w.id}`, body: '{}' } })));
    if (done.some((o) => o !== 'ok')) throw new Error('a claimed row could not be completed');
  }
  const seconds = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  claimedTotal += rows;
  return { limit, claims, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99), rowsPerS: rows / seconds };
}

export async function runClaimScale(engine: 'sqlite' | 'postgres', url: string | Promise<string>, sizes: number[]): Promise<ClaimScaleResult> {
  const store = await openStore(await url);
  const rows: ClaimScaleRow[] = [];
  let fillSeconds = 0;
  claimedTotal = 0;
  try {
    await store.migrate();
    let have = 0;
    for (const size of sizes) {
      say(`claim scale (${engine}): filling to ${size.toLocaleString('en-US')} pending`);
      const t = performance.now();
      await fill(store, have, size);
      fillSeconds += (performance.now() - t) / 1000;
      have = size;
      for (const [limit, claims] of [
        [1, 300],
        [100, 60],
      ] as const) {
        const pending = size - claimedTotal;
        rows.push({ pending, delayed: 0, ...(await timeClaims(store, limit, claims)) });
      }
    }
    // Then as many delayed requests as the largest size beside them: claims must not see them.
    const delayed = sizes[sizes.length - 1]!;
    say(`claim scale (${engine}): adding ${delayed.toLocaleString('en-US')} delayed requests`);
    const t = performance.now();
    await fill(store, have, have + delayed, true);
    fillSeconds += (performance.now() - t) / 1000;
    for (const [limit, claims] of [
      [1, 300],
      [100, 60],
    ] as const) {
      const pending = have - claimedTotal;
      rows.push({ pending, delayed, ...(await timeClaims(store, limit, claims)) });
    }
  } finally {
    await store.close();
  }
  return { engine, rows, fillSeconds };
}

export function renderClaimScale(all: (ClaimScaleResult | Error)[]): string[] {
  if (all.length === 0) return [];
  const out: string[] = ['## Claim latency against the backlog', ''];
  const results = all.filter((r): r is ClaimScaleResult => !(r instanceof Error));
  for (const e of all) if (e instanceof Error) out.push(`claim scale failed: ${e.message.split('\n')[0]}`, '');
  out.push(
    'The store is filled (untimed, through the Store API: on PostgreSQL the node analyzes the table itself after large inserts, as a draining node does) to each size with pending requests; then claims of 1 (300 of them) and of 100 (60) run back to back through the Store API, each followed by an untimed batch complete of what it claimed. Last, as many delayed requests as the largest size (due between an hour and 30 days from now, stored `scheduled`) are added and the claims timed again: they must not see them. Flat lines mean no per-claim work grows with the backlog. The pending column counts what was left when each row\'s claims began.',
    '',
  );
  out.push('| Engine | pending | delayed | claim limit | claims | p50 | p99 | rows claimed/s |', '|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    for (const row of r.rows) {
      out.push(
        `| ${r.engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'} | ${row.pending.toLocaleString('en-US')} | ${row.delayed.toLocaleString('en-US')} | ${row.limit} | ${row.claims} | ${row.p50Ms.toFixed(2)} ms | ${row.p99Ms.toFixed(2)} ms | ${Math.round(row.rowsPerS).toLocaleString('en-US')} |`,
      );
    }
  }
  out.push('');
  return out;
}

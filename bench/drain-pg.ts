// Drain into PostgreSQL: the same measurement as bench/drain.ts, with the store a cluster uses.
//
// N request records are written as sealed segments (untimed, the same generator as the SQLite
// drain), a fresh database on a throwaway PostgreSQL (fsync on) is migrated, and a Drainer over
// openStore(postgres://…) (what a save-mode node runs, here in the benchmark process) is timed
// from start() until drainAll() resolves. The row count is checked afterwards.
// Baseline, same run, same table: one INSERT … ON CONFLICT DO NOTHING per row through pg,
// autocommit (one commit, one WAL flush per row), bounded to a few seconds.
// Diagnostic: store.insertRequests alone on records already parsed, into a fresh database,
// which splits the drain into its database part and the rest (reading, decoding, parsing).
import { join } from 'node:path';
import pg from 'pg';
import { openStore } from '../src/store/open.js';
import { CpuMeter, removeDir, say, settleDisk, tempDir } from './common.js';
import { makeRecord, timeDrain, writeSegments, type Rate } from './drain.js';
import type { BenchPg } from './pg.js';

export interface PgDrainResult {
  records: number;
  segments: number;
  avgRecordBytes: number;
  seconds: number;
  recordsPerSec: number;
  inSegmentSeconds: number | null;
  rowsInDb: number;
  /** CPU during the drain, % of one core: the drainer (this process), PostgreSQL (all its processes), the rest. */
  drainCpu: number;
  pgCpu: number | null;
  othersCpu: number;
  baseline: Rate;
  storeOnly: Rate & { pgCpu: number | null; clientCpu: number };
}

export interface PgDrainOptions {
  records: number;
  segmentBytes: number;
  baselineMaxRows: number;
  baselineMaxSeconds: number;
  storeOnlyRows: number;
}

const BASELINE_SQL = `INSERT INTO requests
  (id, tenant, idempotency_key, received_at, stored_at, node_id, callback_url, lane, not_before, payload, metadata)
  VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000.0), now(), $5, $6, $7, to_timestamp($8::float8 / 1000.0), $9::jsonb, $10::jsonb)
  ON CONFLICT (id) DO NOTHING`;

/** One INSERT per row, each its own transaction (autocommit), one connection, a prepared statement. */
async function baselineAutocommit(url: string, maxRows: number, maxSeconds: number): Promise<Rate> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const now = Date.now();
    const recs = Array.from({ length: Math.min(maxRows, 50_000) }, (_, i) => makeRecord(i, now));
    const t0 = performance.now();
    const deadline = t0 + maxSeconds * 1000;
    let rows = 0;
    for (const r of recs) {
      await client.query({
        name: 'bench-insert-one',
        text: BASELINE_SQL,
        values: [r.id, r.tenant, r.idempotencyKey, r.receivedAt, r.node, r.callbackUrl, r.lane, r.notBefore, r.payload, r.metadata],
      });
      rows++;
      if (rows >= maxRows || performance.now() > deadline) break;
    }
    const seconds = (performance.now() - t0) / 1000;
    return { rows, seconds, rowsPerSec: rows / seconds };
  } finally {
    await client.end();
  }
}

export async function runDrainPg(o: PgDrainOptions, pgs: BenchPg): Promise<PgDrainResult> {
  const dir = tempDir('intake-bench-drain-pg-');
  try {
    const root = join(dir, 'spool');
    say(`drain-pg: writing ${o.records} request records into sealed segments (untimed)`);
    const gen = writeSegments(root, o.records, o.segmentBytes);
    const url = await pgs.freshDb();

    const store = await openStore(url, { onError: (err) => say(`drain-pg: pool error ${err.message}`) });
    say(`drain-pg: draining ${gen.segments} segments into PostgreSQL`);
    // Two segments at a time, as a save-mode node on PostgreSQL (src/node/parts.ts).
    const timed = await timeDrain('drain-pg', root, store, { concurrency: 2, otherPids: [pgs.pid] });

    say(`drain-pg: baseline, single-row autocommit inserts into the same table (up to ${o.baselineMaxRows} rows or ${o.baselineMaxSeconds} s)`);
    settleDisk();
    const baseline = await baselineAutocommit(url, o.baselineMaxRows, o.baselineMaxSeconds);

    say(`drain-pg: diagnostic, ${o.storeOnlyRows} parsed records through store.insertRequests into a fresh database`);
    const soUrl = await pgs.freshDb();
    const soStore = await openStore(soUrl);
    let storeOnly: PgDrainResult['storeOnly'];
    try {
      const now = Date.now();
      const recs = Array.from({ length: o.storeOnlyRows }, (_, i) => makeRecord(i, now));
      // segment-sized calls, like the drainer makes
      const perCall = Math.max(1, Math.round(o.records / gen.segments));
      settleDisk();
      const meter = new CpuMeter([process.pid], [pgs.pid]);
      meter.start();
      const t0 = performance.now();
      let inserted = 0;
      for (let i = 0; i < recs.length; i += perCall) inserted += await soStore.insertRequests(recs.slice(i, i + perCall));
      const s = (performance.now() - t0) / 1000;
      const c = meter.stop();
      storeOnly = { rows: inserted, seconds: s, rowsPerSec: inserted / s, clientCpu: c.perPid[0] ?? 0, pgCpu: pgs.pid === undefined ? null : (c.perPid[1] ?? 0) };
    } finally {
      await soStore.close();
    }

    return {
      records: o.records,
      segments: gen.segments,
      avgRecordBytes: gen.recordBytes / o.records,
      seconds: timed.seconds,
      recordsPerSec: timed.rowsInDb / timed.seconds,
      inSegmentSeconds: timed.inSegmentSeconds,
      rowsInDb: timed.rowsInDb,
      drainCpu: timed.cpu.perPid[0] ?? 0,
      pgCpu: pgs.pid === undefined ? null : (timed.cpu.perPid[1] ?? 0),
      othersCpu: timed.cpu.others,
      baseline,
      storeOnly,
    };
  } finally {
    removeDir(dir);
  }
}

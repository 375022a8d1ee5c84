// Drain: how fast sealed spool segments reach SQLite.
//
// N request records (the same payload as the ingest body) are written straight into sealed
// segment files with the spool codec (untimed), then a Drainer over openStore (the code a
// save-mode node runs, in this process) is timed from start() until drainAll() resolves, i.e.
// until every segment is committed and deleted. The row count is checked afterwards.
// Baseline, same schema and pragmas (WAL, synchronous=FULL): single-row INSERTs in autocommit
// mode, one commit (and WAL fsync) per row, which is what a naive "insert per request" does.
// Diagnostics that split the drain's time: decoding and parsing the segments alone (no
// database) and store.insertRequests() on already-parsed records (SQLite alone).
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { v7 as uuidv7 } from 'uuid';
import { Drainer } from '../src/drain/drainer.js';
import { createMetrics } from '../src/metrics.js';
import { decodeSegment, encodeHeader, encodeRecord, RecordKind } from '../src/spool/format.js';
import { encodeRequestRecord, parseRequestRecord, type RequestRecord } from '../src/spool/records.js';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import { CALLBACK_URL, CpuMeter, removeDir, samplePayload, say, settleDisk, tempDir } from './common.js';

export interface DrainResult {
  records: number;
  segments: number;
  avgRecordBytes: number;
  seconds: number;
  recordsPerSec: number;
  /** Sum of the drainer's per-segment time (decode + insert + delete), from its own log lines. */
  inSegmentSeconds: number | null;
  rowsInDb: number;
  /** CPU of this process (the drainer) and of every other process during the drain, % of one core. */
  drainCpu: number;
  othersCpu: number;
  baseline: Rate;
  decodeOnly: Rate;
  storeOnly: Rate;
}

export interface Rate {
  rows: number;
  seconds: number;
  rowsPerSec: number;
}

export interface DrainOptions {
  records: number;
  baselineMaxRows: number;
  baselineMaxSeconds: number;
  storeOnlyRows: number;
  segmentBytes: number;
}

export const GEN_NODE = 'bench-gen';

export function makeRecord(i: number, now: number, callbackUrl = CALLBACK_URL): RequestRecord {
  return {
    id: uuidv7(),
    tenant: 'default',
    idempotencyKey: null,
    receivedAt: now,
    node: GEN_NODE,
    callbackUrl,
    lane: null,
    notBefore: null,
    payload: JSON.stringify(samplePayload(i)),
    metadata: null,
  };
}

/** Write `n` request records as sealed segments of about `segmentBytes` each; fsynced, untimed. */
export function writeSegments(root: string, n: number, segmentBytes: number): { segments: number; recordBytes: number } {
  const dir = join(root, 'nodes', GEN_NODE);
  mkdirSync(dir, { recursive: true });
  let segments = 0;
  let recordBytes = 0;
  let i = 0;
  const now = Date.now();
  while (i < n) {
    const segment = uuidv7();
    const parts: Buffer[] = [encodeHeader({ node: GEN_NODE, segment, createdAt: now })];
    let size = parts[0]!.length;
    while (i < n && size < segmentBytes) {
      const rec = encodeRecord(RecordKind.request, encodeRequestRecord(makeRecord(i, now)));
      parts.push(rec);
      size += rec.length;
      recordBytes += rec.length;
      i++;
    }
    const fd = openSync(join(dir, `${segment}.seg`), 'wx');
    try {
      const buf = Buffer.concat(parts);
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    segments++;
  }
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return { segments, recordBytes };
}

async function freshDb(path: string): Promise<void> {
  const store = await openStore(`sqlite:${path}`);
  await store.migrate();
  await store.close();
}

const COLUMNS = '(id, tenant, idempotency_key, received_at, stored_at, node_id, callback_url, lane, not_before, payload, metadata)';
const ROW = '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
const insertSql = (rows: number) => `INSERT INTO requests ${COLUMNS} VALUES ${Array.from({ length: rows }, () => ROW).join(', ')} ON CONFLICT (id) DO NOTHING`;
const rowArgs = (r: RequestRecord, storedAt: number) => [r.id, r.tenant, r.idempotencyKey, r.receivedAt, storedAt, r.node, r.callbackUrl, r.lane, r.notBefore, r.payload, r.metadata];

function openLikeStore(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  return db;
}

/** Single-row INSERTs, each its own autocommit transaction. */
function baselineAutocommit(path: string, maxRows: number, maxSeconds: number): Rate {
  const db = openLikeStore(path);
  try {
    const insert = db.prepare(insertSql(1));
    const now = Date.now();
    const recs = Array.from({ length: Math.min(maxRows, 20000) }, (_, i) => makeRecord(i, now));
    const t0 = performance.now();
    const deadline = t0 + maxSeconds * 1000;
    let rows = 0;
    for (const r of recs) {
      insert.run(rowArgs(r, Date.now()));
      rows++;
      if (rows >= maxRows || performance.now() > deadline) break;
    }
    const seconds = (performance.now() - t0) / 1000;
    return { rows, seconds, rowsPerSec: rows / seconds };
  } finally {
    db.close();
  }
}

/** Read, check and parse every segment under `root` without touching a database (the drainer's CPU side). */
export function decodeOnly(root: string): Rate {
  const dir = join(root, 'nodes', GEN_NODE);
  const files = readdirSync(dir).filter((f) => f.endsWith('.seg'));
  const t0 = performance.now();
  let rows = 0;
  for (const f of files) {
    const dec = decodeSegment(readFileSync(join(dir, f)));
    for (const rec of dec.records) if (rec.kind === RecordKind.request && parseRequestRecord(rec.json)) rows++;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { rows, seconds, rowsPerSec: rows / seconds };
}

/** store.insertRequests on records already in memory: the SQLite part of a drain, alone. */
async function storeOnly(path: string, rows: number): Promise<Rate> {
  const store = await openStore(`sqlite:${path}`);
  try {
    const now = Date.now();
    const recs = Array.from({ length: rows }, (_, i) => makeRecord(i, now));
    const t0 = performance.now();
    const inserted = await store.insertRequests(recs);
    const seconds = (performance.now() - t0) / 1000;
    return { rows: inserted, seconds, rowsPerSec: inserted / seconds };
  } finally {
    await store.close();
  }
}

export interface TimedDrain {
  seconds: number;
  rowsInDb: number;
  /** Sum of the drainer's per-segment time (decode + insert + delete), from its own log lines. */
  inSegmentSeconds: number | null;
  cpu: ReturnType<CpuMeter['stop']>;
}

/**
 * Drain every sealed segment under `root` into `store` with the Drainer a save-mode node runs,
 * timed from start() until drainAll() resolves; CPU measured for this process and `otherPids`.
 * Closes the store.
 */
export async function timeDrain(label: string, root: string, store: Store, o: { concurrency: number; otherPids: (number | undefined)[] }): Promise<TimedDrain> {
  const lines: string[] = [];
  const log = pino({ level: 'info', base: { node: 'bench-drainer' } }, { write: (s: string) => void lines.push(s) });
  const drainer = new Drainer({
    root,
    node: 'bench-drainer',
    store,
    log,
    metrics: createMetrics(),
    scanIntervalMs: 500,
    lockStaleMs: 10_000,
    archive: false,
    concurrency: o.concurrency,
  });
  let seconds: number;
  let rowsInDb: number;
  let cpu: ReturnType<CpuMeter['stop']>;
  settleDisk();
  try {
    const meter = new CpuMeter([process.pid], o.otherPids);
    meter.start();
    const t0 = performance.now();
    await drainer.start();
    await drainer.drainAll();
    seconds = (performance.now() - t0) / 1000;
    cpu = meter.stop();
    rowsInDb = await store.countRequests();
  } finally {
    await drainer.close();
    await store.close();
  }
  let segMs = 0;
  let segLines = 0;
  for (const l of lines) {
    const v = JSON.parse(l) as { msg?: string; ms?: number; level?: number };
    if (v.msg === 'segment drained' && typeof v.ms === 'number') {
      segMs += v.ms;
      segLines++;
    } else if ((v.level ?? 0) >= 40) {
      say(`${label}: drainer logged: ${l.slice(0, 300)}`);
    }
  }
  return { seconds, rowsInDb, inSegmentSeconds: segLines > 0 ? segMs / 1000 : null, cpu };
}

export async function runDrain(o: DrainOptions): Promise<DrainResult> {
  const dir = tempDir('intake-bench-drain-');
  try {
    const root = join(dir, 'spool');
    say(`drain: writing ${o.records} request records into sealed segments (untimed)`);
    const gen = writeSegments(root, o.records, o.segmentBytes);
    say('drain: diagnostic, decoding and parsing the segments without a database');
    const decoded = decodeOnly(root);
    const dbPath = join(dir, 'drain.db');
    await freshDb(dbPath);

    const store = await openStore(`sqlite:${dbPath}`);
    say(`drain: draining ${gen.segments} segments into SQLite`);
    const timed = await timeDrain('drain', root, store, { concurrency: 1, otherPids: [] });

    say(`drain: baseline, single-row autocommit inserts (up to ${o.baselineMaxRows} rows or ${o.baselineMaxSeconds} s)`);
    const basePath = join(dir, 'baseline.db');
    await freshDb(basePath);
    settleDisk();
    const baseline = baselineAutocommit(basePath, o.baselineMaxRows, o.baselineMaxSeconds);

    say(`drain: diagnostic, ${o.storeOnlyRows} parsed records through store.insertRequests`);
    const soPath = join(dir, 'store-only.db');
    await freshDb(soPath);
    settleDisk();
    const so = await storeOnly(soPath, o.storeOnlyRows);

    return {
      records: o.records,
      segments: gen.segments,
      avgRecordBytes: gen.recordBytes / o.records,
      seconds: timed.seconds,
      recordsPerSec: timed.rowsInDb / timed.seconds,
      inSegmentSeconds: timed.inSegmentSeconds,
      rowsInDb: timed.rowsInDb,
      drainCpu: timed.cpu.perPid[0] ?? 0,
      othersCpu: timed.cpu.others,
      baseline,
      decodeOnly: decoded,
      storeOnly: so,
    };
  } finally {
    removeDir(dir);
  }
}

// The drainer killed at fixed points of a drain: before the database commit, and after the
// commit but before the segment file is deleted. The kill is real (SIGKILL of a process running
// the real Drainer over the real SQLite store, see test/fixtures/drain-once.ts); the spool is
// real (written by a receive-mode node over HTTP). Afterwards: every acknowledged request is in
// the database exactly once, every segment file is gone, and the claim lock the dead drainer
// left behind was respected while fresh and taken over once stale.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeSegment } from '../../src/spool/format.js';
import { listAllSegments, type SegmentFile } from '../../src/spool/layout.js';
import { parseRequestRecord } from '../../src/spool/records.js';
import { startDaemon } from '../helpers/daemon.js';
import { post, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';
import { assertBooksBalance, assertNoLossNoDuplicate, checkDelivery, formatReport, readSqliteRows, segmentFiles } from './checker.js';

const fixture = fileURLToPath(new URL('../fixtures/drain-once.js', import.meta.url));
const LOCK_STALE_MS = 2000;
const REQUESTS = 300;
const RECEIVER = 'recv';

interface FixtureRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runFixture(spool: string, db: string, crash: 'before-commit' | 'after-commit' | 'none', lockStaleMs = LOCK_STALE_MS, patienceMs = 0): Promise<FixtureRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fixture, spool, db, crash, String(lockStaleMs), String(patienceMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function fixtureResult(r: FixtureRun): { outcome: string; segment: string; records: number; inserted: number } {
  assert.equal(r.code, 0, `drain-once failed (code ${r.code}, signal ${r.signal}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as { outcome: string; segment: string; records: number; inserted: number };
}

/** The ids a segment file holds in intact request records. */
function idsIn(path: string): Set<string> {
  const dec = decodeSegment(readFileSync(path));
  assert.equal(dec.headerProblem, null, `${path}: ${dec.headerProblem?.message}`);
  const ids = new Set<string>();
  for (const rec of dec.records) {
    const r = parseRequestRecord(rec.json);
    assert.ok(r, `${path}@${rec.offset}: not a request record`);
    ids.add(r.id);
  }
  return ids;
}

interface Prepared {
  spool: string;
  dbPath: string;
  db: string;
  acked: Map<string, string>;
  sealed: SegmentFile[];
  cleanup(): void;
}

/** A receive-mode node takes REQUESTS requests over HTTP, then SIGTERM seals its last segment. */
async function prepare(name: string): Promise<Prepared> {
  const tmp = tempDir(`intake-drain-crash-${name}-`);
  const spool = join(tmp.path, 'spool');
  const dbPath = join(tmp.path, 'intake.db');
  const db = `sqlite:${dbPath}`;
  const d = await startDaemon({
    spool,
    db,
    mode: 'receive',
    nodeId: RECEIVER,
    args: ['--max-segment-bytes', String(64 * 1024), '--seal-after-ms', '60000', '--lock-stale-ms', String(LOCK_STALE_MS)],
  });
  const acked = new Map<string, string>();
  try {
    let next = 0;
    const pad = 'x'.repeat(900);
    const worker = async () => {
      while (next < REQUESTS) {
        const key = `${name}-${next++}`;
        const r = await post(`${d.url}/v1/requests`, { payload: { key, pad }, callback_url: 'https://example.com/hook' }, { 'idempotency-key': key });
        assert.equal(r.status, 202, `${key}: ${JSON.stringify(r.body)}`);
        acked.set(key, r.body.id as string);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  } finally {
    assert.equal(await d.kill('SIGTERM'), 0, `the receive node did not stop cleanly:\n${d.output().slice(-4000)}`);
  }
  assert.equal(existsSync(dbPath), false, 'a receive-mode node never touches the database');
  const all = await listAllSegments(spool);
  assert.deepEqual(all.filter((f) => f.state === 'open'), [], 'a graceful stop seals the open segment');
  assert.ok(all.length >= 3, `expected several sealed segments, got ${all.length}`);
  return { spool, dbPath, db, acked, sealed: all, cleanup: () => tmp.cleanup() };
}

/** Rows of the database as a set of ids (each id at most once: it is the primary key). */
function storedIds(dbPath: string): Set<string> {
  return new Set(readSqliteRows(dbPath).map((r) => r.id));
}

/**
 * While the dead drainer's claim is fresh, another drainer leaves the segment alone. "Fresh" is
 * judged by the checking drainer's own stale time: it is given a long one, so the check does not
 * depend on how fast a loaded machine starts the fixture (the claim is a few seconds old by then).
 */
async function assertClaimRespected(p: Prepared, first: SegmentFile): Promise<void> {
  const r = fixtureResult(await runFixture(p.spool, p.db, 'none', 600_000));
  assert.equal(r.outcome, 'busy', 'a fresh claim of a dead drainer is respected');
  assert.equal(existsSync(first.path), true);
}

/** Let a save-mode node drain what is left; returns its pino log lines. */
async function drainRest(p: Prepared): Promise<Array<Record<string, unknown>>> {
  const d = await startDaemon({
    spool: p.spool,
    db: p.db,
    mode: 'save',
    nodeId: 'saver',
    args: ['--lock-stale-ms', String(LOCK_STALE_MS), '--scan-interval-ms', '100'],
  });
  try {
    await waitFor('every segment drained', () => segmentFiles(p.spool).length === 0, 30_000);
  } finally {
    assert.equal(await d.kill('SIGTERM'), 0, `the save node did not stop cleanly:\n${d.output().slice(-4000)}`);
  }
  return d
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function assertFinal(p: Prepared, t: { diagnostic(m: string): void }, label: string): Promise<void> {
  const rows = readSqliteRows(p.dbPath);
  const report = checkDelivery({ acked: p.acked, sent: p.acked.keys(), rows });
  t.diagnostic(`drain crash ${label}: segments=${p.sealed.length} ${formatReport(report)}`);
  assertNoLossNoDuplicate(report);
  assert.equal(report.stored, p.acked.size, 'one row per acknowledged request');
  assert.deepEqual(segmentFiles(p.spool), [], 'no segment file left');
  // Nothing but owner.json and the segment log left in the node's directory: no claim lock, no stray file.
  assert.deepEqual(readdirSync(join(p.spool, 'nodes', RECEIVER)).sort(), ['owner.json', 'segments.log']);
  assert.equal(existsSync(join(p.spool, 'quarantine')), false, 'nothing was quarantined');
  const books = await assertBooksBalance(t, p.spool, p.db);
  assert.ok(books.total.stored >= p.acked.size, `verify (${label}): every acknowledged record stored (${books.total.stored})`);
}

describe('drainer killed at fixed points of a drain', () => {
  const prepared: Prepared[] = [];
  before(() => assert.ok(existsSync(fixture), `fixture not compiled: ${fixture}`));
  after(() => prepared.forEach((p) => p.cleanup()));

  test('killed before the database commit: nothing stored, the stale claim is taken over, all drained once', { timeout: 150_000 }, async (t) => {
    const p = await prepare('before');
    prepared.push(p);
    const first = p.sealed[0]!;
    const firstIds = idsIn(first.path);

    const crashed = await runFixture(p.spool, p.db, 'before-commit');
    assert.equal(crashed.signal, 'SIGKILL', `the fixture should die by SIGKILL (code ${crashed.code}):\n${crashed.stderr}`);
    assert.equal(storedIds(p.dbPath).size, 0, 'nothing committed before the crash');
    assert.equal(existsSync(first.path), true, 'the segment is still there');
    assert.equal(existsSync(`${first.path}.lock`), true, 'the dead drainer left its claim');

    await assertClaimRespected(p, first);

    // Once the claim is stale another drainer takes it over and drains the segment in full: a
    // fresh process judges it stale after watching it stand still for the stale time.
    const r = fixtureResult(await runFixture(p.spool, p.db, 'none', LOCK_STALE_MS, 3 * LOCK_STALE_MS + 5000));
    assert.deepEqual(r, { outcome: 'drained', segment: first.segment, node: RECEIVER, records: firstIds.size, inserted: firstIds.size });
    assert.equal(existsSync(first.path), false, 'the drained segment is deleted');
    assert.equal(existsSync(`${first.path}.lock`), false, 'the taken-over claim is released');
    assert.deepEqual(storedIds(p.dbPath), firstIds);

    await drainRest(p);
    await assertFinal(p, t, 'before commit');
  });

  test('killed after the commit, before the delete: the re-drain inserts nothing new, no duplicate', { timeout: 150_000 }, async (t) => {
    const p = await prepare('after');
    prepared.push(p);
    const first = p.sealed[0]!;
    const firstIds = idsIn(first.path);

    const crashed = await runFixture(p.spool, p.db, 'after-commit');
    assert.equal(crashed.signal, 'SIGKILL', `the fixture should die by SIGKILL (code ${crashed.code}):\n${crashed.stderr}`);
    assert.deepEqual(storedIds(p.dbPath), firstIds, 'the first segment was committed before the crash');
    assert.equal(existsSync(first.path), true, 'the segment was not deleted');
    assert.equal(existsSync(`${first.path}.lock`), true, 'the dead drainer left its claim');

    await assertClaimRespected(p, first);
    // Committed, not yet in drained_segments: the books count the whole segment in the spool
    // (its rows are in the database and counted as inserted), and they balance.
    const between = await assertBooksBalance(t, p.spool, p.db);
    assert.ok(between.total.inSpool >= p.acked.size, `every acknowledged record still counted in the spool (${between.total.inSpool})`);
    assert.equal(between.database.rows, firstIds.size, 'the first segment is in the database');

    // A save-mode node drains the rest at once and takes the first segment over once its claim is stale.
    const lines = await drainRest(p);
    const drained = lines.filter((l) => l.msg === 'segment drained' && l.segment === first.segment);
    assert.equal(drained.length, 1, `the taken-over segment was drained once by the save node: ${JSON.stringify(drained)}`);
    assert.equal(drained[0]!.records, firstIds.size);
    assert.equal(drained[0]!.inserted, 0, 'every record of the re-drained segment was already in the database');
    assert.equal(existsSync(`${first.path}.lock`), false, 'the stale claim was taken over and released');
    await assertFinal(p, t, 'after commit');
  });
});

// A real save-mode daemon meets damaged sealed segments: intact records reach the database,
// damaged bytes go to quarantine/ with a report (never to the database), a segment of a newer
// format is left alone, and the node keeps draining and stays healthy throughout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CURRENT_VERSION, encodeRecord, RECORD_OVERHEAD, RecordKind, type RecordKindValue } from '../../src/spool/format.js';
import type { QuarantineReport } from '../../src/spool/quarantine.js';
import { encodeRequestRecord } from '../../src/spool/records.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, sleep, waitFor } from '../helpers/http.js';
import { dropSegment, quarantinedOf, quarantinedRange, requestFrame, testRequest, type Dropped } from '../helpers/segments.js';
import { tempDir } from '../helpers/tmp.js';

const WRITER = 'writer-node-x'; // the (absent) node whose sealed segments we hand-make

const request = (i: number) => testRequest(i, WRITER);

describe('drainer on damaged sealed segments (real daemon, save mode)', () => {
  const tmp = tempDir('intake-corrupt-');
  const spool = join(tmp.path, 'spool');
  const dbPath = join(tmp.path, 'intake.db');
  const nodeDir = join(spool, 'nodes', WRITER);
  const qDir = join(spool, 'quarantine');
  let d: Daemon;

  before(async () => {
    d = await startDaemon({ spool, db: `sqlite:${dbPath}`, mode: 'save', args: ['--scan-interval-ms', '100'] });
    mkdirSync(nodeDir, { recursive: true });
  });
  after(async () => {
    await d.kill('SIGKILL');
    tmp.cleanup();
  });

  const drop = (frames: Buffer[], opts: { version?: number; raw?: Buffer } = {}) => dropSegment(nodeDir, WRITER, frames, opts);

  function rowsFor(ids: string[]): Map<string, { id: string; node_id: string; callback_url: string; payload: string; metadata: string | null; received_at: number; status: string }> {
    const db = new Database(dbPath, { readonly: true });
    try {
      const stmt = db.prepare('SELECT id, node_id, callback_url, payload, metadata, received_at, status FROM requests WHERE id = ?');
      const out = new Map();
      for (const id of ids) {
        const row = stmt.get(id) as { id: string } | undefined;
        if (row) out.set(id, row);
      }
      return out;
    } finally {
      db.close();
    }
  }

  const gone = (f: Dropped) => waitFor(`${f.segment}.seg drained`, () => !existsSync(f.path), 20000);
  const report = (name: string) => JSON.parse(readFileSync(join(qDir, name), 'utf8')) as QuarantineReport;

  async function assertAlive(): Promise<void> {
    assert.equal(d.proc.exitCode, null, `daemon exited:\n${d.output()}`);
    assert.equal(d.proc.signalCode, null);
    assert.equal((await get(`${d.url}/healthz`)).status, 200);
  }

  /** The quarantined byte range of `f` at `offset`: .bin holds exactly those bytes, .json says where they came from. */
  function assertQuarantinedRange(f: Dropped, offset: number, length: number, reason: string): void {
    const r = quarantinedRange(spool, f, offset, length);
    assert.equal(r.reason, reason);
    assert.equal(r.quarantinedBy, d.nodeId);
  }

  test('(a) a corrupt record in the middle: every intact record is stored, the damaged one is quarantined, the file removed', async () => {
    const recs = [0, 1, 2, 3, 4].map(request);
    const frames = recs.map(requestFrame);
    // Damage record 2 inside its payload text (its id stays readable, so we can look for it).
    const bad = Buffer.from(frames[2]!);
    const at = bad.indexOf('payload number 2');
    assert.ok(at > RECORD_OVERHEAD);
    bad[at]! ^= 0x20;
    frames[2] = bad;
    const f = drop(frames);
    await gone(f);

    const rows = rowsFor(recs.map((r) => r.id));
    assert.deepEqual(
      [...rows.keys()].sort(),
      [recs[0]!, recs[1]!, recs[3]!, recs[4]!].map((r) => r.id).sort(),
      'the four intact records are stored, the damaged one is not',
    );
    for (const r of [recs[0]!, recs[1]!, recs[3]!, recs[4]!]) {
      const row = rows.get(r.id)!;
      assert.deepEqual(row, {
        id: r.id,
        node_id: WRITER,
        callback_url: r.callbackUrl,
        payload: r.payload,
        metadata: r.metadata,
        received_at: r.receivedAt,
        status: 'pending',
      });
    }
    assert.deepEqual(quarantinedOf(spool, f), [`${f.segment}.seg@${f.offsets[2]}.bin`, `${f.segment}.seg@${f.offsets[2]}.json`]);
    assertQuarantinedRange(f, f.offsets[2]!, bad.length, 'bad-frame');
    await assertAlive();
  });

  test('(a2) a sealed segment whose last record is cut short: the rest is stored, the tail quarantined', async () => {
    const recs = [0, 1, 2].map(request);
    const frames = recs.map(requestFrame);
    frames[2] = frames[2]!.subarray(0, frames[2]!.length - 10);
    const f = drop(frames);
    await gone(f);
    assert.deepEqual([...rowsFor(recs.map((r) => r.id)).keys()].sort(), [recs[0]!.id, recs[1]!.id].sort());
    assertQuarantinedRange(f, f.offsets[2]!, frames[2].length, 'corrupt-tail');
    await assertAlive();
  });

  test('(b) a segment of a newer format version is left untouched, logged once, and other segments keep draining', async () => {
    const future = [0, 1].map(request);
    const newer = drop(future.map(requestFrame), { version: CURRENT_VERSION + 1 });
    const later = [10, 11].map(request);
    const good = drop(later.map(requestFrame));
    await gone(good);
    assert.equal(rowsFor(later.map((r) => r.id)).size, 2, 'the segment after it drained');
    await waitFor('error logged', () => d.output().includes('segment left for an upgraded node'));
    await sleep(600); // several scans
    assert.ok(existsSync(newer.path), 'the newer segment is left in place');
    assert.ok(readFileSync(newer.path).equals(newer.bytes), 'not a byte changed');
    assert.equal(rowsFor(future.map((r) => r.id)).size, 0, 'none of its records were read into the database');
    assert.deepEqual(quarantinedOf(spool, newer), [], 'nothing of it quarantined');
    const lines = d
      .output()
      .split('\n')
      .filter((l) => l.includes('segment left for an upgraded node'));
    assert.equal(lines.length, 1, 'logged once, not on every scan');
    const line = JSON.parse(lines[0]!) as { level: number; file: string; err: string };
    assert.ok(line.level >= 50, 'logged as an error');
    assert.equal(line.file, newer.path);
    assert.match(line.err, /newer/);
    // Still draining afterwards.
    const more = [12].map(request);
    await gone(drop(more.map(requestFrame)));
    assert.equal(rowsFor(more.map((r) => r.id)).size, 1);
    await assertAlive();
  });

  test('(c) a file of garbage (bad magic) is moved to quarantine with a report; the node keeps going', async () => {
    const junk = randomBytes(4096);
    junk[0] = 0x58; // 'X': never the segment magic
    const f = drop([], { raw: junk });
    await gone(f);
    const stem = `${f.segment}.seg@file`;
    assert.deepEqual(quarantinedOf(spool, f), [stem, `${stem}.json`]);
    assert.ok(readFileSync(join(qDir, stem)).equals(junk), 'the whole file is kept');
    const r = report(`${stem}.json`);
    assert.equal(r.source, `nodes/${WRITER}/${f.segment}.seg`);
    assert.equal(r.offset, 0);
    assert.equal(r.length, junk.length);
    assert.equal(r.reason, 'header-corrupt');
    assert.equal(r.quarantinedBy, d.nodeId);

    // A tiny one too (shorter than a header).
    const tiny = drop([], { raw: Buffer.from('oops\n') });
    await gone(tiny);
    assert.deepEqual(quarantinedOf(spool, tiny), [`${tiny.segment}.seg@file`, `${tiny.segment}.seg@file.json`]);

    await assertAlive();
    const next = [20, 21].map(request);
    await gone(drop(next.map(requestFrame)));
    assert.equal(rowsFor(next.map((r) => r.id)).size, 2, 'a good segment after the garbage still drains');
  });

  test('(d) intact frames that are not request records go to quarantine, never to the database', async () => {
    const good1 = request(30);
    const good2 = request(31);
    const shapeless = request(32);
    // Valid JSON with an id, but not a request record (no tenant, no payload...).
    const wrongShape = encodeRecord(RecordKind.request, JSON.stringify({ id: shapeless.id, hello: 'world' }));
    const notJson = encodeRecord(RecordKind.request, 'this is { not json');
    const futureKind = encodeRecord(42 as RecordKindValue, encodeRequestRecord(request(33)));
    // A whole request record whose id is not a request id (SQLite would store any text).
    const badId = encodeRecord(RecordKind.request, encodeRequestRecord({ ...request(34), id: 'not-a-uuid\tx' }));
    // U+0000 in the payload: PostgreSQL would refuse the segment's insert on every retry.
    const nul = encodeRecord(RecordKind.request, encodeRequestRecord({ ...request(35), payload: JSON.stringify({ s: 'a\u0000b' }) }));
    // A payload that is not JSON text: PostgreSQL's jsonb would refuse the segment on every
    // retry, and on SQLite GET /v1/requests/:id could not answer it.
    const badPayload = encodeRecord(RecordKind.request, encodeRequestRecord({ ...request(36), payload: '{"unterminated' }));
    const frames = [requestFrame(good1), wrongShape, notJson, futureKind, badId, nul, badPayload, requestFrame(good2)];
    const f = drop(frames);
    await gone(f);
    assert.deepEqual([...rowsFor([good1.id, good2.id, shapeless.id]).keys()].sort(), [good1.id, good2.id].sort());
    assertQuarantinedRange(f, f.offsets[1]!, wrongShape.length, 'bad-record');
    assertQuarantinedRange(f, f.offsets[2]!, notJson.length, 'bad-record');
    assertQuarantinedRange(f, f.offsets[3]!, futureKind.length, 'unknown-kind');
    assertQuarantinedRange(f, f.offsets[4]!, badId.length, 'bad-record');
    assertQuarantinedRange(f, f.offsets[5]!, nul.length, 'bad-record');
    assertQuarantinedRange(f, f.offsets[6]!, badPayload.length, 'bad-record');
    assert.equal(quarantinedOf(spool, f).length, 12);
    await assertAlive();
  });

  test('the database holds no row that was never written whole, and the node stops cleanly', async () => {
    const db = new Database(dbPath, { readonly: true });
    try {
      const n = (db.prepare('SELECT COUNT(*) AS n FROM requests').get() as { n: number }).n;
      // (a) 4 + (a2) 2 + (b) 3 + (c) 2 + (d) 2
      assert.equal(n, 13);
    } finally {
      db.close();
    }
    assert.equal(await d.kill('SIGTERM'), 0, d.output());
  });
});

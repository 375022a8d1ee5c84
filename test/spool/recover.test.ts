// sealLeftover on real files: an open segment left by a dead process is cut to its last intact
// record, sealed, and whatever was cut is kept in quarantine/ with a report.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import lockfile from 'proper-lockfile';
import { v7 as uuidv7 } from 'uuid';
import { CURRENT_VERSION, decodeSegment, encodeHeader, encodeRecord, RecordKind } from '../../src/spool/format.js';
import { sealLeftover } from '../../src/spool/recover.js';
import { StaleLocks } from '../../src/spool/stale-locks.js';
import type { QuarantineReport } from '../../src/spool/quarantine.js';
import { tempDir } from '../helpers/tmp.js';

const log = pino({ level: 'silent' });
const STALE_MS = 10_000;
const NODE = 'dead-node';
const BY = 'rescuer-node';

const tmp = tempDir('intake-recover-');
after(() => tmp.cleanup());

let n = 0;
/** A fresh spool root with the dead node's directory, and a path for one of its open segments. */
function fresh(): { root: string; id: string; open: string; sealed: string } {
  const root = join(tmp.path, `root-${++n}`);
  const dir = join(root, 'nodes', NODE);
  mkdirSync(dir, { recursive: true });
  const id = uuidv7();
  return { root, id, open: join(dir, `${id}.open`), sealed: join(dir, `${id}.seg`) };
}

function segment(id: string, count: number, version = CURRENT_VERSION): { buf: Buffer; header: Buffer; records: Buffer[] } {
  const header = encodeHeader({ node: NODE, segment: id, createdAt: Date.now() }, version);
  const records = Array.from({ length: count }, (_, i) =>
    encodeRecord(RecordKind.request, JSON.stringify({ id: `${id}-${i}`, payload: JSON.stringify({ n: i, pad: 'p'.repeat(20 + i) }) })),
  );
  return { buf: Buffer.concat([header, ...records]), header, records };
}

const quarantine = (root: string) => join(root, 'quarantine');
const listQuarantine = (root: string) => (existsSync(quarantine(root)) ? readdirSync(quarantine(root)).sort() : []);
const readReport = (root: string, name: string) => JSON.parse(readFileSync(join(quarantine(root), name), 'utf8')) as QuarantineReport;

describe('sealLeftover', () => {
  test('an open segment with a torn tail is cut to validEnd, sealed, and the cut bytes are quarantined with a report', async () => {
    const { root, id, open, sealed } = fresh();
    const { buf } = segment(id, 4);
    // The last record was half written when the process died.
    const torn = buf.subarray(0, buf.length - 9);
    writeFileSync(open, torn);
    const dec = decodeSegment(torn);
    assert.equal(dec.records.length, 3);
    assert.ok(dec.tail);
    const validEnd = dec.validEnd;

    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
    assert.equal(existsSync(open), false, '.open is gone');
    assert.ok(existsSync(sealed), '.seg exists');
    const kept = readFileSync(sealed);
    assert.ok(kept.equals(torn.subarray(0, validEnd)), 'the sealed file is the original cut at validEnd');
    const again = decodeSegment(kept);
    assert.deepEqual(again.records, dec.records);
    assert.equal(again.tail, null);
    assert.deepEqual(again.gaps, []);

    const stem = `${id}.seg@${validEnd}`;
    assert.deepEqual(listQuarantine(root), [`${stem}.bin`, `${stem}.json`]);
    assert.ok(readFileSync(join(quarantine(root), `${stem}.bin`)).equals(torn.subarray(validEnd)), 'quarantined bytes are the cut tail');
    const report = readReport(root, `${stem}.json`);
    assert.equal(report.source, `nodes/${NODE}/${id}.seg`);
    assert.equal(report.offset, validEnd);
    assert.equal(report.length, torn.length - validEnd);
    assert.equal(report.reason, 'torn-tail');
    assert.equal(report.quarantinedBy, BY);
    assert.ok(!Number.isNaN(Date.parse(report.quarantinedAt)));
    // No lock directory is left behind.
    assert.deepEqual(readdirSync(join(root, 'nodes', NODE)), [`${id}.seg`]);
  });

  // sealLeftover cannot tell a finished seal from a takeover that crashed after its rename, so
  // while the .seg is there a repeat re-checks it ('sealed', a no-op on a clean file); once a
  // drainer has removed the .seg, a repeat answers 'gone'.
  test('repeating sealLeftover after it finished is harmless: nothing changes, and gone once drained', async () => {
    const { root, id, open, sealed } = fresh();
    const { buf } = segment(id, 2);
    writeFileSync(open, buf.subarray(0, buf.length - 3));
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
    const sealedBytes = readFileSync(sealed);
    const q = listQuarantine(root);
    const reports = q.filter((f) => f.endsWith('.json')).map((f) => readFileSync(join(quarantine(root), f), 'utf8'));
    for (let i = 0; i < 2; i++) {
      assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
      assert.ok(readFileSync(sealed).equals(sealedBytes), 'the sealed file is not touched again');
      assert.deepEqual(listQuarantine(root), q, 'nothing new in quarantine');
      assert.deepEqual(
        q.filter((f) => f.endsWith('.json')).map((f) => readFileSync(join(quarantine(root), f), 'utf8')),
        reports,
        'reports not rewritten',
      );
      assert.equal(existsSync(open), false);
    }
    // A drainer took the sealed file.
    unlinkSync(sealed);
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'gone');
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'gone');
    assert.equal(existsSync(open), false);
    assert.equal(existsSync(sealed), false);
    assert.deepEqual(listQuarantine(root), q);
    assert.deepEqual(readdirSync(join(root, 'nodes', NODE)), [], 'no lock left behind');
  });

  test('a crash right after the rename: the next call finishes the cut on the .seg file', async () => {
    const { root, id, open, sealed } = fresh();
    const { buf, header, records } = segment(id, 3);
    const torn = Buffer.concat([buf, Buffer.from('half a rec')]);
    writeFileSync(open, torn);
    renameSync(open, sealed); // what the crashed run got done
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
    assert.ok(readFileSync(sealed).equals(Buffer.concat([header, ...records])));
    assert.deepEqual(listQuarantine(root), [`${id}.seg@${buf.length}.bin`, `${id}.seg@${buf.length}.json`]);
  });

  test('a tail of zeros (preallocated space) is cut without a quarantine entry', async () => {
    const { root, id, open, sealed } = fresh();
    const { buf } = segment(id, 2);
    writeFileSync(open, Buffer.concat([buf, Buffer.alloc(4096)]));
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
    assert.ok(readFileSync(sealed).equals(buf));
    assert.deepEqual(listQuarantine(root), []);
  });

  test('a clean open segment is sealed byte for byte', async () => {
    const { root, id, open, sealed } = fresh();
    const { buf } = segment(id, 3);
    writeFileSync(open, buf);
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
    assert.ok(readFileSync(sealed).equals(buf));
    assert.equal(existsSync(open), false);
    assert.deepEqual(listQuarantine(root), []);
  });

  test('damage in the middle stays in the sealed file for the drainer (nothing cut, nothing quarantined)', async () => {
    const { root, id, open, sealed } = fresh();
    const { buf, header, records } = segment(id, 3);
    const damaged = Buffer.from(buf);
    damaged[header.length + records[0]!.length + 15]! ^= 0x01; // inside record 1's body
    writeFileSync(open, damaged);
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
    assert.ok(readFileSync(sealed).equals(damaged));
    assert.deepEqual(listQuarantine(root), []);
  });

  test('an open file with a torn header is removed, at every length short of a whole header', async () => {
    const { header } = segment('x', 0);
    const outcomes: string[] = [];
    for (let cut = 0; cut < header.length; cut++) {
      const { root, id, open, sealed } = fresh();
      writeFileSync(open, encodeHeader({ node: NODE, segment: id, createdAt: 1 }).subarray(0, cut));
      const outcome = await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS));
      const left = readdirSync(join(root, 'nodes', NODE));
      if (outcome !== 'removed' || left.length !== 0 || existsSync(sealed) || listQuarantine(root).length !== 0) {
        outcomes.push(`${cut} bytes: ${outcome}, left ${JSON.stringify(left)}, quarantine ${JSON.stringify(listQuarantine(root))}`);
      }
    }
    assert.deepEqual(outcomes, [], 'torn headers not simply removed');
  });

  test('an open file holding only a header is removed', async () => {
    const { root, id, open, sealed } = fresh();
    writeFileSync(open, segment(id, 0).buf);
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'removed');
    assert.equal(existsSync(open), false);
    assert.equal(existsSync(sealed), false);
    assert.deepEqual(listQuarantine(root), []);
  });

  test('a header plus a torn first record: the torn bytes are quarantined and the empty file removed', async () => {
    const { root, id, open, sealed } = fresh();
    const { header, records } = segment(id, 1);
    writeFileSync(open, Buffer.concat([header, records[0]!.subarray(0, 20)]));
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'removed');
    assert.equal(existsSync(open), false);
    assert.equal(existsSync(sealed), false);
    const stem = `${id}.seg@${header.length}`;
    assert.deepEqual(listQuarantine(root), [`${stem}.bin`, `${stem}.json`]);
    assert.ok(readFileSync(join(quarantine(root), `${stem}.bin`)).equals(records[0]!.subarray(0, 20)));
  });

  test('an open file of a newer format version is renamed to .seg untouched', async () => {
    const { root, id, open, sealed } = fresh();
    // Newer format: anything may follow the header, including what looks like a torn tail.
    const { buf } = segment(id, 2, CURRENT_VERSION + 1);
    const bytes = Buffer.concat([buf, Buffer.from('future bytes')]);
    writeFileSync(open, bytes);
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
    assert.equal(existsSync(open), false);
    assert.ok(readFileSync(sealed).equals(bytes), 'not a byte changed');
    assert.deepEqual(listQuarantine(root), []);
  });

  test('an open file with a damaged header (bad magic) is moved to quarantine with a report', async () => {
    const { root, id, open, sealed } = fresh();
    const bytes = Buffer.from('this was never a segment, but it has some length to it');
    writeFileSync(open, bytes);
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'quarantined');
    assert.equal(existsSync(open), false);
    assert.equal(existsSync(sealed), false);
    const stem = `${id}.seg@file`;
    assert.deepEqual(listQuarantine(root), [stem, `${stem}.json`]);
    assert.ok(readFileSync(join(quarantine(root), stem)).equals(bytes));
    const report = readReport(root, `${stem}.json`);
    assert.equal(report.source, `nodes/${NODE}/${id}.seg`);
    assert.equal(report.offset, 0);
    assert.equal(report.length, bytes.length);
    assert.equal(report.reason, 'corrupt-header');
    assert.equal(report.quarantinedBy, BY);
  });

  test('busy while another process holds the claim on the sealed name; nothing touched', async () => {
    const { root, id, open, sealed } = fresh();
    const { buf } = segment(id, 1);
    writeFileSync(open, buf);
    const release = await lockfile.lock(sealed, { realpath: false, stale: STALE_MS });
    try {
      assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'busy');
      assert.ok(readFileSync(open).equals(buf));
      assert.equal(existsSync(sealed), false);
    } finally {
      await release();
    }
    assert.equal(await sealLeftover(root, open, BY, log, new StaleLocks(STALE_MS)), 'sealed');
  });
});

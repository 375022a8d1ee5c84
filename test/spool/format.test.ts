// The segment codec on damaged input: whatever happens to the bytes, decodeSegment never throws
// or hangs, never returns a record that was not written (at the offset it was written), keeps
// every intact record before the damage, and reports every damaged byte as a gap or the tail.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CURRENT_VERSION,
  decodeHeader,
  decodeSegment,
  encodeHeader,
  encodeRecord,
  MAX_RECORD_BODY,
  RECORD_MAGIC,
  RECORD_OVERHEAD,
  RecordKind,
  SEGMENT_MAGIC,
  type DecodedSegment,
  type RecordKindValue,
  type SegmentHeader,
} from '../../src/spool/format.js';

interface Rec {
  kind: RecordKindValue;
  json: string;
}

interface Frame extends Rec {
  offset: number;
  length: number;
}

interface Built {
  buf: Buffer;
  headerLength: number;
  frames: Frame[];
}

const HEADER: SegmentHeader = { node: 'node-a', segment: '0190a4c2-3b5e-7c1d-9f00-123456789abc', createdAt: 1_720_000_000_000 };

function build(recs: readonly Rec[], header: SegmentHeader = HEADER, version = CURRENT_VERSION): Built {
  const head = encodeHeader(header, version);
  const parts: Buffer[] = [head];
  const frames: Frame[] = [];
  let at = head.length;
  for (const r of recs) {
    const f = encodeRecord(r.kind, r.json);
    frames.push({ ...r, offset: at, length: f.length });
    parts.push(f);
    at += f.length;
  }
  return { buf: Buffer.concat(parts), headerLength: head.length, frames };
}

const asRecord = (f: Frame) => ({ offset: f.offset, length: f.length, kind: f.kind, json: f.json });
const end = (f: Frame) => f.offset + f.length;

/** What decoding buf.subarray(0, cut) must give once the header is whole (cut >= headerLength). */
function expectTruncated(b: Built, cut: number) {
  const kept = b.frames.filter((f) => end(f) <= cut);
  const last = kept[kept.length - 1];
  const validEnd = last ? end(last) : b.headerLength;
  return { records: kept.map(asRecord), gaps: [], tail: cut > validEnd ? { offset: validEnd, length: cut - validEnd } : null, validEnd };
}

/**
 * Structural invariants of any decode: with a header, records, gaps and tail tile every byte
 * after the header exactly once, in order, and validEnd is where the tail starts (or the end).
 * Without a header nothing else is reported.
 */
function checkInvariants(dec: DecodedSegment, buf: Buffer): void {
  if (!dec.header) {
    assert.notEqual(dec.headerProblem, null, 'no header without a header problem');
    assert.deepEqual(dec.records, []);
    assert.deepEqual(dec.gaps, []);
    assert.equal(dec.tail, null);
    return;
  }
  assert.equal(dec.headerProblem, null);
  const pieces = [
    ...dec.records.map((r) => ({ offset: r.offset, length: r.length })),
    ...dec.gaps.map((g) => ({ offset: g.offset, length: g.length })),
    ...(dec.tail ? [dec.tail] : []),
  ].sort((a, b) => a.offset - b.offset);
  let at = dec.header.length;
  for (const p of pieces) {
    assert.equal(p.offset, at, `pieces tile the file: expected a piece at ${at}, got one at ${p.offset}`);
    assert.ok(p.length > 0, 'no empty piece');
    at += p.length;
  }
  assert.equal(at, buf.length, 'pieces end at the end of the file');
  assert.equal(dec.validEnd, dec.tail ? dec.tail.offset : buf.length);
  if (dec.tail) assert.equal(dec.tail.offset + dec.tail.length, buf.length);
  for (const r of dec.records) {
    assert.ok(r.length >= RECORD_OVERHEAD + 1);
    assert.ok(buf.subarray(r.offset, r.offset + 4).equals(RECORD_MAGIC), 'a record starts with the record magic');
  }
}

/** Every returned record is one that was encoded, byte for byte, at the offset it was encoded at. */
function assertOnlyWrittenRecords(dec: DecodedSegment, b: Built): void {
  const byOffset = new Map(b.frames.map((f) => [f.offset, f]));
  for (const r of dec.records) {
    const f = byOffset.get(r.offset);
    assert.ok(f, `record at ${r.offset} was never written there`);
    assert.deepEqual(r, asRecord(f));
  }
}

// JSON-ish text, well-formed UTF-16 (so it survives a UTF-8 round trip unchanged), sometimes
// holding the record magic "\xB7REC" (U+00B7 is C2 B7 in UTF-8) to lure the resync scan.
const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;
const textArb = fc
  .array(fc.oneof({ weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) }, { weight: 1, arbitrary: fc.constant('\u00b7REC') }), { maxLength: 6 })
  .map((parts) => parts.join(''))
  .filter(wellFormed);
const jsonArb = fc.oneof(fc.json({ maxDepth: 2 }).filter(wellFormed), textArb.map((s) => JSON.stringify({ s })), textArb);
const kindArb = fc.constantFrom<RecordKindValue>(RecordKind.request, RecordKind.cancel, RecordKind.callbackOutcome);
const recArb: fc.Arbitrary<Rec> = fc.record({ kind: kindArb, json: jsonArb });
const headerArb: fc.Arbitrary<SegmentHeader> = fc.record({
  node: fc.string({ unit: 'grapheme', maxLength: 30 }).filter(wellFormed),
  segment: fc.uuid(),
  createdAt: fc.integer({ min: 0, max: 2 ** 45 }),
});

const FIVE_FOR_HEADER: Rec[] = [{ kind: RecordKind.request, json: '{"id":"h1"}' }, { kind: RecordKind.request, json: '{"id":"h2"}' }];

// A small fixed file, used by the exhaustive (every byte, every bit) tests.
const SMALL: Rec[] = [
  { kind: RecordKind.request, json: '{"id":"a","payload":"\u00b7REC\u00b7REC"}' },
  { kind: RecordKind.cancel, json: '{"id":"b"}' },
  { kind: RecordKind.callbackOutcome, json: '{"id":"c","note":"d\u00e9j\u00e0 vu \u{1F600}"}' },
];

describe('segment codec: round trip', () => {
  test('header and records of a fixed file decode to exactly what was written', () => {
    const b = build(SMALL);
    const dec = decodeSegment(b.buf);
    assert.deepEqual(dec.header, { ...HEADER, version: CURRENT_VERSION, length: b.headerLength });
    assert.equal(dec.headerProblem, null);
    assert.deepEqual(dec.records, b.frames.map(asRecord));
    assert.deepEqual(dec.gaps, []);
    assert.equal(dec.tail, null);
    assert.equal(dec.validEnd, b.buf.length);
    assert.ok(b.buf.subarray(0, 8).equals(SEGMENT_MAGIC));
  });

  test('encodeRecord takes a string or the same bytes as a Buffer', () => {
    const json = '{"x":"\u00e9\u{1F600}"}';
    assert.ok(encodeRecord(RecordKind.request, json).equals(encodeRecord(RecordKind.request, Buffer.from(json, 'utf8'))));
  });

  test('property: random headers and records round trip', () => {
    fc.assert(
      fc.property(headerArb, fc.array(recArb, { maxLength: 12 }), (h, recs) => {
        const b = build(recs, h);
        const dec = decodeSegment(b.buf);
        assert.deepEqual(dec.header, { ...h, version: CURRENT_VERSION, length: b.headerLength });
        assert.equal(dec.headerProblem, null);
        assert.deepEqual(dec.records, b.frames.map(asRecord));
        assert.deepEqual(dec.gaps, []);
        assert.equal(dec.tail, null);
        assert.equal(dec.validEnd, b.buf.length);
        const hdr = decodeHeader(b.buf);
        assert.equal(hdr.problem, null);
        assert.deepEqual(hdr.header, dec.header);
      }),
      { numRuns: 200 },
    );
  });

  test('limits: a body over MAX_RECORD_BODY and a header over 64 KiB are refused when encoding', () => {
    assert.throws(() => encodeRecord(RecordKind.request, Buffer.alloc(MAX_RECORD_BODY)), RangeError);
    assert.throws(() => encodeHeader({ ...HEADER, node: 'n'.repeat(70_000) }), RangeError);
  });
});

describe('segment codec: truncation', () => {
  test('property: a cut at every byte offset of the last two records keeps every record before it and reports the rest as tail', () => {
    fc.assert(
      fc.property(fc.array(recArb, { minLength: 2, maxLength: 8 }), (recs) => {
        const b = build(recs);
        const secondLast = b.frames[b.frames.length - 2]!;
        for (let cut = secondLast.offset; cut <= b.buf.length; cut++) {
          const part = b.buf.subarray(0, cut);
          const dec = decodeSegment(part);
          const want = expectTruncated(b, cut);
          assert.equal(dec.headerProblem, null, `cut ${cut}`);
          assert.deepEqual(dec.records, want.records, `cut ${cut}: records`);
          assert.deepEqual(dec.gaps, want.gaps, `cut ${cut}: gaps`);
          assert.deepEqual(dec.tail, want.tail, `cut ${cut}: tail`);
          assert.equal(dec.validEnd, want.validEnd, `cut ${cut}: validEnd`);
          checkInvariants(dec, part);
        }
      }),
      { numRuns: 150 },
    );
  });

  // The pg-protocol style: hand the decoder every possible prefix of a small message stream.
  test('a 3-record file decoded at every prefix length 0..N', () => {
    const b = build(SMALL);
    for (let cut = 0; cut <= b.buf.length; cut++) {
      const part = b.buf.subarray(0, cut);
      const dec = decodeSegment(part);
      checkInvariants(dec, part);
      if (cut < b.headerLength) {
        assert.equal(dec.header, null, `cut ${cut}`);
        assert.equal(dec.headerProblem?.code, 'truncated', `cut ${cut}: a header cut short is 'truncated', got ${JSON.stringify(dec.headerProblem)}`);
        assert.equal(dec.validEnd, 0);
        continue;
      }
      const want = expectTruncated(b, cut);
      assert.deepEqual(
        { records: dec.records, gaps: dec.gaps, tail: dec.tail, validEnd: dec.validEnd },
        { records: want.records, gaps: want.gaps, tail: want.tail, validEnd: want.validEnd },
        `cut ${cut}`,
      );
      // Splitting and joining again gives the whole file's decode back.
      assert.deepEqual(decodeSegment(Buffer.concat([part, b.buf.subarray(cut)])).records, b.frames.map(asRecord));
    }
  });

  test('an empty file: truncated header, nothing else', () => {
    const dec = decodeSegment(Buffer.alloc(0));
    assert.deepEqual(dec, { header: null, headerProblem: dec.headerProblem, records: [], gaps: [], tail: null, validEnd: 0 });
    assert.equal(dec.headerProblem?.code, 'truncated');
  });

  test('a header-only file: a header, no records, no damage, validEnd at the header end', () => {
    const b = build([]);
    const dec = decodeSegment(b.buf);
    assert.deepEqual(dec.header, { ...HEADER, version: CURRENT_VERSION, length: b.buf.length });
    assert.equal(dec.headerProblem, null);
    assert.deepEqual(dec.records, []);
    assert.deepEqual(dec.gaps, []);
    assert.equal(dec.tail, null);
    assert.equal(dec.validEnd, b.buf.length);
  });

  test('a header truncated at every byte is reported as truncated (never corrupt, never a header)', () => {
    const head = encodeHeader(HEADER);
    const wrong: string[] = [];
    for (let cut = 0; cut < head.length; cut++) {
      const part = head.subarray(0, cut);
      const h = decodeHeader(part);
      const dec = decodeSegment(part);
      assert.equal(h.header, null);
      assert.equal(dec.header, null);
      assert.deepEqual(dec.records, []);
      if (h.problem?.code !== 'truncated' || dec.headerProblem?.code !== 'truncated') wrong.push(`${cut}: ${h.problem?.code} (${h.problem?.message})`);
    }
    assert.deepEqual(wrong, [], 'header prefixes not reported as truncated');
  });
});

describe('segment codec: corruption', () => {
  test('every single bit flip of a small file: the damaged record alone is lost and reported', () => {
    const b = build(SMALL);
    for (let pos = 0; pos < b.buf.length; pos++) {
      for (let bit = 0; bit < 8; bit++) {
        const buf = Buffer.from(b.buf);
        buf[pos]! ^= 1 << bit;
        const dec = decodeSegment(buf);
        const where = `flip of bit ${bit} at ${pos}`;
        checkInvariants(dec, buf);
        assertOnlyWrittenRecords(dec, b);
        if (pos < b.headerLength) {
          assert.equal(dec.header, null, `${where}: a damaged header is never trusted`);
          assert.deepEqual(dec.records, [], where);
          continue;
        }
        const k = b.frames.findIndex((f) => pos >= f.offset && pos < end(f));
        const f = b.frames[k]!;
        assert.deepEqual(dec.records, b.frames.filter((_, i) => i !== k).map(asRecord), `${where}: every other record kept`);
        if (k === b.frames.length - 1) {
          assert.deepEqual(dec.gaps, [], where);
          assert.deepEqual(dec.tail, { offset: f.offset, length: f.length }, where);
          assert.equal(dec.validEnd, f.offset, where);
        } else {
          assert.deepEqual(dec.gaps, [{ offset: f.offset, length: f.length, reason: 'bad-frame' }], where);
          assert.equal(dec.tail, null, where);
          assert.equal(dec.validEnd, b.buf.length, where);
        }
      }
    }
  });

  test('property: random bit flips anywhere never yield a corrupt record; records before the first flip survive', () => {
    fc.assert(
      fc.property(
        fc.array(recArb, { minLength: 1, maxLength: 10 }),
        fc.array(fc.record({ at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), bit: fc.integer({ min: 0, max: 7 }) }), { minLength: 1, maxLength: 6 }),
        (recs, flips) => {
          const b = build(recs);
          const buf = Buffer.from(b.buf);
          const positions = flips.map((x) => Math.floor(x.at * buf.length));
          flips.forEach((x, i) => (buf[positions[i]!]! ^= 1 << x.bit));
          if (buf.equals(b.buf)) return; // the flips cancelled out
          const changed = positions.filter((p) => buf[p] !== b.buf[p]);
          const first = Math.min(...changed);
          const dec = decodeSegment(buf);
          checkInvariants(dec, buf);
          assertOnlyWrittenRecords(dec, b);
          if (first < b.headerLength) {
            assert.equal(dec.header, null);
            return;
          }
          const before = b.frames.filter((f) => end(f) <= first).map(asRecord);
          assert.deepEqual(dec.records.slice(0, before.length), before);
          // Records no flip touched are all kept, wherever they are.
          const untouched = b.frames.filter((f) => !changed.some((p) => p >= f.offset && p < end(f))).map(asRecord);
          assert.deepEqual(dec.records, untouched);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('property: random bytes after a valid header never throw and never yield a record', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (junk) => {
        const b = build([]);
        const buf = Buffer.concat([b.buf, junk]);
        const dec = decodeSegment(buf);
        checkInvariants(dec, buf);
        assert.deepEqual(dec.records, []);
      }),
      { numRuns: 300 },
    );
  });

  test('property: random bytes as a whole file never throw and never yield a header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), (junk) => {
        const dec = decodeSegment(Buffer.from(junk));
        checkInvariants(dec, Buffer.from(junk));
      }),
      { numRuns: 300 },
    );
  });

  test('property: garbage between records is one gap; every record is kept at its offset', () => {
    fc.assert(
      fc.property(fc.array(recArb, { minLength: 2, maxLength: 8 }), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 300 }), (recs, where, junk) => {
        const clean = build(recs);
        const k = 1 + (where % (recs.length - 1)); // garbage goes before frame k (never first nor after last)
        const at = clean.frames[k]!.offset;
        const buf = Buffer.concat([clean.buf.subarray(0, at), junk, clean.buf.subarray(at)]);
        const shifted: Built = { ...clean, buf, frames: clean.frames.map((f, i) => (i >= k ? { ...f, offset: f.offset + junk.length } : f)) };
        const dec = decodeSegment(buf);
        checkInvariants(dec, buf);
        assert.deepEqual(dec.records, shifted.frames.map(asRecord));
        assert.deepEqual(dec.gaps, [{ offset: at, length: junk.length, reason: 'bad-frame' }]);
        assert.equal(dec.tail, null);
      }),
      { numRuns: 200 },
    );
  });

  /** Overwrite the bodyLength field of frame k with `value`. */
  function withLength(b: Built, k: number, value: number): Buffer {
    const buf = Buffer.from(b.buf);
    buf.writeUInt32LE(value, b.frames[k]!.offset + 4);
    return buf;
  }

  const FIVE: Rec[] = [1, 2, 3, 4, 5].map((i) => ({ kind: RecordKind.request, json: JSON.stringify({ id: `r${i}`, payload: 'x'.repeat(i * 7) }) }));

  test('a zeroed length field in the middle: that record is a gap, every other record kept', () => {
    const b = build(FIVE);
    const dec = decodeSegment(withLength(b, 2, 0));
    const f = b.frames[2]!;
    assert.deepEqual(dec.records, b.frames.filter((_, i) => i !== 2).map(asRecord));
    assert.deepEqual(dec.gaps, [{ offset: f.offset, length: f.length, reason: 'bad-frame' }]);
    assert.equal(dec.tail, null);
  });

  test('a zeroed length field in the last record: a tail, validEnd before it', () => {
    const b = build(FIVE);
    const f = b.frames[4]!;
    const dec = decodeSegment(withLength(b, 4, 0));
    assert.deepEqual(dec.records, b.frames.slice(0, 4).map(asRecord));
    assert.deepEqual(dec.gaps, []);
    assert.deepEqual(dec.tail, { offset: f.offset, length: f.length });
    assert.equal(dec.validEnd, f.offset);
  });

  for (const [name, value] of [
    ['0xFFFFFFFF', 0xffffffff],
    ['MAX_RECORD_BODY + 1', MAX_RECORD_BODY + 1],
    ['past the end of the file (under MAX_RECORD_BODY)', 100_000],
  ] as const) {
    test(`an oversized length field (${name}) in the middle: a gap, later records kept`, () => {
      const b = build(FIVE);
      const f = b.frames[1]!;
      const buf = withLength(b, 1, value);
      assert.ok(value > buf.length, 'the length points past the end of the file');
      const dec = decodeSegment(buf);
      assert.deepEqual(dec.records, b.frames.filter((_, i) => i !== 1).map(asRecord));
      assert.deepEqual(dec.gaps, [{ offset: f.offset, length: f.length, reason: 'bad-frame' }]);
      assert.equal(dec.tail, null);
      assert.equal(dec.validEnd, buf.length);
    });
  }

  test('a length field that is off by one (still inside the file) is caught by the CRC', () => {
    const b = build(FIVE);
    const f = b.frames[1]!;
    for (const delta of [-1, 1]) {
      const dec = decodeSegment(withLength(b, 1, f.length - RECORD_OVERHEAD + delta));
      assert.deepEqual(dec.records, b.frames.filter((_, i) => i !== 1).map(asRecord), `delta ${delta}`);
      assert.deepEqual(dec.gaps, [{ offset: f.offset, length: f.length, reason: 'bad-frame' }]);
    }
  });

  test('a stretch of damage in the middle (overwritten bytes spanning two records): one gap, later records kept', () => {
    const b = build(FIVE);
    const buf = Buffer.from(b.buf);
    const f1 = b.frames[1]!;
    const f2 = b.frames[2]!;
    buf.fill(0xaa, f1.offset + 5, f2.offset + 3);
    const dec = decodeSegment(buf);
    checkInvariants(dec, buf);
    assert.deepEqual(dec.records, [b.frames[0]!, b.frames[3]!, b.frames[4]!].map(asRecord));
    assert.deepEqual(dec.gaps, [{ offset: f1.offset, length: f1.length + f2.length, reason: 'bad-frame' }]);
    assert.equal(dec.tail, null);
  });

  test('damaged records 1, 3 and 4 (the last): a gap for 1, and 3 and 4 together are the tail', () => {
    const b = build(FIVE);
    const buf = Buffer.from(b.buf);
    for (const k of [1, 3, 4]) buf[b.frames[k]!.offset + RECORD_OVERHEAD + 2]! ^= 0x10;
    const dec = decodeSegment(buf);
    checkInvariants(dec, buf);
    assert.deepEqual(dec.records, [b.frames[0]!, b.frames[2]!].map(asRecord));
    const [f1, f3, f4] = [b.frames[1]!, b.frames[3]!, b.frames[4]!];
    assert.deepEqual(dec.gaps, [{ offset: f1.offset, length: f1.length, reason: 'bad-frame' }]);
    // No intact record follows record 3, so records 3 and 4 together are the tail.
    assert.deepEqual(dec.tail, { offset: f3.offset, length: f3.length + f4.length });
    assert.equal(dec.validEnd, f3.offset);
  });

  test('an intact frame of an unknown kind is reported as a gap, never as a record', () => {
    const head = encodeHeader(HEADER);
    const a = encodeRecord(RecordKind.request, '{"id":"a"}');
    const unknown = encodeRecord(9 as RecordKindValue, '{"id":"future"}');
    const c = encodeRecord(RecordKind.request, '{"id":"c"}');
    const buf = Buffer.concat([head, a, unknown, c]);
    const dec = decodeSegment(buf);
    checkInvariants(dec, buf);
    assert.deepEqual(
      dec.records.map((r) => r.json),
      ['{"id":"a"}', '{"id":"c"}'],
    );
    assert.deepEqual(dec.gaps, [{ offset: head.length + a.length, length: unknown.length, reason: 'unknown-kind' }]);
    assert.equal(dec.tail, null);
    assert.equal(dec.validEnd, buf.length);
  });
});

describe('segment codec: header problems', () => {
  test('a header with a newer version: unsupported-version, no header, no records, even with intact records after it', () => {
    const b = build(FIVE_FOR_HEADER, HEADER, CURRENT_VERSION + 1);
    const dec = decodeSegment(b.buf);
    assert.deepEqual(dec.headerProblem && { code: dec.headerProblem.code, version: 'version' in dec.headerProblem ? dec.headerProblem.version : -1 }, {
      code: 'unsupported-version',
      version: CURRENT_VERSION + 1,
    });
    assert.match(dec.headerProblem!.message, /newer/);
    assert.equal(dec.header, null);
    assert.deepEqual(dec.records, []);
    assert.deepEqual(dec.gaps, []);
    assert.equal(dec.tail, null);
    assert.equal(dec.validEnd, 0);
    // Far newer, too (the whole u16 range).
    assert.equal(decodeSegment(build([], HEADER, 0xffff).buf).headerProblem?.code, 'unsupported-version');
  });

  test('version 0 is corrupt, not a header', () => {
    const dec = decodeSegment(build(FIVE_FOR_HEADER, HEADER, 0).buf);
    assert.equal(dec.headerProblem?.code, 'corrupt');
    assert.deepEqual(dec.records, []);
  });

  test('bad magic: corrupt, nothing read, whatever follows', () => {
    const b = build(FIVE_FOR_HEADER);
    for (const buf of [
      Buffer.concat([Buffer.from('NOTASEGM', 'latin1'), b.buf.subarray(8)]),
      Buffer.from('hello world, this is not a segment at all', 'utf8'),
      Buffer.from('hello'),
      Buffer.alloc(100, 0),
    ]) {
      const dec = decodeSegment(buf);
      assert.equal(dec.headerProblem?.code, 'corrupt', JSON.stringify(buf.toString('latin1').slice(0, 12)));
      assert.match(dec.headerProblem!.message, /bad magic/);
      assert.equal(dec.header, null);
      assert.deepEqual(dec.records, []);
    }
  });

  test('a header length field too small, or a header CRC mismatch, or a header without node: corrupt', () => {
    const b = build(FIVE_FOR_HEADER);
    const small = Buffer.from(b.buf);
    small.writeUInt16LE(10, 10);
    assert.equal(decodeSegment(small).headerProblem?.code, 'corrupt');
    const crc = Buffer.from(b.buf);
    crc[b.headerLength - 1]! ^= 0xff;
    assert.equal(decodeSegment(crc).headerProblem?.code, 'corrupt');
    const noNode = Buffer.concat([encodeHeader({ segment: 's', createdAt: 1 } as unknown as SegmentHeader), encodeRecord(RecordKind.request, '{}')]);
    assert.equal(decodeSegment(noNode).headerProblem?.code, 'corrupt');
    assert.deepEqual(decodeSegment(noNode).records, []);
  });
});


// Segment file format, version 1 (docs/spool-format.md is the prose twin of this file).
//
// A segment is a header followed by records. All integers are little-endian.
//
//   header: magic(8) "INTKSPL\n" | version u16 | headerLength u16 | JSON (utf-8) | crc32c u32
//           The CRC covers every header byte before it. headerLength counts the whole header.
//   record: magic(4) 0xB7 'R' 'E' 'C' | bodyLength u32 | bodyCrc u32 | frameCrc u32 | body
//           bodyCrc = crc32c(body); frameCrc = crc32c(the 12 bytes before it), so a flipped
//           length is caught before it is followed.
//           body = kind u8 | JSON (utf-8)
//
// Each record starts with a magic so a reader can find the next intact record after damage
// in the middle of a file (resync): the damaged bytes are reported as a gap, never ingested.
// The frame's own CRC lets resync reject a false magic in O(1), without checksumming a body
// whose (false) length reaches to the end of the file: damage costs linear time, not quadratic.
// A reader accepts every version up to CURRENT_VERSION and refuses a newer one without
// touching the file, so an upgraded node can read it later.

import { crc32c } from '@node-rs/crc32';

export const SEGMENT_MAGIC = Buffer.from('INTKSPL\n', 'latin1');
export const CURRENT_VERSION = 1;
const HEADER_FIXED = 12; // magic 8 + version 2 + headerLength 2
const HEADER_CRC = 4;
const MAX_HEADER_BYTES = 64 * 1024;

export const RECORD_MAGIC = Buffer.from([0xb7, 0x52, 0x45, 0x43]); // "\xB7REC"
export const RECORD_OVERHEAD = 16; // magic 4 + bodyLength 4 + bodyCrc 4 + frameCrc 4
/** Upper bound on one record body: a larger length field is damage, not a record. */
export const MAX_RECORD_BODY = 64 * 1024 * 1024;

/** Record kinds: one spool carries every fact a receive-mode node must hand to the database. */
export const RecordKind = {
  request: 1,
  cancel: 2,
  callbackOutcome: 3,
  /** An entry of the failed-callback spool (callbacks/retry, callbacks/dead): never drained. */
  callbackEntry: 4,
} as const;
export type RecordKindValue = (typeof RecordKind)[keyof typeof RecordKind];
const KNOWN_KINDS = new Set<number>(Object.values(RecordKind));

export interface SegmentHeader {
  /** Node that wrote the segment. */
  node: string;
  /** Segment id (also its file name stem). */
  segment: string;
  /** Wall-clock ms when the segment was created (informational only). */
  createdAt: number;
}

export function encodeHeader(h: SegmentHeader, version = CURRENT_VERSION): Buffer {
  const json = Buffer.from(JSON.stringify(h), 'utf8');
  const total = HEADER_FIXED + json.length + HEADER_CRC;
  if (total > MAX_HEADER_BYTES) throw new RangeError('segment header too large');
  const buf = Buffer.allocUnsafe(total);
  SEGMENT_MAGIC.copy(buf, 0);
  buf.writeUInt16LE(version, 8);
  buf.writeUInt16LE(total, 10);
  json.copy(buf, HEADER_FIXED);
  buf.writeUInt32LE(crc32c(buf.subarray(0, total - HEADER_CRC)), total - HEADER_CRC);
  return buf;
}

/** Frame one record. `json` is the record's JSON text (or its bytes). */
export function encodeRecord(kind: RecordKindValue, json: string | Buffer): Buffer {
  const bodyLength = 1 + (typeof json === 'string' ? Buffer.byteLength(json, 'utf8') : json.length);
  if (bodyLength > MAX_RECORD_BODY) throw new RangeError('record too large');
  const buf = Buffer.allocUnsafe(RECORD_OVERHEAD + bodyLength);
  RECORD_MAGIC.copy(buf, 0);
  buf.writeUInt32LE(bodyLength, 4);
  buf[RECORD_OVERHEAD] = kind;
  if (typeof json === 'string') buf.write(json, RECORD_OVERHEAD + 1, 'utf8');
  else json.copy(buf, RECORD_OVERHEAD + 1);
  buf.writeUInt32LE(crc32c(buf.subarray(RECORD_OVERHEAD)) >>> 0, 8);
  buf.writeUInt32LE(crc32c(buf.subarray(0, 12)) >>> 0, 12);
  return buf;
}

export interface DecodedRecord {
  /** Byte offset of the record's frame in the file. */
  offset: number;
  /** Frame length (overhead + body). */
  length: number;
  kind: number;
  /** The JSON text of the record (kind byte stripped). */
  json: string;
}

export type GapReason = 'bad-frame' | 'unknown-kind';

export interface Gap {
  offset: number;
  length: number;
  reason: GapReason;
}

export type HeaderProblem =
  | { code: 'truncated'; message: string }
  | { code: 'corrupt'; message: string }
  | { code: 'unsupported-version'; message: string; version: number };

export interface DecodedSegment {
  header: (SegmentHeader & { version: number; length: number }) | null;
  headerProblem: HeaderProblem | null;
  records: DecodedRecord[];
  /** Damaged byte ranges followed by at least one intact record: corruption in the middle. */
  gaps: Gap[];
  /**
   * Bytes after the last intact record that hold no intact record: a torn tail when the
   * segment was open at a crash, corruption when it was sealed. null when the file ends cleanly.
   */
  tail: { offset: number; length: number } | null;
  /** Offset just past the last intact record (or the header): where a torn tail is cut. */
  validEnd: number;
}

export function decodeHeader(buf: Buffer): { header: DecodedSegment['header']; problem: HeaderProblem | null } {
  if (buf.length < HEADER_FIXED) {
    const n = Math.min(buf.length, SEGMENT_MAGIC.length);
    const prefixOk = buf.subarray(0, n).equals(SEGMENT_MAGIC.subarray(0, n));
    return prefixOk
      ? { header: null, problem: { code: 'truncated', message: `file ends inside the header (${buf.length} bytes)` } }
      : { header: null, problem: { code: 'corrupt', message: 'not an intake segment (bad magic)' } };
  }
  if (!buf.subarray(0, 8).equals(SEGMENT_MAGIC)) {
    return { header: null, problem: { code: 'corrupt', message: 'not an intake segment (bad magic)' } };
  }
  const version = buf.readUInt16LE(8);
  if (version > CURRENT_VERSION) {
    return {
      header: null,
      problem: {
        code: 'unsupported-version',
        version,
        message: `segment format version ${version} is newer than this node understands (max ${CURRENT_VERSION}); upgrade this node`,
      },
    };
  }
  if (version < 1) return { header: null, problem: { code: 'corrupt', message: `bad format version ${version}` } };
  const length = buf.readUInt16LE(10);
  if (length < HEADER_FIXED + HEADER_CRC + 2) {
    return { header: null, problem: { code: 'corrupt', message: `bad header length ${length}` } };
  }
  if (buf.length < length) {
    return { header: null, problem: { code: 'truncated', message: `file ends inside the header (${buf.length} < ${length} bytes)` } };
  }
  const stored = buf.readUInt32LE(length - HEADER_CRC);
  if (crc32c(buf.subarray(0, length - HEADER_CRC)) >>> 0 !== stored) {
    return { header: null, problem: { code: 'corrupt', message: 'header checksum mismatch' } };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8', HEADER_FIXED, length - HEADER_CRC));
  } catch {
    return { header: null, problem: { code: 'corrupt', message: 'header is not valid JSON' } };
  }
  const h = parsed as Partial<SegmentHeader>;
  if (typeof h !== 'object' || h === null || typeof h.node !== 'string' || typeof h.segment !== 'string') {
    return { header: null, problem: { code: 'corrupt', message: 'header lacks node or segment' } };
  }
  return {
    header: { node: h.node, segment: h.segment, createdAt: Number(h.createdAt ?? 0), version, length },
    problem: null,
  };
}

/** Is there an intact record frame at `at`? Returns its body length, or -1. */
function frameAt(buf: Buffer, at: number): number {
  if (at + RECORD_OVERHEAD > buf.length) return -1;
  if (buf[at] !== RECORD_MAGIC[0] || buf[at + 1] !== RECORD_MAGIC[1] || buf[at + 2] !== RECORD_MAGIC[2] || buf[at + 3] !== RECORD_MAGIC[3]) {
    return -1;
  }
  if (crc32c(buf.subarray(at, at + 12)) >>> 0 !== buf.readUInt32LE(at + 12)) return -1;
  const bodyLength = buf.readUInt32LE(at + 4);
  if (bodyLength < 1 || bodyLength > MAX_RECORD_BODY || at + RECORD_OVERHEAD + bodyLength > buf.length) return -1;
  const body = buf.subarray(at + RECORD_OVERHEAD, at + RECORD_OVERHEAD + bodyLength);
  if (crc32c(body) >>> 0 !== buf.readUInt32LE(at + 8)) return -1;
  return bodyLength;
}

/** Next offset >= from where an intact frame starts, or -1. */
function resync(buf: Buffer, from: number): number {
  let at = buf.indexOf(RECORD_MAGIC, from);
  while (at !== -1) {
    if (frameAt(buf, at) >= 0) return at;
    at = buf.indexOf(RECORD_MAGIC, at + 1);
  }
  return -1;
}

/**
 * Decode a whole segment. Never throws on damaged input: every byte after the header is either
 * in an intact record, in a gap (damage followed by intact records) or in the tail.
 */
export function decodeSegment(buf: Buffer): DecodedSegment {
  const { header, problem } = decodeHeader(buf);
  const out: DecodedSegment = { header, headerProblem: problem, records: [], gaps: [], tail: null, validEnd: 0 };
  if (!header) return out;
  let at = header.length;
  out.validEnd = at;
  while (at < buf.length) {
    const bodyLength = frameAt(buf, at);
    if (bodyLength < 0) {
      const next = resync(buf, at + 1);
      if (next === -1) {
        out.tail = { offset: at, length: buf.length - at };
        break;
      }
      out.gaps.push({ offset: at, length: next - at, reason: 'bad-frame' });
      at = next;
      continue;
    }
    const length = RECORD_OVERHEAD + bodyLength;
    const kind = buf[at + RECORD_OVERHEAD]!;
    if (!KNOWN_KINDS.has(kind)) {
      // An intact frame of a kind this version does not know: keep it out of the database
      // and report it, exactly like damage.
      out.gaps.push({ offset: at, length, reason: 'unknown-kind' });
    } else {
      out.records.push({ offset: at, length, kind, json: buf.toString('utf8', at + RECORD_OVERHEAD + 1, at + length) });
    }
    at += length;
    out.validEnd = at;
  }
  return out;
}

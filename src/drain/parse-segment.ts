// What a drain needs from one segment file: its request records, cancels and callback outcomes, each
// with its place in the file, and every byte range to quarantine instead of loading. Runs in
// the decode worker (decode-worker.ts), never on the event loop: a 16 MiB segment takes
// 100+ ms to check and parse.
import { decodeSegment, RecordKind, type HeaderProblem } from '../spool/format.js';
import { parseCallbackOutcome, parseCancelRecord, parseRequestRecord, type CallbackOutcomeRecord, type CancelRecord, type RequestRecord } from '../spool/records.js';
import type { Located } from './isolate.js';

/** A byte range of the segment that goes to quarantine/, and why. */
export interface DamagedRange {
  offset: number;
  length: number;
  reason: string;
}

export interface ParsedSegment {
  requests: Located<RequestRecord>[];
  outcomes: Located<CallbackOutcomeRecord>[];
  cancels: Located<CancelRecord>[];
  /** Damage and records we do not load (records first, then damaged frames, then the tail). */
  damaged: DamagedRange[];
}

/** A header problem leaves the whole file to the caller (quarantine it, or leave it for a newer node). */
export type SegmentContent = { kind: 'header'; problem: HeaderProblem } | ({ kind: 'ok' } & ParsedSegment);

export function parseSegment(buf: Buffer): SegmentContent {
  const dec = decodeSegment(buf);
  if (dec.headerProblem) return { kind: 'header', problem: dec.headerProblem };
  const out: ParsedSegment = { requests: [], outcomes: [], cancels: [], damaged: [] };
  for (const rec of dec.records) {
    const at = { offset: rec.offset, length: rec.length };
    if (rec.kind === RecordKind.request) {
      const r = parseRequestRecord(rec.json);
      if (r) {
        out.requests.push({ ...at, value: r });
        continue;
      }
    } else if (rec.kind === RecordKind.cancel) {
      const c = parseCancelRecord(rec.json);
      if (c) {
        out.cancels.push({ ...at, value: c });
        continue;
      }
    } else if (rec.kind === RecordKind.callbackOutcome) {
      const o = parseCallbackOutcome(rec.json);
      if (o) {
        out.outcomes.push({ ...at, value: o });
        continue;
      }
    }
    const known = rec.kind === RecordKind.request || rec.kind === RecordKind.cancel || rec.kind === RecordKind.callbackOutcome;
    out.damaged.push({ ...at, reason: known ? 'bad-record' : 'unhandled-kind' });
  }
  out.damaged.push(...dec.gaps);
  // A sealed segment was fully synced before its rename: bytes past the last intact record are damage.
  if (dec.tail) out.damaged.push({ ...dec.tail, reason: 'corrupt-tail' });
  return { kind: 'ok', ...out };
}

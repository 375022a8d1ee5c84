// The messages between the drainer's SegmentDecoder (decoder.ts) and its worker
// (decode-worker.ts). Records come back in chunks, each sent only after the previous one was
// taken (`more`), so the event loop deserialises one small piece per turn, never a whole segment.
import type { HeaderProblem } from '../spool/format.js';
import type { CallbackOutcomeRecord, CancelRecord, RequestRecord } from '../spool/records.js';
import type { Located } from './isolate.js';
import type { DamagedRange } from './parse-segment.js';

/** Records per chunk, and about the bytes of record frames per chunk, whichever fills first. */
export const CHUNK_RECORDS = 1000;
export const CHUNK_BYTES = 2 * 1024 * 1024;

export type ToWorker = { type: 'decode'; job: number; path: string } | { type: 'more'; job: number };

/** How a job ends: the file was gone, its header is damaged or newer, or its records were all sent. */
export type JobEnd = { kind: 'gone' } | { kind: 'header'; problem: HeaderProblem } | { kind: 'ok'; damaged: DamagedRange[] };

export type FromWorker =
  | { type: 'chunk'; job: number; requests: Located<RequestRecord>[]; outcomes: Located<CallbackOutcomeRecord>[]; cancels?: Located<CancelRecord>[] }
  | { type: 'done'; job: number; end: JobEnd }
  /** The file could not be read (not ENOENT): code and message of the error. */
  | { type: 'failed'; job: number; code: string | undefined; message: string };

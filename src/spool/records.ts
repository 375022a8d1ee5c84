// The JSON carried by each record kind. The intake writes them; the drainer reads them back.
// Field names are part of the spool format (docs/spool-format.md): add fields, never rename.
import { validate as validateUuid } from 'uuid';

export interface RequestRecord {
  id: string;
  tenant: string;
  idempotencyKey: string | null;
  /** Wall-clock ms at the receiving node when the request was accepted. */
  receivedAt: number;
  node: string;
  callbackUrl: string;
  lane: string | null;
  /** Wall-clock ms before which the request is not handed to processors, or null. */
  notBefore: number | null;
  /**
   * The client's delay_seconds when it gave one (notBefore is then receivedAt + the delay):
   * an Idempotency-Key retry through another node is the same request, though its notBefore is not.
   */
  delaySeconds?: number | null;
  /** The client's payload, as JSON text. */
  payload: string;
  /** The client's metadata object, as JSON text, or null. */
  metadata: string | null;
}

export function encodeRequestRecord(r: RequestRecord): string {
  return JSON.stringify(r);
}

// U+0000 in JSON text: `\u0000` after an even number of backslashes (an odd number in all).
const ESCAPED_NUL = /(?<!\\)(?:\\\\)*\\u0000/;
// A lone surrogate in JSON text made by JSON.stringify, which escapes exactly those (a valid
// pair is written as the characters themselves): `\ud800`-`\udfff` after an even number of backslashes.
const ESCAPED_SURROGATE = /(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/;

/**
 * Whether `text` holds U+0000, raw or (in JSON text) escaped. PostgreSQL stores it neither in
 * text nor in jsonb, so such a request is refused at intake; a record holding one (written by
 * an older build) is quarantined rather than failing its whole segment's insert on every retry.
 */
export function containsNul(text: string): boolean {
  return text.includes('\0') || (text.includes('\\u0000') && ESCAPED_NUL.test(text));
}

/**
 * Why the database could not store this JSON text exactly (U+0000, or a lone surrogate, which
 * PostgreSQL's jsonb refuses and which is not Unicode text at all), or null. `text` must come
 * from JSON.stringify. Intake refuses such payloads, metadata and results with a 400, on both
 * engines alike.
 */
export function unstorableJson(text: string): string | null {
  if (containsNul(text)) return 'the character U+0000 (\\u0000)';
  if (text.includes('\\ud') && ESCAPED_SURROGATE.test(text)) return 'a lone surrogate (half of a UTF-16 pair, such as \\ud800)';
  return null;
}

function isJsonText(s: string): boolean {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

const str = (v: unknown): v is string => typeof v === 'string';
const strOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const numOrNull = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isFinite(v));

/** Parse a request record; null when it is not one (the drainer quarantines it). */
export function parseRequestRecord(json: string): RequestRecord | null {
  let v: Partial<RequestRecord>;
  try {
    v = JSON.parse(json) as Partial<RequestRecord>;
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  if (!str(v.id) || !str(v.tenant) || !str(v.node) || !str(v.callbackUrl) || !str(v.payload)) return null;
  // Only a request id reaches the database: SQLite would store any text, and PostgreSQL would
  // refuse the whole segment's insert, again on every retry.
  if (!validateUuid(v.id)) return null;
  for (const f of [v.tenant, v.node, v.callbackUrl, v.payload, v.idempotencyKey, v.lane, v.metadata]) if (typeof f === 'string' && containsNul(f)) return null;
  // payload and metadata are JSON text (jsonb on PostgreSQL, parsed again to answer a GET).
  if (!isJsonText(v.payload) || (typeof v.metadata === 'string' && !isJsonText(v.metadata))) return null;
  if (typeof v.receivedAt !== 'number' || !Number.isFinite(v.receivedAt)) return null;
  if (!strOrNull(v.idempotencyKey ?? null) || !strOrNull(v.lane ?? null) || !strOrNull(v.metadata ?? null)) return null;
  if (!numOrNull(v.notBefore ?? null) || !numOrNull(v.delaySeconds ?? null)) return null;
  return {
    id: v.id,
    tenant: v.tenant,
    idempotencyKey: v.idempotencyKey ?? null,
    receivedAt: v.receivedAt,
    node: v.node,
    callbackUrl: v.callbackUrl,
    lane: v.lane ?? null,
    notBefore: v.notBefore ?? null,
    ...(typeof v.delaySeconds === 'number' ? { delaySeconds: v.delaySeconds } : {}),
    payload: v.payload,
    metadata: v.metadata ?? null,
  };
}

/**
 * A cancel of a request, recorded by a node that could not apply it to the database itself
 * (receive mode). The drainer applies it; if the request has not reached the database yet, the
 * cancel waits there as a tombstone that the request's insert respects.
 */
export interface CancelRecord {
  id: string;
  /** The tenant of the key that asked: a cancel applies only to that tenant's request. */
  tenant: string;
  /** Wall-clock ms at the node that accepted the cancel. */
  at: number;
  node: string;
}

export function parseCancelRecord(json: string): CancelRecord | null {
  try {
    const v = JSON.parse(json) as unknown;
    if (!isObj(v) || !str(v.id) || !str(v.tenant) || !str(v.node) || !validateUuid(v.id)) return null;
    if (typeof v.at !== 'number' || !Number.isFinite(v.at)) return null;
    if (containsNul(v.tenant) || containsNul(v.node)) return null;
    return { id: v.id, tenant: v.tenant, at: v.at, node: v.node };
  } catch {
    return null;
  }
}

/** A callback parked in the failed-callback spool, with its retry state. */
export interface CallbackEntryRecord {
  /** webhook-id: the same on every attempt. */
  id: string;
  requestId: string;
  tenant: string;
  url: string;
  /** The exact body every attempt sends. */
  body: string;
  attempts: number;
  /** Wall-clock ms of the first failure (the entry's age counts from here). */
  firstFailedAt: number;
  lastStatus: number | null;
  lastError: string | null;
  /**
   * Attempts made before the last replay. The attempt count itself keeps growing across replays
   * (outcomes are ordered by it), while the attempt budget starts again at a replay.
   */
  attemptsBeforeReplay?: number;
  /**
   * The outcome of the last attempt when no database or spool could take it (a save-only node
   * while its database is down). The entry then waits only to record it: nothing is sent again.
   */
  pendingOutcome?: CallbackOutcomeRecord;
  /** Failed tries to record `pendingOutcome` so far: its backoff. */
  recordTries?: number;
}

/** What became of a callback, for the database (written by nodes that do not touch it). */
export interface CallbackOutcomeRecord {
  id: string;
  status: 'delivered' | 'parked' | 'dead' | 'gone';
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  at: number;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseCallbackEntry(json: string): CallbackEntryRecord | null {
  try {
    const v = JSON.parse(json) as unknown;
    if (!isObj(v) || !str(v.id) || !str(v.requestId) || !str(v.tenant) || !str(v.url) || !str(v.body)) return null;
    if (typeof v.attempts !== 'number' || typeof v.firstFailedAt !== 'number') return null;
    return v as unknown as CallbackEntryRecord;
  } catch {
    return null;
  }
}

const OUTCOMES = new Set(['delivered', 'parked', 'dead', 'gone']);

export function parseCallbackOutcome(json: string): CallbackOutcomeRecord | null {
  try {
    const v = JSON.parse(json) as unknown;
    if (!isObj(v) || !str(v.id) || !str(v.status) || !OUTCOMES.has(v.status)) return null;
    if (typeof v.attempts !== 'number' || typeof v.at !== 'number') return null;
    return { id: v.id, status: v.status as CallbackOutcomeRecord['status'], attempts: v.attempts, lastStatus: (v.lastStatus as number | null) ?? null, lastError: (v.lastError as string | null) ?? null, at: v.at };
  } catch {
    return null;
  }
}

// Validation of POST /v1/requests bodies. A refused request writes nothing; each refusal says
// which field is wrong, with a stable error code.
import { isIP } from 'node:net';
import { Errors } from '../errors.js';
import { refuseUnstorable } from '../http/unstorable.js';

export interface NewRequest {
  payload: string;
  callbackUrl: string;
  lane: string | null;
  notBefore: number | null;
  /**
   * The delay asked for (delay_seconds), or null. Kept as given, not as an instant, so a retry
   * under the same Idempotency-Key is the same request; the record's not_before is counted from
   * its receivedAt (withDelay).
   */
  delaySeconds: number | null;
  metadata: string | null;
}

const ALLOWED = new Set(['payload', 'callback_url', 'lane', 'not_before', 'delay_seconds', 'metadata']);
/** A year: a longer delay is more likely a unit mistake (ms for s) than a plan. */
const MAX_DELAY_S = 31_536_000;
const LANE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MAX_URL = 2048;
const MAX_METADATA_BYTES = 16 * 1024;
// Printable ASCII without spaces at the ends: keys travel in headers and logs.
const IDEMPOTENCY_KEY = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;

/** Refuses a literal address that callbacks may not reach (names are checked when connecting). */
export type AddressCheck = (host: string) => string | null;

export function validateCallbackUrl(value: unknown, refuse?: AddressCheck): string {
  if (typeof value !== 'string' || value.length === 0) throw Errors.badCallbackUrl('callback_url is required and must be a string');
  if (value.length > MAX_URL) throw Errors.badCallbackUrl(`callback_url is longer than ${MAX_URL} characters`);
  if (value.includes('\0')) throw Errors.badCallbackUrl('callback_url must not contain the character U+0000');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw Errors.badCallbackUrl('callback_url is not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw Errors.badCallbackUrl('callback_url must be http or https');
  if (url.username || url.password) throw Errors.badCallbackUrl('callback_url must not carry credentials');
  if (!url.hostname) throw Errors.badCallbackUrl('callback_url has no host');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const why = isIP(host) && refuse ? refuse(host) : null;
  if (why) throw Errors.badCallbackUrl(`callback_url points where callbacks may not go (${why})`);
  return value;
}

function parseNotBefore(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') {
    // RFC 3339 with an explicit zone, so the instant is not left to the server's time zone.
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v)) {
      throw Errors.badRequest('not_before must be an RFC 3339 timestamp with a zone, like 2030-01-01T00:00:00Z');
    }
    const ms = Date.parse(v);
    if (Number.isFinite(ms)) return ms;
  }
  throw Errors.badRequest('not_before must be an RFC 3339 timestamp with a zone, like 2030-01-01T00:00:00Z');
}

function parseDelay(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_DELAY_S) {
    throw Errors.badRequest(`delay_seconds must be an integer from 0 to ${MAX_DELAY_S}`);
  }
  return v;
}

/**
 * delay_seconds is stored as not_before, counted from the receiving node's clock at acceptance.
 * The delay itself goes into the record only when given (most records carry none).
 */
export function withDelay<T extends { receivedAt: number; notBefore: number | null; delaySeconds: number | null }>(r: T): Omit<T, 'delaySeconds'> & { delaySeconds?: number } {
  const { delaySeconds, ...rest } = r;
  return delaySeconds === null ? rest : { ...rest, delaySeconds, notBefore: r.receivedAt + delaySeconds * 1000 };
}

export function validateNewRequest(body: unknown, refuse?: AddressCheck): NewRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw Errors.badRequest('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!ALLOWED.has(k)) throw Errors.badRequest(`unknown field ${JSON.stringify(k)}`);
  if (b.payload === undefined || b.payload === null) throw Errors.badRequest('payload is required');
  const callbackUrl = validateCallbackUrl(b.callback_url, refuse);
  let lane: string | null = null;
  if (b.lane !== undefined && b.lane !== null) {
    if (typeof b.lane !== 'string' || !LANE.test(b.lane)) throw Errors.badRequest('lane must be 1-64 characters of letters, digits, _ . -');
    lane = b.lane;
  }
  let metadata: string | null = null;
  if (b.metadata !== undefined && b.metadata !== null) {
    if (typeof b.metadata !== 'object' || Array.isArray(b.metadata)) throw Errors.badRequest('metadata must be a JSON object');
    metadata = JSON.stringify(b.metadata);
    if (Buffer.byteLength(metadata) > MAX_METADATA_BYTES) throw Errors.badRequest(`metadata is larger than ${MAX_METADATA_BYTES} bytes`);
    refuseUnstorable(metadata, 'metadata');
  }
  const payload = JSON.stringify(b.payload);
  refuseUnstorable(payload, 'payload');
  const hasNotBefore = b.not_before !== undefined && b.not_before !== null;
  const hasDelay = b.delay_seconds !== undefined && b.delay_seconds !== null;
  if (hasNotBefore && hasDelay) throw Errors.badRequest('give not_before or delay_seconds, not both');
  return { payload, callbackUrl, lane, notBefore: parseNotBefore(b.not_before), delaySeconds: parseDelay(b.delay_seconds), metadata };
}

export function validateIdempotencyKey(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  if (Array.isArray(v) || !IDEMPOTENCY_KEY.test(v)) throw Errors.badIdempotencyKey('Idempotency-Key must be 1-255 printable ASCII characters, given once');
  return v;
}

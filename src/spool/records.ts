// The JSON carried by each record kind. The intake writes them; the drainer reads them back.
// Field names are part of the spool format (docs/spool-format.md): add fields, never rename.

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
  /** The client's payload, as JSON text. */
  payload: string;
  /** The client's metadata object, as JSON text, or null. */
  metadata: string | null;
}

export function encodeRequestRecord(r: RequestRecord): string {
  return JSON.stringify(r);
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
  if (typeof v.receivedAt !== 'number' || !Number.isFinite(v.receivedAt)) return null;
  if (!strOrNull(v.idempotencyKey ?? null) || !strOrNull(v.lane ?? null) || !strOrNull(v.metadata ?? null)) return null;
  if (!numOrNull(v.notBefore ?? null)) return null;
  return {
    id: v.id,
    tenant: v.tenant,
    idempotencyKey: v.idempotencyKey ?? null,
    receivedAt: v.receivedAt,
    node: v.node,
    callbackUrl: v.callbackUrl,
    lane: v.lane ?? null,
    notBefore: v.notBefore ?? null,
    payload: v.payload,
    metadata: v.metadata ?? null,
  };
}

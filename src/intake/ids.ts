// Request ids. A fresh request gets a UUIDv7 (time-ordered: database inserts stay cheap, and 74
// random bits make it unguessable). With an Idempotency-Key the id is derived from tenant and
// key, so a retry through any node gets the same id and the database's unique key keeps one
// row. It is derived with a keyed hash (HMAC-SHA256 under the cluster's id secret, as a UUIDv8):
// nobody without the secret can compute the id of someone's key, and another tenant using the
// same key gets another id.
import { createHmac, randomBytes } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { idSecretPath, clusterDir } from '../cluster/paths.js';
import { readOrCreateShared } from '../cluster/shared-file.js';

export function newRequestId(tenant: string, idempotencyKey: string | null, idSecret: Buffer): string {
  if (idempotencyKey === null) return uuidv7();
  const b = createHmac('sha256', idSecret).update(`${tenant}\n${idempotencyKey}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80; // version 8: custom
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The cluster's id secret: made by the first node, read by every other from the spool root. */
export async function loadIdSecret(root: string): Promise<Buffer> {
  const f = await readOrCreateShared<{ secret: string }>(idSecretPath(root), clusterDir(root), () => ({ secret: randomBytes(32).toString('base64') }));
  return Buffer.from(f.secret, 'base64');
}

// Request ids. A fresh request gets a UUIDv7 (time-ordered: database inserts stay cheap). With an
// Idempotency-Key the id is a UUIDv5 of tenant and key, so a retry through any node gets the
// same id, and the database's unique key keeps one row.
import { v5 as uuidv5, v7 as uuidv7 } from 'uuid';

/** Fixed namespace for idempotency ids: changing it would change every derived id. */
const IDEMPOTENCY_NAMESPACE = '6f1d4c52-2d1e-4d8a-9a53-8f3b1f0c7a10';

export function newRequestId(tenant: string, idempotencyKey: string | null): string {
  return idempotencyKey === null ? uuidv7() : uuidv5(`${tenant}\n${idempotencyKey}`, IDEMPOTENCY_NAMESPACE);
}

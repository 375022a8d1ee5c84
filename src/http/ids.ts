// Request ids as every route group sees them: UUIDs (src/intake/ids.ts makes them).
import { validate } from 'uuid';

/** An id that cannot be a request id answers 404 on both engines (PostgreSQL would refuse to compare it). */
export const isRequestId = (s: string): boolean => validate(s);

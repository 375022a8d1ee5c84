// Retry policy of callbacks: exponential backoff with full jitter, never sooner than the
// receiver's Retry-After, and a limit of attempts and age after which an entry is dead.
export interface RetryPolicy {
  baseMs: number;
  capMs: number;
  maxAttempts: number;
  maxAgeMs: number;
}

/** Delay before attempt `attempts + 1`: uniform in [0, min(cap, base * 2^attempts)], at least Retry-After. */
export function nextDelayMs(p: RetryPolicy, attempts: number, retryAfterMs: number | null, random = Math.random): number {
  const ceiling = Math.min(p.capMs, p.baseMs * 2 ** Math.min(attempts, 30));
  return Math.max(Math.round(random() * ceiling), retryAfterMs ?? 0);
}

export function exhausted(p: RetryPolicy, attempts: number, firstFailedAt: number, now = Date.now()): boolean {
  return attempts >= p.maxAttempts || now - firstFailedAt >= p.maxAgeMs;
}

/** The longest wait before trying again to record an outcome: a returning database hears of it within this. */
const RECORD_RETRY_CAP_MS = 30_000;

/**
 * Delay before the next try to record an outcome nobody could take (a save-only node while its
 * database is down): the callback's own backoff, capped lower, with half of it fixed so that it
 * is never a busy loop (full jitter may draw 0).
 */
export function recordRetryDelayMs(p: RetryPolicy, tries: number, random = Math.random): number {
  const ceiling = Math.min(p.capMs, RECORD_RETRY_CAP_MS, p.baseMs * 2 ** Math.min(tries, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

// Backoff for the drainer: per segment (a segment that failed is retried later, while the others
// go on) and for the drainer as a whole (a database outage slows every pass down, no spinning).

const BASE_MS = 100;
const MAX_BACKOFF_MS = 5000;

/** Exponential backoff with jitter: 200 ms after the first failure, doubling, at most 5 s. */
export function backoffMs(failures: number): number {
  const delay = Math.min(MAX_BACKOFF_MS, BASE_MS * 2 ** Math.min(failures, 10));
  return delay * (0.5 + Math.random() / 2);
}

/** Failed segments by path: how often in a row, and when to try each again. */
export class SegmentRetries {
  private readonly failed = new Map<string, { failures: number; retryAt: number }>();

  /** Whether the segment may be tried now. */
  due(path: string, now = Date.now()): boolean {
    const f = this.failed.get(path);
    return !f || now >= f.retryAt;
  }

  /** Record a failed attempt; returns the failures in a row. */
  fail(path: string): number {
    const failures = (this.failed.get(path)?.failures ?? 0) + 1;
    this.failed.set(path, { failures, retryAt: Date.now() + backoffMs(failures) });
    return failures;
  }

  succeed(path: string): void {
    this.failed.delete(path);
  }

  /** Forget segments that are no longer there (drained by another node, quarantined). */
  keepOnly(paths: Set<string>): void {
    for (const p of this.failed.keys()) if (!paths.has(p)) this.failed.delete(p);
  }
}

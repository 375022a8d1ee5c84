// Idempotency-Key reuse with a different body is never taken silently. A node remembers the
// fingerprint (SHA-256 of the validated request) of the keyed requests it accepted recently:
// the same key with the same body is a retry (202 with the same id, and the drain stores it
// once); with another body it answers 422 at once, before anything is written.
// Memory is bounded: the oldest entries are forgotten first (about 100 bytes each).
import { createHash } from 'node:crypto';

const DEFAULT_CAPACITY = 100_000;

export class RecentKeys {
  private readonly seen = new Map<string, string>();
  private readonly capacity: number;

  constructor(capacity = DEFAULT_CAPACITY) {
    this.capacity = capacity;
  }

  static fingerprint(body: unknown): string {
    return createHash('sha256').update(JSON.stringify(body)).digest('base64');
  }

  /** The fingerprint this node accepted under `id` before, if it remembers one. */
  get(id: string): string | undefined {
    return this.seen.get(id);
  }

  remember(id: string, fingerprint: string): void {
    this.seen.delete(id);
    this.seen.set(id, fingerprint);
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.keys().next().value!);
  }

  forget(id: string, fingerprint: string): void {
    if (this.seen.get(id) === fingerprint) this.seen.delete(id);
  }
}

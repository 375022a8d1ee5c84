// Claims that arrive together are answered by one store claim: while a claim runs, later ones
// of the same kind (tenant, lane choice and lease length) wait, then go to the store as one claim for
// the sum of their limits, and the rows are dealt out in arrival order. On PostgreSQL that is
// one round trip instead of one per worker; a claim of N costs about what a claim of 1 costs.
// Every row carries its own lease token, so dealing rows to different workers is safe.
import type { ClaimedWork } from '../store/store.js';
import type { LaneClaim, LaneClaimer } from './lanes.js';

interface Waiter {
  limit: number;
  resolve: (items: ClaimedWork[]) => void;
  reject: (err: unknown) => void;
}

interface Group {
  running: boolean;
  waiting: Waiter[];
}

export type ClaimRequest = LaneClaim;

export class ClaimCoalescer {
  private readonly claimer: LaneClaimer;
  private readonly maxMerged: number;
  private readonly groups = new Map<string, Group>();
  private readonly onClaim: ((merged: number) => void) | undefined;

  constructor(claimer: LaneClaimer, opts: { maxMerged: number; onClaim?: (merged: number) => void }) {
    this.claimer = claimer;
    this.maxMerged = opts.maxMerged;
    this.onClaim = opts.onClaim;
  }

  claim(r: ClaimRequest): Promise<ClaimedWork[]> {
    // Only claims that would ask the store the same question merge: one tenant, one lane choice,
    // one set of allowed lanes, one lease length.
    const key = JSON.stringify([r.tenant, r.lane === undefined ? '*' : r.lane, r.allowed ?? null, r.leaseMs]);
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { running: false, waiting: [] }));
    const group = g;
    const out = new Promise<ClaimedWork[]>((resolve, reject) => group.waiting.push({ limit: r.limit, resolve, reject }));
    if (!group.running) void this.run(key, group, r);
    return out;
  }

  private async run(key: string, g: Group, r: ClaimRequest): Promise<void> {
    g.running = true;
    while (g.waiting.length > 0) {
      const batch: Waiter[] = [];
      let limit = 0;
      while (g.waiting.length > 0 && (batch.length === 0 || limit + g.waiting[0]!.limit <= this.maxMerged)) {
        const w = g.waiting.shift()!;
        batch.push(w);
        limit += w.limit;
      }
      this.onClaim?.(batch.length);
      try {
        const rows = await this.claimer.claim({ ...r, limit });
        let at = 0;
        for (const w of batch) {
          w.resolve(rows.slice(at, at + w.limit));
          at += w.limit;
        }
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    g.running = false;
    this.groups.delete(key);
  }
}

// Round-robin claims across lanes, so short work is not stuck behind a long queue of long work:
// each claim starts at the next lane and spreads its limit over the lanes that have work.
import type { ClaimedWork, Store } from '../store/store.js';

const LANES_TTL_MS = 500;

export class LaneClaimer {
  private cursor = 0;
  private lanes: (string | null)[] = [];
  private lanesAt = 0;
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  async claim(o: { limit: number; leaseMs: number; leaseToken: string; lane?: string | null }): Promise<ClaimedWork[]> {
    if (o.lane !== undefined) return this.store.claimWork({ lane: o.lane, limit: o.limit, leaseMs: o.leaseMs, leaseToken: o.leaseToken });
    if (performance.now() - this.lanesAt > LANES_TTL_MS) {
      this.lanes = await this.store.claimableLanes();
      this.lanesAt = performance.now();
    }
    const lanes = this.lanes;
    if (lanes.length === 0) return [];
    const start = this.cursor++ % lanes.length;
    const order = [...lanes.slice(start), ...lanes.slice(0, start)];
    const out: ClaimedWork[] = [];
    for (let i = 0; i < order.length && out.length < o.limit; i++) {
      const share = Math.ceil((o.limit - out.length) / (order.length - i));
      out.push(...(await this.store.claimWork({ lane: order[i]!, limit: share, leaseMs: o.leaseMs, leaseToken: o.leaseToken })));
    }
    if (out.length === 0) this.lanesAt = 0; // the cached lanes ran dry: look again next time
    return out;
  }
}

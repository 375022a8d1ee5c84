// Round-robin claims across lanes, so short work is not stuck behind a long queue of long work:
// each claim starts at the next lane and spreads its limit over the lanes that have work.
import type { ClaimedWork, Store } from '../store/store.js';

const LANES_TTL_MS = 500;

export class LaneClaimer {
  private cursor = 0;
  private lanes: (string | null)[] = [];
  private lanesAt = 0;
  /** The refresh in flight: concurrent claims share it instead of each asking the database. */
  private refreshing: Promise<(string | null)[]> | null = null;
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  async claim(o: { limit: number; leaseMs: number; lane?: string | null }): Promise<ClaimedWork[]> {
    if (o.lane !== undefined) return this.store.claimWork({ lane: o.lane, limit: o.limit, leaseMs: o.leaseMs });
    const lanes = await this.currentLanes();
    if (lanes.length === 0) return [];
    const start = this.cursor++ % lanes.length;
    const order = [...lanes.slice(start), ...lanes.slice(0, start)];
    const out: ClaimedWork[] = [];
    for (let i = 0; i < order.length && out.length < o.limit; i++) {
      const share = Math.ceil((o.limit - out.length) / (order.length - i));
      out.push(...(await this.store.claimWork({ lane: order[i]!, limit: share, leaseMs: o.leaseMs })));
    }
    if (out.length === 0) this.lanesAt = 0; // the cached lanes ran dry: look again next time
    return out;
  }

  private currentLanes(): Promise<(string | null)[]> | (string | null)[] {
    if (performance.now() - this.lanesAt <= LANES_TTL_MS) return this.lanes;
    this.refreshing ??= this.store
      .claimableLanes()
      .then((lanes) => {
        this.lanes = lanes;
        this.lanesAt = performance.now();
        return lanes;
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }
}

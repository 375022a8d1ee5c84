// Round-robin claims across a tenant's lanes, so short work is not stuck behind a long queue of
// long work: each claim starts at the next lane and spreads its limit over the lanes that have
// work. A process key limited to some lanes only ever claims from those.
import type { ClaimedWork, Store } from '../store/store.js';

const LANES_TTL_MS = 500;

interface TenantLanes {
  lanes: (string | null)[];
  at: number;
  /** The refresh in flight: concurrent claims share it instead of each asking the database. */
  refreshing: Promise<(string | null)[]> | null;
}

export interface LaneClaim {
  tenant: string;
  limit: number;
  leaseMs: number;
  /** A lane, null for the unnamed lane, undefined for round-robin across lanes. */
  lane?: string | null;
  /** Lanes the caller may claim from (round-robin is limited to them); null for all. */
  allowed?: readonly string[] | null;
}

export class LaneClaimer {
  private cursor = 0;
  private readonly tenants = new Map<string, TenantLanes>();
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  async claim(o: LaneClaim): Promise<ClaimedWork[]> {
    const base = { tenant: o.tenant, leaseMs: o.leaseMs };
    if (o.lane !== undefined) return this.store.claimWork({ ...base, lane: o.lane, limit: o.limit });
    const allowed = o.allowed ?? null;
    const lanes = (await this.currentLanes(o.tenant)).filter((l) => allowed === null || (l !== null && allowed.includes(l)));
    if (lanes.length === 0) {
      // An empty queue is not cached: work inserted now (a waiting client's request goes straight
      // to the database) must be claimable by the next claim, not half a second later.
      this.tenants.get(o.tenant)!.at = 0;
      return [];
    }
    const start = this.cursor++ % lanes.length;
    const order = [...lanes.slice(start), ...lanes.slice(0, start)];
    const out: ClaimedWork[] = [];
    for (let i = 0; i < order.length && out.length < o.limit; i++) {
      const share = Math.ceil((o.limit - out.length) / (order.length - i));
      out.push(...(await this.store.claimWork({ ...base, lane: order[i]!, limit: share })));
    }
    if (out.length === 0) this.tenants.get(o.tenant)!.at = 0; // the cached lanes ran dry: look again next time
    return out;
  }

  private currentLanes(tenant: string): Promise<(string | null)[]> | (string | null)[] {
    let t = this.tenants.get(tenant);
    if (!t) this.tenants.set(tenant, (t = { lanes: [], at: 0, refreshing: null }));
    if (performance.now() - t.at <= LANES_TTL_MS) return t.lanes;
    const entry = t;
    entry.refreshing ??= this.store
      .claimableLanes(tenant)
      .then((lanes) => {
        entry.lanes = lanes;
        entry.at = performance.now();
        return lanes;
      })
      .finally(() => {
        entry.refreshing = null;
      });
    return entry.refreshing;
  }
}

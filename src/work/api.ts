// The work API role: the processing API's state for one store (the lane cursor, claims that
// are merged, completes and releases that are group-committed). Made when a node enters save
// mode, closed when it leaves. Routes call it; it calls the store.
import type { WorkRole } from '../http/context.js';
import type { Metrics } from '../metrics.js';
import type { ClaimedWork, CompleteItem, LeaseItem, LeaseOutcome, Store } from '../store/store.js';
import { ClaimCoalescer, type ClaimRequest } from './claims.js';
import { GroupCommitter } from './committer.js';
import { LaneClaimer } from './lanes.js';

/** Items one store call completes or releases at most. */
const MAX_BATCH = 1000;

export class WorkApi implements WorkRole {
  private readonly store: Store;
  private readonly claims: ClaimCoalescer;
  private readonly completes: GroupCommitter<CompleteItem>;
  private readonly releases: GroupCommitter<LeaseItem>;
  private readonly metrics: Metrics;
  private readonly onCompleted: ((ids: string[]) => void) | undefined;

  /** onCompleted: called with the ids of every committed completion (clients may wait for them). */
  constructor(store: Store, metrics: Metrics, opts: { onCompleted?: (ids: string[]) => void } = {}) {
    this.store = store;
    this.metrics = metrics;
    this.onCompleted = opts.onCompleted;
    // SQLite has one writer (its thread already batches whatever waits); PostgreSQL writes
    // batches side by side on its pool while leaving connections for claims and the drain.
    const maxInFlight = store.engine === 'postgres' ? 3 : 1;
    this.claims = new ClaimCoalescer(new LaneClaimer(store), { maxMerged: MAX_BATCH, onClaim: (n) => metrics.workBatch.observe({ op: 'claim' }, n) });
    this.completes = new GroupCommitter<CompleteItem>({
      write: (items) => store.completeWork(items),
      maxBatch: MAX_BATCH,
      maxInFlight,
      onBatch: (n) => metrics.workBatch.observe({ op: 'complete' }, n),
    });
    this.releases = new GroupCommitter<LeaseItem>({
      write: (items) => store.releaseWork(items),
      maxBatch: MAX_BATCH,
      maxInFlight,
      onBatch: (n) => metrics.workBatch.observe({ op: 'release' }, n),
    });
  }

  async claim(r: ClaimRequest): Promise<ClaimedWork[]> {
    const items = await this.claims.claim(r);
    this.metrics.workItems.inc({ op: 'claim', outcome: 'ok' }, items.length);
    return items;
  }

  async complete(items: CompleteItem[]): Promise<LeaseOutcome[]> {
    const outcomes = this.count('complete', await this.completes.submitMany(items));
    // After the commit: a waiting client on this node is answered without a database round trip
    // (on PostgreSQL, other nodes hear of it through NOTIFY, src/store/postgres/completions.ts).
    if (this.onCompleted) {
      const done = items.filter((_, i) => outcomes[i] === 'ok').map((it) => it.id);
      if (done.length > 0) this.onCompleted(done);
    }
    return outcomes;
  }

  async release(items: LeaseItem[]): Promise<LeaseOutcome[]> {
    return this.count('release', await this.releases.submitMany(items));
  }

  extend(item: LeaseItem, leaseMs: number): Promise<LeaseOutcome> {
    return this.store.extendWork(item, leaseMs);
  }

  private count(op: string, outcomes: LeaseOutcome[]): LeaseOutcome[] {
    for (const o of outcomes) this.metrics.workItems.inc({ op, outcome: o });
    return outcomes;
  }
}

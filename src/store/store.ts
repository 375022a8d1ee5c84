// The Store: the one interface both database engines implement. Upper parts (drain, intake,
// work, callbacks) use only this, never an engine directly.
import type { CallbackEntryRecord, CallbackOutcomeRecord, CancelRecord, RequestRecord } from '../spool/records.js';

/** scheduled: not_before was in the future when it was stored; the due-request duty makes it pending. */
export type RequestStatus = 'scheduled' | 'pending' | 'claimed' | 'completed' | 'cancelled';

/** cancelled (now or before); conflict: claimed or completed already; not-found: no such request of this tenant. */
export type CancelOutcome = 'cancelled' | 'conflict' | 'not-found';

export interface StoredRequest {
  id: string;
  tenant: string;
  idempotencyKey: string | null;
  receivedAt: number;
  storedAt: number;
  node: string;
  callbackUrl: string;
  lane: string | null;
  notBefore: number | null;
  payload: string;
  metadata: string | null;
  status: RequestStatus;
  attempts: number;
  result: string | null;
  completedAt: number | null;
}

export interface SchemaState {
  /** Highest migration applied to the database (0 for an empty database). */
  current: number;
  /** Highest migration this build knows. */
  latest: number;
  /** Oldest schema this build can run save mode against (expand/contract: latest - 1). */
  minSupported: number;
}

export interface ClaimedWork {
  id: string;
  tenant: string;
  leaseToken: string;
  leaseExpiresAt: number;
  /** How many times this request has been claimed, this claim included. */
  attempts: number;
  lane: string | null;
  receivedAt: number;
  callbackUrl: string;
  payload: string;
  metadata: string | null;
}

/** A claimed request and the lease it is held under. */
export interface LeaseItem {
  id: string;
  leaseToken: string;
  /** The caller's tenant: a request of another tenant is not found. */
  tenant: string;
}

/** A completion: the result (JSON text) and the callback the outbox will send for it. */
export interface CompleteItem extends LeaseItem {
  result: string;
  callback: { id: string; body: string };
}

/** ok; not-found: no such request; conflict: not claimed under this token (stale, expired, done). */
export type LeaseOutcome = 'ok' | 'not-found' | 'conflict';

/** A callback to send: the outbox row's part of a failed-callback spool entry. */
export type CallbackToSend = Pick<CallbackEntryRecord, 'id' | 'requestId' | 'tenant' | 'url' | 'body' | 'attempts'>;

export type CallbackStatus = 'pending' | 'sending' | 'delivered' | 'parked' | 'dead' | 'gone';

export interface CallbackState {
  id: string;
  status: CallbackStatus;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  updatedAt: number;
}

/**
 * A spool segment the drainer has finished with (schema v6): its row in drained_segments is
 * written after the segment's rows are committed and before the file is deleted.
 */
export interface DrainedSegment {
  node: string;
  segment: string;
  /** Intact request records in the segment. */
  requests: number;
  /** Of those, records the database refused (quarantined db-refused). */
  refused: number;
  /** Of those, records whose id is stored with another body (quarantined idempotency-conflict). */
  conflicts: number;
  drainedBy: string;
  /** How long ago it was drained, by the database's clock (PostgreSQL) or this host's (SQLite); read by books() only. */
  ageMs?: number;
}

/** What the database holds for `intake verify` (docs/operations.md, "intake verify"). */
/** A node's oldest drained segments, folded into sums (schema v7, books_checkpoints). */
export interface BooksCheckpoint {
  node: string;
  /** Bytes of nodes/<node>/segments.log the checkpoint accounts for: the books read on from here. */
  logOffset: number;
  segments: number;
  requests: number;
  refused: number;
  conflicts: number;
}

/** Fold `segments` (listed in the node's log between the offsets) into the node's checkpoint. */
export interface FoldRequest {
  node: string;
  /** The checkpoint's log offset now (0: none yet); the fold is refused if it moved. */
  fromOffset: number;
  toOffset: number;
  /** The drained segments to fold: every one must still have its drained_segments row. */
  segments: string[];
}

export interface StoreBooks {
  /** COUNT(*) of requests. */
  rows: number;
  /** Rows ever inserted (counted in each insert's own transaction; a baseline at migration 6). */
  rowsInserted: number;
  /** Every drained segment not folded into a checkpoint yet. */
  segments: DrainedSegment[];
  /** Per node, the drained segments folded so far (schema v7; none before). */
  checkpoints: BooksCheckpoint[];
  /** Requests whose status is completed. */
  completed: number;
  /** Callbacks (one per completion) by status. */
  callbacks: Record<CallbackStatus, number>;
}

/** The backlog, for gauges: counts of the unfinished states only, which indexes keep cheap. */
export interface StoreBacklog {
  requests: { pending: number; scheduled: number; claimed: number };
  callbacks: { pending: number; sending: number; parked: number; dead: number };
}

/** What became of a callback: the same record a receive-mode node writes to the spool. */
export type CallbackOutcome = CallbackOutcomeRecord;

export interface Store {
  readonly engine: 'sqlite' | 'postgres';
  /** Apply pending migrations under the engine's lock. Returns the versions applied. */
  migrate(opts?: { dryRun?: boolean }): Promise<number[]>;
  schema(): Promise<SchemaState>;
  /** Insert each record unless its id is present. Returns how many were new. */
  insertRequests(records: RequestRecord[]): Promise<number>;
  getRequest(id: string): Promise<StoredRequest | null>;
  countRequests(): Promise<number>;

  // Processing API (schema v2). Claims are safe with many concurrent workers on both engines.
  // Completes and releases take batches: the work API group-commits what arrives together.
  /** The tenant's lanes that have claimable work (pending, or claimed with an expired lease), for round-robin claims. */
  claimableLanes(tenant: string): Promise<(string | null)[]>;
  /** Lease up to `limit` claimable requests of the tenant's `lane` (expired leases count), each under its own fresh lease token. */
  claimWork(o: { tenant: string; lane: string | null; limit: number; leaseMs: number }): Promise<ClaimedWork[]>;
  /**
   * Complete claimed requests, each with its callback in the outbox, in one transaction; one
   * outcome per item, in order. Items must have distinct ids.
   */
  completeWork(items: CompleteItem[]): Promise<LeaseOutcome[]>;
  /** Return claimed requests to the queue; one outcome per item, in order. Items must have distinct ids. */
  releaseWork(items: LeaseItem[]): Promise<LeaseOutcome[]>;
  extendWork(item: LeaseItem, leaseMs: number): Promise<LeaseOutcome>;

  // Callback outbox.
  /** Lease due pending callbacks for sending (a sender that dies releases them when the lease ends). */
  claimCallbacks(o: { limit: number; leaseMs: number }): Promise<CallbackToSend[]>;
  /** Record what became of a callback (delivered, parked in the failed-callback spool, dead, gone). */
  recordCallbackOutcomes(outcomes: CallbackOutcome[]): Promise<void>;
  getCallback(requestId: string): Promise<CallbackState | null>;

  // Delayed requests and cancels (schema v5).
  /** Cancel the tenant's request if no processor has claimed it (pending or scheduled). */
  cancelRequest(id: string, tenant: string): Promise<CancelOutcome>;
  /**
   * Apply cancels from the spool (or of requests not in the database yet): a pending or
   * scheduled request of the cancel's tenant becomes cancelled; an id not stored yet gets a
   * tombstone, and its request is stored cancelled when it arrives. Returns how many requests
   * were cancelled now.
   */
  applyCancels(cancels: CancelRecord[]): Promise<number>;
  /** Make up to `limit` scheduled requests whose not_before has come pending. Returns how many. */
  releaseDueRequests(limit: number): Promise<number>;

  // The books (schema v6).
  /** Note a drained segment; insert-if-absent on (node, segment), so a re-drain changes nothing. */
  recordDrainedSegment(s: DrainedSegment): Promise<void>;
  /** Everything `intake verify` needs from the database (full counts: a CLI's query, not a scrape's). */
  books(): Promise<StoreBooks>;
  /** The unfinished states only (index range scans), for the gauges a node refreshes every few seconds. */
  backlog(): Promise<StoreBacklog>;
  /**
   * Fold the insert counts into one (PostgreSQL appends one requests_inserted row per insert, so
   * concurrent drains never wait on one counter row; SQLite has one row already). The sum stays.
   * Returns how many rows were folded. Run by the books keeper after it takes the books.
   */
  compactCounts(): Promise<number>;
  /** The checkpoints of the books (empty before schema v7): read before the segment logs. */
  booksCheckpoints(): Promise<BooksCheckpoint[]>;
  /**
   * Fold drained segments into their node's checkpoint in one transaction: their sums added,
   * their rows deleted, the log offset moved. False (nothing changed) when the checkpoint's
   * offset is not `fromOffset` or a segment has no row (another fold was first), or before v7.
   */
  foldSegments(f: FoldRequest): Promise<boolean>;

  close(): Promise<void>;
}

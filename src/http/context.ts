// What every route group needs from the node around it. The node owns the roles and their
// lifecycle; routes only ask for the role they serve, which is null when the node's mode does
// not run it. This folder imports no routes: intake/ and work/ both build on it.
import type { Logger } from 'pino';
import type { CallbackCounts } from '../drain/books.js';
import type { Metrics } from '../metrics.js';
import type { SpoolWriter } from '../spool/writer.js';
import type { ClaimedWork, CompleteItem, LeaseItem, LeaseOutcome, Store } from '../store/store.js';

export interface RouteContext {
  nodeId: string;
  log: Logger;
  metrics: Metrics;
  /** The spool writer, or null when this node does not accept requests (save mode). */
  spool(): SpoolWriter | null;
  /** The store, or null when this node does not touch the database (receive mode). */
  store(): Store | null;
  /** The processing API, or null when this node does not serve it (receive mode). */
  work(): WorkRole | null;
  /** Whether the load balancer should send this role's requests here, and if not why. */
  readiness(role: 'ingest' | 'work'): { ready: boolean; reason?: string };
  /** Called for every acknowledged request (the node's idle time drives graceful drain). */
  noteAccepted(): void;
  /** Why a callback address is forbidden (SSRF guard), or null. */
  refuseAddress(host: string): string | null;
  /** Called after requests were completed (their callbacks are in the outbox). */
  noteCompleted(): void;
  /** The cluster as this node sees it (heartbeats, leader), for the admin scope. */
  cluster(): ClusterView;
  /** The cluster's secret for ids derived from idempotency keys (src/intake/ids.ts). */
  idSecret: Buffer;
  /** Clients waiting for completions (`Prefer: wait=N`, `GET ?wait=N`; src/intake/waiters.ts). */
  waits: CompletionWaits;
  /** The longest wait a client may ask for, in seconds (--max-wait-s). */
  maxWaitS: number;
}

/** Waiting for a request to be completed: 'completed', 'timeout' after `ms`, or 'stopping' when the node stops. */
export interface CompletionWaits {
  wait(id: string, ms: number): { done: Promise<'completed' | 'timeout' | 'stopping'>; cancel(): void };
}

/** The processing API role as its routes see it (src/work/api.ts implements it). */
export interface WorkRole {
  /** lane: a lane, null for the unnamed lane, undefined for round-robin across the allowed lanes. */
  claim(r: { tenant: string; limit: number; leaseMs: number; lane?: string | null; allowed?: readonly string[] | null }): Promise<ClaimedWork[]>;
  complete(items: CompleteItem[]): Promise<LeaseOutcome[]>;
  release(items: LeaseItem[]): Promise<LeaseOutcome[]>;
  extend(item: LeaseItem, leaseMs: number): Promise<LeaseOutcome>;
}

/** GET /v1/cluster: every node with a heartbeat, judged live by this node's own clock. */
export interface ClusterView {
  leader: string | null;
  /** The desired-mode generation this node has applied. */
  generation: number;
  nodes: {
    id: string;
    live: boolean;
    leader: boolean;
    mode: string;
    mode_error: string | null;
    version: string;
    ready: boolean;
    drained: boolean;
    backlog_segments: number;
    accepted: number;
    heartbeat_age_ms: number;
    started_at: string;
    url: string;
    /** Totals since the node started and its uptime then (rates: differences over uptime differences); null from older builds. */
    counters: {
      uptime_ms: number;
      accepted: number;
      drained: number;
      completed: number;
      callbacks_delivered: number;
      callbacks_failed: number;
    } | null;
  }[];
  /** The latest books (cluster/books.json, docs/operations.md "The books as metrics"); null before the first. */
  books: BooksView | null;
}

/** The books as GET /v1/cluster shows them: the totals, the callbacks and the first differences. */
export interface BooksView {
  taken_at: string;
  taken_by: string;
  duration_ms: number;
  balanced: boolean;
  difference_count: number;
  differences: string[];
  total: { accepted: number; stored: number; in_spool: number; quarantined: number; damaged: number };
  callbacks: CallbackCounts;
}

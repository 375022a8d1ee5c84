// The Store: the one interface both database engines implement. Upper parts (drain, intake,
// work, callbacks) use only this, never an engine directly.
import type { RequestRecord } from '../spool/records.js';

export type RequestStatus = 'pending' | 'claimed' | 'completed' | 'cancelled';

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
}

export interface SchemaState {
  /** Highest migration applied to the database (0 for an empty database). */
  current: number;
  /** Highest migration this build knows. */
  latest: number;
  /** Oldest schema this build can run save mode against (expand/contract: latest - 1). */
  minSupported: number;
}

export interface Store {
  readonly engine: 'sqlite' | 'postgres';
  /** Apply pending migrations under the engine's lock. Returns the versions applied. */
  migrate(opts?: { dryRun?: boolean }): Promise<number[]>;
  schema(): Promise<SchemaState>;
  /** Insert each record unless its id is present. Returns how many were new. */
  insertRequests(records: RequestRecord[]): Promise<number>;
  getRequest(id: string): Promise<StoredRequest | null>;
  countRequests(): Promise<number>;
  close(): Promise<void>;
}

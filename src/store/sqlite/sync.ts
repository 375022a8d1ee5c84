// The Store's methods as synchronous calls: what the SQLite thread runs (better-sqlite3 is
// synchronous, and a transaction function must not return a promise).
import type { Store } from '../store.js';

type Synchronous<T> = { [K in keyof T]: T[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R : T[K] };

export type SyncStore = Synchronous<Omit<Store, 'engine'>>;

/** Calls that cannot share the batch transaction: they manage their own (migrate) or end the thread (close). */
export const SOLO_OPS: ReadonlySet<keyof SyncStore> = new Set<keyof SyncStore>(['migrate', 'close']);

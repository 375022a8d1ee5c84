// The node's side of the SQLite thread (thread.ts): implements the Store by sending calls to it.
//
// Group commit: calls that arrive while a batch runs wait and go together as the next batch
// (one transaction, one fsync). Two queues keep the processing API responsive while a drain
// loads a big segment: a batch takes every waiting interactive call (claims, completes,
// outcomes, reads) but at most BULK_ROWS_PER_BATCH drain rows, so a claim never waits behind a
// whole segment. Drain inserts go in chunks of INSERT_CHUNK_ROWS so no single message costs the
// event loop more than a millisecond or so to copy.
import { Worker } from 'node:worker_threads';
import { Errors, IntakeError } from '../../errors.js';
import type { RequestRecord } from '../../spool/records.js';
import type { Store } from '../store.js';
import type { Call, Result, ThreadError } from './protocol.js';
import { SOLO_OPS, type SyncStore } from './sync.js';

const INSERT_CHUNK_ROWS = 500;
const BULK_ROWS_PER_BATCH = 1000;
/** Interactive calls per batch: beyond this a transaction holds its savepoints for too long. */
const MAX_CALLS_PER_BATCH = 2000;

interface Pending {
  call: Call;
  rows: number;
  resolve: (v: unknown) => void;
  reject: (err: Error) => void;
}

function fromThreadError(e: ThreadError): Error {
  const err =
    e.name === 'IntakeError' && e.code
      ? new IntakeError(e.code, e.message, e.statusCode ?? 500)
      : Object.assign(new Error(e.message), e.code ? { code: e.code } : {}, { name: e.name });
  if (e.stack) err.stack = e.stack;
  return err;
}

export class SqliteThreadStore {
  readonly engine = 'sqlite' as const;
  private readonly path: string;
  private worker: Worker | null = null;
  private readonly interactive: Pending[] = [];
  private readonly bulk: Pending[] = [];
  private inFlight: Map<number, Pending> | null = null;
  private n = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Every call not answered yet, so close() can wait for them. */
  private readonly outstanding = new Set<Promise<unknown>>();

  constructor(path: string) {
    this.path = path;
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./thread.js', import.meta.url), { workerData: { path: this.path } });
    w.on('message', (results: Result[]) => this.settle(results));
    // A thread that dies (out of memory, a bug) fails only the batch it held; the next call starts a new one.
    const died = (err: Error) => {
      if (this.worker !== w) return;
      this.worker = null;
      const batch = this.inFlight;
      this.inFlight = null;
      for (const p of batch?.values() ?? []) p.reject(Errors.storeUnavailable(`the SQLite thread stopped: ${err.message}`, { cause: err }));
      this.flush();
    };
    w.on('error', died);
    w.on('exit', (code) => died(new Error(`exit code ${code}`)));
    return w;
  }

  private call<T>(op: keyof SyncStore, args: unknown[], rows = 0): Promise<T> {
    if (this.closed) return Promise.reject(Errors.storeUnavailable('the store is closed'));
    const promise = new Promise<T>((resolve, reject) => {
      const p: Pending = { call: { n: ++this.n, op, args }, rows, resolve: resolve as (v: unknown) => void, reject };
      (rows > 0 ? this.bulk : this.interactive).push(p);
      this.flush();
    });
    this.outstanding.add(promise);
    const done = () => this.outstanding.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /** Send the next batch unless one is running. */
  private flush(): void {
    if (this.inFlight || (this.interactive.length === 0 && this.bulk.length === 0)) return;
    const batch: Pending[] = [];
    const first = this.interactive[0] ?? this.bulk[0]!;
    if (SOLO_OPS.has(first.call.op)) {
      batch.push(first);
      (this.interactive[0] === first ? this.interactive : this.bulk).shift();
    } else {
      while (this.interactive.length > 0 && batch.length < MAX_CALLS_PER_BATCH && !SOLO_OPS.has(this.interactive[0]!.call.op)) {
        batch.push(this.interactive.shift()!);
      }
      let rows = 0;
      while (this.bulk.length > 0 && (rows === 0 || rows + this.bulk[0]!.rows <= BULK_ROWS_PER_BATCH)) {
        rows += this.bulk[0]!.rows;
        batch.push(this.bulk.shift()!);
      }
    }
    this.worker ??= this.spawn();
    this.worker.ref(); // a call in flight keeps the process alive (a CLI awaiting migrate)
    this.inFlight = new Map(batch.map((p) => [p.call.n, p]));
    this.worker.postMessage(batch.map((p) => p.call));
  }

  private settle(results: Result[]): void {
    const batch = this.inFlight;
    this.inFlight = null;
    for (const r of results) {
      const p = batch?.get(r.n);
      if (!p) continue;
      if (r.ok) p.resolve(r.value);
      else p.reject(fromThreadError(r.error));
    }
    if (this.interactive.length === 0 && this.bulk.length === 0) this.worker?.unref();
    this.flush();
  }

  migrate(opts?: { dryRun?: boolean }): Promise<number[]> {
    return this.call('migrate', [opts ?? {}]);
  }
  schema() {
    return this.call<Awaited<ReturnType<Store['schema']>>>('schema', []);
  }
  async insertRequests(records: RequestRecord[]): Promise<number> {
    const parts: Promise<number>[] = [];
    for (let i = 0; i < records.length; i += INSERT_CHUNK_ROWS) {
      const chunk = records.slice(i, i + INSERT_CHUNK_ROWS);
      parts.push(this.call<number>('insertRequests', [chunk], chunk.length));
    }
    return (await Promise.all(parts)).reduce((a, b) => a + b, 0);
  }
  getRequest(id: string) {
    return this.call<Awaited<ReturnType<Store['getRequest']>>>('getRequest', [id]);
  }
  countRequests() {
    return this.call<number>('countRequests', []);
  }
  claimableLanes(tenant: string) {
    return this.call<(string | null)[]>('claimableLanes', [tenant]);
  }
  claimWork(o: Parameters<Store['claimWork']>[0]) {
    return this.call<Awaited<ReturnType<Store['claimWork']>>>('claimWork', [o]);
  }
  completeWork(items: Parameters<Store['completeWork']>[0]) {
    return this.call<Awaited<ReturnType<Store['completeWork']>>>('completeWork', [items]);
  }
  releaseWork(items: Parameters<Store['releaseWork']>[0]) {
    return this.call<Awaited<ReturnType<Store['releaseWork']>>>('releaseWork', [items]);
  }
  extendWork(item: Parameters<Store['extendWork']>[0], leaseMs: number) {
    return this.call<Awaited<ReturnType<Store['extendWork']>>>('extendWork', [item, leaseMs]);
  }
  claimCallbacks(o: Parameters<Store['claimCallbacks']>[0]) {
    return this.call<Awaited<ReturnType<Store['claimCallbacks']>>>('claimCallbacks', [o]);
  }
  recordCallbackOutcomes(outcomes: Parameters<Store['recordCallbackOutcomes']>[0]) {
    return this.call<void>('recordCallbackOutcomes', [outcomes]);
  }
  cancelRequest(id: string, tenant: string) {
    return this.call<Awaited<ReturnType<Store['cancelRequest']>>>('cancelRequest', [id, tenant]);
  }
  applyCancels(cancels: Parameters<Store['applyCancels']>[0]) {
    return this.call<number>('applyCancels', [cancels]);
  }
  releaseDueRequests(limit: number) {
    return this.call<number>('releaseDueRequests', [limit]);
  }
  recordDrainedSegment(s: Parameters<Store['recordDrainedSegment']>[0]) {
    return this.call<void>('recordDrainedSegment', [s]);
  }
  books() {
    return this.call<Awaited<ReturnType<Store['books']>>>('books', []);
  }
  backlog() {
    return this.call<Awaited<ReturnType<Store['backlog']>>>('backlog', []);
  }
  compactCounts() {
    return this.call<number>('compactCounts', []);
  }
  booksCheckpoints() {
    return this.call<Awaited<ReturnType<Store['booksCheckpoints']>>>('booksCheckpoints', []);
  }
  foldSegments(f: Parameters<Store['foldSegments']>[0]) {
    return this.call<boolean>('foldSegments', [f]);
  }
  getCallback(requestId: string) {
    return this.call<Awaited<ReturnType<Store['getCallback']>>>('getCallback', [requestId]);
  }

  /** Waits for every queued call, closes the database, ends the thread. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.outstanding]);
      const closing = this.call<void>('close', []);
      this.closed = true;
      try {
        await closing;
      } finally {
        await this.worker?.terminate();
        this.worker = null;
      }
    })();
    return this.closing;
  }
}

/** The SQLite store of a node: the engine in its own thread. */
export function openSqliteStore(path: string): Store {
  return new SqliteThreadStore(path);
}

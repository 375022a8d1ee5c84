// The SQLite thread: the node's one writer connection lives here, so no synchronous database
// call (and no fsync of a commit) ever runs on the event loop that serves HTTP.
//
// Group commit: the client sends every call that arrived while the previous batch ran as one
// message, and the whole batch runs in one transaction (one WAL fsync with synchronous=FULL).
// Each call runs in its own savepoint, so one failing call (a constraint, a bad value) is rolled
// back alone and answered with its error while the others commit. If the commit itself fails,
// every call of the batch is answered with that error: nothing of it is reported as done.
import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteEngine, type SqliteEngine } from './engine.js';
import { toThreadError, type Call, type Result } from './protocol.js';
import { SOLO_OPS } from './sync.js';

const port = parentPort;
if (!port) throw new Error('thread.ts runs as a worker thread');

let engine: SqliteEngine | null = null;
let openError: unknown = null;
try {
  engine = openSqliteEngine((workerData as { path: string }).path);
} catch (err) {
  openError = err;
}

function runOne(e: SqliteEngine, c: Call): unknown {
  const fn = e.store[c.op] as (...args: unknown[]) => unknown;
  return fn(...c.args);
}

function runBatch(calls: Call[]): Result[] {
  if (!engine) return calls.map((c) => ({ n: c.n, ok: false, error: toThreadError(openError) }));
  const e = engine;
  if (calls.length === 1 && SOLO_OPS.has(calls[0]!.op)) {
    const c = calls[0]!;
    try {
      return [{ n: c.n, ok: true, value: runOne(e, c) }];
    } catch (err) {
      return [{ n: c.n, ok: false, error: toThreadError(err) }];
    }
  }
  try {
    return e.transaction(() =>
      calls.map((c): Result => {
        try {
          return { n: c.n, ok: true, value: e.transaction(() => runOne(e, c)) };
        } catch (err) {
          return { n: c.n, ok: false, error: toThreadError(err) };
        }
      }),
    );
  } catch (err) {
    const error = toThreadError(err);
    return calls.map((c) => ({ n: c.n, ok: false, error }));
  }
}

port.on('message', (calls: Call[]) => {
  port.postMessage(runBatch(calls));
});

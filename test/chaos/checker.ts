// The zero-loss checker, and the crash scenario that feeds it. Engine-neutral: the rows come in
// as a plain array, so the same check runs on SQLite now and on PostgreSQL later (give the
// scenario a `postgres://` URL and a row reader that runs `SELECT id, idempotency_key FROM requests`).
//
// The check works on Idempotency-Keys, not ids: a request that never got an answer (the node died
// under it) has no id the client could know, but its key is in the row the drain wrote.
//   lost        = keys that got a 202 and have no row
//   duplicated  = keys in more than one row, or ids in more than one row
//   unexpected  = rows whose key the client never sent (or that carry no key at all)
//   mismatched  = keys whose row id differs from the id the 202 answered (when ids are given)
import assert from 'node:assert/strict';
import type { Books } from '../../src/drain/books.js';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { post, sleep, waitFor } from '../helpers/http.js';
import { booksFigures, booksMetrics, booksTakeBegan, scrape } from '../helpers/metrics.js';

/** What the checker needs of a stored row (column names as in the `requests` table). */
export interface KeyedRow {
  id: string;
  idempotency_key: string | null;
}

export type RowReader = () => Promise<KeyedRow[]>;

export interface CheckInput {
  /** Keys that got a 202, with the id the answer carried (or just the keys). */
  acked: ReadonlyMap<string, string> | Iterable<string>;
  /** Every key the client ever sent, answered or not. */
  sent: Iterable<string>;
  rows: readonly KeyedRow[];
}

export interface CheckReport {
  sent: number;
  acked: number;
  /** Rows in the database. */
  stored: number;
  /** Rows of keys that were sent but never acknowledged (allowed: the answer was lost in a crash). */
  storedUnacked: number;
  lost: string[];
  duplicated: string[];
  unexpected: string[];
  mismatched: string[];
}

export function checkDelivery(input: CheckInput): CheckReport {
  const sent = new Set(input.sent);
  const ackedIds = input.acked instanceof Map ? (input.acked as ReadonlyMap<string, string>) : null;
  const acked = new Set(ackedIds ? ackedIds.keys() : (input.acked as Iterable<string>));
  const byKey = new Map<string, string[]>();
  const byId = new Map<string, number>();
  const unexpected: string[] = [];
  for (const row of input.rows) {
    byId.set(row.id, (byId.get(row.id) ?? 0) + 1);
    const key = row.idempotency_key;
    if (key === null || !sent.has(key)) {
      unexpected.push(`row ${row.id} with key ${JSON.stringify(key)}`);
      continue;
    }
    const ids = byKey.get(key);
    if (ids) ids.push(row.id);
    else byKey.set(key, [row.id]);
  }
  const duplicated: string[] = [];
  for (const [key, ids] of byKey) if (ids.length > 1) duplicated.push(`key ${key} in ${ids.length} rows (${ids.join(', ')})`);
  for (const [id, n] of byId) if (n > 1) duplicated.push(`id ${id} in ${n} rows`);
  const lost: string[] = [];
  const mismatched: string[] = [];
  for (const key of acked) {
    const ids = byKey.get(key);
    if (!ids) {
      lost.push(key);
      continue;
    }
    const want = ackedIds?.get(key);
    if (want !== undefined && !ids.includes(want)) mismatched.push(`key ${key}: acked as ${want}, stored as ${ids.join(', ')}`);
  }
  let storedUnacked = 0;
  for (const key of byKey.keys()) if (!acked.has(key)) storedUnacked++;
  // Acked keys that were never "sent" would be a bug in the caller's bookkeeping, not in intake.
  for (const key of acked) assert.ok(sent.has(key), `checker input: acked key ${key} is not in the sent set`);
  return { sent: sent.size, acked: acked.size, stored: input.rows.length, storedUnacked, lost, duplicated, unexpected, mismatched };
}

export function formatReport(r: CheckReport): string {
  return (
    `sent=${r.sent} acked=${r.acked} stored=${r.stored} stored-unacked=${r.storedUnacked} ` +
    `lost=${r.lost.length} duplicated=${r.duplicated.length} unexpected=${r.unexpected.length} mismatched=${r.mismatched.length}`
  );
}

/** Fail with the first few offenders of each kind named. */
export function assertNoLossNoDuplicate(r: CheckReport): void {
  const first = (xs: string[]) => xs.slice(0, 10).join('; ') + (xs.length > 10 ? `; ... (${xs.length} in all)` : '');
  assert.equal(r.lost.length, 0, `acknowledged requests missing from the database: ${first(r.lost)}`);
  assert.equal(r.duplicated.length, 0, `requests stored more than once: ${first(r.duplicated)}`);
  assert.equal(r.unexpected.length, 0, `rows that were never sent: ${first(r.unexpected)}`);
  assert.equal(r.mismatched.length, 0, `rows whose id is not the acknowledged one: ${first(r.mismatched)}`);
}

/** Every row's id and key, read from an SQLite database file (opened read-only). */
export function readSqliteRows(path: string): KeyedRow[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT id, idempotency_key FROM requests').all() as KeyedRow[];
  } finally {
    db.close();
  }
}

/** A database for the crash scenario: the URL the daemon gets, and how the checker reads it back. */
export interface DbTarget {
  url: string;
  readRows: RowReader;
}

export function sqliteTarget(path: string): DbTarget {
  return { url: `sqlite:${path}`, readRows: async () => readSqliteRows(path) };
}

/** .seg and .open files under the spool root, as "<node>/<file>". */
export function segmentFiles(spool: string): string[] {
  const nodes = join(spool, 'nodes');
  let names: string[];
  try {
    names = readdirSync(nodes);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    if (n.endsWith('.lock')) continue;
    let files: string[];
    try {
      files = readdirSync(join(nodes, n));
    } catch {
      continue;
    }
    for (const f of files) if (f.endsWith('.seg') || f.endsWith('.open')) out.push(`${n}/${f}`);
  }
  return out.sort();
}

/** A small seeded PRNG (mulberry32), so a run's kill times can be logged and replayed roughly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A client that behaves like a well-made one: every request carries its own Idempotency-Key, and
 * a key is retried on a connection error or a 5xx until it gets a 202. Keys whose round ended
 * before a 202 stay queued and are retried first in the next round (against the restarted node).
 */
export class RetryingClient {
  readonly sent = new Set<string>();
  /** key -> id from the 202 */
  readonly acked = new Map<string, string>();
  /** Answers that a correct node never gives to these requests (4xx, 2xx other than 202, bad bodies). */
  readonly wrongAnswers: string[] = [];
  /** Answer counts by status ("conn" for a connection error or timeout). */
  readonly answers = new Map<string, number>();
  private retry: string[] = [];
  private next = 0;
  private inFlight = new Set<string>();
  private readonly prefix: string;

  constructor(prefix = `k${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`) {
    this.prefix = prefix;
  }

  /** Keys sent but not acknowledged yet (queued for retry or in flight). */
  get unacked(): number {
    return this.retry.length + this.inFlight.size;
  }

  /**
   * Send with `concurrency` requests in flight until stop() is called (or, with newKeys false,
   * until every queued key is acked). Returns stop() and a promise that settles when all workers
   * are done, every key either acked or back in the retry queue.
   */
  run(url: string, opts: { concurrency: number; newKeys: boolean; timeoutMs?: number }): { stop(): void; done: Promise<void> } {
    let stopped = false;
    const worker = async () => {
      while (!stopped) {
        let key = this.retry.shift();
        if (key === undefined) {
          if (!opts.newKeys) {
            if (this.inFlight.size === 0) return; // nothing left anywhere
            await sleep(10); // another worker's key may come back for a retry
            continue;
          }
          key = `${this.prefix}-${this.next++}`;
        }
        this.inFlight.add(key);
        this.sent.add(key);
        let ok = false;
        try {
          ok = await this.sendOnce(url, key, opts.timeoutMs ?? 5000);
        } finally {
          this.inFlight.delete(key);
          if (!ok) this.retry.push(key);
        }
        if (!ok) await sleep(10 + Math.random() * 20);
      }
    };
    const done = Promise.all(Array.from({ length: opts.concurrency }, worker)).then(() => undefined);
    return { stop: () => (stopped = true), done };
  }

  private count(what: string): void {
    this.answers.set(what, (this.answers.get(what) ?? 0) + 1);
  }

  /** True when the key is acked. */
  private async sendOnce(url: string, key: string, timeoutMs: number): Promise<boolean> {
    let status: number;
    let body: any;
    try {
      const a = await post(
        `${url}/v1/requests`,
        { payload: { key, note: 'chaos' }, callback_url: 'https://example.com/hook', metadata: { test: 'crash' } },
        { 'idempotency-key': key },
        timeoutMs,
      );
      status = a.status;
      body = a.body;
    } catch {
      this.count('conn');
      return false;
    }
    this.count(String(status));
    if (status === 202) {
      if (typeof body?.id !== 'string') {
        this.wrongAnswers.push(`202 without an id for ${key}: ${JSON.stringify(body)}`);
        return false;
      }
      const before = this.acked.get(key);
      if (before !== undefined && before !== body.id) this.wrongAnswers.push(`key ${key} acked as ${before} and later as ${body.id}`);
      this.acked.set(key, body.id);
      return true;
    }
    if (status >= 500) return false;
    this.wrongAnswers.push(`${status} for ${key}: ${JSON.stringify(body)}`);
    return true; // a 4xx will not change on retry; the key is given up (and the test fails)
  }
}

export interface CrashScenarioOptions {
  target: DbTarget;
  spool: string;
  nodeId?: string;
  rounds?: number;
  concurrency?: number;
  /** The kill comes this long after the node is up: uniformly in [killMinMs, killMaxMs]. */
  killMinMs?: number;
  killMaxMs?: number;
  seed?: number;
  /** Extra `intake start` arguments. */
  daemonArgs?: string[];
  /** Time allowed for the final node to take every retry and drain everything. */
  settleTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface CrashScenarioResult {
  rounds: number;
  seed: number;
  report: CheckReport;
  client: RetryingClient;
  /** Spool segment files left after the final drain (should be none). */
  leftover: string[];
  finalExitCode: number | null;
  /** Kill times (ms after the node was up) of each round. */
  killsAtMs: number[];
  elapsedMs: number;
  /** The final node's intake_books_* metrics, taken after the final drain. */
  booksFromMetrics: ReturnType<typeof booksMetrics>;
}

/**
 * The crash scenario: a node in mode both takes a stream of requests from a RetryingClient and is
 * killed with SIGKILL at a random moment of every round, then restarted with the same node id
 * and spool. After the last round a node that is left alone takes every retry, drains the
 * spool, and the checker compares what the client was told with what the database holds.
 */
export async function runCrashScenario(o: CrashScenarioOptions): Promise<CrashScenarioResult> {
  const t0 = Date.now();
  const rounds = o.rounds ?? 25;
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rand = prng(seed);
  const nodeId = o.nodeId ?? `crash-${process.pid}`;
  const killMin = o.killMinMs ?? 50;
  const killMax = o.killMaxMs ?? 400;
  const log = o.log ?? (() => undefined);
  const args = o.daemonArgs ?? ['--seal-after-ms', '200', '--lock-stale-ms', '2000', '--scan-interval-ms', '100'];
  const client = new RetryingClient();
  const killsAtMs: number[] = [];
  const start = () => startDaemon({ spool: o.spool, db: o.target.url, mode: 'both', nodeId, args });

  for (let r = 0; r < rounds; r++) {
    const d = await start();
    const killAt = Math.round(killMin + rand() * (killMax - killMin));
    killsAtMs.push(killAt);
    const ackedBefore = client.acked.size;
    const run = client.run(d.url, { concurrency: o.concurrency ?? 16, newKeys: true });
    await sleep(killAt);
    assert.equal(d.proc.exitCode, null, `round ${r}: the node exited by itself before the kill:\n${d.output().slice(-4000)}`);
    await d.kill('SIGKILL');
    assert.equal(d.proc.signalCode, 'SIGKILL', `round ${r}: the node was not killed by SIGKILL`);
    run.stop();
    await run.done;
    log(`round ${r + 1}/${rounds}: killed at ${killAt} ms, acked ${client.acked.size - ackedBefore} (total ${client.acked.size}), ${client.unacked} to retry`);
  }

  // The last node is left alone: every unanswered key is retried until acked, then everything
  // drains; it takes the books (intake_books_*) twice a second, folding every drained segment.
  const d: Daemon = await startDaemon({ spool: o.spool, db: o.target.url, mode: 'both', nodeId, args: [...args, '--books-interval-ms', '500', '--books-fold-after-ms', '0'] });
  try {
    const run = client.run(d.url, { concurrency: o.concurrency ?? 16, newKeys: false });
    const deadline = Date.now() + (o.settleTimeoutMs ?? 60_000);
    const timer = setInterval(() => {
      if (Date.now() > deadline) run.stop();
    }, 100);
    await run.done.finally(() => clearInterval(timer));
    assert.equal(client.unacked, 0, `the final node did not acknowledge every retried key in time (${client.unacked} left)`);

    let last = -1;
    let leftover: string[] = [];
    for (;;) {
      leftover = segmentFiles(o.spool);
      const n = (await o.target.readRows()).length;
      if (leftover.length === 0 && n === last) break;
      last = leftover.length === 0 ? n : -1;
      if (Date.now() > deadline) break;
      await sleep(300);
    }
    const rows = await o.target.readRows();
    const report = checkDelivery({ acked: client.acked, sent: client.sent, rows });
    // Books whose take began after the drain, as the node's metrics show them (a take is stamped
    // when it ends, so one that began earlier could have read the spool before the last segment left).
    const drainedAt = Date.now() / 1000;
    const text = await waitFor('books taken after the final drain', async () => {
      const m = await scrape(d.url);
      return booksTakeBegan(m) > drainedAt + 0.005 ? m : '';
    }, 30_000, 200);
    const booksFromMetrics = booksMetrics(text, [nodeId]);
    const finalExitCode = await d.kill('SIGTERM');
    return { rounds, seed, report, client, leftover, finalExitCode, killsAtMs, elapsedMs: Date.now() - t0, booksFromMetrics };
  } finally {
    await d.kill('SIGKILL');
  }
}

/** Rounds and the least number of 202s a crash run must reach to mean something. */
export const CRASH_ROUNDS = 25;
// On a loaded 2-core machine a round killed early acknowledges nothing; 300 acks over 25 rounds
// (with hundreds of retried connection errors) still exercises every crash window.
export const CRASH_MIN_ACKED = 300;

/**
 * The crash test proper, for any engine: run the scenario against `target` with `spool` as the
 * spool root, log the figures, and assert no loss, no duplicate, nothing unexpected.
 */
export async function runCrashTest(t: { diagnostic(msg: string): void }, target: DbTarget, spool: string): Promise<CrashScenarioResult> {
  const seed = process.env.INTAKE_CHAOS_SEED ? Number(process.env.INTAKE_CHAOS_SEED) : undefined;
  const r = await runCrashScenario({
    target,
    spool,
    rounds: CRASH_ROUNDS,
    concurrency: 16,
    killMinMs: 50,
    killMaxMs: 600,
    ...(seed === undefined ? {} : { seed }),
    log: (line) => t.diagnostic(line),
  });
  const answers = [...r.client.answers].map(([k, v]) => `${k}:${v}`).join(' ');
  const quarantine = join(spool, 'quarantine');
  const quarantined = existsSync(quarantine) ? readdirSync(quarantine).filter((f) => f.endsWith('.json')) : [];
  const figures =
    `crash test (${target.url.split(':')[0]}): seed=${r.seed} rounds=${r.rounds} ${formatReport(r.report)} answers={${answers}} ` +
    `quarantined=${quarantined.length} elapsed=${(r.elapsedMs / 1000).toFixed(1)}s`;
  t.diagnostic(figures);

  assert.deepEqual(r.client.wrongAnswers, [], 'answers a correct node never gives');
  assert.deepEqual(r.leftover, [], 'segments left in the spool after the final drain');
  assertNoLossNoDuplicate(r.report);
  const books = await assertBooksBalance(t, spool, target.url);
  // The same figures as metrics: the final node's books after the drain are verify's.
  assert.deepEqual(r.booksFromMetrics, booksFigures(books), 'the intake_books_* metrics hold the figures of intake verify');
  // The final node folded the drained segments into its checkpoint, and the books still balance.
  assert.ok(books.total.segments.folded > 0, `no segment folded (${JSON.stringify(books.total.segments)})`);
  t.diagnostic(`books as metrics (final node): ${JSON.stringify(r.booksFromMetrics)}`);
  // Every acknowledged key has at least one record (more when a retry was written again), and
  // the database's distinct ids are exactly the keys stored.
  assert.ok(books.total.accepted >= r.report.acked, `verify counts ${books.total.accepted} accepted records, the client had ${r.report.acked} acknowledged`);
  assert.equal(books.database.rows, r.report.stored, 'verify sees the rows the checker read');
  // The last node took every retry: every key sent was acknowledged, and is stored once.
  assert.equal(r.report.acked, r.report.sent, 'every key sent was acknowledged in the end');
  assert.equal(r.report.stored, r.report.sent, 'one row per key sent');
  assert.ok(r.report.acked >= CRASH_MIN_ACKED, `only ${r.report.acked} requests acknowledged: too few for the test to mean much`);
  assert.equal(r.finalExitCode, 0, 'the final node stopped cleanly');
  return r;
}

/** `intake verify --json` on a stopped cluster: exit 0, every record stored, nothing in the spool. Prints its figures. */
export async function assertBooksBalance(t: { diagnostic(msg: string): void }, spool: string, db: string): Promise<Books> {
  const v = await runCli(['verify', '--spool', spool, '--db', db, '--json']);
  const books = JSON.parse(v.stdout) as Books & { balanced: boolean };
  const figures =
    `verify (${db.split(':')[0]}): exit=${v.code} accepted=${books.total.accepted} stored=${books.total.stored} in-spool=${books.total.inSpool} ` +
    `quarantined=${books.total.quarantined} segments=${books.total.segments.drained} folded=${books.total.segments.folded} missing=${books.total.segments.missing} rows=${books.database.rows} ` +
    `inserted=${books.database.rowsInserted} differences=${books.differences.length}`;
  t.diagnostic(figures);
  console.log(figures);
  // The table an operator reads, printed with the run's figures.
  const table = await runCli(['verify', '--spool', spool, '--db', db]);
  for (const line of table.stdout.trimEnd().split('\n')) t.diagnostic(`verify | ${line}`);
  assert.equal(table.code, v.code, 'the table and --json agree on the exit code');
  assert.equal(v.code, 0, `intake verify: ${v.stdout}${v.stderr}`);
  assert.deepEqual(books.differences, []);
  assert.equal(books.total.accepted, books.total.stored + books.total.inSpool + books.total.quarantined);
  return books;
}

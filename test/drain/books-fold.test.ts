// Folding the books: a node that takes the books with --books-fold-after-ms 0 folds every drained
// segment into its node's checkpoint (books_checkpoints), deleting their drained_segments rows,
// and the books read segments.log from the checkpoint on. The figures do not change by a fold:
// verify balances with the same totals before and after, and still names a segment listed after
// the checkpoint that vanished. With the default (an hour) nothing recent is folded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Books } from '../../src/drain/books.js';
import { nodeDir } from '../../src/spool/layout.js';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, sleep, waitFor } from '../helpers/http.js';
import { booksFigures, booksMetrics, sample, scrape } from '../helpers/metrics.js';
import { tempDir } from '../helpers/tmp.js';

const ARGS = ['--seal-after-ms', '100', '--scan-interval-ms', '100', '--books-interval-ms', '300'];

async function verify(spool: string, db: string): Promise<{ code: number | null; books: Books }> {
  const v = await runCli(['verify', '--spool', spool, '--db', db, '--json']);
  return { code: v.code, books: JSON.parse(v.stdout) as Books };
}

/** Requests in `waves` waves, each sealed into a segment of its own; returns their ids. */
async function traffic(d: Daemon, waves: number): Promise<string[]> {
  const ids: string[] = [];
  for (let w = 0; w < waves; w++) {
    for (let i = 0; i < 5; i++) {
      const r = await post(`${d.url}/v1/requests`, { payload: { w, i }, callback_url: 'https://example.com/hook' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      ids.push(r.body.id);
    }
    await sleep(250); // past --seal-after-ms: the next wave opens a new segment
  }
  for (const id of ids) await waitFor(`request ${id} stored`, async () => (await get(`${d.url}/v1/requests/${id}`)).status === 200, 30_000);
  return ids;
}

test('the books fold drained segments into a checkpoint without changing a figure', { timeout: 180_000 }, async (t) => {
  const tmp = tempDir('intake-fold-');
  const spool = join(tmp.path, 'spool');
  const dbPath = join(tmp.path, 'intake.db');
  const db = `sqlite:${dbPath}`;
  const rows = (sql: string) => {
    const h = new Database(dbPath, { readonly: true });
    try {
      return h.prepare(sql).all() as Record<string, number | string>[];
    } finally {
      h.close();
    }
  };
  let d: Daemon | null = null;
  try {
    // The default: segments drained a moment ago are not folded.
    d = await startDaemon({ spool, db, nodeId: 'fold-a', args: ARGS });
    await traffic(d, 3);
    const quiet = Date.now() / 1000;
    await waitFor('books taken after the traffic', async () => (sample(await scrape(d!.url), 'intake_books_taken_timestamp_seconds') ?? 0) > quiet, 30_000, 100);
    assert.deepEqual(rows('SELECT * FROM books_checkpoints'), [], 'nothing drained an hour ago: nothing folded');
    const unfolded = rows('SELECT COUNT(*) AS n FROM drained_segments')[0]!.n as number;
    assert.ok(unfolded >= 3, `${unfolded} segments drained`);
    const before = await verify(spool, db);
    assert.equal(before.code, 0);
    assert.equal(await d.kill('SIGTERM'), 0);

    // --books-fold-after-ms 0: every drained segment is folded at the next take.
    d = await startDaemon({ spool, db, nodeId: 'fold-a', args: [...ARGS, '--books-fold-after-ms', '0'] });
    await waitFor('the drained segments folded', () => rows('SELECT COUNT(*) AS n FROM drained_segments')[0]!.n === 0, 30_000, 100);
    const [cp] = rows('SELECT node, segments, requests, refused, conflicts, log_offset AS logOffset FROM books_checkpoints');
    const log = join(nodeDir(spool, 'fold-a'), 'segments.log');
    assert.equal(cp!.node, 'fold-a');
    assert.equal(cp!.segments, unfolded, 'every drained segment is in the checkpoint');
    assert.equal(cp!.requests, before.books.total.accepted);
    assert.ok((cp!.logOffset as number) > 0 && (cp!.logOffset as number) <= statSync(log).size, 'the checkpoint stops inside the log');
    const folded = await verify(spool, db);
    assert.equal(folded.code, 0, JSON.stringify(folded.books.differences));
    assert.deepEqual({ ...folded.books.total, segments: { ...folded.books.total.segments, folded: 0 } }, before.books.total, 'a fold changes no figure');
    assert.equal(folded.books.total.segments.folded, unfolded, 'verify shows the folded segments');
    t.diagnostic(`folded ${cp!.segments} segments (${cp!.requests} requests) at log offset ${cp!.logOffset} of ${statSync(log).size} bytes`);

    // More traffic: new segments, listed after the checkpoint, folded in turn; the metrics agree.
    await traffic(d, 2);
    await waitFor('the new segments folded too', () => rows('SELECT COUNT(*) AS n FROM drained_segments')[0]!.n === 0 && (rows('SELECT segments FROM books_checkpoints')[0]!.segments as number) > unfolded, 30_000, 100);
    const after = await verify(spool, db);
    assert.equal(after.code, 0, JSON.stringify(after.books.differences));
    assert.equal(after.books.total.accepted, before.books.total.accepted + 10);
    const quiet2 = Date.now() / 1000;
    const text = await waitFor('books taken after the fold', async () => {
      const m = await scrape(d!.url);
      return (sample(m, 'intake_books_taken_timestamp_seconds') ?? 0) > quiet2 ? m : '';
    }, 30_000, 100);
    assert.deepEqual(booksMetrics(text, ['fold-a']), booksFigures(after.books), 'the metrics hold verify\'s figures after folds');
    assert.equal(await d.kill('SIGTERM'), 0);
    d = null;

    // A segment listed after the checkpoint that vanished is still named: a receive-mode node
    // (no drain) spools one, its file is removed.
    d = await startDaemon({ spool, db, nodeId: 'fold-r', mode: 'receive', args: ARGS });
    assert.equal((await post(`${d.url}/v1/requests`, { payload: { late: true }, callback_url: 'https://example.com/hook' })).status, 202);
    assert.equal(await d.kill('SIGTERM'), 0);
    d = null;
    const seg = readdirSync(nodeDir(spool, 'fold-r')).find((f) => f.endsWith('.seg'))!;
    rmSync(join(nodeDir(spool, 'fold-r'), seg));
    const gone = await verify(spool, db);
    assert.equal(gone.code, 1);
    assert.deepEqual(gone.books.differences.length, 1, JSON.stringify(gone.books.differences));
    assert.match(gone.books.differences[0]!, /node fold-r: segment .* is listed in nodes\/fold-r\/segments.log but is neither drained/);
    assert.equal(readFileSync(log, 'utf8').length > 0, true);
  } finally {
    await d?.kill('SIGKILL');
    tmp.cleanup();
  }
});

// The books as metrics in a cluster: two save-mode nodes on one PostgreSQL and one spool, and a
// receive-only node. The books (intake verify's figures) are taken by one node at a time (the
// spool lock on cluster/books.json: no two takes overlap), and every node, the receive-only one
// too, exports the same figures, which are those `intake verify` prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Books } from '../../src/drain/books.js';
import type { BooksFile } from '../../src/drain/books-file.js';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, sleep, waitFor } from '../helpers/http.js';
import { booksFigures, booksMetrics, booksTakeBegan, scrape } from '../helpers/metrics.js';
import { startPostgres } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';

const INTERVAL_MS = 300;

test('two save nodes take the books one at a time; every node exports the figures intake verify prints', { timeout: 180_000 }, async (t) => {
  const tmp = tempDir('intake-books-');
  const pg = await startPostgres();
  const nodes: Daemon[] = [];
  let watching = true;
  try {
    const spool = join(tmp.path, 'spool');
    const db = await pg.createDatabase();
    const m = await runCli(['migrate', '--db', db]);
    assert.equal(m.code, 0, m.stderr);
    const args = ['--books-interval-ms', String(INTERVAL_MS), '--seal-after-ms', '200', '--scan-interval-ms', '100'];
    for (const [id, mode] of [['books-a', 'both'], ['books-b', 'both'], ['books-r', 'receive']] as const) {
      nodes.push(await startDaemon({ spool, db, nodeId: id, mode, args }));
    }

    // Watch cluster/books.json while the nodes take the books, traffic going to all three.
    const takes = new Map<string, BooksFile>();
    const watcher = (async () => {
      while (watching) {
        try {
          const f = JSON.parse(readFileSync(join(spool, 'cluster', 'books.json'), 'utf8')) as BooksFile;
          takes.set(f.takenAt, f);
        } catch {
          // not there yet
        }
        await sleep(20);
      }
    })();
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const r = await post(`${nodes[i % 3]!.url}/v1/requests`, { payload: { i }, callback_url: 'https://example.com/hook' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      ids.push(r.body.id);
    }
    for (const id of ids) await waitFor(`request ${id} stored`, async () => (await get(`${nodes[0]!.url}/v1/requests/${id}`)).status === 200, 30_000);
    await waitFor('several takes', () => takes.size >= 6, 60_000, 100);
    watching = false;
    await watcher;

    // No two takes overlap: each began (taken_at - duration) after the one before it ended.
    const sorted = [...takes.values()].sort((a, b) => Date.parse(a.takenAt) - Date.parse(b.takenAt));
    for (let i = 1; i < sorted.length; i++) {
      const began = Date.parse(sorted[i]!.takenAt) - sorted[i]!.durationMs;
      // (2 ms: taken_at is truncated to the millisecond, the duration rounded.)
      assert.ok(began + 2 >= Date.parse(sorted[i - 1]!.takenAt), `take ${i} by ${sorted[i]!.takenBy} began before take ${i - 1} by ${sorted[i - 1]!.takenBy} ended`);
    }
    const by = new Set(sorted.map((f) => f.takenBy));
    assert.ok(!by.has('books-r'), 'a receive-only node has no database and takes no books');
    t.diagnostic(`takes watched: ${sorted.length}, by ${[...by].join(', ')}, durations ${sorted.map((f) => f.durationMs).join(',')} ms`);

    // Quiet now, once every segment is recorded as drained (a GET sees a row before its segment
    // is recorded): books whose take *began* after that are verify's figures, on every node.
    await waitFor('verify sees all 60 stored and none in a spool', async () => {
      const q = await runCli(['verify', '--spool', spool, '--db', db, '--json']);
      try {
        const b = JSON.parse(q.stdout) as Books;
        return b.total.stored === 60 && b.total.inSpool === 0;
      } catch {
        return false;
      }
    }, 30_000, 200);
    const quietAt = Date.now() / 1000;
    const texts = await Promise.all(
      nodes.map((d) => waitFor(`${d.nodeId} exports books taken after the traffic`, async () => {
        const text = await scrape(d.url);
        return booksTakeBegan(text) > quietAt + 0.005 ? text : '';
      }, 30_000, 100)),
    );
    const v = await runCli(['verify', '--spool', spool, '--db', db, '--json']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const books = JSON.parse(v.stdout) as Books;
    assert.equal(books.total.accepted, 60);
    const spoolNodes = books.nodes.map((n) => n.node);
    for (const [i, text] of texts.entries()) {
      assert.deepEqual(booksMetrics(text, spoolNodes), booksFigures(books), `${nodes[i]!.nodeId} exports the figures of intake verify`);
    }
    t.diagnostic(`books as metrics on all 3 nodes: ${JSON.stringify(booksMetrics(texts[2]!, spoolNodes))}`);
  } finally {
    watching = false;
    for (const d of nodes) await d.kill('SIGKILL');
    await pg.close();
    tmp.cleanup();
  }
});

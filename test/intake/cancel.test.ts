// Cancels and delayed requests on real daemons, both engines: DELETE /v1/requests/:id before
// the request is drained (still in the spool, through a receive-mode node), after it, after a
// claim; cancel records in a later segment than their request and in a segment drained first;
// delay_seconds keeping a request out of claims until it is due.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { dbReader } from '../helpers/db.js';
import { del, get, post, sleep, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';
import { ENGINES, startWorkNode, testDatabases, WORK_ARGS, WORK_ENV, type TestDb } from '../helpers/work.js';

const HOOK = 'https://example.com/hook';

async function claimAll(d: Daemon): Promise<string[]> {
  const r = await post(`${d.url}/v1/work/claim`, { limit: 1000, lease_seconds: 600 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.items as { id: string }[]).map((it) => it.id);
}

async function submit(d: Daemon, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await post(`${d.url}/v1/requests`, { payload: { t: Math.random() }, callback_url: HOOK, ...extra });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return r.body.id as string;
}

const statusOf = async (d: Daemon, id: string): Promise<string | null> => {
  const g = await get(`${d.url}/v1/requests/${id}`);
  return g.status === 200 ? (g.body.status as string) : null;
};

/** Wait until GET on `d` answers `status` for `id`. */
const waitStatus = (d: Daemon, id: string, status: string) => waitFor(`${id} ${status}`, async () => (await statusOf(d, id)) === status);

/** Segment files (open or sealed) of one node. */
const segmentsOf = (spool: string, node: string) => (existsSync(join(spool, 'nodes', node)) ? readdirSync(join(spool, 'nodes', node)).filter((f) => /\.(open|seg)$/.test(f)) : []);

/** A receive-mode node whose segments stay open (sealed on SIGTERM) unless told otherwise. */
const receiveNode = (db: TestDb, nodeId: string, sealAfterMs = 600_000) =>
  startDaemon({ spool: db.spool, db: db.url, mode: 'receive', nodeId, args: ['--seal-after-ms', String(sealAfterMs), '--scan-interval-ms', '100'], env: WORK_ENV });

const saveNode = (db: TestDb) => startDaemon({ spool: db.spool, db: db.url, mode: 'save', args: WORK_ARGS, env: WORK_ENV });

for (const engine of ENGINES) {
  describe(`cancel and delay: ${engine}`, () => {
    const tmp = tempDir();
    const dbs = testDatabases(tmp.path);
    after(async () => {
      await dbs.close();
      tmp.cleanup();
    });

    describe('one node in mode both', () => {
      let db: TestDb;
      let d: Daemon;
      before(async () => {
        db = await dbs.fresh(engine);
        d = await startWorkNode(db);
      });
      after(async () => {
        await d.kill('SIGTERM');
      });

      test('after the drain: 200 cancelled, GET shows it, never claimed; again 200; after a claim 409', async () => {
        const id = await submit(d);
        const other = await submit(d);
        await waitStatus(d, id, 'pending');
        await waitStatus(d, other, 'pending');
        const c = await del(`${d.url}/v1/requests/${id}`);
        assert.equal(c.status, 200, JSON.stringify(c.body));
        assert.deepEqual(c.body, { id, status: 'cancelled' });
        assert.equal(await statusOf(d, id), 'cancelled');
        assert.deepEqual((await del(`${d.url}/v1/requests/${id}`)).body, { id, status: 'cancelled' });
        const claimed = await claimAll(d);
        assert.deepEqual(claimed, [other], 'only the request not cancelled is claimed');
        const late = await del(`${d.url}/v1/requests/${other}`);
        assert.equal(late.status, 409);
        assert.equal(late.body.error.code, 'INTAKE_NOT_CANCELLABLE');
        assert.equal(await statusOf(d, other), 'claimed');
      });

      test('unknown and malformed ids answer 404', async () => {
        for (const id of ['00000000-0000-7000-8000-000000000000', 'not-a-uuid']) {
          const r = await del(`${d.url}/v1/requests/${id}`);
          assert.equal(r.status, 404, id);
          assert.equal(r.body.error.code, 'INTAKE_NOT_FOUND');
        }
      });

      test('delay_seconds: scheduled, not claimable at once, claimable once due; bad delays are refused', async () => {
        // 5 s: room for the drain to store it while still scheduled on a loaded machine (a row
        // drained after its not_before is stored pending at once, by design).
        const id = await submit(d, { delay_seconds: 5 });
        await waitStatus(d, id, 'scheduled');
        const g = await get(`${d.url}/v1/requests/${id}`);
        assert.ok(g.body.not_before, 'not_before is shown');
        const early = await claimAll(d);
        // Judged once answered: the node decided before now, so before not_before if now is.
        if (Date.now() < Date.parse(g.body.not_before)) assert.deepEqual(early, [], 'a scheduled request was claimed');
        // Due after 5 s; the due-request duty runs every 250 ms on every save-mode node.
        const got = early.length > 0 ? early : await waitFor('the delayed request claimed', async () => {
          const ids = await claimAll(d);
          return ids.length > 0 ? ids : null;
        });
        assert.deepEqual(got, [id]);
        const bad: [unknown, string][] = [
          [{ delay_seconds: -1 }, 'negative'],
          [{ delay_seconds: 1.5 }, 'fraction'],
          [{ delay_seconds: 31_536_001 }, 'over a year'],
          [{ delay_seconds: '5' }, 'string'],
          [{ delay_seconds: 5, not_before: '2030-01-01T00:00:00Z' }, 'both'],
        ];
        for (const [extra, what] of bad) {
          const r = await post(`${d.url}/v1/requests`, { payload: 1, callback_url: HOOK, ...(extra as object) });
          assert.equal(r.status, 400, what);
          assert.equal(r.body.error.code, 'INTAKE_BAD_REQUEST', what);
        }
      });

      test('a delayed request can be cancelled while scheduled and never becomes claimable', async () => {
        const id = await submit(d, { delay_seconds: 5 });
        await waitStatus(d, id, 'scheduled');
        const notBefore = Date.parse((await get(`${d.url}/v1/requests/${id}`)).body.not_before);
        assert.deepEqual((await del(`${d.url}/v1/requests/${id}`)).body, { id, status: 'cancelled' });
        await sleep(Math.max(0, notBefore - Date.now()) + 750); // past due, and a few due-duty rounds
        assert.ok(Date.now() > notBefore, 'checked after it would have been due');
        assert.deepEqual(await claimAll(d), []);
        assert.equal(await statusOf(d, id), 'cancelled');
      });
    });

    describe('receive-mode nodes and a save node on one spool', () => {
      test('cancel while the request is in the spool: 202 cancelling, then cancelled once drained (same segment)', async () => {
        const db = await dbs.fresh(engine);
        const r = await receiveNode(db, 'recv-a');
        const id = await submit(r);
        const keep = await submit(r);
        const c = await del(`${r.url}/v1/requests/${id}`);
        assert.equal(c.status, 202, JSON.stringify(c.body));
        assert.deepEqual(c.body, { id, status: 'cancelling' });
        assert.equal(await r.kill('SIGTERM'), 0); // seals the one segment holding all three records
        const s = await saveNode(db);
        try {
          await waitStatus(s, id, 'cancelled');
          await waitStatus(s, keep, 'pending');
          assert.deepEqual(await claimAll(s), [keep]);
        } finally {
          await s.kill('SIGTERM');
        }
      });

      test('a cancel record in a later segment than its request', async () => {
        const db = await dbs.fresh(engine);
        const r = await receiveNode(db, 'recv-b', 100);
        const id = await submit(r);
        await waitFor('the request sealed', () => segmentsOf(db.spool, 'recv-b').some((f) => f.endsWith('.seg')));
        assert.equal((await del(`${r.url}/v1/requests/${id}`)).status, 202);
        assert.equal(await r.kill('SIGTERM'), 0);
        assert.equal(segmentsOf(db.spool, 'recv-b').length, 2, 'request and cancel are in two segments');
        const s = await saveNode(db);
        try {
          await waitStatus(s, id, 'cancelled');
          assert.deepEqual(await claimAll(s), []);
        } finally {
          await s.kill('SIGTERM');
        }
      });

      test("a cancel whose segment drains before its request's segment still wins", async () => {
        const db = await dbs.fresh(engine);
        // recv-c opens its segment first (an older id, drained first) and later takes the cancel;
        // recv-d takes the request into a newer segment.
        const early = await receiveNode(db, 'recv-c');
        const filler = await submit(early);
        const late = await receiveNode(db, 'recv-d');
        const id = await submit(late);
        assert.equal((await del(`${early.url}/v1/requests/${id}`)).status, 202);
        assert.equal(await early.kill('SIGTERM'), 0);
        // Drain the cancel's segment alone first: the request is not in the spool's drained part yet.
        const s = await saveNode(db);
        try {
          await waitStatus(s, filler, 'pending');
          assert.equal(await statusOf(s, id), null, 'the request is not in the database yet');
          assert.equal(await late.kill('SIGTERM'), 0);
          await waitStatus(s, id, 'cancelled');
          assert.deepEqual(await claimAll(s), [filler]);
        } finally {
          await s.kill('SIGTERM');
          await late.kill('SIGTERM');
        }
      });

      test('a save-mode node cancels a request not drained yet (202), and 404s another node\'s unknown old id', async () => {
        const db = await dbs.fresh(engine);
        const r = await receiveNode(db, 'recv-e');
        const id = await submit(r);
        const s = await saveNode(db);
        try {
          const c = await del(`${s.url}/v1/requests/${id}`);
          assert.equal(c.status, 202, JSON.stringify(c.body));
          assert.equal(c.body.status, 'cancelling');
          assert.equal(await r.kill('SIGTERM'), 0);
          await waitStatus(s, id, 'cancelled');
          assert.equal((await del(`${s.url}/v1/requests/00000000-0000-7000-8000-000000000000`)).status, 404);
        } finally {
          await s.kill('SIGTERM');
          await r.kill('SIGTERM');
        }
      });
    });

    test('kill -9 between requests and their cancels: every acknowledged cancel holds, every acknowledged request is stored once', { timeout: 120_000 }, async (t) => {
      const db = await dbs.fresh(engine);
      const node = 'recv-kill';
      const acked: string[] = [];
      const cancelled: string[] = [];
      for (let round = 0; round < 3; round++) {
        const r = await receiveNode(db, node, 200);
        let stop = false;
        const client = async (k: number) => {
          while (!stop) {
            try {
              const a = await post(`${r.url}/v1/requests`, { payload: { round, k }, callback_url: HOOK }, {}, 5000);
              if (a.status !== 202) continue;
              acked.push(a.body.id);
              // Cancel every other request, right after its 202.
              if (acked.length % 2 === 0) {
                const c = await del(`${r.url}/v1/requests/${a.body.id}`, {}, 5000);
                if (c.status === 202) cancelled.push(a.body.id);
              }
            } catch {
              return; // the node is gone
            }
          }
        };
        const clients = Array.from({ length: 4 }, (_, k) => client(k));
        await sleep(300 + 200 * round);
        await r.kill('SIGKILL');
        stop = true;
        await Promise.all(clients);
      }
      // The killed node's own restart recovers its open segment; a save node drains everything.
      const r = await receiveNode(db, node, 100);
      const s = await saveNode(db);
      const reader = dbReader(db.url);
      try {
        await r.kill('SIGTERM');
        await waitFor('every acknowledged request stored', async () => (await reader.requests(acked)).length === new Set(acked).size, 30_000);
        await waitFor('the spool drained', () => segmentsOf(db.spool, node).length === 0, 30_000);
        const rows = await reader.requests();
        const byId = new Map<string, number>();
        for (const row of rows) byId.set(row.id, (byId.get(row.id) ?? 0) + 1);
        for (const id of acked) assert.equal(byId.get(id), 1, `request ${id} stored once`);
        const status = new Map(rows.map((row) => [row.id, row.status]));
        for (const id of cancelled) assert.equal(status.get(id), 'cancelled', `acknowledged cancel of ${id} holds`);
        const claimed = new Set(await claimAll(s));
        for (const id of cancelled) assert.ok(!claimed.has(id), `cancelled ${id} was claimed`);
        t.diagnostic(`${engine}: ${acked.length} requests and ${cancelled.length} cancels acknowledged across 3 kills`);
        assert.ok(cancelled.length > 0, 'no cancel was acknowledged');
      } finally {
        await reader.close();
        await s.kill('SIGTERM');
      }
    });
  });
}

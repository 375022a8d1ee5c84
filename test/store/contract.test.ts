// One contract, two engines: every test here runs against SQLite and against a real PostgreSQL.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import type { RequestRecord } from '../../src/spool/records.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';

function record(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    id: uuidv7(),
    tenant: 'default',
    idempotencyKey: null,
    receivedAt: Date.now(),
    node: 'node-a',
    callbackUrl: 'https://example.com/hook',
    lane: null,
    notBefore: null,
    payload: JSON.stringify({ n: Math.random(), text: 'héllo ✓', nested: { a: [1, 2, 3] } }),
    metadata: null,
    ...over,
  };
}

const tmp = tempDir();
let pgServer: PgServer;
let dbSeq = 0;

const engines: { name: string; fresh: () => Promise<string> }[] = [
  { name: 'sqlite', fresh: async () => `sqlite:${join(tmp.path, `c${++dbSeq}.db`)}` },
  { name: 'postgres', fresh: () => pgServer.createDatabase() },
];

before(async () => {
  pgServer = await startPostgres();
});
after(async () => {
  await pgServer?.close();
  tmp.cleanup();
});

for (const engine of engines) {
  describe(`store contract: ${engine.name}`, () => {
    let url: string;
    let store: Store;
    before(async () => {
      url = await engine.fresh();
      store = await openStore(url);
    });
    after(async () => {
      await store.close();
    });

    test('an empty database migrates to the newest schema, and again is a no-op', async () => {
      const s0 = await store.schema();
      assert.equal(s0.current, 0);
      assert.ok(s0.latest >= 1);
      const applied = await store.migrate();
      assert.deepEqual(applied, Array.from({ length: s0.latest }, (_, i) => i + 1));
      assert.equal((await store.schema()).current, s0.latest);
      assert.deepEqual(await store.migrate(), []);
    });

    test('insert-if-absent: new ids are inserted once, repeats are ignored', async () => {
      const a = [record(), record(), record()];
      assert.equal(await store.insertRequests(a), 3);
      assert.equal(await store.insertRequests(a), 0);
      const b = [record(), a[0]!, record()];
      assert.equal(await store.insertRequests(b), 2);
      assert.equal(await store.insertRequests([]), 0);
    });

    test('a stored request reads back field for field', async () => {
      const r = record({
        idempotencyKey: 'key-1',
        lane: 'short',
        notBefore: Date.UTC(2030, 0, 1, 12, 30, 15, 123),
        metadata: JSON.stringify({ team: 'x' }),
        receivedAt: 1_795_000_000_123,
      });
      await store.insertRequests([r]);
      const got = await store.getRequest(r.id);
      assert.ok(got);
      assert.equal(got.id, r.id);
      assert.equal(got.tenant, r.tenant);
      assert.equal(got.idempotencyKey, 'key-1');
      assert.equal(got.receivedAt, r.receivedAt);
      assert.equal(got.notBefore, r.notBefore);
      assert.equal(got.node, r.node);
      assert.equal(got.callbackUrl, r.callbackUrl);
      assert.equal(got.lane, 'short');
      assert.deepEqual(JSON.parse(got.payload), JSON.parse(r.payload));
      assert.deepEqual(JSON.parse(got.metadata!), { team: 'x' });
      assert.equal(got.status, 'scheduled', 'a not_before ahead is stored scheduled');
      assert.ok(Math.abs(got.storedAt - Date.now()) < 60_000);
    });

    test('text that needs escaping on its way in reads back unchanged (backslashes, tabs, newlines, quotes, \\N, non-ASCII)', async () => {
      // The PostgreSQL engine loads rows with COPY's text format, where \, tab, newline, CR and
      // \N mean something: every such character in every text field must arrive as sent.
      const tricky = 'a\\b\tc\nd\re "q" \\N \\t ✓ 𝄞';
      const r = record({
        idempotencyKey: 'k\\ey\\N',
        node: 'node\\x',
        callbackUrl: 'https://example.com/h?q=a%5Cb\\c',
        lane: 'lane.x',
        payload: JSON.stringify({ s: tricky, arr: [tricky, '\\N'], n: null }),
        metadata: JSON.stringify({ note: tricky }),
      });
      const plain = record({ metadata: null, idempotencyKey: null });
      assert.equal(await store.insertRequests([r, plain]), 2);
      const got = await store.getRequest(r.id);
      assert.ok(got);
      assert.equal(got.idempotencyKey, r.idempotencyKey);
      assert.equal(got.node, r.node);
      assert.equal(got.callbackUrl, r.callbackUrl);
      assert.deepEqual(JSON.parse(got.payload), JSON.parse(r.payload));
      assert.deepEqual(JSON.parse(got.metadata!), { note: tricky });
      const p = await store.getRequest(plain.id);
      assert.equal(p?.metadata, null);
      assert.equal(p?.idempotencyKey, null);
      assert.equal(p?.notBefore, null);
    });

    test('the books: every insert counts its new rows, a drained segment is noted once, the backlog counts unfinished states', async () => {
      const before = await store.books();
      assert.equal(before.rows, before.rowsInserted, 'rows and the insert count agree');
      const batch = [record(), record(), record()];
      assert.equal(await store.insertRequests(batch), 3);
      assert.equal(await store.insertRequests([...batch, record()]), 1, 'repeats are not counted');
      const seg = { node: 'node-a', segment: uuidv7(), requests: 7, refused: 1, conflicts: 2, drainedBy: 'node-b' };
      await store.recordDrainedSegment(seg);
      await store.recordDrainedSegment({ ...seg, requests: 99 }); // a re-drain changes nothing
      const after = await store.books();
      assert.equal(after.rows, before.rows + 4);
      assert.equal(after.rowsInserted, before.rowsInserted + 4);
      assert.deepEqual(after.segments.filter((x) => x.segment === seg.segment).map(({ ageMs, ...x }) => x), [seg]);
      assert.ok(after.segments.every((x) => typeof x.ageMs === 'number' && x.ageMs >= -1000), 'every row has its age');
      assert.equal(after.completed, 0);
      // Folding the insert counts into one keeps their sum; a second fold has one row to fold.
      await store.compactCounts();
      assert.equal((await store.books()).rowsInserted, after.rowsInserted, 'the fold keeps the sum');
      assert.ok((await store.compactCounts()) <= 1, 'after a fold, one row (PostgreSQL) or none to fold (SQLite)');
      assert.equal(await store.insertRequests([record()]), 1);
      assert.equal((await store.books()).rowsInserted, after.rowsInserted + 1, 'inserts after a fold count on');
      const backlog = await store.backlog();
      assert.ok(backlog.requests.pending >= 4);
      assert.deepEqual(backlog.callbacks, { pending: 0, sending: 0, parked: 0, dead: 0 });
    });

    test('folding drained segments: their sums go to the checkpoint, their rows go, a fold that lost a race changes nothing', async () => {
      const node = `fold-${uuidv7()}`;
      const seg = (requests: number, refused: number, conflicts: number) => ({ node, segment: uuidv7(), requests, refused, conflicts, drainedBy: 'n' });
      const [a, b, c] = [seg(5, 1, 0), seg(7, 0, 2), seg(3, 0, 0)];
      for (const x of [a, b, c]) await store.recordDrainedSegment(x);
      const mine = async () => {
        const books = await store.books();
        return { rows: books.segments.filter((x) => x.node === node).map((x) => x.segment).sort(), checkpoint: books.checkpoints.find((x) => x.node === node) };
      };
      assert.deepEqual(await mine(), { rows: [a.segment, b.segment, c.segment].sort(), checkpoint: undefined });
      assert.equal(await store.foldSegments({ node, fromOffset: 0, toOffset: 80, segments: [a.segment, b.segment] }), true);
      const cp = { node, logOffset: 80, segments: 2, requests: 12, refused: 1, conflicts: 2 };
      assert.deepEqual(await mine(), { rows: [c.segment], checkpoint: cp });
      assert.deepEqual((await store.booksCheckpoints()).find((x) => x.node === node), cp);
      // The same fold again: the offset moved on, nothing changes.
      assert.equal(await store.foldSegments({ node, fromOffset: 0, toOffset: 80, segments: [a.segment, b.segment] }), false);
      // A segment without its row (folded by another): nothing changes, c keeps its row.
      assert.equal(await store.foldSegments({ node, fromOffset: 80, toOffset: 120, segments: [c.segment, a.segment] }), false);
      assert.deepEqual(await mine(), { rows: [c.segment], checkpoint: cp });
      assert.equal(await store.foldSegments({ node, fromOffset: 80, toOffset: 120, segments: [c.segment] }), true);
      assert.deepEqual(await mine(), { rows: [], checkpoint: { node, logOffset: 120, segments: 3, requests: 15, refused: 1, conflicts: 2 } });
    });

    test('an unknown id reads as null', async () => {
      assert.equal(await store.getRequest(uuidv7()), null);
    });

    test('large batches: every row once', async () => {
      const before = await store.countRequests();
      const batch = Array.from({ length: 12_345 }, () => record());
      assert.equal(await store.insertRequests(batch), batch.length);
      assert.equal(await store.insertRequests(batch.slice(5000, 9000)), 0);
      assert.equal(await store.countRequests(), before + batch.length);
    });

    test('concurrent writers on overlapping batches: each id stored exactly once', async () => {
      const other = await openStore(url);
      try {
        const before = await store.countRequests();
        const shared = Array.from({ length: 3000 }, () => record());
        const onlyA = Array.from({ length: 500 }, () => record());
        const onlyB = Array.from({ length: 500 }, () => record());
        const [na, nb] = await Promise.all([
          store.insertRequests([...shared, ...onlyA]),
          other.insertRequests([...onlyB, ...shared.slice().reverse()]),
        ]);
        assert.equal(na + nb, 4000);
        assert.equal(await store.countRequests(), before + 4000);
      } finally {
        await other.close();
      }
    });

    test('outbox claims: due callbacks oldest first, each once while leased, again once the lease runs out', async () => {
      const s = await openStore(await engine.fresh());
      try {
        await s.migrate();
        const recs = Array.from({ length: 5 }, (_, i) => record({ receivedAt: Date.now() - 10_000 + i }));
        await s.insertRequests(recs);
        const work = await s.claimWork({ tenant: 'default', lane: null, limit: 10, leaseMs: 60_000 });
        assert.equal(work.length, 5);
        const done = await s.completeWork(work.map((w) => ({ id: w.id, tenant: 'default', leaseToken: w.leaseToken, result: '1', callback: { id: `msg_${w.id}`, body: `{"id":"${w.id}"}` } })));
        assert.deepEqual(done, work.map(() => 'ok'));
        // Leases of 2 s: long enough that a loaded machine does not let them run out between two
        // statements that expect them held, short enough to wait for.
        const first = await s.claimCallbacks({ limit: 3, leaseMs: 2000 });
        assert.equal(first.length, 3);
        const second = await s.claimCallbacks({ limit: 10, leaseMs: 60_000 });
        assert.equal(second.length, 2, 'a leased callback was claimed twice');
        assert.equal(new Set([...first, ...second].map((c) => c.id)).size, 5);
        assert.equal((await s.claimCallbacks({ limit: 10, leaseMs: 60_000 })).length, 0);
        await new Promise((r) => setTimeout(r, 2100));
        const again = await s.claimCallbacks({ limit: 10, leaseMs: 60_000 });
        assert.deepEqual(again.map((c) => c.id).sort(), first.map((c) => c.id).sort(), 'the expired sends were not claimed again');
        assert.ok(again.every((c) => c.attempts === 0 && c.body.startsWith('{"id"')));
      } finally {
        await s.close();
      }
    });

    test('claimable lanes: pending work of every lane (null included) and expired leases, nothing else', async () => {
      const s = await openStore(await engine.fresh());
      try {
        await s.migrate();
        const lanes = async () => (await s.claimableLanes('default')).map((l) => l ?? '<null>').sort();
        assert.deepEqual(await lanes(), []);
        // Many rows in a few lanes, so a wrong loose scan (stopping early, skipping a lane) shows.
        const t0 = Date.now() - 10_000;
        const recs = ['b', 'a', null, 'c', 'd', 'a-1', 'b'].flatMap((lane, k) => Array.from({ length: 40 }, (_, i) => record({ lane, receivedAt: t0 + k * 100 + i })));
        await s.insertRequests(recs);
        assert.deepEqual(await lanes(), ['<null>', 'a', 'a-1', 'b', 'c', 'd']);
        // Lane d: claimed with a long lease.
        assert.equal((await s.claimWork({ tenant: 'default', lane: 'd', limit: 100, leaseMs: 60_000 })).length, 40);
        // The null lane: claimed and completed.
        const nulls = await s.claimWork({ tenant: 'default', lane: null, limit: 100, leaseMs: 60_000 });
        const done = await s.completeWork(nulls.map((w) => ({ id: w.id, tenant: 'default', leaseToken: w.leaseToken, result: '1', callback: { id: `msg_${w.id}`, body: '{}' } })));
        assert.deepEqual(done, nulls.map(() => 'ok'));
        // Lane c: every row claimed with a short lease, last, so that no other commit (an fsync on a
        // loaded machine) runs between the claim and the check while the lease is still valid.
        const cClaimed = await s.claimWork({ tenant: 'default', lane: 'c', limit: 100, leaseMs: 2000 });
        assert.equal(cClaimed.length, 40);
        const seen = await lanes();
        // Judged once answered: the store decided before now, so while the leases held if now is.
        if (Date.now() < Math.min(...cClaimed.map((w) => w.leaseExpiresAt))) assert.deepEqual(seen, ['a', 'a-1', 'b']);
        else assert.deepEqual(seen.filter((l) => l !== 'c'), ['a', 'a-1', 'b']);
        await new Promise((r) => setTimeout(r, 2100));
        assert.deepEqual(await lanes(), ['a', 'a-1', 'b', 'c'], 'the lane whose leases ran out is claimable again');
      } finally {
        await s.close();
      }
    });

    test('delayed requests are stored scheduled, never claimed, and made pending once due', async () => {
      const s = await openStore(await engine.fresh());
      try {
        await s.migrate();
        const now = Date.now();
        const past = record({ notBefore: now - 60_000, receivedAt: now - 1000 });
        const soon = record({ notBefore: now + 4000, receivedAt: now - 900 });
        const later = record({ notBefore: now + 3_600_000, receivedAt: now - 800 });
        assert.equal(await s.insertRequests([past, soon, later]), 3);
        assert.equal((await s.getRequest(past.id))?.status, 'pending');
        assert.equal((await s.getRequest(soon.id))?.status, 'scheduled');
        assert.equal((await s.getRequest(later.id))?.status, 'scheduled');
        assert.deepEqual(await s.claimableLanes('default'), [null]);
        const first = await s.claimWork({ tenant: 'default', lane: null, limit: 10, leaseMs: 60_000 });
        assert.deepEqual(first.map((w) => w.id), [past.id], 'a scheduled request was claimed');
        // Not due yet: nothing moves. Then poll the duty until the near one is due.
        const early = await s.releaseDueRequests(100);
        if (Date.now() < soon.notBefore!) assert.equal(early, 0); // judged once answered, as above
        let released = early;
        while (released === 0) {
          await new Promise((r) => setTimeout(r, 100));
          released = await s.releaseDueRequests(100);
        }
        assert.equal(released, 1);
        assert.equal((await s.getRequest(soon.id))?.status, 'pending');
        assert.equal((await s.getRequest(later.id))?.status, 'scheduled');
        const second = await s.claimWork({ tenant: 'default', lane: null, limit: 10, leaseMs: 60_000 });
        assert.deepEqual(second.map((w) => w.id), [soon.id]);
        assert.equal(await s.releaseDueRequests(100), 0, 'the duty is idempotent');
      } finally {
        await s.close();
      }
    });

    test('cancel: pending and scheduled requests are cancelled and never claimed; claimed ones conflict; other tenants and unknown ids are not found', async () => {
      const s = await openStore(await engine.fresh());
      try {
        await s.migrate();
        const now = Date.now();
        const pending = record({ receivedAt: now - 3000 });
        const scheduled = record({ notBefore: now + 3_600_000, receivedAt: now - 2000 });
        const claimed = record({ receivedAt: now - 1000 });
        const theirs = record({ tenant: 'other' });
        await s.insertRequests([pending, scheduled, claimed, theirs]);
        assert.equal(await s.cancelRequest(pending.id, 'default'), 'cancelled');
        const work = await s.claimWork({ tenant: 'default', lane: null, limit: 10, leaseMs: 60_000 });
        assert.deepEqual(work.map((w) => w.id), [claimed.id], 'only the request not cancelled is claimed');
        assert.equal(await s.cancelRequest(scheduled.id, 'default'), 'cancelled');
        assert.equal(await s.cancelRequest(pending.id, 'default'), 'cancelled', 'cancelling again answers the same');
        assert.equal(await s.cancelRequest(claimed.id, 'default'), 'conflict');
        assert.equal(await s.cancelRequest(theirs.id, 'default'), 'not-found');
        assert.equal(await s.cancelRequest(uuidv7(), 'default'), 'not-found');
        assert.equal((await s.getRequest(pending.id))?.status, 'cancelled');
        assert.equal((await s.getRequest(scheduled.id))?.status, 'cancelled');
        assert.equal((await s.getRequest(claimed.id))?.status, 'claimed');
        assert.equal((await s.getRequest(theirs.id))?.status, 'pending');
        const done = await s.completeWork(work.map((w) => ({ id: w.id, tenant: 'default', leaseToken: w.leaseToken, result: '1', callback: { id: `msg_${w.id}`, body: '{}' } })));
        assert.deepEqual(done, ['ok']);
        assert.equal(await s.cancelRequest(claimed.id, 'default'), 'conflict');
        assert.equal(await s.releaseDueRequests(100), 0, 'a cancelled scheduled request never becomes pending');
        assert.deepEqual(await s.claimWork({ tenant: 'default', lane: null, limit: 10, leaseMs: 60_000 }), []);
      } finally {
        await s.close();
      }
    });

    test('applied cancels: after the request it is cancelled; before it, a tombstone that its insert honours, once; another tenant\'s tombstone does nothing', async () => {
      const s = await openStore(await engine.fresh());
      try {
        await s.migrate();
        const cancel = (id: string, tenant = 'default') => ({ id, tenant, at: Date.now(), node: 'node-r' });
        const stored = record();
        await s.insertRequests([stored]);
        assert.equal(await s.applyCancels([cancel(stored.id)]), 1);
        assert.equal((await s.getRequest(stored.id))?.status, 'cancelled');

        const early = record({ receivedAt: Date.now() - 5000 });
        const scheduled = record({ notBefore: Date.now() + 3_600_000 });
        const wrongTenant = record();
        const plain = record();
        assert.equal(await s.applyCancels([cancel(early.id), cancel(scheduled.id), cancel(early.id), cancel(wrongTenant.id, 'other')]), 0);
        assert.equal(await s.getRequest(early.id), null, 'a tombstone is not a request');
        assert.equal(await s.insertRequests([plain, early, scheduled, wrongTenant]), 4, 'insert-if-absent still counts every new request');
        assert.equal((await s.getRequest(early.id))?.status, 'cancelled');
        assert.equal((await s.getRequest(scheduled.id))?.status, 'cancelled');
        assert.equal((await s.getRequest(wrongTenant.id))?.status, 'pending');
        assert.equal((await s.getRequest(plain.id))?.status, 'pending');
        // A re-drain of the same records (a crash after commit) changes nothing.
        assert.equal(await s.insertRequests([plain, early, scheduled, wrongTenant]), 0);
        assert.equal((await s.getRequest(early.id))?.status, 'cancelled');
        const work = await s.claimWork({ tenant: 'default', lane: null, limit: 10, leaseMs: 60_000 });
        assert.deepEqual(work.map((w) => w.id).sort(), [plain.id, wrongTenant.id].sort());
        // A cancel of a claimed request changes nothing.
        assert.equal(await s.applyCancels([cancel(plain.id)]), 0);
        assert.equal((await s.getRequest(plain.id))?.status, 'claimed');
      } finally {
        await s.close();
      }
    });
  });
}

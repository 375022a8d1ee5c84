// Three nodes on one spool and one PostgreSQL, started as plain processes (no load balancer):
// the helpers the cluster tests share, and the takeover scenarios (a dead node's open segment
// sealed by the leader and drained by another node; the leader itself dying with one open),
// which cluster.test.ts runs on a local spool folder and on-gluster.test.ts on GlusterFS.
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { readHeartbeats, type Heartbeat } from '../../src/cluster/heartbeat.js';
import { listAllSegments, listSegments, quarantineDir } from '../../src/spool/layout.js';
import { lockUpdateMs } from '../../src/spool/stale-locks.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import type { SpoolDirs } from '../helpers/gluster.js';
import { post, sleep, waitFor } from '../helpers/http.js';

export const HEARTBEAT_MS = 200;
export const DEAD_AFTER_MS = 1500;
export const LOCK_STALE_MS = 2000;
export const FAST = [
  '--heartbeat-ms', String(HEARTBEAT_MS),
  '--dead-after-ms', String(DEAD_AFTER_MS),
  '--lock-stale-ms', String(LOCK_STALE_MS),
  '--stop-idle-ms', '200',
  '--seal-after-ms', '200',
  '--scan-interval-ms', '100',
];

/** Every node process started through startNode, so an after hook can kill what a failed test left. */
const started = new Set<Daemon>();

export async function killStartedNodes(): Promise<void> {
  await Promise.all([...started].map((d) => d.kill('SIGKILL')));
}

export async function startNode(spool: string, db: string, nodeId: string, mode: 'receive' | 'save' | 'both', extra: string[] = []): Promise<Daemon> {
  // Later flags win in commander, so `extra` can override the fast defaults.
  const d = await startDaemon({ spool, db, nodeId, mode, args: [...FAST, ...extra] });
  started.add(d);
  void d.exited.then(() => started.delete(d));
  return d;
}

export async function killAll(nodes: Daemon[]): Promise<void> {
  await Promise.all(nodes.map((d) => d.kill('SIGKILL')));
}

export async function heartbeatsByNode(spool: string): Promise<Map<string, Heartbeat>> {
  return new Map((await readHeartbeats(spool)).map((h) => [h.node, h]));
}

export async function postRequest(node: Daemon, tag: string): Promise<{ status: number; id?: string; code?: string }> {
  const r = await post(`${node.url}/v1/requests`, { payload: { tag }, callback_url: 'https://example.com/hook' });
  return { status: r.status, id: r.status === 202 ? (r.body.id as string) : undefined, code: r.body?.error?.code as string | undefined };
}

/** `n` requests to `node`, all of which must be acknowledged; returns their ids. */
export async function postAcked(node: Daemon, n: number, tag: string, concurrency = 8): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        const r = await postRequest(node, `${tag}-${i}`);
        assert.equal(r.status, 202, `POST ${i} to ${node.nodeId}: ${r.status} ${r.code ?? ''}`);
        ids.push(r.id!);
      }
    }),
  );
  return ids;
}

/** id -> number of rows with that id. */
export async function dbCounts(url: string): Promise<Map<string, number>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const rows = (await c.query<{ id: string; n: number }>('SELECT id::text AS id, count(*)::int AS n FROM requests GROUP BY id')).rows;
    return new Map(rows.map((r) => [r.id, r.n]));
  } finally {
    await c.end();
  }
}

export interface StoredFigures {
  acked: number;
  stored: number;
  lost: number;
  duplicated: number;
  unexpected: number;
}

/** Wait until every acked id is stored and the spool holds no segment; then check exactly once. Returns the counts. */
export async function assertAllStoredOnce(url: string, spool: string, acked: string[], timeoutMs = 30_000): Promise<StoredFigures> {
  assert.equal(new Set(acked).size, acked.length, 'the node gave every acknowledged request its own id');
  await waitFor(
    `${acked.length} acknowledged ids in the database and an empty spool`,
    async () => {
      const rows = await dbCounts(url);
      return acked.every((id) => rows.has(id)) && (await listAllSegments(spool)).length === 0;
    },
    timeoutMs,
    100,
  );
  const rows = await dbCounts(url);
  const ackedSet = new Set(acked);
  const lost = acked.filter((id) => !rows.has(id));
  const duplicated = [...rows].filter(([, n]) => n !== 1);
  const unexpected = [...rows.keys()].filter((id) => !ackedSet.has(id));
  assert.deepEqual(lost, [], 'no acknowledged id is missing');
  assert.deepEqual(duplicated, [], 'no id stored twice');
  assert.deepEqual(unexpected, [], 'no row that was never acknowledged');
  let stored = 0;
  for (const n of rows.values()) stored += n;
  return { acked: acked.length, stored, lost: lost.length, duplicated: duplicated.length, unexpected: unexpected.length };
}

/** The leader's log lines about taking over a dead node's open segment. */
export function takeoverLines(output: string): { time: number; deadNode: string; outcome: string }[] {
  return output
    .split('\n')
    .filter((l) => l.includes('took over open segment of a dead node'))
    .map((l) => JSON.parse(l) as { time: number; deadNode: string; outcome: string });
}

// ---------------------------------------------------------------------------------------------
// The takeover scenarios

export const DEAD_NODE_TAKEOVER_NODES = ['s1', 's2', 'r'];

export async function deadNodeTakeover(t: TestContext, spools: SpoolDirs, db: string): Promise<void> {
  const spool = spools.operator;
  const s1 = await startNode(spools.forNode('s1'), db, 's1', 'both');
  const s2 = await startNode(spools.forNode('s2'), db, 's2', 'save');
  // Long seal time: its segment stays open until someone else seals it.
  const r = await startNode(spools.forNode('r'), db, 'r', 'receive', ['--seal-after-ms', '60000']);
  try {
    const N = 40;
    const acked = await postAcked(r, N, 'dead');
    // While r lives, its lock stays fresh: the leader leaves its open segment alone, however long.
    await sleep(LOCK_STALE_MS + 500);
    const segs = await listSegments(spool, 'r');
    assert.deepEqual(segs.map((f) => f.state), ['open'], 'the live receiving node keeps its one open segment');
    assert.equal((await dbCounts(db)).size, 0, 'nothing reached the database while the segment is open');
    assert.doesNotMatch(s1.output(), /took over open segment/, "the leader does not touch a live node's segment");

    const killedAt = Date.now();
    await r.kill('SIGKILL');
    const figures = await assertAllStoredOnce(db, spool, acked, 30_000);
    t.diagnostic(`dead node takeover figures: ${JSON.stringify({ storage: spools.kind, ...figures })}`);
    assert.deepEqual(await listSegments(spool, 'r'), [], 'no .open or .seg of the dead node is left');

    // The leader (s1, started first) did the takeover; the dead node never came back to do it.
    const h = await heartbeatsByNode(spool);
    assert.equal(h.get('s1')?.leader, true, 's1 leads');
    // The line is logged after the sealed segment's lock is released (and the log writes
    // asynchronously): another node may have drained it before the line is out.
    await waitFor('the takeover logged', () => takeoverLines(s1.output()).length > 0, 10_000);
    const takeover = takeoverLines(s1.output());
    assert.equal(takeover.length, 1, "the leader sealed the dead node's segment");
    // Not before r's lock went stale: r refreshed it at most one refresh period before the kill,
    // and the leader takes it only after watching it stand still for the stale time.
    const refreshMs = lockUpdateMs(LOCK_STALE_MS);
    assert.ok(
      takeover[0]!.time >= killedAt + LOCK_STALE_MS - refreshMs - 50,
      `takeover ${takeover[0]!.time - killedAt} ms after the kill, before the lock could be stale (${LOCK_STALE_MS} - ${refreshMs} ms)`,
    );
    assert.equal(takeover[0]!.deadNode, 'r');
    assert.doesNotMatch(s2.output(), /took over open segment of a dead node/, 'only the leader runs the takeover');
    const quarantined = await fsp.readdir(quarantineDir(spool)).catch(() => [] as string[]);
    assert.deepEqual(quarantined, [], 'no torn tail: every acknowledged byte was whole');
  } finally {
    await killAll([s1, s2, r]);
  }
}

export const LEADER_DIES_TAKEOVER_NODES = ['lead', 'a', 'b'];

export async function leaderDiesTakeover(t: TestContext, spools: SpoolDirs, db: string): Promise<void> {
  const spool = spools.operator;
  // Started first: the receiving node is the leader, and the one that dies.
  const lead = await startNode(spools.forNode('lead'), db, 'lead', 'receive', ['--seal-after-ms', '60000']);
  const a = await startNode(spools.forNode('a'), db, 'a', 'both');
  const b = await startNode(spools.forNode('b'), db, 'b', 'save');
  try {
    await waitFor('lead to lead', async () => (await heartbeatsByNode(spool)).get('lead')?.leader === true, 10_000);
    const acked = await postAcked(lead, 25, 'leader-dies');
    assert.deepEqual((await listSegments(spool, 'lead')).map((f) => f.state), ['open']);
    await lead.kill('SIGKILL');
    const figures = await assertAllStoredOnce(db, spool, acked, 30_000);
    t.diagnostic(`leader dies takeover figures: ${JSON.stringify({ storage: spools.kind, ...figures })}`);
    const h = await heartbeatsByNode(spool);
    assert.equal(h.get('a')?.leader, true, 'a (next registration number) leads');
    assert.equal(h.get('b')?.leader, false);
    await waitFor('the takeover logged', () => takeoverLines(a.output()).length > 0, 10_000);
    assert.deepEqual(takeoverLines(a.output()).map((x) => x.deadNode), ['lead'], 'the new leader sealed the old leader\'s segment');
    assert.deepEqual(takeoverLines(b.output()), []);
  } finally {
    await killAll([lead, a, b]);
  }
}

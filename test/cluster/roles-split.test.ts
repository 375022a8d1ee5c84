// Who may do what, through a real HAProxy running ops/haproxy.cfg: a receive/save split (r1 and
// r2 in receive mode, s1 in save mode; one spool, one throwaway PostgreSQL). Clients' POSTs
// reach only the receive nodes; workers' claims and completes and clients' GET
// /v1/requests/:id reach only the save node, so no one sees 503 INTAKE_NOT_SAVE_MODE. Then
// `intake mode` swaps r1 and s1 and HAProxy follows within a few checks, with no change to its
// config. Every acknowledged request is stored once, claimed once, completed once and called back.
// Where each answer came from is read from HAProxy's counters per server and from the nodes' own.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { assertNoLossNoDuplicate, checkDelivery, formatReport } from '../chaos/checker.js';
import { findHaproxy, type HaproxyRole } from '../helpers/haproxy.js';
import { get, sleep } from '../helpers/http.js';
import { findPgBin } from '../helpers/postgres.js';
import { lbFigures, runIntake, startCluster, type Cluster } from './harness.js';
import { lbAnswers, lbDelta, nodeCounts, readBack, startReceiver, submit, work, type NodeCounts } from './role-traffic.js';

const NODES = ['r1', 'r2', 's1'];
const PER_ROUND = 120;
/** The helper's check interval (ms): HAProxy's view of a switch is reported in these. */
const INTER_MS = 200;

let cluster: Cluster | null = null;
let receiver: Awaited<ReturnType<typeof startReceiver>> | null = null;
after(async () => {
  await cluster?.close();
  await receiver?.close();
});

/** Roles -> the nodes that must be UP in that backend (all others DOWN); resolves with the ms it took. */
async function waitRoles(c: Cluster, want: Record<HaproxyRole, string[]>, timeoutMs = 30_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const seen: Record<string, Record<string, string>> = {};
    let match = true;
    for (const role of ['ingest', 'work'] as const) {
      const states = await c.haproxy.serverStates(role);
      seen[role] = Object.fromEntries(states);
      for (const id of NODES) if (states.get(id) !== (want[role].includes(id) ? 'UP' : 'DOWN')) match = false;
    }
    if (match) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`HAProxy never showed ${JSON.stringify(want)} within ${timeoutMs} ms; last seen ${JSON.stringify(seen)}`);
    await sleep(25);
  }
}

async function allCounts(c: Cluster): Promise<Record<string, NodeCounts>> {
  return Object.fromEntries(await Promise.all(NODES.map(async (id) => [id, await nodeCounts(c.nodes.get(id)!.port)] as const)));
}

/**
 * One round through HAProxy with the roles as `roles` says: PER_ROUND POSTs, all claimed and
 * completed by workers, all read back. Asserts where every answer came from; returns the acks.
 */
async function round(t: { diagnostic(m: string): void }, c: Cluster, hook: string, label: string, roles: Record<HaproxyRole, string[]>) {
  const lb = c.haproxy.url;
  const [lb0, n0] = [await lbAnswers(c.haproxy), await allCounts(c)];
  const keys = Array.from({ length: PER_ROUND }, (_, i) => `${label}-${i}`);
  const posted = await submit(lb, keys, hook);
  assert.deepEqual(posted.wrong, [], `${label}: every POST through HAProxy answers 202 at once`);
  const worked = await work(lb, new Set(posted.acked.values()), 90_000);
  assert.deepEqual(worked.wrong, [], `${label}: every claim and complete through HAProxy answers 200 (never 503 INTAKE_NOT_SAVE_MODE)`);
  const read = await readBack(lb, posted.acked, roles.ingest);
  assert.deepEqual(read.wrong, [], `${label}: GET /v1/requests/:id through HAProxy answers 200 with the result`);

  const lbd = lbDelta(await lbAnswers(c.haproxy), lb0);
  const n1 = await allCounts(c);
  const nd = Object.fromEntries(NODES.map((id) => [id, { accepted: n1[id]!.accepted - n0[id]!.accepted, claimed: n1[id]!.claimed - n0[id]!.claimed, completed: n1[id]!.completed - n0[id]!.completed }]));
  t.diagnostic(`${label} (ingest: ${roles.ingest.join(',')}; work: ${roles.work.join(',')}): HAProxy 2xx/5xx per server ${JSON.stringify(lbd)}; nodes' own counts ${JSON.stringify(nd)}; work calls ${worked.calls}`);

  const sum = (ids: string[], f: (id: string) => number) => ids.reduce((a, id) => a + f(id), 0);
  const others = (role: HaproxyRole) => NODES.filter((id) => !roles[role].includes(id));
  for (const role of ['ingest', 'work'] as const) {
    for (const id of NODES) assert.equal(lbd[role][id]?.failed, 0, `${label}: HAProxy passed a 5xx from ${id} in the ${role} backend`);
    for (const id of others(role)) assert.equal(lbd[role][id]?.ok, 0, `${label}: ${id} answered in the ${role} backend, which it does not serve`);
  }
  assert.equal(sum(roles.ingest, (id) => lbd.ingest[id]!.ok), PER_ROUND, `${label}: the ingest backend's nodes answered every POST`);
  assert.equal(sum(roles.work, (id) => lbd.work[id]!.ok), worked.calls + read.ok, `${label}: the work backend's nodes answered every claim, complete and GET`);
  for (const id of others('ingest')) assert.equal(nd[id]!.accepted, 0, `${label}: ${id} accepted requests`);
  for (const id of others('work')) assert.equal(nd[id]!.claimed + nd[id]!.completed, 0, `${label}: ${id} served the processing API`);
  assert.equal(sum(roles.ingest, (id) => nd[id]!.accepted), PER_ROUND, `${label}: accepted by the receiving nodes, by their own count`);
  assert.equal(sum(roles.work, (id) => nd[id]!.claimed), PER_ROUND, `${label}: handed out by the saving nodes, by their own count`);
  assert.equal(sum(roles.work, (id) => nd[id]!.completed), PER_ROUND, `${label}: completed on the saving nodes, by their own count`);
  for (const [id, n] of [...worked.claimed, ...worked.completed]) assert.equal(n, 1, `${label}: ${id} claimed or completed ${n} times`);
  return { keys, acked: posted.acked };
}

/** `intake mode MODE --node ID --wait`; then the ms until HAProxy shows `roles`. */
async function switchMode(c: Cluster, mode: string, id: string, roles: Record<HaproxyRole, string[]>): Promise<number> {
  const r = await runIntake(c.build, ['mode', mode, '--node', id, '--wait', '--timeout', '60', '--spool', c.spool, '--dead-after-ms', '1500']);
  assert.equal(r.code, 0, `intake mode ${mode} --node ${id}: ${r.stderr}${r.stdout}`);
  return waitRoles(c, roles);
}

test('receive/save split behind HAProxy: each role reaches only its nodes, and HAProxy follows intake mode', { timeout: 300_000 }, async (t) => {
  // Missing binaries fail here, with the package to install; this test never skips.
  findHaproxy();
  findPgBin();
  receiver = await startReceiver();
  cluster = await startCluster({
    nodes: NODES,
    prefix: 'intake-roles-',
    modes: { r1: 'receive', r2: 'receive', s1: 'save' },
    env: { INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32' }, // the receiver
  });
  const c = cluster;
  for (const id of NODES) await c.startNode(id);
  const splitMs = await waitRoles(c, { ingest: ['r1', 'r2'], work: ['s1'] });

  // Per-node routes are the nodes' own: the load balancer does not pass them on.
  for (const path of ['/metrics', '/healthz', '/readyz?role=work']) {
    const r = await get(`${c.haproxy.url}${path}`);
    assert.equal(r.status, 404, `${path} through HAProxy`);
    assert.equal(r.body?.error?.code, 'INTAKE_ROUTE_NOT_FOUND');
  }

  const first = await round(t, c, receiver.url, 'split', { ingest: ['r1', 'r2'], work: ['s1'] });

  // Swap r1 and s1, a save node first so the processing API always has one.
  const toSave = await switchMode(c, 'save', 'r1', { ingest: ['r2'], work: ['r1', 's1'] });
  const toReceive = await switchMode(c, 'receive', 's1', { ingest: ['r2', 's1'], work: ['r1'] });
  t.diagnostic(
    `HAProxy saw the split ${Math.round(splitMs)} ms after the nodes answered; after \`intake mode --wait\` returned it showed r1 in intake_work ${Math.round(toSave)} ms (${(toSave / INTER_MS).toFixed(1)} checks) ` +
      `and s1 out of it ${Math.round(toReceive)} ms (${(toReceive / INTER_MS).toFixed(1)} checks) later`,
  );
  const second = await round(t, c, receiver.url, 'swapped', { ingest: ['r2', 's1'], work: ['r1'] });

  // Every id, from the database's side and the callback receiver's.
  const acked = new Map([...first.acked, ...second.acked]);
  const drained = await c.waitDrained(30_000);
  assert.deepEqual(drained.leftover, [], 'segments left in the spool');
  const report = checkDelivery({ acked, sent: [...first.keys, ...second.keys], rows: drained.rows });
  t.diagnostic(`${formatReport(report)}; lb ${JSON.stringify(lbFigures(await c.haproxy.stats()))}`);
  assertNoLossNoDuplicate(report);
  assert.equal(report.stored, 2 * PER_ROUND, 'one row per request sent');
  const db = new pg.Client({ connectionString: c.db });
  await db.connect();
  try {
    const statuses = (await db.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM requests GROUP BY status')).rows;
    assert.deepEqual(statuses.map((s) => [s.status, Number(s.n)]), [['completed', 2 * PER_ROUND]], 'every request completed');
  } finally {
    await db.end();
  }
  const r = receiver;
  const deadline = performance.now() + 60_000;
  const missing = () => [...acked.values()].filter((id) => !r.deliveries.has(`msg_${id}`));
  while (missing().length > 0 && performance.now() < deadline) await sleep(200);
  assert.deepEqual(missing(), [], 'completed requests whose callback never arrived');
  const repeated = [...r.deliveries.values()].filter((n) => n > 1).length;
  t.diagnostic(`callbacks: ${r.deliveries.size} webhook-ids delivered, ${repeated} more than once`);
  assert.equal(lbFigures(await c.haproxy.stats()).lb5xx, 0, 'HAProxy passed no 5xx to anyone');
});

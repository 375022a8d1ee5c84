// A stalled writer: a receive node is stopped with SIGSTOP past its lock's stale time while
// clients keep sending through a real HAProxy. The leader watches the node's lock stand still,
// takes it over and seals the node's open segment, which is drained. Then the node is resumed
// (SIGCONT): requests that reached it while it was stopped must be refused (503), never
// acknowledged, since its segment is no longer its own; it then stops with exit code 1, and is
// started again as a supervisor would, takes its lock back and serves again. Nothing acknowledged
// is lost, nothing is stored twice.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { assertNoLossNoDuplicate, checkDelivery, formatReport } from '../chaos/checker.js';
import { lockUpdateMs } from '../../src/spool/stale-locks.js';
import { sleep, waitFor } from '../helpers/http.js';
import { LoadClient, startCluster, type Cluster } from './harness.js';

const NODES = ['n1', 'n2', 'n3'];
const VICTIM = 'n3';
/** Above NODE_FLAGS' 2000, so that a loaded machine's stalls of a second or two take no other node over. */
const LOCK_STALE_MS = 3000;
const STALE_FLAGS = ['--lock-stale-ms', String(LOCK_STALE_MS)];

let cluster: Cluster | null = null;
let client: LoadClient | null = null;
after(async () => {
  const pid = cluster?.nodes.get(VICTIM)?.pid;
  if (pid) process.kill(pid, 'SIGCONT');
  await client?.stop(0).catch(() => undefined);
  await cluster?.close();
});

test('a receive node stopped past its lock stale time is taken over; resumed, it refuses, stops, and comes back', { timeout: 240_000 }, async (t) => {
  // The victim's first process keeps its segment open (no age seal), so there is one to take over
  // when it stops; the restarted one seals as usual (the entry is emptied before the restart).
  const nodeFlags: Record<string, string[]> = { n1: STALE_FLAGS, n2: STALE_FLAGS, [VICTIM]: [...STALE_FLAGS, '--seal-after-ms', '600000'] };
  cluster = await startCluster({ nodes: NODES, prefix: 'intake-stall-', modes: { n1: 'both', n2: 'both', n3: 'receive' }, nodeFlags });
  const c = cluster;
  for (const id of NODES) await c.startNode(id); // n1 first: it leads
  await c.waitAllUp();
  const victim = c.nodes.get(VICTIM)!;
  const victimUrl = `http://127.0.0.1:${victim.port}`;

  client = new LoadClient({ url: c.haproxy.url, rate: 120, concurrency: 32, attemptTimeoutMs: 30_000 });
  client.start();
  const openSegments = () => readdirSync(join(c.spool, 'nodes', VICTIM)).filter((n) => n.endsWith('.open'));
  await waitFor('the victim to have an open segment', () => openSegments().length > 0, 30_000, 100);

  const pid = victim.pid!;
  process.kill(pid, 'SIGSTOP');
  const stoppedAt = performance.now();
  // Requests sent to the stopped node itself: it reads them only once resumed.
  const probes = Array.from({ length: 8 }, (_, i) => probe(`${victimUrl}/v1/requests`, i));
  const leadLog = () => c.logTail('n1', 10_000_000);
  await waitFor('the leader to take the stopped node over', () => /took over open segment of a dead node/.test(leadLog()), 60_000, 100);
  const stoppedMs = performance.now() - stoppedAt;
  await sleep(500);
  process.kill(pid, 'SIGCONT');

  const probeAnswers = await Promise.all(probes);
  const exited = await waitFor('the resumed node to stop by itself', () => victim.selfExits.length > 0, 60_000, 100);
  assert.ok(exited);
  const victimLog = victim.selfExits.join('\n');
  // As a supervisor would: start it again; it takes its lock back once the leader has let go.
  nodeFlags[VICTIM] = STALE_FLAGS;
  await c.startNode(VICTIM);
  await c.waitAllUp(60_000);
  await sleep(2000); // traffic on the whole cluster again
  await client.stop(60_000);

  const drained = await c.waitDrained(60_000);
  const report = checkDelivery({ acked: client.acked, sent: client.sent, rows: drained.rows.filter((r) => !r.idempotency_key?.startsWith('probe-')) });
  const probeRows = drained.rows.filter((r) => r.idempotency_key?.startsWith('probe-')).length;
  const probeStatuses = probeAnswers.map((a) => a.status);
  const probeErrors = probeAnswers.map((a) => a.error).filter((e) => e);
  const figures = {
    sent: client.sent.size,
    acked: client.acked.size,
    refused: client.raw5xx,
    connErrors: client.connErrors,
    lost: report.lost.length,
    duplicated: report.duplicated.length,
    unexpected: report.unexpected.length,
    stoppedMs: Math.round(stoppedMs),
    probesSentToStoppedNode: probes.length,
    probesAcked: probeStatuses.filter((s) => s === 202).length,
    probesRefused: probeStatuses.filter((s) => s === 503).length,
    probeRowsStored: probeRows,
    probeErrors,
    victimExit: victim.exits[0],
  };
  t.diagnostic(`stalled writer figures: ${JSON.stringify(figures)}`);
  t.diagnostic(`answers: {${client.summary()}}; ${formatReport(report)}`);

  // The node refreshed its lock at most one refresh period before the stop; the leader takes it
  // only after watching it stand still for the stale time.
  const earliest = LOCK_STALE_MS - lockUpdateMs(LOCK_STALE_MS);
  assert.ok(stoppedMs >= earliest, `taken over ${Math.round(stoppedMs)} ms after the stop, before the lock could be stale (${earliest} ms)`);
  assert.deepEqual(probeStatuses, probes.map(() => 503), 'the resumed node refuses what reached it while stopped');
  assert.match(victimLog, /node lock lost|taken over/, 'the resumed node says why it stops');
  assert.equal(victim.exits[0], '1', 'the resumed node exits with code 1');
  assertNoLossNoDuplicate(report);
  assert.deepEqual(client.wrongAnswers, []);
  assert.deepEqual(client.failed, [], 'every key was acknowledged in the end (clients retry a 503 elsewhere)');
  assert.equal(report.stored, report.sent, 'one row per key sent');
  assert.deepEqual(drained.leftover, [], 'segments left in the spool after the final drain');
  assert.deepEqual(
    NODES.filter((id) => id !== VICTIM).flatMap((id) => c.nodes.get(id)!.selfExits),
    [],
    'no other node stopped',
  );
});


/** One POST on its own connection (the kernel queues it while the node is stopped); its status, or -1 and the error. */
function probe(url: string, i: number): Promise<{ status: number; error?: string }> {
  const body = JSON.stringify({ payload: { probe: i }, callback_url: 'https://example.com/hook' });
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'idempotency-key': `probe-${i}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      res.on('error', (err) => resolve({ status: -1, error: err.message }));
    });
    req.setTimeout(120_000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: -1, error: err.message }));
    req.end(body);
  });
}

// kill -9 of random nodes under load, as a scenario the test files run on a local spool folder
// and on GlusterFS: three nodes behind a real HAProxy, sharing a spool and a real PostgreSQL,
// take a steady stream of keyed requests while one node after another is SIGKILLed and
// restarted with the same id and port (at least one node stays up throughout). After
// everything settles and drains: zero lost, zero duplicated, nothing unexpected.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { assertNoLossNoDuplicate, checkDelivery, formatReport, prng } from '../chaos/checker.js';
import { sleep } from '../helpers/http.js';
import { lbFigures, LoadClient, startCluster, type Cluster, type ScenarioOptions } from './harness.js';

export const KILL_NODES = ['n1', 'n2', 'n3'];
const NODES = KILL_NODES;
const CONCURRENCY = 32;
/** A node is killed only while another one has been up this long (HAProxy has seen it UP). */
const OTHER_UP_MS = 1000;

export interface KillScenario extends ScenarioOptions {
  kills: number;
  /** How long to wait for a node that may be killed (the others up, it restarted); default 30 s. */
  killWaitMs?: number;
}

let cluster: Cluster | null = null;
let client: LoadClient | null = null;

/** For an after() hook: also when the test body hangs past its timeout, nothing may outlive the file. */
export async function closeKillScenario(): Promise<void> {
  await client?.stop(0).catch(() => undefined);
  await cluster?.close();
}

export async function runKillScenario(t: TestContext, o: KillScenario): Promise<void> {
  const seed = process.env.INTAKE_CHAOS_SEED ? Number(process.env.INTAKE_CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  const rand = prng(seed);
  const restarts: Promise<void>[] = [];
  try {
    cluster = await startCluster({ nodes: NODES, prefix: 'intake-kill-', spools: o.spools?.(NODES), startTimeoutMs: o.startTimeoutMs, flags: o.nodeFlags, env: o.env });
    const c = cluster;
    for (const id of NODES) await c.startNode(id);
    await c.waitAllUp();

    client = new LoadClient({ url: c.haproxy.url, rate: o.rate, concurrency: CONCURRENCY });
    client.start();
    await sleep(1000);

    const restarting = new Set<string>();
    const restartErrors: string[] = [];
    const restartMs: number[] = [];
    const log: string[] = [];
    const upFor = (id: string) => {
      const since = c.nodes.get(id)!.upSince;
      return since === null ? -1 : performance.now() - since;
    };
    const t0 = performance.now();
    const restart = (id: string, pause: number, why: string) => {
      restarting.add(id);
      restarts.push(
        (async () => {
          await sleep(pause);
          const t1 = performance.now();
          try {
            await c.startNode(id);
            restartMs.push(performance.now() - t1);
          } catch (err) {
            restartErrors.push(`${id} (${why}): ${(err as Error).message}`);
          } finally {
            restarting.delete(id);
          }
        })(),
      );
    };
    // As a supervisor would: a node that stopped by itself is started again (the test still fails on it).
    const supervise = () => {
      for (const id of NODES) if (!restarting.has(id) && c.nodes.get(id)!.pid === null) restart(id, 300, 'after stopping by itself');
    };
    let kills = 0;
    while (kills < o.kills) {
      await sleep(300 + rand() * 700);
      supervise();
      // Any node may be the victim, once it runs and another one has been up for a while.
      const victim = NODES[Math.floor(rand() * NODES.length)]!;
      const canKill = () => !restarting.has(victim) && upFor(victim) >= 0 && NODES.some((o) => o !== victim && upFor(o) >= OTHER_UP_MS);
      const killWaitMs = o.killWaitMs ?? 30_000;
      const deadline = performance.now() + killWaitMs;
      while (!canKill() && performance.now() < deadline) {
        await sleep(50);
        supervise();
      }
      if (!canKill()) {
        const why = [...restartErrors, ...NODES.flatMap((id) => c.nodes.get(id)!.selfExits)];
        throw new Error(`node ${victim} could not be killed safely within ${killWaitMs / 1000} s:\n${why.join('\n')}`);
      }
      const pause = Math.round(300 + rand() * 500);
      restarting.add(victim);
      await c.killNode(victim);
      kills++;
      log.push(`${((performance.now() - t0) / 1000).toFixed(1)}s:${victim}+${pause}ms`);
      restarting.delete(victim);
      restart(victim, pause, 'after kill -9');
    }
    const settle = performance.now() + 30_000;
    while ((restarting.size > 0 || NODES.some((id) => c.nodes.get(id)!.pid === null)) && performance.now() < settle) {
      supervise();
      await sleep(100);
    }
    await c.waitAllUp().catch((err: Error) => restartErrors.push(err.message));
    await sleep(1500); // load on the whole cluster again
    await client.stop(60_000);

    const drained = await c.waitDrained(o.drainTimeoutMs ?? 60_000);
    const selfExits = NODES.flatMap((id) => c.nodes.get(id)!.selfExits);
    const report = checkDelivery({ acked: client.acked, sent: client.sent, rows: drained.rows });
    const figures = {
      storage: c.spools.kind,
      nodeFlags: (o.nodeFlags ?? []).join(' '),
      env: o.env ?? {},
      seed,
      kills,
      sent: client.sent.size,
      acked: client.acked.size,
      stored: report.stored,
      lost: report.lost.length,
      duplicated: report.duplicated.length,
      unexpected: report.unexpected.length,
      clientVisibleFailures: client.failed.length,
      raw5xx: client.raw5xx,
      connErrors: client.connErrors,
      ...lbFigures(await c.haproxy.stats()),
      attempts: client.attempts,
      retries: client.retries,
      maxKeyMs: Math.round(client.maxKeyMs),
      maxRestartMs: Math.round(Math.max(0, ...restartMs)),
      nodesStoppedByThemselves: selfExits.length,
      loadSeconds: Number((client.elapsedMs / 1000).toFixed(1)),
      reqPerSecond: Number(client.rate().toFixed(1)),
    };
    t.diagnostic(`kill -9 figures: ${JSON.stringify(figures)}`);
    t.diagnostic(`kills (node+restart pause): ${log.join(' ')}`);
    t.diagnostic(`answers: {${client.summary()}}; ${formatReport(report)}`);

    assert.equal(kills, o.kills, `only ${kills} kills`);
    assert.deepEqual(drained.leftover, [], 'segments left in the spool after the final drain');
    assertNoLossNoDuplicate(report);
    assert.deepEqual(client.wrongAnswers, [], 'answers a correct cluster never gives');
    assert.deepEqual(client.failed, [], 'requests that failed from the client’s view after its retries');
    assert.equal(report.acked, report.sent, 'every key sent was acknowledged');
    assert.equal(report.stored, report.sent, 'one row per key sent');
    // Only the kills stop nodes: a node that stops by itself (say its node lock was taken from it) is a bug.
    assert.deepEqual(selfExits, [], 'nodes that stopped by themselves during the run');
    assert.deepEqual(restartErrors, [], 'every killed node restarted with its id and port');
    assert.ok(
      client.rate() >= o.minRate,
      `the client averaged ${client.rate().toFixed(1)} req/s, below the ${o.minRate} req/s this test requires (a load requirement of the test; the machine may be too slow)`,
    );
  } finally {
    await Promise.allSettled(restarts);
    if (client) await client.stop(0).catch(() => undefined);
    await cluster?.close();
  }
}

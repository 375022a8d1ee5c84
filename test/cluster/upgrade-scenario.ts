// The rolling upgrade, end to end, as a scenario the test files run on a local spool folder and
// on GlusterFS: three nodes behind a real HAProxy, sharing a spool and a real PostgreSQL, are
// upgraded by ops/rolling-upgrade.sh to a second build that adds a migration, while a client
// sends a steady stream through HAProxy. Every 202 must end up in the database exactly once, and
// no request may fail from the client's view after its retries.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { assertNoLossNoDuplicate, checkDelivery, formatReport } from '../chaos/checker.js';
import { repoRoot } from '../helpers/daemon.js';
import { sleep } from '../helpers/http.js';
import { lbFigures, LoadClient, makeSecondBuild, runIntake, startCluster, type Cluster, type ScenarioOptions } from './harness.js';

export const UPGRADE_NODES = ['n1', 'n2', 'n3'];

const NODES = UPGRADE_NODES;
const VERSION = '0.2.0-test';
const CONCURRENCY = 32;

function runUpgrade(args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; output: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    // Its own process group, so a hung run can be killed with everything it started.
    const p = spawn('bash', [join(repoRoot, 'ops', 'rolling-upgrade.sh'), ...args], { env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d) => (output += d));
    p.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      output += `\n(test: killed after ${timeoutMs} ms)\n`;
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: performance.now() - t0 });
    });
  });
}

async function columnExists(db: string, column: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: db });
  await c.connect();
  try {
    const r = await c.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'requests' AND column_name = $1", [column]);
    return r.rowCount === 1;
  } finally {
    await c.end();
  }
}

export interface UpgradeScenario extends ScenarioOptions {
  /** How long ops/rolling-upgrade.sh may run (default 150 s). */
  upgradeTimeoutMs?: number;
}

let cluster: Cluster | null = null;
let client: LoadClient | null = null;

/** For an after() hook: also when the test body hangs past its timeout, nothing may outlive the file. */
export async function closeUpgradeScenario(): Promise<void> {
  await client?.stop(0).catch(() => undefined);
  await cluster?.close();
}

export async function runUpgradeScenario(t: TestContext, o: UpgradeScenario): Promise<void> {
  try {
    cluster = await startCluster({ nodes: NODES, prefix: 'intake-upgrade-', spools: o.spools?.(NODES), startTimeoutMs: o.startTimeoutMs, flags: o.nodeFlags, env: o.env });
    const c = cluster;
    const { dir: build2, schema: newSchema } = makeSecondBuild(c.build, join(c.dir, 'build2'), VERSION);
    for (const id of NODES) await c.startNode(id); // the current build (a snapshot of it)
    await c.waitAllUp();
    const { start, stop } = c.writeScripts();
    const intake2 = `${process.execPath} ${join(build2, 'bin', 'intake.js')}`;
    // The operator CLI judges liveness as the nodes do (the later --dead-after-ms wins, as for a node).
    const flags = ['--dead-after-ms', '1500', ...(o.nodeFlags ?? [])];
    const env = { INTAKE_DB: c.db, INTAKE_SPOOL: c.spool, INTAKE_DEAD_AFTER_MS: flags[flags.lastIndexOf('--dead-after-ms') + 1]! };

    client = new LoadClient({ url: c.haproxy.url, rate: o.rate, concurrency: CONCURRENCY });
    client.start();
    await sleep(2000);
    const ackedBefore = client.acked.size;
    const up = await runUpgrade(
      [
        '--nodes', NODES.join(' '),
        '--stop', `${stop} {node}`,
        '--start', `${start} ${build2} {node}`,
        '--intake', intake2,
        '--spool', c.spool,
        '--migrate', `${intake2} migrate --db ${c.db}`,
        '--idle-ms', '600',
        '--timeout', '60',
      ],
      env,
      o.upgradeTimeoutMs ?? 150_000,
    );
    const ackedDuring = client.acked.size - ackedBefore;
    await sleep(2000); // load continues on the upgraded cluster
    await client.stop(60_000);
    t.diagnostic(`rolling-upgrade.sh exited ${up.code} after ${(up.ms / 1000).toFixed(1)} s:\n${up.output.trimEnd()}`);

    const drained = await c.waitDrained(up.code === 0 ? (o.drainTimeoutMs ?? 60_000) : 5_000); // a failed run leaves the nodes in receive mode
    const report = checkDelivery({ acked: client.acked, sent: client.sent, rows: drained.rows });
    const figures = {
      storage: c.spools.kind,
      nodeFlags: (o.nodeFlags ?? []).join(' '),
      env: o.env ?? {},
      sent: client.sent.size,
      acked: client.acked.size,
      stored: report.stored,
      ackedDuringUpgrade: ackedDuring,
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
      upgradeSeconds: Number((up.ms / 1000).toFixed(1)),
      loadSeconds: Number((client.elapsedMs / 1000).toFixed(1)),
      reqPerSecond: Number(client.rate().toFixed(1)),
    };
    t.diagnostic(`rolling upgrade figures: ${JSON.stringify(figures)}`);
    t.diagnostic(`answers: {${client.summary()}}; ${formatReport(report)}`);

    assert.equal(up.code, 0, `rolling-upgrade.sh failed:\n${up.output}`);
    // The old processes stopped gracefully (SIGTERM -> exit 0), each exactly once.
    for (const id of NODES) assert.deepEqual(c.nodes.get(id)!.exits, ['0'], `node ${id} of the first build did not stop cleanly:\n${c.logTail(id)}`);

    const status = await runIntake(build2, ['status', '--json', '--spool', c.spool, '--db', c.db], env);
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { nodes: { id: string; live: boolean; version: string; mode: string; modeError: string | null }[]; database: { current?: number } };
    t.diagnostic(`status: ${JSON.stringify(s.nodes.map((n) => ({ id: n.id, live: n.live, version: n.version, mode: n.mode })))}`);
    assert.deepEqual(
      s.nodes.map((n) => ({ id: n.id, live: n.live, version: n.version, mode: n.mode, modeError: n.modeError })).sort((a, b) => (a.id < b.id ? -1 : 1)),
      NODES.map((id) => ({ id, live: true, version: VERSION, mode: 'both', modeError: null })),
      'every node runs the second build in mode both',
    );
    const v = await runIntake(build2, ['db', 'version', '--json', '--db', c.db], env);
    assert.equal(v.code, 0, v.stderr);
    const schema = JSON.parse(v.stdout) as { current: number; latest: number };
    assert.equal(schema.current, newSchema, `schema after the upgrade: ${v.stdout}`);
    assert.equal(schema.latest, newSchema);
    assert.ok(await columnExists(c.db, 'note'), `migration ${newSchema} added requests.note`);

    assert.deepEqual(drained.leftover, [], 'segments left in the spool after the backlog drained');
    assert.deepEqual(client.wrongAnswers, [], 'answers a correct cluster never gives');
    assert.deepEqual(client.failed, [], 'requests that failed from the client’s view after its retries');
    assertNoLossNoDuplicate(report);
    assert.equal(report.acked, report.sent, 'every key sent was acknowledged');
    assert.equal(report.stored, report.sent, 'one row per key sent');
    assert.ok(ackedDuring > 0, 'requests were acknowledged while the upgrade ran');
    assert.ok(
      client.rate() >= o.minRate,
      `the client averaged ${client.rate().toFixed(1)} req/s, below the ${o.minRate} req/s this test requires (a load requirement of the test; the machine may be too slow)`,
    );
  } finally {
    if (client) await client.stop(0).catch(() => undefined);
    await cluster?.close();
  }
}

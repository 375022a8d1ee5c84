// The cluster scenarios on a real network file system: one GlusterFS volume for this file,
// mounted once per node (each node its own FUSE client and caches, as on separate hosts) and
// once for the test and the operator CLI. The same scenarios as on a local folder
// (takeover-scenario.ts, kill-scenario.ts, upgrade-scenario.ts), with fewer kills than locally
// (8 instead of 24) to keep CI time down; each prints its figures with `storage: glusterfs`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/daemon.js';
import { startGlusterVolume, type GlusterVolume } from '../helpers/gluster.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { closeKillScenario, KILL_NODES, runKillScenario } from './kill-scenario.js';
import { DEAD_NODE_TAKEOVER_NODES, deadNodeTakeover, killStartedNodes, LEADER_DIES_TAKEOVER_NODES, leaderDiesTakeover } from './takeover-scenario.js';
import { closeUpgradeScenario, runUpgradeScenario, UPGRADE_NODES } from './upgrade-scenario.js';

let volume: GlusterVolume | null = null;
let pgServer: PgServer | null = null;

before(async () => {
  volume = await startGlusterVolume({ mounts: 4 });
  pgServer = await startPostgres();
});
after(async () => {
  await killStartedNodes();
  await closeKillScenario();
  await closeUpgradeScenario();
  await pgServer?.close();
  await volume?.close();
});

async function migratedDb(): Promise<string> {
  const url = await pgServer!.createDatabase();
  const m = await runCli(['migrate', '--db', url]);
  assert.equal(m.code, 0, m.stderr);
  return url;
}

describe('the cluster on GlusterFS, one mount per node', () => {
  test("a dead node's open segment is sealed by the leader and drained by another node", { timeout: 90_000 }, async (t) => {
    await deadNodeTakeover(t, volume!.spoolDirs('dead-node', DEAD_NODE_TAKEOVER_NODES), await migratedDb());
  });

  test('the leader dies with an open segment: the next leader seals it and it is drained', { timeout: 90_000 }, async (t) => {
    await leaderDiesTakeover(t, volume!.spoolDirs('leader-dies', LEADER_DIES_TAKEOVER_NODES), await migratedDb());
  });

  test('kill -9 of random nodes (8 kills) behind HAProxy under load: zero lost, zero duplicated', { timeout: 240_000 }, async (t) => {
    await runKillScenario(t, { kills: 8, rate: 250, minRate: 200, spools: (nodes) => volume!.spoolDirs('kill', nodes), startTimeoutMs: 60_000 });
  });

  test('rolling upgrade of 3 nodes behind HAProxy under load: nothing lost, nothing refused', { timeout: 240_000 }, async (t) => {
    await runUpgradeScenario(t, { rate: 250, minRate: 200, spools: (nodes) => volume!.spoolDirs('upgrade', nodes), startTimeoutMs: 60_000 });
  });
});

// The node ids of the scenarios must fit the mounts (one per node plus the operator's).
assert.ok(Math.max(KILL_NODES.length, UPGRADE_NODES.length, DEAD_NODE_TAKEOVER_NODES.length, LEADER_DIES_TAKEOVER_NODES.length) + 1 <= 4);

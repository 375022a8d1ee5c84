// The cluster scenarios on a real network file system: one GlusterFS volume for this file,
// mounted once per node (each node its own FUSE client and caches, as on separate hosts) and
// once for the test and the operator CLI. The same scenarios as on a local folder
// (takeover-scenario.ts, kill-scenario.ts, upgrade-scenario.ts), with fewer kills than locally
// (8 instead of 24) to keep CI time down; each prints its figures with `storage: glusterfs`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSpoolMount, MountCodes } from '../../src/spool/mount-check.js';
import { runCli } from '../helpers/daemon.js';
import { startGlusterVolume, type GlusterVolume } from '../helpers/gluster.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { closeKillScenario, KILL_NODES, runKillScenario } from './kill-scenario.js';
import { DEAD_NODE_TAKEOVER_NODES, deadNodeTakeover, killStartedNodes, LEADER_DIES_TAKEOVER_NODES, leaderDiesTakeover } from './takeover-scenario.js';
import { closeUpgradeScenario, runUpgradeScenario, UPGRADE_NODES } from './upgrade-scenario.js';

/**
 * Every file operation here is a round trip through a FUSE client and the brick (tens of ms each
 * on a loaded 2-core machine, against well under one locally), and a node's libuv threads wait on
 * them in turn. So the nodes run at the production defaults for sealing and scanning and closer
 * to them for liveness than the local scenarios (which seal and scan every 100-200 ms, beat every
 * 200 ms, judge dead after 1.5 s and locks stale after 2 s), with more libuv threads; the client
 * sends less, and restarts and the final drain may take longer. The rate the test requires is
 * only that the load ran: this machine's speed on GlusterFS is not what is tested.
 */
const SHARED_FS_FLAGS = ['--heartbeat-ms', '500', '--dead-after-ms', '4000', '--lock-stale-ms', '8000', '--scan-interval-ms', '500', '--seal-after-ms', '1000'];
const SCENARIO = {
  rate: 100,
  minRate: 10,
  startTimeoutMs: 90_000,
  drainTimeoutMs: 180_000,
  nodeFlags: SHARED_FS_FLAGS,
  env: { UV_THREADPOOL_SIZE: '16' },
};

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
  test('the start-time mount check: quiet on these mounts, INTAKE_SPOOL_MOUNT_CACHE on a mount with the kernel caches on', { timeout: 60_000 }, async () => {
    const limits = { lockStaleMs: 10_000, deadAfterMs: 3000 };
    const good = await checkSpoolMount(volume!.mounts[1]!, limits);
    assert.equal(good.mount?.fsType, 'fuse.glusterfs');
    assert.deepEqual(good.warnings, []);
    const cached = await checkSpoolMount(await volume!.mount(''), limits);
    assert.equal(cached.mount?.fsType, 'fuse.glusterfs');
    assert.deepEqual(cached.warnings.map((w) => w.code), [MountCodes.cache, MountCodes.cache], JSON.stringify(cached.warnings));
  });

  test("a dead node's open segment is sealed by the leader and drained by another node", { timeout: 90_000 }, async (t) => {
    await deadNodeTakeover(t, volume!.spoolDirs('dead-node', DEAD_NODE_TAKEOVER_NODES), await migratedDb());
  });

  test('the leader dies with an open segment: the next leader seals it and it is drained', { timeout: 90_000 }, async (t) => {
    await leaderDiesTakeover(t, volume!.spoolDirs('leader-dies', LEADER_DIES_TAKEOVER_NODES), await migratedDb());
  });

  test('kill -9 of random nodes (8 kills) behind HAProxy under load: zero lost, zero duplicated', { timeout: 420_000 }, async (t) => {
    await runKillScenario(t, { ...SCENARIO, kills: 8, killWaitMs: 120_000, spools: (nodes) => volume!.spoolDirs('kill', nodes) });
  });

  test('rolling upgrade of 3 nodes behind HAProxy under load: nothing lost, nothing refused', { timeout: 600_000 }, async (t) => {
    await runUpgradeScenario(t, { ...SCENARIO, upgradeTimeoutMs: 300_000, spools: (nodes) => volume!.spoolDirs('upgrade', nodes) });
  });
});

// The node ids of the scenarios must fit the mounts (one per node plus the operator's).
assert.ok(Math.max(KILL_NODES.length, UPGRADE_NODES.length, DEAD_NODE_TAKEOVER_NODES.length, LEADER_DIES_TAKEOVER_NODES.length) + 1 <= 4);

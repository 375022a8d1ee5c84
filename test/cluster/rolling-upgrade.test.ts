// The rolling upgrade of three nodes under load on one local spool folder (the scenario:
// upgrade-scenario.ts; on GlusterFS: on-gluster.test.ts).
import { after, test } from 'node:test';
import { closeUpgradeScenario, runUpgradeScenario } from './upgrade-scenario.js';

// The heaviest runs of the suite: a lock refresh (every lock-stale/2) that waits behind the
// spool's fsyncs in libuv's pool must not lose a live node its lock; 3 s leaves it 1.5 s.
const LOADED_FLAGS = ['--lock-stale-ms', '3000'];
after(closeUpgradeScenario);

test('rolling upgrade of 3 nodes behind HAProxy under load: nothing lost, nothing refused', { timeout: 240_000 }, async (t) => {
  await runUpgradeScenario(t, { rate: 250, minRate: 200, nodeFlags: LOADED_FLAGS });
});

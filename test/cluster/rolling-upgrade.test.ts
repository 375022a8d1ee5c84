// The rolling upgrade of three nodes under load on one local spool folder (the scenario:
// upgrade-scenario.ts; on GlusterFS: on-gluster.test.ts).
import { after, test } from 'node:test';
import { LOADED_FLAGS } from './harness.js';
import { closeUpgradeScenario, runUpgradeScenario } from './upgrade-scenario.js';

after(closeUpgradeScenario);

test('rolling upgrade of 3 nodes behind HAProxy under load: nothing lost, nothing refused', { timeout: 240_000 }, async (t) => {
  await runUpgradeScenario(t, { rate: 250, minRate: 200, nodeFlags: LOADED_FLAGS });
});

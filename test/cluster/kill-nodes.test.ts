// kill -9 of random nodes under load on one local spool folder (the scenario: kill-scenario.ts;
// on GlusterFS: on-gluster.test.ts).
import { after, test } from 'node:test';
import { LOADED_FLAGS } from './harness.js';
import { closeKillScenario, runKillScenario } from './kill-scenario.js';

const KILLS = 24;
after(closeKillScenario);

test(`kill -9 of random nodes (${KILLS} kills) behind HAProxy under load: zero lost, zero duplicated`, { timeout: 240_000 }, async (t) => {
  await runKillScenario(t, { kills: KILLS, rate: 250, minRate: 200, nodeFlags: LOADED_FLAGS });
});

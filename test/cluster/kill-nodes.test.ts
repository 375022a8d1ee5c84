// kill -9 of random nodes under load on one local spool folder (the scenario: kill-scenario.ts;
// on GlusterFS: on-gluster.test.ts).
import { after, test } from 'node:test';
import { closeKillScenario, runKillScenario } from './kill-scenario.js';

const KILLS = 24;
// The heaviest runs of the suite: a lock refresh (every lock-stale/2) that waits behind the
// spool's fsyncs in libuv's pool must not lose a live node its lock; 3 s leaves it 1.5 s.
const LOADED_FLAGS = ['--lock-stale-ms', '3000'];
after(closeKillScenario);

test(`kill -9 of random nodes (${KILLS} kills) behind HAProxy under load: zero lost, zero duplicated`, { timeout: 240_000 }, async (t) => {
  await runKillScenario(t, { kills: KILLS, rate: 250, minRate: 200, nodeFlags: LOADED_FLAGS });
});

// intake node drain|undrain ID: take a node out of the load balancer (its /readyz fails) and back.
import type { Command } from 'commander';
import { setDrained } from '../cluster/desired.js';
import { readHeartbeats } from '../cluster/heartbeat.js';
import { fail, jsonFlag, out, positive, sleep, spoolFlag, spoolOf } from './options.js';
import { Progress } from './progress.js';

export function registerNode(program: Command): void {
  const node = program.command('node').description('take a node out of the load balancer and back');

  node
    .command('drain <id>')
    .description('make the node fail its readiness check; it keeps serving what it already accepted')
    .option('--wait', 'return when the node has seen no new request for --idle-ms')
    .option('--idle-ms <n>', "with --wait: quiet time to wait for (at least the load balancer's check interval)", '2000')
    .option('--timeout <s>', 'with --wait: give up after this many seconds', '60')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (id: string, o: { wait?: boolean; idleMs: string; timeout: string; json?: boolean; spool?: string }) => {
      const idleMs = positive(o.idleMs, '--idle-ms', { zero: true });
      const timeoutS = positive(o.timeout, '--timeout');
      const root = spoolOf(o);
      await setDrained(root, id, true);
      if (!o.wait) {
        out(o, { node: id, drained: true }, `node ${id} drained`);
        return;
      }
      const deadline = performance.now() + timeoutS * 1000;
      const progress = new Progress();
      for (;;) {
        const hb = (await readHeartbeats(root)).find((h) => h.node === id);
        if (!hb) {
          progress.done();
          out(o, { node: id, drained: true, running: false, idleMs: null }, `node ${id} drained (it has no heartbeat: not running)`);
          return;
        }
        if (hb.drained && (hb.idleMs === null || hb.idleMs >= idleMs)) {
          progress.done();
          out(o, { node: id, drained: true, running: true, idleMs: hb.idleMs }, `node ${id} drained and quiet for ${hb.idleMs ?? 'ever'} ms`);
          return;
        }
        if (performance.now() > deadline) {
          progress.done();
          fail(`node ${id} still receiving requests after ${o.timeout} s (drained=${hb.drained}, idle ${hb.idleMs} ms)`);
        }
        progress.update(`node ${id}: ${hb.drained ? `drained, quiet for ${hb.idleMs} ms of ${idleMs}` : 'has not seen the drain flag yet'}`);
        await sleep(200);
      }
    });

  node
    .command('undrain <id>')
    .description('let the node pass its readiness check again')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (id: string, o: { json?: boolean; spool?: string }) => {
      await setDrained(spoolOf(o), id, false);
      out(o, { node: id, drained: false }, `node ${id} undrained`);
    });

  registerNodeWait(node);
}

/** Registered by registerNode: wait for a node to be up (used by ops/rolling-upgrade.sh). */
export function registerNodeWait(node: Command): void {
  node
    .command('wait <id>')
    .description('wait until the node runs: its heartbeat exists and its counter advances')
    .option('--timeout <s>', 'give up after this many seconds', '60')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (id: string, o: { timeout: string; json?: boolean; spool?: string }) => {
      const timeoutS = positive(o.timeout, '--timeout');
      const root = spoolOf(o);
      const deadline = performance.now() + timeoutS * 1000;
      const progress = new Progress();
      const t0 = performance.now();
      let first: number | null = null;
      for (;;) {
        const hb = (await readHeartbeats(root)).find((h) => h.node === id);
        if (hb) {
          if (first === null) first = hb.counter;
          else if (hb.counter !== first) {
            progress.done();
            const state = hb.ready ? 'ready' : hb.drained ? 'drained' : 'not ready';
            out(o, { node: id, up: true, version: hb.version, mode: hb.mode, ready: hb.ready, drained: hb.drained }, `node ${id} is up (version ${hb.version}, mode ${hb.mode}, ${state})`);
            return;
          }
        }
        if (performance.now() > deadline) {
          progress.done();
          fail(`node ${id} did not come up within ${o.timeout} s`);
        }
        progress.update(`waiting for node ${id}: ${hb ? 'heartbeat found, waiting for it to advance' : 'no heartbeat yet'} (${Math.round((performance.now() - t0) / 1000)} s)`);
        await sleep(200);
      }
    });
}

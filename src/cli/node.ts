// intake node drain|undrain ID: take a node out of the load balancer (its /readyz fails) and back.
import type { Command } from 'commander';
import { setDrained } from '../cluster/desired.js';
import { readHeartbeats } from '../cluster/heartbeat.js';
import { fail, sleep, spoolFlag, spoolOf } from './options.js';

export function registerNode(program: Command): void {
  const node = program.command('node').description('take a node out of the load balancer and back');

  node
    .command('drain <id>')
    .description('make the node fail its readiness check; it keeps serving what it already accepted')
    .option('--wait', 'return when the node has seen no new request for --idle-ms')
    .option('--idle-ms <n>', "with --wait: quiet time to wait for (at least the load balancer's check interval)", '2000')
    .option('--timeout <s>', 'with --wait: give up after this many seconds', '60')
    .option(...spoolFlag)
    .action(async (id: string, o: { wait?: boolean; idleMs: string; timeout: string; spool?: string }) => {
      const root = spoolOf(o);
      await setDrained(root, id, true);
      if (!o.wait) {
        process.stdout.write(`node ${id} drained\n`);
        return;
      }
      const deadline = performance.now() + Number(o.timeout) * 1000;
      for (;;) {
        const hb = (await readHeartbeats(root)).find((h) => h.node === id);
        if (!hb) {
          process.stdout.write(`node ${id} drained (it has no heartbeat: not running)\n`);
          return;
        }
        if (hb.drained && (hb.idleMs === null || hb.idleMs >= Number(o.idleMs))) {
          process.stdout.write(`node ${id} drained and quiet for ${hb.idleMs ?? 'ever'} ms\n`);
          return;
        }
        if (performance.now() > deadline) fail(`node ${id} still receiving requests after ${o.timeout} s (drained=${hb.drained}, idle ${hb.idleMs} ms)`);
        await sleep(200);
      }
    });

  node
    .command('undrain <id>')
    .description('let the node pass its readiness check again')
    .option(...spoolFlag)
    .action(async (id: string, o: { spool?: string }) => {
      await setDrained(spoolOf(o), id, false);
      process.stdout.write(`node ${id} undrained\n`);
    });

  registerNodeWait(node);
}

/** Registered by registerNode: wait for a node to be up (used by ops/rolling-upgrade.sh). */
export function registerNodeWait(node: Command): void {
  node
    .command('wait <id>')
    .description('wait until the node runs: its heartbeat exists and its counter advances')
    .option('--timeout <s>', 'give up after this many seconds', '60')
    .option(...spoolFlag)
    .action(async (id: string, o: { timeout: string; spool?: string }) => {
      const root = spoolOf(o);
      const deadline = performance.now() + Number(o.timeout) * 1000;
      let first: number | null = null;
      for (;;) {
        const hb = (await readHeartbeats(root)).find((h) => h.node === id);
        if (hb) {
          if (first === null) first = hb.counter;
          else if (hb.counter !== first) {
            process.stdout.write(`node ${id} is up (version ${hb.version}, mode ${hb.mode}, ${hb.ready ? 'ready' : hb.drained ? 'drained' : 'not ready'})\n`);
            return;
          }
        }
        if (performance.now() > deadline) fail(`node ${id} did not come up within ${o.timeout} s`);
        await sleep(200);
      }
    });
}

// intake mode receive|save|both [--node ID | --all] [--wait] [--timeout S]
import type { Command } from 'commander';
import { MODES, type Mode } from '../config.js';
import { updateDesired } from '../cluster/desired.js';
import { Membership } from '../cluster/membership.js';
import { deadAfterFlag, deadAfterOf, fail, jsonFlag, out, positive, sleep, spoolFlag, spoolOf } from './options.js';
import { Progress } from './progress.js';

interface Opts {
  node?: string;
  all?: boolean;
  wait?: boolean;
  timeout: string;
  spool?: string;
  deadAfterMs?: string;
  json?: boolean;
}

export function registerMode(program: Command): void {
  program
    .command('mode <mode>')
    .description(`switch nodes to ${MODES.join('|')} at run time, without a restart`)
    .option('--node <id>', 'only this node')
    .option('--all', 'every node (clears per-node settings)')
    .option('--wait', 'return only when every live node has applied it')
    .option('--timeout <s>', 'with --wait: give up after this many seconds', '60')
    .option(...spoolFlag)
    .option(...deadAfterFlag)
    .option(...jsonFlag)
    .action(async (mode: string, o: Opts) => {
      if (!(MODES as readonly string[]).includes(mode)) fail(`mode must be one of ${MODES.join(', ')}`);
      if (Boolean(o.node) === Boolean(o.all)) fail('give exactly one of --node ID or --all');
      const timeoutS = positive(o.timeout, '--timeout');
      const deadAfterMs = deadAfterOf(o);
      const root = spoolOf(o);
      const d = await updateDesired(root, (d) => {
        if (o.all) {
          d.all = mode as Mode;
          d.nodes = {};
        } else d.nodes[o.node!] = mode as Mode;
      });
      const target = o.all ? 'all nodes' : `node ${o.node}`;
      if (!o.wait) {
        out(o, { generation: d.generation, mode, target }, `desired mode of ${target} is now ${mode} (generation ${d.generation})`);
        return;
      }
      const deadline = performance.now() + timeoutS * 1000;
      const m = new Membership({ root, self: '', deadAfterMs });
      const progress = new Progress();
      const t0 = performance.now();
      for (;;) {
        const live = (await m.poll()).filter((x) => x.live);
        const errors = live.filter((x) => x.hb.generation >= d.generation && x.hb.modeError && (o.all || x.hb.node === o.node));
        const unanswered = live.filter((x) => x.hb.generation < d.generation);
        // Report failures once every live node has answered (or time is up), so all are named.
        if (errors.length > 0 && (unanswered.length === 0 || performance.now() > deadline)) {
          const waiting = unanswered.length ? `\nnot yet answered: ${unanswered.map((x) => x.hb.node).join(', ')}` : '';
          progress.done();
          fail(`could not switch:\n${errors.map((x) => `${x.hb.node}: ${x.hb.modeError}`).join('\n')}${waiting}`);
        }
        const laggards = live.filter((x) => x.hb.generation < d.generation || ((o.all || x.hb.node === o.node) && x.hb.mode !== mode));
        if (laggards.length === 0 && (o.all || live.some((x) => x.hb.node === o.node))) {
          progress.done();
          out(o, { generation: d.generation, mode, target, nodes: live.map((x) => x.hb.node) }, `${target}: ${mode} (generation ${d.generation}) applied by ${live.map((x) => x.hb.node).join(', ')}`);
          return;
        }
        if (performance.now() > deadline) {
          progress.done();
          fail(`timed out after ${o.timeout} s; not yet applied by: ${laggards.map((x) => `${x.hb.node} (generation ${x.hb.generation}, mode ${x.hb.mode})`).join(', ') || `${o.node} (no live heartbeat)`}`);
        }
        const waitingFor = laggards.map((x) => x.hb.node).join(', ') || `${o.node} (no live heartbeat yet)`;
        progress.update(`mode ${mode} (generation ${d.generation}): ${live.length - laggards.length}/${live.length} live node(s) applied; waiting for ${waitingFor} (${Math.round((performance.now() - t0) / 1000)} s)`);
        await sleep(200);
      }
    });
}

// intake callbacks ls|replay|purge: the failed-callback spool, for operators during incidents.
import type { Command } from 'commander';
import { bury, listAll, move, remove } from '../callbacks/failed-spool.js';
import { listed, replay, spooledEntries } from '../callbacks/replay.js';
import { fail, jsonFlag, out, spoolFlag, spoolOf } from './options.js';
import { Progress } from './progress.js';

const entries = async (root: string, which: 'retry' | 'dead') => (await spooledEntries(root, which)).entries;

export function registerCallbacks(program: Command): void {
  const cb = program.command('callbacks').description('the failed-callback spool: list, replay, purge');

  cb.command('ls')
    .description('list callbacks waiting for a retry (or, with --dead, out of attempts)')
    .option('--dead', 'list dead callbacks')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (o: { dead?: boolean; json?: boolean; spool?: string }) => {
      const which = o.dead ? 'dead' : 'retry';
      const list = (await entries(spoolOf(o), which)).map((e) => listed(e, which));
      if (o.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      for (const l of list) {
        process.stdout.write(`${l.id}  attempts=${l.attempts}  ${o.dead ? 'dead' : `due ${l.dueAt}`}  ${l.url}  last=${l.lastStatus ?? l.lastError ?? '-'}${l.outcomePending ? `  ${l.outcomePending}, waiting for the database` : ''}\n`);
      }
      process.stdout.write(`${list.length} ${o.dead ? 'dead' : 'waiting'} callback(s)\n`);
    });

  cb.command('replay')
    .description('move dead callbacks back to be retried now (with a fresh attempt budget)')
    .option('--id <webhook-id>', 'only this callback')
    .option('--host <host>', 'only callbacks to this host')
    .option('--since <time>', 'only callbacks that first failed at or after this time (ISO 8601)')
    .option('--all', 'every dead callback')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (o: { id?: string; host?: string; since?: string; all?: boolean; json?: boolean; spool?: string }) => {
      if (!o.id && !o.host && !o.since && !o.all) fail('say which: --id, --host, --since or --all');
      const since = o.since ? Date.parse(o.since) : null;
      if (o.since && !Number.isFinite(since)) fail(`--since: not a time: ${o.since}`);
      const root = spoolOf(o);
      const dead = (await entries(root, 'dead')).filter(({ entry: e }) => {
        if (o.id && e.id !== o.id) return false;
        if (o.host && new URL(e.url).hostname !== o.host) return false;
        if (since !== null && e.firstFailedAt < since) return false;
        return true;
      });
      if (o.id && dead.length === 0) fail(`no dead callback ${o.id}`);
      let n = 0;
      const progress = new Progress();
      for (const e of dead) {
        if (!(await replay(root, e, 'cli'))) continue; // replayed by someone else meanwhile
        n++;
        progress.update(`replaying dead callbacks: ${n}/${dead.length}`);
      }
      progress.done();
      out(o, { replayed: n, ids: dead.map((d) => d.entry.id) }, `replayed ${n} callback(s); every node retries them now`);
    });

  cb.command('purge')
    .description('delete one dead callback for good (it will never be sent)')
    .requiredOption('--id <webhook-id>', 'the dead callback to delete')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (o: { id: string; json?: boolean; spool?: string }) => {
      const f = (await listAll(spoolOf(o), 'dead')).find((x) => x.id === o.id);
      if (!f) fail(`no dead callback ${o.id}`);
      await remove(f.path);
      out(o, { purged: o.id }, `purged ${o.id}`);
    });

  cb.command('kill')
    .description('move a waiting callback to dead at once (stop retrying it)')
    .requiredOption('--id <webhook-id>', 'the waiting callback')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (o: { id: string; json?: boolean; spool?: string }) => {
      const root = spoolOf(o);
      const e = (await entries(root, 'retry')).find((x) => x.entry.id === o.id);
      if (!e) fail(`no waiting callback ${o.id}`);
      await move(e.path, () => bury(root, e.entry, 'cli'));
      out(o, { dead: o.id }, `moved ${o.id} to dead`);
    });
}

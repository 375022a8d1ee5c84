// intake migrate / intake db version: schema changes, applied by an operator.
import type { Command } from 'commander';
import { DEFAULTS } from '../config.js';
import { openStore } from '../store/open.js';
import { jsonFlag } from './options.js';
import { Progress } from './progress.js';

const dbOption = (): string => process.env.INTAKE_DB ?? DEFAULTS.db;

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply pending schema migrations (under a lock: a second migrator waits)')
    .option('--db <url>', `database URL (env INTAKE_DB, default ${DEFAULTS.db})`)
    .option('--dry-run', 'list what would be applied, change nothing')
    .option(...jsonFlag)
    .action(async (opts: { db?: string; dryRun?: boolean; json?: boolean }) => {
      const store = await openStore(opts.db ?? dbOption());
      const progress = new Progress();
      try {
        // One long await (a migration may rewrite big tables, or wait for another migrator's lock).
        progress.tick((s) => `${opts.dryRun ? 'checking' : 'migrating'} the schema… ${s} s`);
        const applied = await store.migrate({ dryRun: opts.dryRun ?? false }).finally(() => progress.done());
        const s = await store.schema();
        if (opts.json) process.stdout.write(JSON.stringify({ dryRun: opts.dryRun ?? false, applied, ...s }) + '\n');
        else if (applied.length === 0) process.stdout.write(`schema is up to date (v${s.current})\n`);
        else process.stdout.write(`${opts.dryRun ? 'would apply' : 'applied'} ${applied.map((v) => `v${v}`).join(', ')}; schema is v${s.current}\n`);
      } finally {
        await store.close();
      }
    });

  program
    .command('db')
    .description('database information')
    .command('version')
    .description('print the schema version of the database and the newest this build knows')
    .option('--db <url>', `database URL (env INTAKE_DB, default ${DEFAULTS.db})`)
    .option(...jsonFlag)
    .action(async (opts: { db?: string; json?: boolean }) => {
      const store = await openStore(opts.db ?? dbOption());
      try {
        const s = await store.schema();
        if (opts.json) process.stdout.write(JSON.stringify(s) + '\n');
        else process.stdout.write(`current v${s.current}, latest known v${s.latest}, save mode needs at least v${s.minSupported}\n`);
      } finally {
        await store.close();
      }
    });
}

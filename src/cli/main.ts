// The `intake` command line. One file per command group; this file only assembles them.
import { Command } from 'commander';
import { packageVersion } from '../package.js';
import { registerStart } from './start.js';
import { registerSpool } from './spool.js';
import { registerCallbacks } from './callbacks.js';
import { registerKeys } from './keys.js';
import { registerSchedules } from './schedules.js';
import { registerMigrate } from './migrate.js';
import { registerMode } from './mode.js';
import { registerNode } from './node.js';
import { registerStatus } from './status.js';
import { registerVerify } from './verify.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('intake')
    .description('zero-loss ingest daemon: HTTP intake -> group-committed spool -> database')
    .version(packageVersion, '-V, --version', 'print the version of this build')
    .showHelpAfterError()
    .exitOverride((err) => {
      // commander's own exits (help, version, usage errors) keep their exit codes
      process.exit(err.exitCode);
    });
  registerStart(program);
  registerSpool(program);
  registerCallbacks(program);
  registerKeys(program);
  registerSchedules(program);
  registerMigrate(program);
  registerMode(program);
  registerNode(program);
  registerStatus(program);
  registerVerify(program);
  await program.parseAsync(argv);
}

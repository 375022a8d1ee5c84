// intake keys create|ls|revoke: API keys, kept hashed under the spool root (cluster/keys.json);
// every node picks up a change within one heartbeat.
import type { Command } from 'commander';
import { createKey, readKeys, revokeKey, SCOPES, type Scope } from '../cluster/keys.js';
import { fail, jsonFlag, out, spoolFlag, spoolOf } from './options.js';

const list = (v: string | undefined) => (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('API keys: create (shown once), list, revoke');

  keys
    .command('create')
    .description('create a key for a tenant; the key is printed once and stored only as a hash')
    .requiredOption('--tenant <tenant>', 'the tenant the key acts for (its requests are walled off from other tenants)')
    .requiredOption('--scope <scopes>', `comma-separated scopes: ${SCOPES.join(', ')}`)
    .option('--lane <lanes>', 'comma-separated lanes a process key may claim from (default: every lane)')
    .option('--json', 'print {"id", "key", ...} as JSON')
    .option(...spoolFlag)
    .action(async (o: { tenant: string; scope: string; lane?: string; json?: boolean; spool?: string }) => {
      const scopes = list(o.scope);
      const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
      if (bad.length > 0) fail(`unknown scope ${bad.join(', ')}: use ${SCOPES.join(', ')}`);
      const { key, entry } = await createKey(spoolOf(o), { tenant: o.tenant, scopes: scopes as Scope[], lanes: list(o.lane) });
      if (o.json) {
        process.stdout.write(JSON.stringify({ id: entry.id, key, tenant: entry.tenant, scopes: entry.scopes, lanes: entry.lanes }) + '\n');
        return;
      }
      process.stdout.write(`${key}\n`);
      process.stderr.write(`key ${entry.id} for tenant ${entry.tenant} (${entry.scopes.join(', ')}${entry.lanes ? `; lanes ${entry.lanes.join(', ')}` : ''}): shown once, keep it now\n`);
    });

  keys
    .command('ls')
    .description('list keys (never the keys themselves)')
    .option('--json', 'print as JSON')
    .option(...spoolFlag)
    .action(async (o: { json?: boolean; spool?: string }) => {
      const all = (await readKeys(spoolOf(o))).keys.map(({ hash: _hash, ...k }) => k);
      if (o.json) {
        process.stdout.write(JSON.stringify(all, null, 2) + '\n');
        return;
      }
      if (all.length === 0) process.stdout.write('no keys: nodes on a loopback address (or with --insecure-no-auth) are open\n');
      for (const k of all) {
        const state = k.revoked_at ? `revoked ${k.revoked_at}` : 'active';
        process.stdout.write(`${k.id}  ${k.tenant}  ${k.scopes.join(',')}${k.lanes ? `  lanes=${k.lanes.join(',')}` : ''}  created ${k.created_at}  ${state}\n`);
      }
    });

  keys
    .command('revoke <id>')
    .description('revoke a key; every node refuses it within one heartbeat')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (id: string, o: { json?: boolean; spool?: string }) => {
      if (!(await revokeKey(spoolOf(o), id))) fail(`no key ${id} (intake keys ls lists them)`);
      out(o, { revoked: id }, `revoked ${id}`);
    });
}

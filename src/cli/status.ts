// intake status [--json]: nodes, leader, modes, backlog, schema version.
import type { Command } from 'commander';
import { readDesired } from '../cluster/desired.js';
import { leaderOf, observe } from '../cluster/observe.js';
import { listAllSegments } from '../spool/layout.js';
import { openStore } from '../store/open.js';
import { deadAfterFlag, deadAfterOf, jsonFlag, spoolFlag, spoolOf } from './options.js';
import { Progress } from './progress.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show the nodes of the cluster, the spool backlog and the schema version')
    .option(...spoolFlag)
    .option('--db <url>', 'also report this database (env INTAKE_DB)')
    .option(...deadAfterFlag)
    .option(...jsonFlag)
    .action(async (o: { spool?: string; db?: string; deadAfterMs?: string; json?: boolean }) => {
      const root = spoolOf(o);
      const deadAfterMs = deadAfterOf(o);
      // Judging liveness takes up to --dead-after-ms (a counter must be seen to advance).
      const progress = new Progress();
      progress.tick((s) => `watching the heartbeats… ${s} s`);
      const [members, segments, desired] = await Promise.all([observe(root, deadAfterMs), listAllSegments(root), readDesired(root)]).finally(() => progress.done());
      const leader = leaderOf(members);
      const spool: Record<string, { sealed: number; open: number }> = {};
      for (const s of segments) {
        const e = (spool[s.node] ??= { sealed: 0, open: 0 });
        e[s.state === 'sealed' ? 'sealed' : 'open']++;
      }
      let database: { url: string; current?: number; latest?: number; error?: string } | null = null;
      const dbUrl = o.db ?? process.env.INTAKE_DB;
      if (dbUrl) {
        database = { url: dbUrl.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') };
        try {
          const store = await openStore(dbUrl);
          try {
            const s = await store.schema();
            database.current = s.current;
            database.latest = s.latest;
          } finally {
            await store.close();
          }
        } catch (err) {
          database.error = (err as Error).message;
        }
      }
      const nodes = members.map((m) => ({
        id: m.hb.node,
        live: m.live,
        leader: m.hb.node === leader,
        mode: m.hb.mode,
        generation: m.hb.generation,
        modeError: m.hb.modeError,
        version: m.hb.version,
        ready: m.hb.ready,
        drained: m.hb.drained,
        backlog: m.hb.backlog,
        heartbeatAgeMs: Math.round(m.sinceAdvanceMs),
        url: m.hb.url,
        host: m.hb.host,
        pid: m.hb.pid,
      }));
      if (o.json) {
        process.stdout.write(JSON.stringify({ leader, desired, nodes, spool, database }, null, 2) + '\n');
        return;
      }
      const rows = [['NODE', 'LIVE', 'LEADER', 'MODE', 'GEN', 'VERSION', 'READY', 'BACKLOG', 'HB AGE', 'URL']];
      for (const n of nodes) {
        rows.push([n.id, n.live ? 'yes' : 'DEAD', n.leader ? '*' : '', n.mode + (n.modeError ? ' (!)' : ''), String(n.generation), n.version, n.ready ? 'yes' : n.drained ? 'drained' : 'no', String(n.backlog), `${n.heartbeatAgeMs}ms`, n.url]);
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
      lines.push('', `desired: generation ${desired.generation}, all=${desired.all ?? '-'}${Object.keys(desired.nodes).length ? `, ${Object.entries(desired.nodes).map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}`);
      lines.push(`spool backlog: ${Object.entries(spool).map(([k, v]) => `${k} ${v.sealed} sealed/${v.open} open`).join(', ') || 'empty'}`);
      if (database) lines.push(`database: ${database.error ? `unreachable (${database.error})` : `schema v${database.current} (this build knows v${database.latest})`}`);
      for (const n of nodes.filter((n) => n.modeError)) lines.push(`${n.id}: ${n.modeError}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}

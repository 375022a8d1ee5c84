// intake schedules add|ls|rm: cron schedules whose ticks the cluster enqueues as requests, kept
// under the spool root (cluster/schedules.json); the scheduler picks up a change within a step.
import type { Command } from 'commander';
import { addSchedule, readSchedules, removeSchedule, type Schedule } from '../cluster/schedules.js';
import { readScheduleState } from '../cluster/schedule-state.js';
import { CATCH_UP_POLICIES } from '../cluster/schedule-ticks.js';
import { DEFAULTS } from '../config.js';
import { IntakeError } from '../errors.js';
import { parseJsonBody } from '../http/json-body.js';
import { validateNewRequest } from '../intake/validate.js';
import { fail, jsonFlag, out, spoolFlag, spoolOf } from './options.js';

/** What the CLI prints of a schedule: the payload as JSON, not as text. */
const shown = (s: Schedule, lastTick: string | null = null) => ({ ...s, payload: JSON.parse(s.payload) as unknown, last_tick: lastTick });

export function registerSchedules(program: Command): void {
  const schedules = program.command('schedules').description('cron schedules: the cluster enqueues one request per tick');

  schedules
    .command('add')
    .description('add a schedule; prints it with its id')
    .requiredOption('--cron <expr>', 'cron expression in UTC: 5 fields (minute hour day month weekday) or 6 (second first)')
    .requiredOption('--tenant <tenant>', 'the tenant the requests belong to')
    .requiredOption('--callback-url <url>', 'where each request\'s result is sent')
    .requiredOption('--payload <json>', 'the payload of every request, as JSON')
    .option('--lane <lane>', 'the lane of every request')
    .option('--catch-up <policy>', `after an outage longer than the grace: ${CATCH_UP_POLICIES.join(' (no request for the missed ticks) or ')} (one request for all of them)`, 'skip')
    .option('--json', 'print the schedule as JSON')
    .option(...spoolFlag)
    .action(async (o: { cron: string; tenant: string; callbackUrl: string; payload: string; lane?: string; catchUp: string; json?: boolean; spool?: string }) => {
      let payload: unknown;
      try {
        // The parser of HTTP bodies: what it could not keep exactly (a key twice, 1e400) is refused here too.
        payload = parseJsonBody(Buffer.from(o.payload), DEFAULTS.maxJsonDepth);
      } catch (err) {
        const e = err as IntakeError;
        fail(`INTAKE_BAD_SCHEDULE: --payload is not JSON that can be kept exactly (${e.code}): ${e.message}`);
      }
      let s: Schedule;
      try {
        // The same checks as POST /v1/requests, so every tick's request is one intake would accept.
        const r = validateNewRequest({ payload, callback_url: o.callbackUrl, lane: o.lane });
        s = await addSchedule(spoolOf(o), { cron: o.cron, tenant: o.tenant, callbackUrl: r.callbackUrl, payload: r.payload, lane: r.lane, catchUp: o.catchUp });
      } catch (err) {
        // The code says which check refused it: INTAKE_BAD_SCHEDULE, INTAKE_BAD_CALLBACK_URL, INTAKE_BAD_REQUEST (payload, lane).
        if (err instanceof IntakeError) fail(`${err.code}: ${err.message}`);
        throw err;
      }
      if (o.json) {
        process.stdout.write(JSON.stringify(shown(s)) + '\n');
        return;
      }
      process.stdout.write(`${s.id}\n`);
      process.stderr.write(`schedule ${s.id}: ${s.cron} (UTC) for tenant ${s.tenant} -> ${s.callback_url}${s.lane ? ` lane ${s.lane}` : ''}, catch-up ${s.catch_up}\n`);
    });

  schedules
    .command('ls')
    .description('list schedules with the last tick enqueued')
    .option('--json', 'print as JSON')
    .option(...spoolFlag)
    .action(async (o: { json?: boolean; spool?: string }) => {
      const root = spoolOf(o);
      const state = await readScheduleState(root);
      const all = (await readSchedules(root)).schedules.map((s) => shown(s, state.schedules[s.id]?.last_tick ?? null));
      if (o.json) {
        process.stdout.write(JSON.stringify(all, null, 2) + '\n');
        return;
      }
      if (all.length === 0) process.stdout.write('no schedules\n');
      for (const s of all) {
        process.stdout.write(`${s.id}  ${JSON.stringify(s.cron)}  ${s.tenant}  ${s.callback_url}${s.lane ? `  lane=${s.lane}` : ''}  catch-up=${s.catch_up}  last tick ${s.last_tick ?? 'none yet'}\n`);
      }
    });

  schedules
    .command('rm <id>')
    .description('remove a schedule; no tick after this is enqueued (ticks already enqueued stay)')
    .option(...jsonFlag)
    .option(...spoolFlag)
    .action(async (id: string, o: { json?: boolean; spool?: string }) => {
      if (!(await removeSchedule(spoolOf(o), id))) fail(`no schedule ${id} (intake schedules ls lists them)`);
      out(o, { removed: id }, `removed ${id}`);
    });
}

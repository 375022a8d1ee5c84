// Schedules, for real: `intake schedules add|ls|rm` and their refusals; a schedule ticking every
// second on three nodes sharing a spool and a throwaway PostgreSQL while the scheduler (the
// leader) is killed with SIGKILL twice; and the catch-up policies after a full outage.
//
// The checker (tick-checker.ts) reads the rows back and requires every second from the first
// tick to the last to be stored exactly once: none missing, also across the two takeovers (the
// new scheduler continues from cluster/schedule-state.json), none duplicated. Time bounds are
// generous deadlines only.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { readHeartbeats } from '../../src/cluster/heartbeat.js';
import { schedulesPath } from '../../src/cluster/paths.js';
import { readScheduleState } from '../../src/cluster/schedule-state.js';
import { planTicks } from '../../src/cluster/schedule-ticks.js';
import { listAllSegments, quarantineDir } from '../../src/spool/layout.js';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { sleep, waitFor } from '../helpers/http.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { checkTicks, formatTicks, gaps, type TickRow } from './tick-checker.js';

const FAST = [
  '--heartbeat-ms', '200',
  '--dead-after-ms', '1500',
  '--lock-stale-ms', '2000',
  '--stop-idle-ms', '200',
  '--seal-after-ms', '200',
  '--scan-interval-ms', '100',
];
const EVERY_SECOND = '*/1 * * * * *';
const HOOK = 'https://example.com/hook';

const tmp = tempDir('intake-schedules-');
let pgServer: PgServer;
let spools = 0;
const started = new Set<Daemon>();

before(async () => {
  // Fails loudly (with the package to install) when PostgreSQL is missing.
  pgServer = await startPostgres();
});
after(async () => {
  await Promise.all([...started].map((d) => d.kill('SIGKILL')));
  await pgServer?.close();
  tmp.cleanup();
});

const newSpool = () => join(tmp.path, `spool-${++spools}`);

async function migratedDb(): Promise<string> {
  const url = await pgServer.createDatabase();
  const m = await runCli(['migrate', '--db', url]);
  assert.equal(m.code, 0, m.stderr);
  return url;
}

async function startNode(spool: string, db: string, nodeId: string, extra: string[] = [], mode: 'receive' | 'save' | 'both' = 'both'): Promise<Daemon> {
  const d = await startDaemon({ spool, db, nodeId, mode, args: [...FAST, ...extra] });
  started.add(d);
  void d.exited.then(() => started.delete(d));
  return d;
}

async function addSchedule(spool: string, extra: string[] = []): Promise<{ id: string; created_at: string }> {
  const r = await runCli(['schedules', 'add', '--cron', EVERY_SECOND, '--tenant', 'default', '--callback-url', HOOK, '--payload', '{"job":"tick"}', '--json', '--spool', spool, ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { id: string; created_at: string };
}

async function rmSchedule(spool: string, id: string): Promise<void> {
  const r = await runCli(['schedules', 'rm', id, '--spool', spool]);
  assert.equal(r.code, 0, r.stderr);
}

async function tickRows(db: string): Promise<TickRow[]> {
  const c = new pg.Client({ connectionString: db });
  await c.connect();
  try {
    return (
      await c.query<TickRow>("SELECT id::text AS id, idempotency_key, tenant, callback_url, payload::text AS payload, metadata::text AS metadata FROM requests WHERE idempotency_key LIKE 'schedule:%'")
    ).rows;
  } finally {
    await c.end();
  }
}

/** Until the spool holds no segment and the row count stays still for a moment. */
async function waitDrained(spool: string, db: string): Promise<TickRow[]> {
  let last = -1;
  const rows = await waitFor(
    'an empty spool and a still row count',
    async () => {
      const rows = await tickRows(db);
      const idle = (await listAllSegments(spool)).length === 0;
      const still = idle && rows.length === last;
      last = idle ? rows.length : -1;
      return still ? rows : null;
    },
    60_000,
    500,
  );
  return rows!;
}

function quarantined(spool: string): string[] {
  return existsSync(quarantineDir(spool)) ? readdirSync(quarantineDir(spool)) : [];
}

/** The live leader among `nodes` (by its own heartbeat, from the process we know runs). */
async function currentLeader(spool: string, nodes: Map<string, Daemon>): Promise<string> {
  const leader = await waitFor(
    'one live node reporting itself leader',
    async () => {
      const hbs = await readHeartbeats(spool);
      const leaders = hbs.filter((h) => h.leader && nodes.get(h.node)?.proc.pid === h.pid);
      return leaders.length === 1 ? leaders[0]!.node : null;
    },
    20_000,
    100,
  );
  return leader!;
}

function logLines(output: string, msg: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((l) => l.includes(msg))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('which ticks are due (planTicks)', () => {
  const T = (iso: string) => Date.parse(iso);
  const S = (ms: number[]) => ms.map((x) => new Date(x).toISOString());
  test('every tick after the last one enqueued, up to now', () => {
    const p = planTicks({ cron: EVERY_SECOND, since: T('2030-01-01T00:00:05Z'), now: T('2030-01-01T00:00:08.500Z'), graceMs: 60_000, catchUp: 'skip', max: 200 });
    assert.deepEqual(S(p.ticks), ['2030-01-01T00:00:06.000Z', '2030-01-01T00:00:07.000Z', '2030-01-01T00:00:08.000Z']);
    assert.equal(p.missed, null);
    assert.equal(p.last, T('2030-01-01T00:00:08Z'));
    const none = planTicks({ cron: EVERY_SECOND, since: T('2030-01-01T00:00:08Z'), now: T('2030-01-01T00:00:08.999Z'), graceMs: 60_000, catchUp: 'skip', max: 200 });
    assert.deepEqual([none.ticks, none.missed, none.last], [[], null, T('2030-01-01T00:00:08Z')]);
    // A new schedule (since = its creation, mid-second) starts at the next whole second.
    const fresh = planTicks({ cron: EVERY_SECOND, since: T('2030-01-01T00:00:00.400Z'), now: T('2030-01-01T00:00:01.100Z'), graceMs: 60_000, catchUp: 'skip', max: 200 });
    assert.deepEqual(S(fresh.ticks), ['2030-01-01T00:00:01.000Z']);
  });
  test('ticks older than the grace are missed; skip enqueues none of them, once one request; at most max requests', () => {
    const o = { cron: EVERY_SECOND, since: T('2030-01-01T00:00:00Z'), now: T('2030-01-01T00:01:40Z'), graceMs: 10_000 };
    const skip = planTicks({ ...o, catchUp: 'skip', max: 200 });
    assert.deepEqual(skip.missed, { from: T('2030-01-01T00:00:01Z'), to: T('2030-01-01T00:01:30Z'), ticks: 90 });
    assert.equal(skip.ticks.length, 10);
    assert.equal(skip.last, T('2030-01-01T00:01:40Z'));
    const once = planTicks({ ...o, catchUp: 'once', max: 5 });
    assert.equal(once.missed?.ticks, 90);
    assert.deepEqual(S(once.ticks), ['2030-01-01T00:01:31.000Z', '2030-01-01T00:01:32.000Z', '2030-01-01T00:01:33.000Z', '2030-01-01T00:01:34.000Z'], 'the catch-up request counts against max');
    assert.equal(once.last, T('2030-01-01T00:01:34Z'));
    const bounded = planTicks({ cron: EVERY_SECOND, since: T('2030-01-01T00:00:00Z'), now: T('2030-01-01T00:10:00Z'), graceMs: 3_600_000, catchUp: 'skip', max: 200 });
    assert.deepEqual([bounded.ticks.length, bounded.last], [200, T('2030-01-01T00:03:20Z')]);
    const daily = planTicks({ cron: '0 3 * * *', since: T('2030-01-01T03:00:00Z'), now: T('2030-01-11T12:00:00Z'), graceMs: 60_000, catchUp: 'once', max: 200 });
    assert.deepEqual(daily.missed, { from: T('2030-01-02T03:00:00Z'), to: T('2030-01-11T03:00:00Z'), ticks: 10 });
    assert.deepEqual(daily.ticks, []);
    const long = planTicks({ cron: EVERY_SECOND, since: T('2030-01-01T00:00:00Z'), now: T('2030-01-02T00:00:00Z'), graceMs: 60_000, catchUp: 'once', max: 200 });
    assert.equal(long.missed?.ticks, null, 'past 10,000 missed ticks the count says "more"');
  });
});

describe('schedules', () => {
  test('intake schedules add, ls, rm; bad input refused with exit 1 and nothing written', { timeout: 180_000 }, async () => {
    const spool = newSpool();
    const a = await runCli(['schedules', 'add', '--cron', '0 3 * * *', '--tenant', 'acme', '--callback-url', HOOK, '--payload', '{"report":"daily"}', '--lane', 'slow', '--catch-up', 'once', '--json', '--spool', spool]);
    assert.equal(a.code, 0, a.stderr);
    const s = JSON.parse(a.stdout) as { id: string; cron: string; tenant: string; callback_url: string; payload: unknown; lane: string; catch_up: string };
    assert.match(s.id, /^[0-9a-f]{16}$/);
    assert.deepEqual([s.cron, s.tenant, s.callback_url, s.payload, s.lane, s.catch_up], ['0 3 * * *', 'acme', HOOK, { report: 'daily' }, 'slow', 'once']);
    const b = await runCli(['schedules', 'add', '--cron', EVERY_SECOND, '--tenant', 'acme', '--callback-url', HOOK, '--payload', '[1,2]', '--spool', spool]);
    assert.equal(b.code, 0, b.stderr);
    const idB = b.stdout.trim();
    assert.match(idB, /^[0-9a-f]{16}$/, 'without --json, add prints the id');

    const ls = await runCli(['schedules', 'ls', '--json', '--spool', spool]);
    assert.equal(ls.code, 0, ls.stderr);
    const listed = JSON.parse(ls.stdout) as { id: string; catch_up: string; last_tick: string | null }[];
    assert.deepEqual(listed.map((x) => [x.id, x.catch_up, x.last_tick]), [[s.id, 'once', null], [idB, 'skip', null]], 'skip is the default catch-up');
    const text = await runCli(['schedules', 'ls', '--spool', spool]);
    assert.ok(text.stdout.includes(s.id) && text.stdout.includes(idB), text.stdout);

    // Refusals: each exits 1 with the code of the check that refused it, and changes nothing.
    const before = await fsp.readFile(schedulesPath(spool), 'utf8');
    const base = { '--cron': '* * * * *', '--tenant': 'acme', '--callback-url': HOOK, '--payload': '{}' };
    const cases: [Record<string, string>, RegExp][] = [
      [{ '--cron': 'bogus' }, /INTAKE_BAD_SCHEDULE: cron expression "bogus"/],
      [{ '--cron': '61 * * * *' }, /INTAKE_BAD_SCHEDULE: cron expression "61 \* \* \* \*" does not parse/],
      [{ '--cron': '* * * * * * *' }, /INTAKE_BAD_SCHEDULE: cron expression .* must have 5 fields/],
      [{ '--callback-url': 'ftp://example.com/x' }, /INTAKE_BAD_CALLBACK_URL: callback_url must be http or https/],
      [{ '--callback-url': 'not a url' }, /INTAKE_BAD_CALLBACK_URL/],
      [{ '--payload': '{not json' }, /INTAKE_BAD_SCHEDULE: --payload is not JSON/],
      [{ '--payload': '{"a":1,"a":2}' }, /INTAKE_BAD_SCHEDULE: --payload is not JSON .*INTAKE_JSON_DUPLICATE_KEY/],
      [{ '--tenant': 'bad tenant' }, /INTAKE_BAD_SCHEDULE: tenant "bad tenant"/],
      [{ '--lane': 'no spaces' }, /INTAKE_BAD_REQUEST: lane must be/],
      [{ '--catch-up': 'later' }, /INTAKE_BAD_SCHEDULE: --catch-up must be skip or once/],
    ];
    for (const [change, want] of cases) {
      const args = Object.entries({ ...base, ...change }).flat();
      const r = await runCli(['schedules', 'add', ...args, '--spool', spool]);
      assert.equal(r.code, 1, `${JSON.stringify(change)} must fail: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, want, JSON.stringify(change));
    }
    assert.equal(await fsp.readFile(schedulesPath(spool), 'utf8'), before, 'a refused add writes nothing');

    const rm = await runCli(['schedules', 'rm', s.id, '--spool', spool]);
    assert.equal(rm.code, 0, rm.stderr);
    const again = await runCli(['schedules', 'rm', s.id, '--spool', spool]);
    assert.equal(again.code, 1, 'removing an unknown schedule fails');
    assert.match(again.stderr, /no schedule/);
    const left = JSON.parse((await runCli(['schedules', 'ls', '--json', '--spool', spool])).stdout) as { id: string }[];
    assert.deepEqual(left.map((x) => x.id), [idB]);
  });

  test('every second for about 60 s on three nodes, the leader killed with SIGKILL twice: every tick stored exactly once', { timeout: 240_000 }, async (t) => {
    const spool = newSpool();
    const db = await migratedDb();
    const nodes = new Map<string, Daemon>();
    for (const id of ['n1', 'n2', 'n3']) nodes.set(id, await startNode(spool, db, id));
    await currentLeader(spool, nodes);
    const s = await addSchedule(spool);
    const kills: { node: string; at: number }[] = [];
    const t0 = performance.now();
    for (const killAfterS of [15, 35]) {
      await sleep(Math.max(0, t0 + killAfterS * 1000 - performance.now()));
      const leader = await currentLeader(spool, nodes);
      kills.push({ node: leader, at: Date.now() });
      await nodes.get(leader)!.kill('SIGKILL');
      // Back at once under the same id: a new registration number, so it does not lead again.
      nodes.set(leader, await startNode(spool, db, leader));
    }
    await sleep(Math.max(0, t0 + 62_000 - performance.now()));
    await rmSchedule(spool, s.id);
    const rows = await waitDrained(spool, db);
    const r = checkTicks(s.id, rows);
    t.diagnostic(`ticks: ${formatTicks(r)}; kills: ${kills.map((k) => `${k.node}@${new Date(k.at).toISOString()}`).join(', ')}`);
    assert.deepEqual(r.malformed, [], 'every row names its schedule and tick');
    assert.deepEqual(r.missing.map((x) => new Date(x).toISOString()), [], 'no tick missing, across both takeovers');
    assert.deepEqual(r.duplicated.map((x) => new Date(x).toISOString()), [], 'no tick stored twice');
    assert.equal(r.rows, r.window, 'one row per tick');
    assert.equal(r.catchUps.length, 0, 'a takeover is not an outage: no catch-up');
    assert.ok(r.window >= 50, `the window spans about a minute: ${r.window} s`);
    assert.ok(r.first <= Date.parse(s.created_at) + 1000, `the first tick is the first after the schedule was added (${new Date(r.first).toISOString()} vs ${s.created_at})`);
    for (const k of kills) assert.ok(k.at > r.first + 1000 && k.at < r.last - 1000, `the kill of ${k.node} falls inside the checked window`);
    for (const row of rows) {
      assert.equal(row.tenant, 'default');
      assert.equal(row.callback_url, HOOK);
      assert.deepEqual(JSON.parse(row.payload), { job: 'tick' });
    }
    assert.deepEqual(quarantined(spool), [], 'no record quarantined (a tick enqueued twice is the same request, never a conflict)');
    const state = await readScheduleState(spool);
    assert.equal(state.schedules[s.id], undefined, 'a removed schedule leaves no progress behind');
    await Promise.all([...nodes.values()].map((d) => d.kill('SIGTERM')));
  });

  test('catch-up after a full outage: skip enqueues none of the missed ticks, once one request for them all', { timeout: 120_000 }, async (t) => {
    const spool = newSpool();
    const db = await migratedDb();
    const GRACE_MS = 4000;
    const GRACE = ['--schedule-grace-ms', String(GRACE_MS)];
    const first = await startNode(spool, db, 'solo', GRACE);
    const skip = await addSchedule(spool, ['--catch-up', 'skip']);
    const once = await addSchedule(spool, ['--catch-up', 'once']);
    await waitFor(
      'both schedules to enqueue a few ticks',
      async () => {
        const st = await readScheduleState(spool);
        const since = (id: string) => Date.parse(st.schedules[id]?.last_tick ?? '1970-01-01T00:00:00Z');
        return since(skip.id) - Date.parse(skip.created_at) >= 3000 && since(once.id) - Date.parse(once.created_at) >= 3000;
      },
      20_000,
      100,
    );
    await first.kill('SIGKILL'); // the whole cluster is down: nobody runs the schedules
    const downAt = Date.now();
    await sleep(10_000);
    const node = await startNode(spool, db, 'solo', GRACE);
    const upAt = Date.now();
    await waitFor(
      'both schedules to run past the restart',
      async () => {
        const st = await readScheduleState(spool);
        return [skip.id, once.id].every((id) => Date.parse(st.schedules[id]?.last_tick ?? '1970-01-01T00:00:00Z') >= upAt + 3000);
      },
      20_000,
      100,
    );
    await rmSchedule(spool, skip.id);
    await rmSchedule(spool, once.id);
    const rows = await waitDrained(spool, db);
    // The node was down 10 s with a 4 s grace: at least the ticks of about 6 s were missed (3 is a
    // floor that a slow start or a tick enqueued late before the kill cannot break).
    const MIN_MISSED = 3;
    const inOutage = (from: number, to: number) => from > downAt - GRACE_MS - 1000 && to < upAt;
    // A scheduler step that runs later than the grace after its tick (a loaded machine stalls the
    // new node) is an outage too, by design: its ticks get the policy as well. Such a second range
    // is allowed only after the restart, and only if it is logged and accounted for like the first.
    const output = () => first.output() + node.output();

    const rs = checkTicks(skip.id, rows);
    assert.deepEqual(rs.duplicated, [], 'skip: no tick stored twice');
    assert.equal(rs.catchUps.length, 0, 'skip: no catch-up request');
    const logged = logLines(output(), 'catch-up skip')
      .filter((l) => l.schedule === skip.id)
      .map((l) => [Date.parse(l.from as string), Date.parse(l.to as string), l.ticks as number] as const);
    for (const [from, to, n] of logged) assert.equal(n, (to - from) / 1000 + 1, 'skip: the log counts the ticks of its range');
    const namedByLog = logged.flatMap(([from, to]) => Array.from({ length: (to - from) / 1000 + 1 }, (_, i) => from + i * 1000));
    assert.deepEqual(namedByLog.sort((a, b) => a - b), rs.missing, 'skip: the logs name exactly the ticks that have no row, each once');
    const outage = logged.filter(([from, to]) => inOutage(from, to));
    const stalls = logged.filter(([from, to]) => !inOutage(from, to));
    t.diagnostic(`skip: ${formatTicks(rs)}; skipped ranges: ${JSON.stringify(gaps(rs.missing).map((x) => x.map((y) => new Date(y).toISOString())))}; stalls after the restart: ${stalls.length}`);
    assert.equal(outage.length, 1, 'skip: one skipped range lies inside the outage');
    assert.ok(outage[0]![2] >= MIN_MISSED, `skip: the range covers the outage beyond the grace (${outage[0]![2]} ticks)`);
    for (const [from] of stalls) assert.ok(from >= upAt - GRACE_MS, `skip: a second range only after the restart (${new Date(from).toISOString()})`);

    const ro = checkTicks(once.id, rows);
    assert.deepEqual(ro.missing, [], 'once: every tick has a row or is covered by a catch-up request');
    assert.deepEqual(ro.duplicated, [], 'once: no tick covered twice');
    for (const cu of ro.catchUps) {
      assert.equal(cu.tick, cu.to, "once: a catch-up request carries the last missed tick's id");
      assert.equal(cu.ticks, (cu.to - cu.from) / 1000 + 1, 'once: it counts the ticks it stands for');
    }
    const cuOutage = ro.catchUps.filter((cu) => inOutage(cu.from, cu.to));
    const cuStalls = ro.catchUps.filter((cu) => !inOutage(cu.from, cu.to));
    t.diagnostic(`once: ${formatTicks(ro)}; stalls after the restart: ${cuStalls.length}`);
    assert.equal(cuOutage.length, 1, 'once: one catch-up request for the outage');
    assert.ok(cuOutage[0]!.ticks! >= MIN_MISSED, `once: it covers the outage beyond the grace (${cuOutage[0]!.ticks} ticks)`);
    for (const cu of cuStalls) assert.ok(cu.from >= upAt - GRACE_MS, `once: a second catch-up only after the restart (${new Date(cu.from).toISOString()})`);
    const onceLogged = logLines(output(), 'catch-up once').filter((l) => l.schedule === once.id);
    assert.equal(onceLogged.length, ro.catchUps.length, 'once: every catch-up request is logged');
    assert.deepEqual(quarantined(spool), []);
    await node.kill('SIGTERM');
  });

  test('a leader in save mode has no spool writer: the first node that accepts runs the schedules', { timeout: 90_000 }, async (t) => {
    const spool = newSpool();
    const db = await migratedDb();
    const saver = await startNode(spool, db, 's1', [], 'save'); // registers first: the leader
    const receiver = await startNode(spool, db, 'r1', [], 'receive');
    await currentLeader(spool, new Map([['s1', saver], ['r1', receiver]])).then((l) => assert.equal(l, 's1'));
    const s = await addSchedule(spool);
    const rows = await waitFor(
      'five ticks in the database',
      async () => {
        const r = checkTicks(s.id, await tickRows(db));
        return r.rows >= 5 ? r : null;
      },
      30_000,
      200,
    );
    t.diagnostic(formatTicks(rows!));
    assert.deepEqual([rows!.missing, rows!.duplicated], [[], []]);
    // (Exactly this message: 'no longer running the schedules' contains it.)
    const running = (output: string) => logLines(output, 'running the schedules').filter((l) => l.msg === 'running the schedules');
    assert.equal(running(receiver.output()).length, 1, 'the receive node runs the schedules');
    assert.equal(running(saver.output()).length, 0, 'the save-mode leader does not');
    await rmSchedule(spool, s.id);
    await Promise.all([saver.kill('SIGTERM'), receiver.kill('SIGTERM')]);
  });
});

// Every CLI command that prints anything takes --json and then prints exactly one JSON document
// on stdout; and the progress line of long work shows on a terminal only (a real pty through
// util-linux `script`), never in a pipe.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bury, park } from '../../src/callbacks/failed-spool.js';
import type { CallbackEntryRecord } from '../../src/spool/records.js';
import { intakeBin, runCli, startDaemon, type Daemon } from '../helpers/daemon.js';
import { post, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const entry = (id: string): CallbackEntryRecord => ({
  id,
  requestId: '0192f0c1-7a3b-7c4d-8e5f-0123456789ab',
  tenant: 'default',
  url: 'http://127.0.0.1:9/hook', // refused by the SSRF guard at once when the node retries it: no network
  body: '{}',
  attempts: 3,
  firstFailedAt: Date.now(),
  lastStatus: 500,
  lastError: null,
});

describe('--json on every command that prints', () => {
  const tmp = tempDir('intake-cli-json-');
  const spool = join(tmp.path, 'spool');
  const db = `sqlite:${join(tmp.path, 'intake.db')}`;
  let d: Daemon;

  before(async () => {
    d = await startDaemon({ spool, db, nodeId: 'json-1', args: ['--heartbeat-ms', '200', '--dead-after-ms', '1500', '--archive'] });
  });
  after(async () => {
    await d?.kill('SIGTERM');
    tmp.cleanup();
  });

  /** Runs `intake ...args --json`; it must succeed and print one JSON document. */
  async function json(...args: string[]): Promise<any> {
    const r = await runCli([...args, '--json'], { env: { INTAKE_SPOOL: spool, INTAKE_DB: db } });
    assert.equal(r.code, 0, `intake ${args.join(' ')} --json: ${r.stderr}`);
    try {
      return JSON.parse(r.stdout);
    } catch {
      assert.fail(`intake ${args.join(' ')} --json printed no JSON document:\n${r.stdout}`);
    }
  }

  test('keys, schedules, callbacks, mode, node, status, migrate, db, spool', async () => {
    let n = 0;
    const check = async (args: string[], expect: (v: any) => void) => {
      expect(await json(...args));
      n++;
    };
    // First, while the node is open (no key yet): one request, its segment kept under archive/ (--archive).
    assert.equal((await post(`${d.url}/v1/requests`, { payload: {}, callback_url: 'https://example.com/h' })).status, 202);
    const archive = join(spool, 'archive', 'json-1');
    const segment = (await waitFor('an archived segment', () => (existsSync(archive) ? readdirSync(archive).find((f) => f.endsWith('.seg')) : undefined), 30_000))!;
    await check(['spool', 'verify'], (v) => assert.ok(v.files >= 1 && v.bad === 0, JSON.stringify(v))); // the spool root from INTAKE_SPOOL
    await check(['spool', 'inspect', join(archive, segment)], (v) => assert.equal(v.records.length, 1));
    const key = await json('keys', 'create', '--tenant', 'acme', '--scope', 'admin');
    n++;
    await check(['keys', 'ls'], (v) => assert.equal(v[0].id, key.id));
    await check(['keys', 'revoke', key.id], (v) => assert.deepEqual(v, { revoked: key.id }));

    const s = await json('schedules', 'add', '--cron', '0 3 * * *', '--tenant', 'acme', '--callback-url', 'https://example.com/h', '--payload', '{"a":1}');
    n++;
    await check(['schedules', 'ls'], (v) => assert.equal(v[0].id, s.id));
    await check(['schedules', 'rm', s.id], (v) => assert.deepEqual(v, { removed: s.id }));

    await park(spool, entry('msg_one'), Date.now() + 3_600_000, 'test');
    await check(['callbacks', 'ls'], (v) => assert.equal(v[0].id, 'msg_one'));
    await check(['callbacks', 'kill', '--id', 'msg_one'], (v) => assert.deepEqual(v, { dead: 'msg_one' }));
    await check(['callbacks', 'ls', '--dead'], (v) => assert.equal(v[0].id, 'msg_one'));
    await check(['callbacks', 'replay', '--id', 'msg_one'], (v) => assert.deepEqual(v, { replayed: 1, ids: ['msg_one'] }));
    await bury(spool, entry('msg_two'), 'test');
    await check(['callbacks', 'purge', '--id', 'msg_two'], (v) => assert.deepEqual(v, { purged: 'msg_two' }));

    await check(['mode', 'both', '--all'], (v) => assert.equal(v.mode, 'both'));
    await check(['mode', 'both', '--all', '--wait', '--timeout', '60'], (v) => assert.deepEqual(v.nodes, ['json-1']));
    await check(['node', 'drain', 'json-1', '--wait', '--idle-ms', '100'], (v) => assert.equal(v.drained, true));
    await check(['node', 'undrain', 'json-1'], (v) => assert.deepEqual(v, { node: 'json-1', drained: false }));
    await check(['node', 'wait', 'json-1'], (v) => assert.equal(v.up, true));
    await check(['status', '--dead-after-ms', '1500'], (v) => assert.equal(v.nodes[0].id, 'json-1'));
    await check(['migrate'], (v) => assert.deepEqual(v.applied, []));
    await check(['db', 'version'], (v) => assert.equal(v.current, v.latest));

    console.log(`cli --json: ${n} commands printed one JSON document each`);
  });

  test('a bad --timeout or --dead-after-ms is refused, not waited on forever', async () => {
    for (const args of [['mode', 'both', '--all', '--wait', '--timeout', 'soon'], ['status', '--dead-after-ms', 'x'], ['node', 'wait', 'json-1', '--timeout', '0']]) {
      const r = await runCli([...args, '--spool', spool]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /INTAKE_BAD_CONFIG: --(timeout|dead-after-ms)/);
    }
  });

  test('long work shows a progress line on a terminal, and nothing in a pipe', async () => {
    for (let i = 0; i < 3; i++) await bury(spool, entry(`msg_tty_${i}`), 'test');
    const piped = await runCli(['callbacks', 'replay', '--all', '--spool', spool]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, '', 'no progress in a pipe');
    assert.match(piped.stdout, /^replayed 3 callback\(s\)/);

    for (let i = 0; i < 3; i++) await bury(spool, entry(`msg_tty_${i}`), 'test');
    const which = spawnSync('script', ['--version']);
    assert.equal(which.status, 0, 'util-linux `script` is needed to run a command on a pty');
    const cmd = [process.execPath, intakeBin, 'callbacks', 'replay', '--all', '--spool', spool].map((a) => `'${a}'`).join(' ');
    const tty = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(tty.status, 0, tty.stderr);
    assert.match(tty.stdout, /\r\x1b\[Kreplaying dead callbacks: 1\/3/, 'the progress line on the terminal');
    assert.match(tty.stdout, /\r\x1b\[Kreplayed 3 callback\(s\)/, 'cleared before the answer');
  });
});

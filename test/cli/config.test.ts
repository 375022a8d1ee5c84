// Configuration: every option of `intake start` is a flag and an environment variable that mean
// the same, every bad value stops the start with INTAKE_BAD_CONFIG naming the option before
// anything is opened, and docs/operations.md lists every option the build has.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULTS, ENV, flagOf, loadConfig, type Config, type RawConfig } from '../../src/config.js';
import { repoRoot, runCli, startDaemon } from '../helpers/daemon.js';
import { post } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

describe('configuration', () => {
  const tmp = tempDir('intake-config-');
  after(() => tmp.cleanup());
  const secretsFile = join(tmp.path, 'secrets.json');
  writeFileSync(secretsFile, JSON.stringify({ default: [SECRET], acme: [SECRET, SECRET] }));

  /** A value for every key that is valid and not its default (so a flag that is not read shows). */
  const sample: Record<keyof Config, string> = Object.fromEntries(
    (Object.keys(ENV) as (keyof Config)[]).map((k) => {
      const d = (DEFAULTS as Record<string, unknown>)[k];
      return [k, typeof d === 'number' ? String(d + 1) : typeof d === 'boolean' ? String(!d) : ''];
    }),
  ) as Record<keyof Config, string>;
  Object.assign(sample, {
    host: '0.0.0.0',
    spool: join(tmp.path, 'spool-x'),
    db: 'postgres://intake@db.example/intake',
    mode: 'save',
    nodeId: 'web-7',
    callbackAllowCidrs: '10.0.0.0/8,fd00::/8',
    webhookSecret: `${SECRET} ${SECRET}`,
    webhookSecretsFile: '',
    logLevel: 'warn',
  });

  test('every key: the flag and its environment variable give the same configuration; the flag wins', () => {
    for (const key of Object.keys(ENV) as (keyof Config)[]) {
      const v = key === 'webhookSecretsFile' ? secretsFile : sample[key];
      const extra: RawConfig = key === 'webhookSecretsFile' ? { webhookSecret: '' } : {};
      const byFlag = loadConfig({ ...extra, [key]: v }, {});
      const byEnv = loadConfig(extra, { [ENV[key]]: v });
      assert.deepEqual(byEnv, byFlag, key);
      assert.notDeepEqual(byFlag, loadConfig(extra, {}), `${key}: the sample value changes nothing`);
      if (key !== 'archive' && key !== 'insecureNoAuth') {
        const dflt = key === 'nodeId' ? 'web-8' : String((DEFAULTS as Record<string, unknown>)[key] ?? '');
        assert.deepEqual(loadConfig({ ...extra, [key]: v }, { [ENV[key]]: dflt }), byFlag, `${key}: the flag wins over the environment`);
      }
    }
  });

  test('a bad value is INTAKE_BAD_CONFIG naming the flag and the variable', () => {
    const bad: [RawConfig, Record<string, string>, keyof Config, RegExp][] = [
      [{ port: 'eighty' }, {}, 'port', /must be an integer from 0 to 65535/],
      [{}, { INTAKE_PORT: '70000' }, 'port', /got "70000"/],
      [{ host: 'not a host' }, {}, 'host', /IP address or a host name/],
      [{ db: 'mysql://u:hunter2@x/db' }, {}, 'db', /unsupported database URL \(scheme "mysql"\)/],
      [{ db: 'sqlite:' }, {}, 'db', /has no path/],
      [{ mode: 'fast' }, {}, 'mode', /receive, save, both/],
      [{ logLevel: 'loud' }, {}, 'logLevel', /must be one of fatal/],
      [{ callbackAllowCidrs: '10.0.0.0/33' }, {}, 'callbackAllowCidrs', /prefix must be 0 to 32/],
      [{}, { INTAKE_CALLBACK_ALLOW_CIDRS: '10.0.0.0/8, intranet' }, 'callbackAllowCidrs', /bad CIDR "intranet"/],
      [{ webhookSecret: 'whsec_c2hvcnQ=' }, {}, 'webhookSecret', /24 to 64 bytes, this one holds 5/],
      [{ webhookSecret: 'hunter2!' }, {}, 'webhookSecret', /whsec_ and base64/],
      [{ webhookSecretsFile: join(tmp.path, 'missing.json') }, {}, 'webhookSecretsFile', /cannot be read/],
      [{ webhookSecretsFile: secretsFile, webhookSecret: SECRET }, {}, 'webhookSecret', /both given/],
      [{ callbackBaseMs: '5000', callbackCapMs: '1000' }, {}, 'callbackCapMs', /must not be below --callback-base-ms/],
      [{ heartbeatMs: '2000', deadAfterMs: '3000' }, {}, 'deadAfterMs', /at least twice --heartbeat-ms/],
      [{ maxWaitS: '' }, {}, 'maxWaitS', /must be an integer/],
      [{ archive: 'maybe' }, {}, 'archive', /true or false/],
      [{}, { INTAKE_BOOKS_INTERVAL_MS: '10' }, 'booksIntervalMs', /must be 0 \(never\) or from 100/],
    ];
    for (const [raw, env, key, why] of bad) {
      assert.throws(
        () => loadConfig(raw, env),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'INTAKE_BAD_CONFIG', err.message);
          assert.ok(err.message.includes(`${flagOf(key)} (${ENV[key]})`), `${key}: ${err.message}`);
          assert.match(err.message, why);
          assert.doesNotMatch(err.message, /hunter2/, 'a secret or password is never repeated');
          return true;
        },
      );
    }
    for (const [name, content] of [['not-json', '{'], ['not-a-list', '{"acme": "whsec_x"}'], ['short', '{"acme": ["whsec_c2hvcnQ="]}']] as const) {
      const f = join(tmp.path, `${name}.json`);
      writeFileSync(f, content);
      assert.throws(() => loadConfig({ webhookSecretsFile: f }, {}), /--webhook-secrets-file \(INTAKE_WEBHOOK_SECRETS_FILE\)/);
    }
  });

  test('`intake start` with a bad value exits 1 with the code and the option, having started nothing', async () => {
    const spool = join(tmp.path, 'never');
    const base = ['start', '--port', '0', '--spool', spool, '--db', `sqlite:${join(tmp.path, 'never.db')}`];
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--callback-allow-cidrs', '300.1.2.3/8'], {}, /--callback-allow-cidrs \(INTAKE_CALLBACK_ALLOW_CIDRS\)/],
      [[], { INTAKE_WEBHOOK_SECRETS_FILE: join(tmp.path, 'missing.json') }, /--webhook-secrets-file \(INTAKE_WEBHOOK_SECRETS_FILE\) cannot be read/],
      [['--log-level', 'loud'], {}, /--log-level \(INTAKE_LOG_LEVEL\)/],
      [[], { INTAKE_MAX_WAIT_S: 'soon' }, /--max-wait-s \(INTAKE_MAX_WAIT_S\) must be an integer/],
    ];
    for (const [args, env, why] of cases) {
      const r = await runCli([...base, ...args], { env });
      assert.equal(r.code, 1, `${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`);
      assert.match(r.stderr, /^intake: INTAKE_BAD_CONFIG: /);
      assert.match(r.stderr, why);
      assert.equal(r.stdout, '', 'no log line: the node never started');
      assert.equal(existsSync(spool), false, 'nothing was written');
    }
  });

  test('an option that was env-only is a flag too, with the same effect (--callback-allow-cidrs)', async () => {
    // A callback to 127.0.0.1 is refused unless an operator allows the range: by flag or by variable.
    const body = { payload: {}, callback_url: 'http://127.0.0.1:9/hook' };
    const codes: Record<string, number> = {};
    for (const [name, args, env] of [
      ['none', [], {}],
      ['flag', ['--callback-allow-cidrs', '127.0.0.1/32'], {}],
      ['env', [], { INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32' }],
    ] as const) {
      const d = await startDaemon({ spool: join(tmp.path, `spool-${name}`), db: `sqlite:${join(tmp.path, `${name}.db`)}`, args: [...args], env: { ...env } });
      try {
        codes[name] = (await post(`${d.url}/v1/requests`, body)).status;
      } finally {
        await d.kill('SIGTERM');
      }
    }
    assert.deepEqual(codes, { none: 400, flag: 202, env: 202 });
  });

  test('every option of `intake start --help` has its row in docs/operations.md, with its variable', async () => {
    const help = await runCli(['start', '--help']);
    assert.equal(help.code, 0, help.stderr);
    // An option's line starts with two spaces; commander wraps its help onto deeper-indented lines.
    const flags = [...help.stdout.matchAll(/^ {2}(--[a-z0-9-]+)/gm)].map((m) => m[1]!).filter((f) => f !== '--help');
    const text = help.stdout.replace(/\s+/g, ' ');
    assert.deepEqual([...flags].sort(), (Object.keys(ENV) as (keyof Config)[]).map(flagOf).sort(), 'a flag for every key, and no other');
    const doc = readFileSync(join(repoRoot, 'docs', 'operations.md'), 'utf8');
    const table = doc.slice(doc.indexOf('## Configuration'), doc.indexOf('\n## ', doc.indexOf('## Configuration') + 5));
    const rows = table.split('\n').filter((l) => l.startsWith('| `--'));
    for (const key of Object.keys(ENV) as (keyof Config)[]) {
      const row = rows.find((r) => r.startsWith(`| \`${flagOf(key)}\` |`));
      assert.ok(row, `docs/operations.md has no row for ${flagOf(key)}`);
      assert.ok(row.includes(`\`${ENV[key]}\``), `the row of ${flagOf(key)} does not name ${ENV[key]}`);
      assert.ok(text.includes(`env ${ENV[key]}`), `--help does not name ${ENV[key]}`);
    }
    assert.equal(rows.length, flags.length, 'one row per option');
    console.log(`config: ${flags.length} options, each a flag, a variable and a documented row`);
  });
});

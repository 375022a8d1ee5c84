// The small shared files under cluster/ (webhook secrets, id secret, API keys, desired modes):
// written atomically, so a crash leaves the old file or the new one. A file that is damaged
// anyway (an older build's crash, a hand edit) is never replaced or read as empty: a node refuses
// to start with INTAKE_SHARED_FILE_DAMAGED naming the file and leaves it untouched, and starts
// again once the operator restored or removed it (docs/operations.md, "Durability").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterDir, keysPath } from '../../src/cluster/paths.js';
import { readDesired, updateDesired } from '../../src/cluster/desired.js';
import { readKeys } from '../../src/cluster/keys.js';
import { mkdirDurable } from '../../src/spool/fsutil.js';
import { runCli, startDaemon } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

const DAMAGED = 'INTAKE_SHARED_FILE_DAMAGED';

/** Start a node on `spool` and expect it to refuse, naming `file`. */
async function assertRefusesToStart(spool: string, db: string, file: string): Promise<void> {
  const err = await startDaemon({ spool, db, mode: 'both' }).then(
    async (d) => {
      await d.kill('SIGKILL');
      return null;
    },
    (e: Error) => e,
  );
  assert.ok(err, `the node started although ${file} is damaged`);
  assert.match(err.message, new RegExp(DAMAGED), err.message);
  assert.ok(err.message.includes(file), `the error names the file: ${err.message}`);
}

for (const [name, content] of [
  ['an empty', ''],
  ['a truncated', '{\n  "default": [\n    "whsec_AAAA'],
] as const) {
  test(`${name} webhook-secrets.json stops the node with ${DAMAGED}, is left as it is, and a removed one is made anew`, { timeout: 120_000 }, async () => {
    const tmp = tempDir('intake-shared-');
    try {
      const spool = join(tmp.path, 'spool');
      const db = `sqlite:${join(tmp.path, 'intake.db')}`;
      const file = join(clusterDir(spool), 'webhook-secrets.json');
      mkdirSync(clusterDir(spool), { recursive: true });
      writeFileSync(file, content);
      await assertRefusesToStart(spool, db, file);
      assert.equal(readFileSync(file, 'utf8'), content, 'the damaged file is left for the operator');

      // The operator removes it (no callback was ever signed with it): the next start makes a whole one.
      rmSync(file);
      const d = await startDaemon({ spool, db, mode: 'both' });
      try {
        const made = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string[]>;
        assert.match(made.default?.[0] ?? '', /^whsec_/);
      } finally {
        assert.equal(await d.kill('SIGTERM'), 0);
      }
    } finally {
      tmp.cleanup();
    }
  });
}

test(`a damaged keys.json is refused by the node and by \`intake keys create\` (${DAMAGED}), never read as "no keys"`, { timeout: 120_000 }, async () => {
  const tmp = tempDir('intake-shared-');
  try {
    const spool = join(tmp.path, 'spool');
    mkdirSync(clusterDir(spool), { recursive: true });
    const damaged = '{"keys": [{"id": "0123456789abcdef", "tenant": "t", "sco';
    writeFileSync(keysPath(spool), damaged);
    await assert.rejects(readKeys(spool), (e: Error & { code?: string }) => e.code === DAMAGED && e.message.includes(keysPath(spool)));
    const cli = await runCli(['keys', 'create', '--tenant', 't', '--scope', 'submit', '--spool', spool]);
    assert.equal(cli.code, 1, cli.stderr);
    assert.match(cli.stderr, new RegExp(DAMAGED));
    assert.equal(readFileSync(keysPath(spool), 'utf8'), damaged, 'the damaged file is left as it is');
    await assertRefusesToStart(spool, `sqlite:${join(tmp.path, 'intake.db')}`, keysPath(spool));
  } finally {
    tmp.cleanup();
  }
});

test('desired modes are rewritten whole through updateJsonFile: no temp file is left, every update counts', async () => {
  const tmp = tempDir('intake-shared-');
  try {
    const spool = join(tmp.path, 'spool');
    await Promise.all(Array.from({ length: 8 }, (_, i) => updateDesired(spool, (d) => void (d.nodes[`n${i}`] = 'receive'))));
    const d = await readDesired(spool);
    assert.equal(d.generation, 8);
    assert.equal(Object.keys(d.nodes).length, 8);
    assert.deepEqual(
      readdirSync(clusterDir(spool)).filter((f) => f.includes('.tmp-')),
      [],
      'no temp file is left behind',
    );
    // A fresh read of a missing file is its own object: updates never leak into the defaults.
    const other = join(tmp.path, 'other');
    await updateDesired(other, (x) => void (x.nodes.a = 'save'));
    assert.deepEqual((await readDesired(join(tmp.path, 'third'))).nodes, {});
  } finally {
    tmp.cleanup();
  }
});

test('mkdirDurable makes nested folders and is a no-op when they exist', async () => {
  const tmp = tempDir('intake-shared-');
  try {
    const deep = join(tmp.path, 'a', 'b', 'c');
    await mkdirDurable(deep);
    assert.ok(statSync(deep).isDirectory());
    await mkdirDurable(deep);
    await mkdirDurable(join(tmp.path, 'a', 'b2'));
    assert.deepEqual(readdirSync(join(tmp.path, 'a')).sort(), ['b', 'b2']);
  } finally {
    tmp.cleanup();
  }
});

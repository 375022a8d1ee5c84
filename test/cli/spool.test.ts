// `intake spool inspect` and `intake spool verify` on real files, through the real CLI.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { CURRENT_VERSION, encodeHeader, encodeRecord, RecordKind } from '../../src/spool/format.js';
import { runCli } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

const NODE = 'cli-node';
const CREATED = Date.UTC(2024, 6, 1, 12, 0, 0);

interface Made {
  path: string;
  segment: string;
  bytes: Buffer;
  offsets: number[];
  lengths: number[];
  records: Record<string, unknown>[];
}

function make(dir: string, opts: { count?: number; ext?: string; version?: number; segment?: string } = {}): Made {
  mkdirSync(dir, { recursive: true });
  const segment = opts.segment ?? uuidv7();
  const header = encodeHeader({ node: NODE, segment, createdAt: CREATED }, opts.version ?? CURRENT_VERSION);
  const records = Array.from({ length: opts.count ?? 2 }, (_, i) => ({ id: `${segment}-${i}`, payload: JSON.stringify({ n: i }), note: `r\u00e9cord ${i}` }));
  const frames = records.map((r) => encodeRecord(RecordKind.request, JSON.stringify(r)));
  const offsets: number[] = [];
  let at = header.length;
  for (const f of frames) {
    offsets.push(at);
    at += f.length;
  }
  const bytes = Buffer.concat([header, ...frames]);
  const path = join(dir, `${segment}${opts.ext ?? '.seg'}`);
  writeFileSync(path, bytes);
  return { path, segment, bytes, offsets, lengths: frames.map((f) => f.length), records };
}

/** Flip one bit inside record k's body, on disk. */
function damage(m: Made, k: number): void {
  const bytes = Buffer.from(m.bytes);
  bytes[m.offsets[k]! + 14]! ^= 0x04;
  writeFileSync(m.path, bytes);
  m.bytes = bytes;
}

const tmp = tempDir('intake-cli-spool-');
after(() => tmp.cleanup());

describe('intake spool inspect', () => {
  const dir = join(tmp.path, 'inspect');

  test('a good file, as text: header, every record with offset and kind, exit 0', async () => {
    const m = make(dir, { count: 3 });
    const r = await runCli(['spool', 'inspect', m.path]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.deepEqual(lines, [
      `file: ${m.path}`,
      `header: format v${CURRENT_VERSION}, node ${NODE}, segment ${m.segment}, created ${new Date(CREATED).toISOString()}`,
      ...m.records.map((rec, i) => `@${m.offsets[i]} request (${m.lengths[i]} bytes) ${JSON.stringify(rec)}`),
      'records: 3',
    ]);
  });

  test('a good file, --json: one document with the parsed records, exit 0', async () => {
    const m = make(dir, { count: 2 });
    const r = await runCli(['spool', 'inspect', '--json', m.path]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(doc, {
      file: m.path,
      header: { node: NODE, segment: m.segment, createdAt: CREATED, version: CURRENT_VERSION, length: m.offsets[0] },
      headerProblem: null,
      records: m.records.map((rec, i) => ({ offset: m.offsets[i], length: m.lengths[i], kind: 'request', record: rec })),
      gaps: [],
      tail: null,
    });
  });

  test('a damaged file: the intact records, the damage named with its offset, exit 1 (text and --json)', async () => {
    const m = make(dir, { count: 3 });
    damage(m, 1);
    const r = await runCli(['spool', 'inspect', m.path]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(`@${m.offsets[0]} request (${m.lengths[0]} bytes) ${JSON.stringify(m.records[0])}\n`));
    assert.ok(r.stdout.includes(`@${m.offsets[2]} request (${m.lengths[2]} bytes) ${JSON.stringify(m.records[2])}\n`));
    assert.ok(!r.stdout.includes(`${m.segment}-1`), 'the damaged record is not printed as a record');
    assert.ok(r.stdout.includes(`DAMAGE @${m.offsets[1]} ${m.lengths[1]} bytes: bad-frame\n`), r.stdout);
    assert.ok(r.stdout.endsWith('records: 2\n'));

    const j = await runCli(['spool', 'inspect', '--json', m.path]);
    assert.equal(j.code, 1);
    const doc = JSON.parse(j.stdout) as { records: { offset: number }[]; gaps: unknown[]; tail: unknown };
    assert.deepEqual(
      doc.records.map((x) => x.offset),
      [m.offsets[0], m.offsets[2]],
    );
    assert.deepEqual(doc.gaps, [{ offset: m.offsets[1], length: m.lengths[1], reason: 'bad-frame' }]);
    assert.equal(doc.tail, null);
  });

  test('a torn tail: damage in a sealed file (exit 1), expected in an open one (exit 0)', async () => {
    const sealed = make(dir, { count: 2 });
    const cut = sealed.bytes.subarray(0, sealed.bytes.length - 5);
    writeFileSync(sealed.path, cut);
    const tailLen = sealed.lengths[1]! - 5;
    const r = await runCli(['spool', 'inspect', sealed.path]);
    assert.equal(r.code, 1);
    assert.ok(r.stdout.includes(`TAIL @${sealed.offsets[1]} ${tailLen} bytes hold no intact record\n`), r.stdout);
    assert.ok(r.stdout.endsWith('records: 1\n'));

    const open = make(dir, { count: 2, ext: '.open' });
    writeFileSync(open.path, open.bytes.subarray(0, open.bytes.length - 5));
    const o = await runCli(['spool', 'inspect', open.path]);
    assert.equal(o.code, 0, o.stdout + o.stderr);
    assert.ok(o.stdout.includes(`TAIL @${open.offsets[1]} ${tailLen} bytes hold no intact record\n`));
  });

  // verify counts such a file as bad (exit 1); inspect, which could not read one record of it,
  // must not report success either.
  test('a file of a newer format: the header problem is printed, exit 1 (as verify)', async () => {
    const newer = make(dir, { version: CURRENT_VERSION + 1 });
    const r = await runCli(['spool', 'inspect', newer.path]);
    assert.ok(r.stdout.includes(`\nheader problem: unsupported-version: segment format version ${CURRENT_VERSION + 1} is newer`), r.stdout);
    assert.ok(r.stdout.endsWith('records: 0\n'));
    assert.equal(r.code, 1, 'exit status of inspect on a file it cannot read');
  });

  test('a file with a bad magic: the header problem is printed, exit 1', async () => {
    const junk = join(dir, `${uuidv7()}.seg`);
    writeFileSync(junk, 'not a segment at all, just text\n');
    const g = await runCli(['spool', 'inspect', '--json', junk]);
    assert.equal(g.code, 1);
    const doc = JSON.parse(g.stdout) as { header: unknown; headerProblem: { code: string }; records: unknown[] };
    assert.equal(doc.header, null);
    assert.equal(doc.headerProblem.code, 'corrupt');
    assert.deepEqual(doc.records, []);
  });

  test('--json on an intact frame whose body is not JSON prints it instead of crashing', async () => {
    // The drainer quarantines such a record ('bad-record'); the inspection tool must still show it.
    const segment = uuidv7();
    const path = join(dir, `${segment}.seg`);
    const header = encodeHeader({ node: NODE, segment, createdAt: CREATED });
    writeFileSync(path, Buffer.concat([header, encodeRecord(RecordKind.request, 'this is { not json')]));
    const text = await runCli(['spool', 'inspect', path]);
    assert.ok(text.stdout.includes(`@${header.length} request`), text.stdout);
    assert.ok(text.stdout.includes('this is { not json'));
    const j = await runCli(['spool', 'inspect', '--json', path]);
    assert.equal(j.stderr, '', 'no crash');
    assert.equal(j.code, text.code, 'same verdict as the text output');
    const doc = JSON.parse(j.stdout) as { records: { offset: number }[] };
    assert.equal(doc.records.length, 1);
    assert.equal(doc.records[0]!.offset, header.length);
    assert.ok(JSON.stringify(doc.records[0]).includes('this is { not json'), 'the raw body is shown');
  });

  test('a missing file: an error and a non-zero exit', async () => {
    const r = await runCli(['spool', 'inspect', join(dir, 'nope.seg')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ENOENT/);
  });
});

describe('intake spool verify', () => {
  const root = join(tmp.path, 'vroot', 'spool');
  const nodeA = join(root, 'nodes', 'node-a');
  const nodeB = join(root, 'nodes', 'node-b');
  let good1: Made;
  let good2: Made;
  let torn: Made;

  test('a clean spool: every file ok (an open torn tail is not damage), exit 0', async () => {
    good1 = make(nodeA, { count: 2 });
    good2 = make(nodeB, { count: 1 });
    torn = make(nodeB, { count: 2, ext: '.open' });
    writeFileSync(torn.path, torn.bytes.subarray(0, torn.bytes.length - 3));
    // Files in quarantine/ are not spool segments, whatever their name.
    mkdirSync(join(root, 'quarantine'), { recursive: true });
    writeFileSync(join(root, 'quarantine', `${uuidv7()}.seg`), 'junk');

    const r = await runCli(['spool', 'verify', root]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 4, r.stdout);
    assert.ok(lines.includes(`${'ok'.padEnd(11)} ${good1.path} (2 records)`), r.stdout);
    assert.ok(lines.includes(`${'ok'.padEnd(11)} ${good2.path} (1 records)`), r.stdout);
    assert.ok(lines.some((l) => l.startsWith(`${'torn-tail'.padEnd(11)} ${torn.path} (1 records; `)), r.stdout);
    assert.equal(lines[3], '3 file(s), 0 damaged or unreadable');
  });

  test('one damaged file: exit 1 and the file named as corrupt', async () => {
    const bad = make(nodeA, { count: 3 });
    damage(bad, 1);
    const r = await runCli(['spool', 'verify', root]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(`${'corrupt'.padEnd(11)} ${bad.path} (2 records; 1 damaged range(s))\n`), r.stdout);
    assert.ok(r.stdout.includes(`${'ok'.padEnd(11)} ${good1.path} (2 records)\n`));
    assert.ok(r.stdout.endsWith('4 file(s), 1 damaged or unreadable\n'), r.stdout);

    const j = await runCli(['spool', 'verify', '--json', root]);
    assert.equal(j.code, 1);
    const doc = JSON.parse(j.stdout) as { files: number; bad: number; results: { file: string; verdict: string; records: number }[] };
    assert.equal(doc.files, 4);
    assert.equal(doc.bad, 1);
    assert.deepEqual(
      doc.results.filter((x) => x.verdict !== 'ok' && x.verdict !== 'torn-tail').map((x) => [x.file, x.verdict, x.records]),
      [[bad.path, 'corrupt', 2]],
    );
    // Repaired (the damaged file gone), the spool verifies clean again.
    copyFileSync(good1.path, bad.path);
    assert.equal((await runCli(['spool', 'verify', root])).code, 0);
  });

  test('a file of a newer format is unreadable here: exit 1, named as unsupported', async () => {
    const dir = join(tmp.path, 'vroot2', 'spool', 'nodes', 'node-c');
    const newer = make(dir, { version: CURRENT_VERSION + 1 });
    const r = await runCli(['spool', 'verify', join(tmp.path, 'vroot2', 'spool')]);
    assert.equal(r.code, 1);
    assert.ok(r.stdout.startsWith(`${'unsupported'.padEnd(11)} ${newer.path} (0 records; segment format version ${CURRENT_VERSION + 1} is newer`), r.stdout);
  });

  test('the default directory is ./spool; a missing directory is an empty, clean spool', async () => {
    // The same spool as above (repaired), found as ./spool from its parent directory.
    const r = await runCli(['spool', 'verify'], { cwd: join(tmp.path, 'vroot') });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // The default (INTAKE_SPOOL or ./spool) is resolved to an absolute path, as every command does.
    assert.ok(r.stdout.includes(`${'ok'.padEnd(11)} ${join(tmp.path, 'vroot', 'spool', 'nodes', 'node-a', good1.segment)}.seg (2 records)\n`), r.stdout);
    assert.ok(r.stdout.endsWith('4 file(s), 0 damaged or unreadable\n'), r.stdout);
    const empty = await runCli(['spool', 'verify', join(tmp.path, 'does-not-exist')]);
    assert.equal(empty.code, 0);
    assert.equal(empty.stdout, '0 file(s), 0 damaged or unreadable\n');
  });
});

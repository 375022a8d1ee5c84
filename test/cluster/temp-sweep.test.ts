// Temp files of small durable writes (`<name>.tmp-<pid>-<ms>`) that a crash left between write
// and rename: the leader removes them once they are old, and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { sweepTempFiles } from '../../src/cluster/duties.js';
import { startDaemon } from '../helpers/daemon.js';
import { waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const HOUR = 3_600_000;

/** Create `path` (and its folder) with a modification time `ageMs` in the past. */
function file(path: string, ageMs: number): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, 'x');
  const t = new Date(Date.now() - ageMs);
  utimesSync(path, t, t);
  return path;
}

test('sweepTempFiles removes old temp files in every folder small durable writes use, and nothing else', async () => {
  const tmp = tempDir('intake-sweep-');
  try {
    const root = tmp.path;
    const old = [
      file(join(root, 'cluster', 'desired.json.tmp-123-1700000000000'), 2 * HOUR),
      file(join(root, 'cluster', 'drained', 'n1.tmp-9-1700000000000'), 2 * HOUR),
      file(join(root, 'callbacks', 'retry', '0001700000000000-msg_x.seg.tmp-77-1700000000000'), 2 * HOUR),
      file(join(root, 'callbacks', 'dead', 'msg_y.seg.tmp-77-1700000000001'), 2 * HOUR),
      file(join(root, 'nodes', 'n1', 'owner.json.tmp-5-1700000000000'), 2 * HOUR),
      file(join(root, 'quarantine', 'a.seg@8.json.tmp-5-1700000000000'), 2 * HOUR),
    ];
    const kept = [
      // young: a write that may still be in progress on another node
      file(join(root, 'cluster', 'desired.json.tmp-124-1800000000000'), 60_000),
      // old, but not temp files
      file(join(root, 'cluster', 'desired.json'), 2 * HOUR),
      file(join(root, 'callbacks', 'retry', '0001700000000000-msg_z.seg'), 2 * HOUR),
      file(join(root, 'nodes', 'n1', 'owner.json'), 2 * HOUR),
      file(join(root, 'nodes', 'n1', '0190aaaa-0000-7000-8000-000000000000.seg'), 2 * HOUR),
      file(join(root, 'nodes', 'n1', 'notes.tmp-old'), 2 * HOUR),
      file(join(root, 'quarantine', 'a.seg@8.json'), 2 * HOUR),
      file(join(root, 'quarantine', 'a.seg@8.bin'), 2 * HOUR),
    ];
    const removed = await sweepTempFiles(root, HOUR, pino({ level: 'silent' }));
    assert.equal(removed, old.length);
    for (const p of old) assert.equal(existsSync(p), false, `${p} was left`);
    for (const p of kept) assert.equal(existsSync(p), true, `${p} was removed`);
    // Idempotent, and an empty or missing spool is fine.
    assert.equal(await sweepTempFiles(root, HOUR, pino({ level: 'silent' })), 0);
    assert.equal(await sweepTempFiles(join(root, 'nothing-here'), HOUR, pino({ level: 'silent' })), 0);
  } finally {
    tmp.cleanup();
  }
});

test('a node that leads sweeps old temp files by itself', async () => {
  const tmp = tempDir('intake-sweep-node-');
  try {
    const spool = join(tmp.path, 'spool');
    const stale = file(join(spool, 'cluster', 'desired.json.tmp-4242-1700000000000'), 2 * HOUR);
    const fresh = file(join(spool, 'cluster', 'desired.json.tmp-4243-1800000000000'), 1000);
    const d = await startDaemon({ spool, db: `sqlite:${join(tmp.path, 'db.sqlite')}`, mode: 'receive', args: ['--heartbeat-ms', '200'] });
    try {
      await waitFor('the leader to sweep the stale temp file', () => !existsSync(stale), 15_000, 100);
      assert.equal(existsSync(fresh), true, 'a young temp file was removed');
    } finally {
      await d.kill('SIGKILL');
    }
  } finally {
    tmp.cleanup();
  }
});

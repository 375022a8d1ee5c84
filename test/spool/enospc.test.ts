// ENOSPC: the spool on a small tmpfs that a filler file nearly fills. A receive-mode node takes
// requests until the disk is full; from then on it answers 507 INTAKE_SPOOL_FULL with a
// Retry-After and its readiness check fails, and no 202 is ever given for a record that is not
// on disk (checked by decoding every segment file). When the filler is deleted the node
// recovers by itself, without a restart: /readyz is 200 again and new requests get 202.
// Needs `mount -t tmpfs` (root, as on CI); where mount is refused the test fails, naming why.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, sleep, waitFor, type Answer } from '../helpers/http.js';
import { nodeSpoolFiles, type NodeSpool } from '../helpers/spool-files.js';
import { tempDir } from '../helpers/tmp.js';

const FS_BYTES = 2 * 1024 * 1024;
/** Room left next to the filler: a few hundred requests' worth. */
const HEADROOM = 256 * 1024;
const NODE = 'enospc';

const tmp = tempDir('intake-enospc-');
const mnt = join(tmp.path, 'mnt');
let mounted = false;
let daemon: Daemon | null = null;

after(async () => {
  await daemon?.kill('SIGKILL');
  if (mounted) {
    const u = spawnSync('umount', [mnt], { encoding: 'utf8' });
    if (u.status !== 0) spawnSync('umount', ['-l', mnt]);
  }
  tmp.cleanup();
});

function missing(acked: Map<string, string>, disk: NodeSpool): string[] {
  return [...acked].filter(([, id]) => !disk.ids.has(id)).map(([key, id]) => `${key}=${id}`);
}

test('a full spool answers 507 and never acks what is not on disk; it recovers without a restart', { timeout: 120_000 }, async (t) => {
  mkdirSync(mnt, { recursive: true });
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${FS_BYTES}`, 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    // Never skipped: a machine that cannot run it (CI is root) fails loudly, naming why.
    throw new Error(`cannot mount a tmpfs (${(m.stderr || m.error?.message || `exit ${m.status}`).trim()}); this test needs root`);
  }
  mounted = true;
  const filler = join(mnt, 'filler');
  writeFileSync(filler, Buffer.alloc(FS_BYTES - HEADROOM));
  const free = () => {
    const s = statfsSync(mnt);
    return s.bavail * s.bsize;
  };
  t.diagnostic(`tmpfs of ${FS_BYTES} bytes, ${free()} free next to the filler`);

  const spool = join(mnt, 'spool');
  const dbPath = join(tmp.path, 'intake.db');
  daemon = await startDaemon({
    spool,
    db: `sqlite:${dbPath}`,
    mode: 'receive',
    nodeId: NODE,
    args: ['--seal-after-ms', '200', '--max-segment-bytes', String(64 * 1024)],
  });
  const d = daemon;
  assert.equal((await get(`${d.url}/readyz`)).status, 200);

  const acked = new Map<string, string>();
  const statuses = new Map<number, number>();
  const badFull: string[] = [];
  let n = 0;
  const pad = 'p'.repeat(1500);
  const send = async (): Promise<Answer> => {
    const key = `enospc-${n++}`;
    const a = await post(`${d.url}/v1/requests`, { payload: { key, pad }, callback_url: 'https://example.com/hook' }, { 'idempotency-key': key });
    statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
    if (a.status === 202) acked.set(key, a.body.id as string);
    if (a.status === 507) {
      const retryAfter = Number(a.headers.get('retry-after'));
      if (a.body?.error?.code !== 'INTAKE_SPOOL_FULL' || !(Number.isInteger(retryAfter) && retryAfter > 0)) {
        badFull.push(`code ${a.body?.error?.code}, retry-after ${a.headers.get('retry-after')}`);
      }
    }
    return a;
  };

  // Phase 1: fill the disk. Four clients send until the last 40 answers in a row were 507.
  let refusedInARow = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (refusedInARow < 40) {
        assert.ok(n < 5000, `the spool never filled up: ${JSON.stringify([...statuses])}, ${free()} bytes free`);
        const a = await send();
        refusedInARow = a.status === 202 ? 0 : refusedInARow + 1;
      }
    }),
  );
  const ackedWhileFilling = acked.size;
  t.diagnostic(`filling: sent ${n}, answers ${JSON.stringify(Object.fromEntries(statuses))}, ${free()} bytes free`);
  assert.deepEqual([...statuses.keys()].sort(), [202, 507], 'only 202 and 507 while the disk fills up');
  assert.deepEqual(badFull, [], '507 answers carry INTAKE_SPOOL_FULL and a Retry-After');
  assert.ok(ackedWhileFilling >= 50, `only ${ackedWhileFilling} requests acked before the disk was full`);

  // While full: not ready, still refusing, and every 202 so far is in an intact record on disk.
  const notReady = await waitFor('/readyz 503 while the spool is full', async () => {
    const r = await get(`${d.url}/readyz`);
    return r.status === 503 ? r : null;
  }, 5000);
  t.diagnostic(`readyz while full: ${JSON.stringify(notReady?.body)}`);
  for (let i = 0; i < 5; i++) {
    await sleep(200);
    assert.equal((await get(`${d.url}/readyz`)).status, 503, 'readiness stays failed while the spool is full');
  }
  assert.equal((await send()).status, 507, 'still full: refused');
  const full = nodeSpoolFiles(spool, NODE);
  assert.deepEqual(missing(acked, full), [], 'acked requests missing from the spool files');
  assert.deepEqual(full.sealedDamage, [], 'sealed segments are whole');

  // Phase 2: space comes back; the node recovers by itself, same process, no restart.
  unlinkSync(filler);
  const pid = d.proc.pid;
  await waitFor('/readyz 200 once space is back', async () => (await get(`${d.url}/readyz`)).status === 200, 15_000);
  const before = acked.size;
  for (let i = 0; i < 50; i++) {
    const a = await send();
    assert.equal(a.status, 202, `after recovery: ${JSON.stringify(a.body)}`);
  }
  assert.equal(acked.size, before + 50);
  assert.equal(d.proc.exitCode, null, 'the node is still the same process');
  assert.equal(d.proc.pid, pid);

  // A graceful stop seals everything; every 202 of both phases is in a sealed, whole segment.
  assert.equal(await d.kill('SIGTERM'), 0, `the node did not stop cleanly:\n${d.output().slice(-4000)}`);
  const end = nodeSpoolFiles(spool, NODE);
  t.diagnostic(`end: sent ${n}, acked ${acked.size}, answers ${JSON.stringify(Object.fromEntries(statuses))}, files ${end.files.length}, ids on disk ${end.ids.size}`);
  assert.deepEqual(missing(acked, end), [], 'acked requests missing from the spool files');
  assert.deepEqual(end.sealedDamage, [], 'sealed segments are whole');
  assert.deepEqual(end.files.filter((f) => f.endsWith('.open')), [], 'no open segment after a graceful stop');
  assert.equal(existsSync(dbPath), false, 'a receive-mode node never touches the database');
});

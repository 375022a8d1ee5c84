// Power loss: the kill -9 tests keep the page cache, so they cannot notice a missing fdatasync or
// directory fsync. Here a receive-mode node spools onto a real ext4 on a loop device while a
// client streams requests at it; at random moments the power is "cut": the node is stopped
// (SIGSTOP: it writes nothing more) and the disk image is copied as the disk holds it, without
// what ext4 still keeps only in memory (why the copy is exactly that: test/helpers/loop-disk.ts).
// The copy is repaired as after a reboot (fsck.ext4 -fy), mounted on another loop device, and a
// fresh node (same node id, mode both, SQLite outside the image) recovers and drains it. Every
// request that got a 202 before the cut must be in the database, once; nothing never sent may be.
// Then the stopped node resumes and the next cut comes.
//
// ext4 is mounted with commit=60 so the journal does not commit on its own between cuts, and the
// kernel writes back dirty data only once it is 30 s old (vm.dirty_expire_centisecs, left as it
// is: it is global), so what the node wrote in the seconds before a cut without syncing it is
// still only in memory. scripts/mutant-power-loss.sh runs this test against a build without the
// writer's fdatasync (INTAKE_POWER_LOSS_BIN) and shows that it then fails (lost > 0).
// Set INTAKE_POWER_LOSS_SEED to replay a run's cut times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { sleep, waitFor } from '../helpers/http.js';
import { fsckRepair, makeExt4Image, mountImage, removeQuietly, requireLoopDisks, snapshot, type LoopMount } from '../helpers/loop-disk.js';
import { tempDir } from '../helpers/tmp.js';
import { checkDelivery, prng, readSqliteRows, RetryingClient, segmentFiles, type CheckReport } from '../chaos/checker.js';

const CUTS = 10;
const IMAGE_MIB = 128;
const NODE = 'powerloss';
/** New 202s between two cuts at least, so a slow machine still cuts into real traffic. */
const ACKS_PER_CUT = 25;
const DAEMON_ARGS = ['--seal-after-ms', '200', '--lock-stale-ms', '2000', '--scan-interval-ms', '100'];
/** Another build of intake to run (a mutant), or this repository's. */
const BIN = process.env.INTAKE_POWER_LOSS_BIN || undefined;

/** True once every thread of `pid` is stopped: from then on the process writes nothing. */
function allThreadsStopped(pid: number): boolean {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.every((t) => {
    const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'T' || state === 't';
  });
}

async function cutPower(d: Daemon): Promise<void> {
  d.proc.kill('SIGSTOP');
  const deadline = Date.now() + 30_000;
  while (!allThreadsStopped(d.proc.pid!)) {
    if (Date.now() > deadline) throw new Error('the node did not stop within 30 s of SIGSTOP');
    await sleep(5);
  }
}

interface CutResult {
  report: CheckReport;
  fsckCode: number;
  passes: number;
  quarantined: number;
  /** Time from the cut to the checked database. */
  ms: number;
}

/** Everything the disk held at the cut, recovered by a fresh node into a fresh database. */
async function recoverCopy(dir: string, image: string, n: number, cleanups: (() => Promise<void>)[], client: RetryingClient): Promise<CutResult> {
  const copy = join(dir, `cut-${n}.img`);
  const dbPath = join(dir, `cut-${n}.db`);
  const t0 = Date.now();
  const passes = await snapshot(image, copy);
  let disk: LoopMount | null = null;
  let node: Daemon | null = null;
  const undo = async () => {
    await node?.kill('SIGKILL');
    await disk?.release();
    for (const f of [copy, dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) removeQuietly(f);
  };
  cleanups.push(undo);
  try {
    const fsck = fsckRepair(copy);
    disk = await mountImage(copy, join(dir, `cut-${n}`));
    const spool = join(disk.dir, 'spool');
    const args = [...DAEMON_ARGS, '--stop-idle-ms', '100'];
    node = await startDaemon({ spool, db: `sqlite:${dbPath}`, mode: 'both', nodeId: NODE, args, bin: BIN, startTimeoutMs: 60_000 });
    // Drained when no segment is left and the row count holds still.
    const deadline = Date.now() + 60_000;
    let last = -1;
    for (;;) {
      const left = segmentFiles(spool).length;
      const rows = readSqliteRows(dbPath).length;
      if (left === 0 && rows === last) break;
      last = left === 0 ? rows : -1;
      if (Date.now() > deadline) throw new Error(`cut ${n}: the copy did not drain within 60 s (${left} segments left):\n${node.output().slice(-3000)}`);
      await sleep(300);
    }
    // The cut node is still stopped: every 202 the client holds now was sent before the cut.
    const report = checkDelivery({ acked: new Map(client.acked), sent: new Set(client.sent), rows: readSqliteRows(dbPath) });
    const qdir = join(spool, 'quarantine');
    const quarantined = (() => {
      try {
        return readdirSync(qdir).filter((f) => f.endsWith('.json')).length;
      } catch {
        return 0;
      }
    })();
    assert.equal(await node.kill('SIGTERM'), 0, `cut ${n}: the recovering node stopped cleanly`);
    return { report, fsckCode: fsck.code, passes, quarantined, ms: Date.now() - t0 };
  } finally {
    await undo();
    cleanups.splice(cleanups.indexOf(undo), 1);
  }
}

test(`power loss, ${CUTS} cuts on ext4 over a loop device: every 202 before a cut is in the database once`, { timeout: 300_000 }, async (t) => {
  requireLoopDisks();
  const t0 = Date.now();
  const seed = process.env.INTAKE_POWER_LOSS_SEED ? Number(process.env.INTAKE_POWER_LOSS_SEED) : Math.floor(Math.random() * 2 ** 31);
  const rand = prng(seed);
  const tmp = tempDir('intake-powerloss-');
  const cleanups: (() => Promise<void>)[] = [];
  const cuts: CutResult[] = [];
  const client = new RetryingClient('pl');
  try {
    const image = join(tmp.path, 'disk.img');
    makeExt4Image(image, IMAGE_MIB);
    const disk = await mountImage(image, join(tmp.path, 'mnt'), 'noatime,commit=60');
    cleanups.push(() => disk.release());
    // While the node is stopped its clock runs on: without long HTTP timeouts it would answer the
    // requests that waited through a cut with 408 when it resumes.
    const args = [...DAEMON_ARGS, '--headers-timeout-ms', '300000', '--request-timeout-ms', '600000'];
    const d = await startDaemon({ spool: join(disk.dir, 'spool'), db: `sqlite:${join(tmp.path, 'unused.db')}`, mode: 'receive', nodeId: NODE, args, bin: BIN });
    const load = client.run(d.url, { concurrency: 8, newKeys: true, timeoutMs: 120_000 });
    cleanups.push(async () => {
      load.stop();
      d.proc.kill('SIGCONT');
      await d.kill('SIGKILL'); // requests still in flight end with a connection error
      await load.done;
    });

    for (let n = 1; n <= CUTS; n++) {
      const before = client.acked.size;
      await waitFor(`${ACKS_PER_CUT} new 202s before cut ${n}`, () => client.acked.size >= before + ACKS_PER_CUT, 120_000, 20);
      await sleep(Math.round(rand() * 1000));
      assert.equal(d.proc.exitCode, null, `the node exited by itself before cut ${n}:\n${d.output().slice(-3000)}`);
      await cutPower(d);
      const r = await recoverCopy(tmp.path, image, n, cleanups, client);
      cuts.push(r);
      const f = r.report;
      t.diagnostic(
        `cut ${n}/${CUTS}: acked=${f.acked} stored=${f.stored} lost=${f.lost.length} duplicated=${f.duplicated.length} ` +
          `unexpected=${f.unexpected.length} mismatched=${f.mismatched.length} fsck=${r.fsckCode} copy-passes=${r.passes} quarantined=${r.quarantined} checked-in=${(r.ms / 1000).toFixed(1)}s`,
      );
      d.proc.kill('SIGCONT');
    }
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err) => t.diagnostic(`cleanup: ${(err as Error).message}`));
    tmp.cleanup();
  }

  const sum = (pick: (r: CheckReport) => string[]) => cuts.reduce((s, c) => s + pick(c.report).length, 0);
  const last = cuts[cuts.length - 1]!.report;
  const figures =
    `power-loss test${BIN ? ' (MUTANT build)' : ''}: seed=${seed} cuts=${cuts.length} acked=${last.acked} stored=${last.stored} ` +
    `lost=${sum((r) => r.lost)} duplicated=${sum((r) => r.duplicated)} unexpected=${sum((r) => r.unexpected)} mismatched=${sum((r) => r.mismatched)} ` +
    `(summed over cuts) fsck-repaired=${cuts.filter((c) => c.fsckCode !== 0).length} elapsed=${((Date.now() - t0) / 1000).toFixed(1)}s`;
  console.log(figures);
  t.diagnostic(figures);

  assert.deepEqual(client.wrongAnswers, [], 'answers a correct node never gives');
  for (const [i, c] of cuts.entries()) {
    const r = c.report;
    const first = (xs: string[]) => xs.slice(0, 5).join('; ');
    assert.equal(r.lost.length, 0, `cut ${i + 1}: acknowledged requests missing after the power cut: ${first(r.lost)}`);
    assert.equal(r.duplicated.length, 0, `cut ${i + 1}: stored more than once: ${first(r.duplicated)}`);
    assert.equal(r.unexpected.length, 0, `cut ${i + 1}: rows never sent: ${first(r.unexpected)}`);
    assert.equal(r.mismatched.length, 0, `cut ${i + 1}: rows whose id is not the acknowledged one: ${first(r.mismatched)}`);
  }
  assert.equal(cuts.length, CUTS);
  assert.ok(last.acked >= CUTS * ACKS_PER_CUT, `only ${last.acked} requests acknowledged by the last cut`);
});

// Failing storage under a real running node: strace attaches to every thread of a receive-mode
// node and makes its fdatasync, its file writes or its renames fail with EIO or ENOSPC for a
// while, then detaches, twice per fault, while clients keep sending. The node must:
//   - never answer 202 for a request whose write or sync failed: the strace log shows which
//     writes a failed call spoiled (a failed pwrite, or every write to that file since its last
//     good fdatasync: Linux may drop those pages), and none of their keys may have got a 202;
//   - refuse with the error shape (503 INTAKE_SPOOL_UNAVAILABLE, 507 INTAKE_SPOOL_FULL, with a
//     Retry-After) and fail its readiness check while it cannot write;
//   - recover by itself once the fault ends (readiness back, new requests 202, same process);
//   - lose nothing it acknowledged: a node in mode both drains the spool afterwards and the
//     checker finds every acked key stored once; refused keys may be stored, never twice.
// Node's file writes with a position are pwrite64 calls (sockets and stdout use write/writev,
// so HTTP answers and logs are untouched); io_uring is switched off so they are real syscalls.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { get, post, sleep, waitFor } from '../helpers/http.js';
import { nodeSpoolFiles } from '../helpers/spool-files.js';
import { injectFault, parseStraceLog, requireStrace } from '../helpers/strace.js';
import { tempDir } from '../helpers/tmp.js';
import { assertNoLossNoDuplicate, checkDelivery, formatReport, readSqliteRows, segmentFiles } from './checker.js';

interface Fault {
  name: string;
  fail: string[];
  errno: 'EIO' | 'ENOSPC';
  /** strace's `when=` (which matching calls fail): intermittent faults; all of them when absent. */
  when?: string;
  /** What a refused client gets. Null: the fault refuses nobody (a failed seal is retried later). */
  refusal: { status: number; code: string } | null;
}

const WRITES = ['pwrite64', '?pwritev', '?pwritev2'];
const RENAMES = ['?rename', '?renameat', 'renameat2'];
const unavailable = { status: 503, code: 'INTAKE_SPOOL_UNAVAILABLE' };
const full = { status: 507, code: 'INTAKE_SPOOL_FULL' };
const FAULTS: Fault[] = [
  { name: 'fdatasync EIO', fail: ['fdatasync'], errno: 'EIO', refusal: unavailable },
  { name: 'fdatasync ENOSPC', fail: ['fdatasync'], errno: 'ENOSPC', refusal: full },
  { name: 'write EIO', fail: WRITES, errno: 'EIO', refusal: unavailable },
  { name: 'write ENOSPC', fail: WRITES, errno: 'ENOSPC', refusal: full },
  { name: 'rename EIO', fail: RENAMES, errno: 'EIO', refusal: null },
  // The directory fsync after a segment is made, and the sync of an abandoned file before it is sealed.
  { name: 'fsync EIO', fail: ['fsync'], errno: 'EIO', refusal: unavailable },
  // One fdatasync in three fails: segments holding synced batches are abandoned again and again.
  { name: 'fdatasync EIO 1 in 3', fail: ['fdatasync'], errno: 'EIO', when: '3+3', refusal: unavailable },
];
const RUNS = 2;
/** A fault lasts at least this long, and until it has made this many calls fail. */
const FAULT_MS = 800;
const FAULT_CALLS = 3;
const NODE = 'faulty';

const tmp = tempDir('intake-storage-faults-');
const daemons: Daemon[] = [];
after(async () => {
  for (const d of daemons) await d.kill('SIGKILL');
  tmp.cleanup();
});

/** Keys are `sf-<fault>-<run>-<n>`: the strace log shows them inside the written records. */
const KEY = /sf-\d+-\d+-\d+/g;

interface Tally {
  sent: string[];
  acked: Map<string, string>;
  refused: Map<string, number>;
  wrong: string[];
  injected: number;
  /** Keys written by a failed write, or before a failed fdatasync of their file. */
  spoiled: Set<string>;
  notReadySeen: number;
}

/** Keys whose bytes a failed call may have lost, from one strace log. */
function spoiledKeys(log: string): Set<string> {
  const spoiled = new Set<string>();
  const unsynced = new Map<number, Set<string>>(); // fd -> keys written since its last good fdatasync
  for (const c of parseStraceLog(log)) {
    if (c.fd === null) continue;
    if (c.name.startsWith('pwrite')) {
      const keys = c.text.match(KEY) ?? [];
      if (c.result < 0) for (const k of keys) spoiled.add(k);
      else {
        const s = unsynced.get(c.fd) ?? new Set<string>();
        for (const k of keys) s.add(k);
        unsynced.set(c.fd, s);
      }
    } else if (c.name === 'fdatasync') {
      if (c.result < 0) for (const k of unsynced.get(c.fd) ?? []) spoiled.add(k);
      unsynced.delete(c.fd);
    }
  }
  return spoiled;
}

test('failing fdatasync, write and rename: no false 202, nothing acked lost, recovery without a restart', { timeout: 240_000 }, async (t) => {
  requireStrace();
  const spool = join(tmp.path, 'spool');
  const dbPath = join(tmp.path, 'intake.db');
  const env = { UV_USE_IO_URING: '0' };
  const d = await startDaemon({ spool, db: `sqlite:${dbPath}`, mode: 'receive', nodeId: NODE, env, args: ['--seal-after-ms', '150', '--max-segment-bytes', String(64 * 1024)] });
  daemons.push(d);
  const pid = d.proc.pid!;
  const tallies: Tally[] = [];

  const send = async (tally: Tally, key: string, refusal: Fault['refusal']): Promise<number> => {
    tally.sent.push(key);
    const a = await post(`${d.url}/v1/requests`, { payload: { key }, callback_url: 'https://example.com/hook' }, { 'idempotency-key': key }, 15_000);
    if (a.status === 202) tally.acked.set(key, a.body.id as string);
    else {
      tally.refused.set(key, a.status);
      const retryAfter = Number(a.headers.get('retry-after'));
      const fine = refusal && a.status === refusal.status && a.body?.error?.code === refusal.code && Number.isInteger(retryAfter) && retryAfter > 0;
      if (!fine) tally.wrong.push(`${key}: ${a.status} ${JSON.stringify(a.body)} retry-after=${a.headers.get('retry-after')}`);
    }
    return a.status;
  };

  for (const [fi, fault] of FAULTS.entries()) {
    const tally: Tally = { sent: [], acked: new Map(), refused: new Map(), wrong: [], injected: 0, spoiled: new Set(), notReadySeen: 0 };
    tallies.push(tally);
    for (let run = 0; run < RUNS; run++) {
      let n = 0;
      let stop = false;
      const clients = Promise.all(
        Array.from({ length: 4 }, async () => {
          while (!stop) if ((await send(tally, `sf-${fi}-${run}-${n++}`, fault.refusal)) !== 202) await sleep(20);
        }),
      );
      const watchReady = (async () => {
        while (!stop) {
          if ((await get(`${d.url}/readyz`)).status === 503) tally.notReadySeen++;
          await sleep(50);
        }
      })();
      await sleep(200);
      const logPath = join(tmp.path, `strace-${fi}-${run}.log`);
      const f = await injectFault({ pid, fail: fault.fail, errno: fault.errno, when: fault.when, trace: ['pwrite64', 'fdatasync'], logPath });
      const t0 = Date.now();
      try {
        await waitFor(`${fault.name}: ${FAULT_CALLS} failed calls`, () => Date.now() - t0 >= FAULT_MS && f.injected() >= FAULT_CALLS, 30_000);
      } finally {
        await f.stop();
      }
      const injected = f.injected();
      // The fault is over: the node finds out by itself.
      await waitFor(`${fault.name}: /readyz 200 after the fault`, async () => (await get(`${d.url}/readyz`)).status === 200, 20_000);
      stop = true;
      await Promise.all([clients, watchReady]);
      for (let i = 0; i < 20; i++) assert.equal(await send(tally, `sf-${fi}-${run}-${100_000 + i}`, null), 202, `${fault.name}: new requests are accepted again`);
      tally.injected += injected;
      for (const k of spoiledKeys(readFileSync(logPath, 'utf8'))) tally.spoiled.add(k);
      assert.ok(injected > 0, `${fault.name}: strace made no call fail`);
    }
  }
  assert.equal(d.proc.exitCode, null, 'the faulty node is still the same process');

  // A graceful stop seals everything; the sealed files hold each id once and are whole.
  assert.equal(await d.kill('SIGTERM'), 0, `the node did not stop cleanly:\n${d.output().slice(-4000)}`);
  const files = nodeSpoolFiles(spool, NODE);
  assert.deepEqual(files.sealedDamage, [], 'sealed segments are whole');
  const twiceInSpool = [...files.sealedCopies].filter(([, n]) => n > 1).map(([id]) => id);

  // Drain everything with a node in mode both, then account for every key.
  const drainer = await startDaemon({ spool, db: `sqlite:${dbPath}`, mode: 'both', nodeId: 'drainer', args: ['--scan-interval-ms', '100'] });
  daemons.push(drainer);
  const expected = tallies.reduce((n, x) => n + x.acked.size, 0);
  await waitFor('the spool is drained', () => segmentFiles(spool).length === 0 && readSqliteRows(dbPath).length >= expected, 60_000, 200);
  const rows = readSqliteRows(dbPath);
  await drainer.kill('SIGTERM');

  for (const [fi, fault] of FAULTS.entries()) {
    const x = tallies[fi]!;
    const prefix = `sf-${fi}-`;
    const report = checkDelivery({ acked: x.acked, sent: x.sent, rows: rows.filter((r) => r.idempotency_key?.startsWith(prefix)) });
    const false202 = [...x.acked.keys()].filter((k) => x.spoiled.has(k));
    const byStatus = [...x.refused.values()].reduce((m, s) => m.set(s, (m.get(s) ?? 0) + 1), new Map<number, number>());
    const line =
      `storage fault ${fault.name}: runs=${RUNS} injected=${x.injected} sent=${x.sent.length} acked=${x.acked.size} refused=${x.refused.size} ` +
      `${JSON.stringify(Object.fromEntries(byStatus))} refused-stored=${report.storedUnacked} lost=${report.lost.length} ` +
      `duplicated=${report.duplicated.length} false-202=${false202.length} spoiled-writes=${x.spoiled.size} not-ready-checks=${x.notReadySeen}`;
    console.log(line);
    t.diagnostic(formatReport(report));
    assert.deepEqual(x.wrong, [], `${fault.name}: answers other than 202 or the fault's refusal`);
    assert.deepEqual(false202, [], `${fault.name}: 202 answered for requests whose write or sync failed`);
    assertNoLossNoDuplicate(report);
    if (fault.refusal) {
      assert.ok(x.refused.size > 0, `${fault.name}: nobody was refused: the fault never reached a request`);
      if (!fault.when) assert.ok(x.notReadySeen > 0, `${fault.name}: /readyz never failed while the spool could not be written`);
    }
  }
  assert.deepEqual(twiceInSpool, [], 'ids in more than one sealed record');
});

// The crash test: a real node is killed with SIGKILL at random moments while a client streams
// requests at it (16 in flight, each with its own Idempotency-Key, retried until acked), and
// restarted with the same node id and spool, 25 times. Afterwards every request that got a 202
// is in the database exactly once, and nothing is there that was never sent.
// The scenario and its assertions live in checker.ts (runCrashTest) so the PostgreSQL suite can
// run the same test with a `postgres://` target: { url, readRows: SELECT id, idempotency_key ... }.
// Set INTAKE_CHAOS_SEED to replay a run's kill times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { newRequestId } from '../../src/intake/ids.js';
import { encodeHeader, encodeRecord, RecordKind } from '../../src/spool/format.js';
import { openPath, nodeDir } from '../../src/spool/layout.js';
import { encodeRequestRecord } from '../../src/spool/records.js';
import { startDaemon } from '../helpers/daemon.js';
import { sleep } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';
import { assertNoLossNoDuplicate, checkDelivery, CRASH_ROUNDS, formatReport, readSqliteRows, runCrashTest, segmentFiles, sqliteTarget } from './checker.js';

test(`SIGKILL at random moments, ${CRASH_ROUNDS} rounds: every 202 in SQLite exactly once, nothing unexpected`, { timeout: 180_000 }, async (t) => {
  const tmp = tempDir('intake-crash-');
  try {
    await runCrashTest(t, sqliteTarget(join(tmp.path, 'intake.db')), join(tmp.path, 'spool'));
  } finally {
    tmp.cleanup();
  }
});

// A node killed while it sealed its own leftover at start (between taking the claim on the sealed
// name and releasing it) leaves that claim behind, and is restarted before the claim goes stale.
// The new process must still seal and drain the leftover once the claim is stale: it holds
// acknowledged requests, and no other node touches a live node's open segments.
test('a leftover open segment whose seal claim a dead process left is sealed and drained once the claim is stale', { timeout: 60_000 }, async (t) => {
  const tmp = tempDir('intake-leftover-');
  const spool = join(tmp.path, 'spool');
  const dbPath = join(tmp.path, 'intake.db');
  const node = 'leftover';
  const lockStaleMs = 2000;
  try {
    // What the killed process left: its node lock and owner.json (a dead pid on this host), an
    // open segment holding synced (so acknowledged) records, and its fresh claim on the sealed name.
    const dir = nodeDir(spool, node);
    mkdirSync(dir, { recursive: true });
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(dir, 'owner.json'), JSON.stringify({ host: hostname(), pid: deadPid, startedAt: new Date().toISOString() }) + '\n');
    mkdirSync(`${dir}.lock`);
    const segment = uuidv7();
    const keys = Array.from({ length: 20 }, (_, i) => `leftover-${i}`);
    const acked = new Map(keys.map((k) => [k, newRequestId('default', k, Buffer.from('crash-test-id-secret'))] as const));
    const records = keys.map((k) =>
      encodeRecord(
        RecordKind.request,
        encodeRequestRecord({
          id: acked.get(k)!,
          tenant: 'default',
          idempotencyKey: k,
          receivedAt: Date.now(),
          node,
          callbackUrl: 'https://example.com/hook',
          lane: null,
          notBefore: null,
          payload: JSON.stringify({ k }),
          metadata: null,
        }),
      ),
    );
    const open = openPath(spool, node, segment);
    writeFileSync(open, Buffer.concat([encodeHeader({ node, segment, createdAt: Date.now() }), ...records]));
    mkdirSync(open.replace(/\.open$/, '.seg.lock'));

    const d = await startDaemon({
      spool,
      db: `sqlite:${dbPath}`,
      nodeId: node,
      args: ['--seal-after-ms', '200', '--lock-stale-ms', String(lockStaleMs), '--scan-interval-ms', '100'],
    });
    try {
      // The claim goes stale after lockStaleMs; give the node four times that.
      const deadline = Date.now() + 4 * lockStaleMs;
      while (Date.now() < deadline && (segmentFiles(spool).length > 0 || readSqliteRows(dbPath).length < keys.length)) await sleep(100);
      const left = segmentFiles(spool);
      const report = checkDelivery({ acked, sent: keys, rows: readSqliteRows(dbPath) });
      t.diagnostic(`leftover: ${formatReport(report)} files left: ${left.join(', ') || 'none'}`);
      assertNoLossNoDuplicate(report);
      assert.deepEqual(left, [], 'the leftover segment was sealed and drained while the node runs');
    } finally {
      assert.equal(await d.kill('SIGTERM'), 0);
    }
  } finally {
    tmp.cleanup();
  }
});

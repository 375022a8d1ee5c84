// Spool locks judged stale by progress on the observer's own clock (src/spool/stale-locks.ts), on
// real files with real processes: a holder whose clock is an hour behind (libfaketime) keeps its
// lock, a holder stopped with SIGSTOP is taken over after the stale time and learns it when it
// resumes, and a dead holder whose clock was an hour ahead is taken over after the stale time too.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import lockfile from 'proper-lockfile';
import { StaleLocks } from '../../src/spool/stale-locks.js';
import { repoRoot } from '../helpers/daemon.js';
import { faketimeEnv } from '../helpers/faketime.js';
import { sleep, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const STALE_MS = 2000;
const tmp = tempDir('intake-stale-locks-');
after(() => tmp.cleanup());

/** A process that takes the lock on `file` through StaleLocks and holds it, printing `locked`, then `compromised` if it loses it. */
function holder(file: string, env: Record<string, string> = {}): { proc: ChildProcess; output: () => string } {
  const mod = pathToFileURL(join(repoRoot, 'dist', 'src', 'spool', 'stale-locks.js')).href;
  const script = `
    const { StaleLocks } = await import(${JSON.stringify(mod)});
    const release = await new StaleLocks(${STALE_MS}).tryLock(${JSON.stringify(file)}, { onCompromised: () => console.log('compromised') });
    console.log(release ? 'locked' : 'busy');
    setInterval(() => {}, 1000);`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  return { proc, output: () => out };
}

function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGKILL');
  return gone;
}

test('a holder whose clock is an hour behind keeps its lock: it refreshes, so it is never taken', { timeout: 30_000 }, async () => {
  const env = faketimeEnv('-1h', -3_600_000);
  const file = join(tmp.path, 'behind');
  const h = holder(file, env);
  try {
    await waitFor('the holder to lock', () => h.output().includes('locked'), 10_000);
    // proper-lockfile's own judgement compares the holder's mtime with this clock: stale at once.
    assert.equal(lockfile.checkSync(file, { stale: STALE_MS, realpath: false }), false, 'a clock-based check takes the lock for stale (the bug this guards against)');
    // Judged with twice the holder's stale time: the holder refreshes every second, and a loaded
    // machine may hold a process back for a second or two; this test is about clocks, not stalls.
    const locks = new StaleLocks(2 * STALE_MS);
    const t0 = performance.now();
    let tries = 0;
    while (performance.now() - t0 < 4 * STALE_MS) {
      assert.equal(await locks.tryLock(file), null, `taken from a live holder after ${Math.round(performance.now() - t0)} ms`);
      tries++;
      await sleep(100);
    }
    assert.ok(tries > 10);
    await assert.rejects(locks.lockWaiting(file, 500), { code: 'INTAKE_LOCK_BUSY' }, 'a waiter gives up on a lock its holder keeps refreshing');
    assert.doesNotMatch(h.output(), /compromised/);
  } finally {
    await stop(h.proc);
  }
});

test('a stopped holder (SIGSTOP) is taken over after the stale time, and finds out when it resumes', { timeout: 30_000 }, async () => {
  const file = join(tmp.path, 'stopped');
  const h = holder(file);
  try {
    await waitFor('the holder to lock', () => h.output().includes('locked'), 10_000);
    h.proc.kill('SIGSTOP');
    const locks = new StaleLocks(STALE_MS);
    const t0 = performance.now();
    let release: (() => Promise<void>) | null = null;
    while (!release && performance.now() - t0 < 4 * STALE_MS) {
      release = await locks.tryLock(file);
      if (!release) await sleep(50);
    }
    const tookMs = performance.now() - t0;
    assert.ok(release, 'the lock of a stopped holder is taken over');
    assert.ok(tookMs >= STALE_MS, `taken after ${Math.round(tookMs)} ms of stillness, under the stale time`);
    h.proc.kill('SIGCONT');
    await waitFor('the resumed holder to see its lock compromised', () => h.output().includes('compromised'), 10_000);
    assert.equal(lockfile.checkSync(file, { stale: 60_000, realpath: false }), true, 'the taker still holds the lock');
    await release();
  } finally {
    h.proc.kill('SIGCONT');
    await stop(h.proc);
  }
});

test('a dead holder whose clock was an hour ahead is taken over after the stale time, not an hour later', { timeout: 30_000 }, async () => {
  const file = join(tmp.path, 'ahead');
  mkdirSync(`${file}.lock`);
  const ahead = new Date(Date.now() + 3_600_000);
  utimesSync(`${file}.lock`, ahead, ahead);
  const locks = new StaleLocks(STALE_MS);
  const t0 = performance.now();
  assert.equal(await locks.tryLock(file), null, 'not judged at first sight');
  const release = (await waitFor('the takeover', () => locks.tryLock(file), 4 * STALE_MS, 100))!;
  assert.ok(performance.now() - t0 >= STALE_MS, 'not before the stale time');
  await release();
});

// A process with a foreign clock: libfaketime (Debian package `faketime`) preloaded into it, so
// its wall clock (Date.now, new Date, and so the mtimes it sets with utimes) is off by a fixed
// offset, as on a host whose clock is wrong. The environment is given to the process itself
// rather than run through the `faketime` wrapper, which forks: the test must know the node's
// own pid to kill or stop it. The monotonic clock gets the same constant offset, which leaves
// every duration measured with it unchanged.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The thread-safe libfaketime (Node runs threads: libuv's pool, the SQLite and decode workers). */
function findLibfaketime(): string {
  const dirs = ['/usr/lib', '/usr/local/lib', '/usr/lib64'];
  for (const base of dirs) {
    if (!existsSync(base)) continue;
    for (const sub of ['', ...readdirSync(base).filter((n) => n.endsWith('-linux-gnu'))]) {
      const p = join(base, sub, 'faketime', 'libfaketimeMT.so.1');
      if (existsSync(p)) return p;
    }
  }
  throw new Error('libfaketime is missing (libfaketimeMT.so.1 under /usr/lib/*/faketime/): install the Debian package faketime (apt-get install faketime); the foreign-clock tests need it');
}

/**
 * Environment that sets a process's clock `offset` from the real one (libfaketime's syntax:
 * '-1h', '+3600s'). Checked before use: a Node process started with it must see its Date.now
 * off by `expectMs` (within a minute), else this throws, naming what did not work.
 */
export function faketimeEnv(offset: string, expectMs: number): Record<string, string> {
  const env = { LD_PRELOAD: findLibfaketime(), FAKETIME: offset };
  const out = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const skew = Number(out) - Date.now();
  if (!Number.isFinite(skew) || Math.abs(skew - expectMs) > 60_000) {
    throw new Error(`libfaketime did not shift Node's clock by ${expectMs} ms (FAKETIME=${offset}): it is off by ${skew} ms`);
  }
  return env;
}

// The node lock: held by the one process that writes a node's segments. A drainer that can take
// it (the lock went stale) knows the node is dead and may seal its open segment.
import { promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import lockfile from 'proper-lockfile';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import { nodeDir } from './layout.js';
import { mkdirDurable, writeFileDurable } from './fsutil.js';

export interface NodeLock {
  release(): Promise<void>;
}

export interface NodeLockOptions {
  staleMs: number;
  /** How long to wait for a lock held by another live process before giving up. */
  waitMs: number;
  log: Logger;
  onCompromised: (err: Error) => void;
}

interface Owner {
  host: string;
  pid: number;
  startedAt: string;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * How often a held lock is refreshed. proper-lockfile clamps this to [1000, stale/2], so with
 * the smallest stale time (2000 ms) a holder has a margin of one second of event-loop stall
 * before another process may judge the lock stale.
 */
export function lockUpdateMs(staleMs: number): number {
  return Math.max(1000, Math.floor(staleMs / 4));
}

async function readOwner(dir: string): Promise<Owner | null> {
  try {
    return JSON.parse(await fsp.readFile(`${dir}/owner.json`, 'utf8')) as Owner;
  } catch {
    return null;
  }
}

export async function acquireNodeLock(root: string, node: string, opts: NodeLockOptions): Promise<NodeLock> {
  const dir = nodeDir(root, node);
  await mkdirDurable(dir);
  const lockOpts = {
    stale: opts.staleMs,
    update: lockUpdateMs(opts.staleMs),
    realpath: false,
    onCompromised: opts.onCompromised,
  };
  const release = await takeLock(dir, node, lockOpts, opts);
  const me: Owner = { host: hostname(), pid: process.pid, startedAt: new Date().toISOString() };
  await writeFileDurable(`${dir}/owner.json`, JSON.stringify(me) + '\n');
  return { release: () => release().catch(() => undefined) };
}

/**
 * Take the node lock, waiting while someone refreshes it. The lock is held by this node's
 * previous process, or for a moment by the cluster leader sealing what that process left open.
 * A lock is removed by hand only when nobody refreshes it (its mtime is older than one refresh
 * period) and its owner is a dead process on this host, so a restart after kill -9 does not wait
 * for the full stale time; a lock someone is refreshing is never removed.
 */
async function takeLock(
  dir: string,
  node: string,
  lockOpts: { stale: number; update: number; realpath: boolean; onCompromised: (err: Error) => void },
  opts: NodeLockOptions,
): Promise<() => Promise<void>> {
  const deadline = performance.now() + opts.waitMs;
  let warned = false;
  for (;;) {
    try {
      return await lockfile.lock(dir, { ...lockOpts, retries: 0 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    }
    const owner = await readOwner(dir);
    const lockAgeMs = await fsp.stat(`${dir}.lock`).then(
      (st) => Date.now() - st.mtimeMs,
      () => 0,
    );
    const deadHere = owner !== null && owner.host === hostname() && owner.pid !== process.pid && !pidAlive(owner.pid);
    if (deadHere && lockAgeMs > lockOpts.update + 500) {
      opts.log.warn({ lockedNode: node, deadPid: owner.pid }, 'taking over node lock of a dead process on this host');
      await fsp.rm(`${dir}.lock`, { recursive: true, force: true });
      continue;
    }
    if (!warned) {
      opts.log.warn({ lockedNode: node, owner }, 'node lock is held; waiting for it to be released or go stale');
      warned = true;
    }
    if (performance.now() > deadline) {
      throw Errors.nodeIdInUse(
        `node id ${node} is in use by ${owner ? `pid ${owner.pid} on ${owner.host}` : 'another process'}; pick another --node-id or stop that process`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

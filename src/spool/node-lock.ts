// The node lock: held by the one process that writes a node's segments. A drainer that can take
// it (the lock went stale) knows the node is dead and may seal its open segment.
import { promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import { nodeDir } from './layout.js';
import { mkdirDurable, writeFileDurable } from './fsutil.js';
import { lockUpdateMs, StaleLocks, type Release } from './stale-locks.js';

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
  const release = await takeLock(dir, node, opts);
  const me: Owner = { host: hostname(), pid: process.pid, startedAt: new Date().toISOString() };
  await writeFileDurable(`${dir}/owner.json`, JSON.stringify(me) + '\n');
  return { release: () => release().catch(() => undefined) };
}

/**
 * Take the node lock, waiting while someone refreshes it. The lock is held by this node's
 * previous process, or for a moment by the cluster leader sealing what that process left open.
 * It is taken over when nobody refreshed it for the stale time as this process saw it
 * (stale-locks.ts: never by comparing clocks), or sooner, after a refresh period and half a second
 * of stillness, when its owner is a dead process on this host: a restart after kill -9 does not wait
 * for the full stale time. A lock someone is refreshing is never taken.
 */
async function takeLock(dir: string, node: string, opts: NodeLockOptions): Promise<Release> {
  const locks = new StaleLocks(opts.staleMs, opts.log);
  const deadline = performance.now() + opts.waitMs;
  let warned = false;
  for (;;) {
    const owner = await readOwner(dir);
    const deadHere = owner !== null && owner.host === hostname() && owner.pid !== process.pid && !pidAlive(owner.pid);
    const takeOverAfterMs = deadHere ? lockUpdateMs(opts.staleMs) + 500 : opts.staleMs;
    const release = await locks.tryLock(dir, { onCompromised: opts.onCompromised, takeOverAfterMs });
    if (release) return release;
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

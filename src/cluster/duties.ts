// Cluster-wide duties, run by the leader only: hand over what dead nodes left open, prune
// the archive, sweep temp files that crashed writes left behind. Each is idempotent and
// guarded by spool locks or file ages, because two nodes may both believe they lead for a
// moment.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { deadDir, retryDir } from '../callbacks/failed-spool.js';
import { listAllSegments, nodeDir, nodesDir, quarantineDir, type SegmentFile } from '../spool/layout.js';
import { drainedDir, clusterDir } from './paths.js';
import { sealLeftover } from '../spool/recover.js';
import type { StaleLocks } from '../spool/stale-locks.js';

/**
 * Seal the open segments of nodes whose node lock has gone stale (the process is gone, or stalled
 * past the stale time), so a drainer can load them. A live node refreshes its lock and is left
 * alone, whatever its clock says: `locks` judges by progress seen on this process's clock, so the
 * leader must keep one StaleLocks across calls.
 */
export async function sealDeadNodes(root: string, self: string, locks: StaleLocks, log: Logger): Promise<number> {
  const openByNode = new Map<string, SegmentFile[]>();
  for (const f of await listAllSegments(root)) {
    if (f.state === 'open' && f.node !== self) openByNode.set(f.node, [...(openByNode.get(f.node) ?? []), f]);
  }
  let sealed = 0;
  for (const [node, files] of openByNode) {
    let compromised = false;
    const release = await locks.tryLock(nodeDir(root, node), {
      // The node came back and took its lock: leave the rest to it.
      onCompromised: () => {
        compromised = true;
      },
    });
    if (!release) continue; // alive (or not watched long enough yet to tell)
    try {
      for (const f of files) {
        if (compromised) break;
        const outcome = await sealLeftover(root, f.path, self, log, locks);
        log.warn({ deadNode: node, segment: f.segment, outcome }, 'took over open segment of a dead node');
        if (outcome === 'sealed') sealed++;
      }
    } finally {
      await release().catch(() => undefined);
    }
  }
  return sealed;
}

/** Delete archived segments older than retentionMs (by file modification time). */
export async function pruneArchive(root: string, retentionMs: number, log: Logger): Promise<number> {
  const base = join(root, 'archive');
  let nodes: string[];
  try {
    nodes = await fsp.readdir(base);
  } catch {
    return 0;
  }
  const cutoff = Date.now() - retentionMs;
  let removed = 0;
  for (const n of nodes) {
    for (const name of await fsp.readdir(join(base, n)).catch(() => [] as string[])) {
      const p = join(base, n, name);
      const st = await fsp.stat(p).catch(() => null);
      if (st && st.mtimeMs < cutoff) {
        await fsp.rm(p, { force: true });
        removed++;
      }
    }
  }
  if (removed > 0) log.info({ removed }, 'pruned archived segments');
  return removed;
}

/** The temp name of writeFileDurable (spool/fsutil.ts): `<final name>.tmp-<pid>-<ms>`. */
const TEMP_NAME = /\.tmp-\d+-\d+$/;

/**
 * Remove temp files older than `olderThanMs` (by modification time) from the directories that
 * small durable writes use: a process killed between its write and its rename leaves one
 * behind. Readers never look at them (they read only final names), so this is housekeeping; the
 * age limit keeps a write still in progress on another node safe.
 */
export async function sweepTempFiles(root: string, olderThanMs: number, log: Logger): Promise<number> {
  const dirs = [clusterDir(root), drainedDir(root), retryDir(root), deadDir(root), quarantineDir(root)];
  // Each node's folder holds its owner.json (spool/node-lock.ts).
  for (const n of await fsp.readdir(nodesDir(root)).catch(() => [] as string[])) if (!n.endsWith('.lock')) dirs.push(nodeDir(root, n));
  const cutoff = Date.now() - olderThanMs;
  let removed = 0;
  for (const dir of dirs) {
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      if (!TEMP_NAME.test(name)) continue;
      const p = join(dir, name);
      const st = await fsp.stat(p).catch(() => null);
      if (st?.isFile() && st.mtimeMs < cutoff) {
        await fsp.rm(p, { force: true });
        removed++;
      }
    }
  }
  if (removed > 0) log.warn({ removed }, 'removed temp files left by interrupted writes');
  return removed;
}

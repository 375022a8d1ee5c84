// Sealing a segment that was left open by a process that is gone (this node's own previous run,
// or a dead node's): cut a torn tail, then seal it so a drainer can take it.
import { promises as fsp } from 'node:fs';
import type { Logger } from 'pino';
import { decodeSegment } from './format.js';
import { fsyncDir, dirOf } from './fsutil.js';
import { SEALED_EXT, OPEN_EXT } from './layout.js';
import { quarantineBytes, quarantineFile } from './quarantine.js';
import type { StaleLocks } from './stale-locks.js';

export type LeftoverOutcome = 'sealed' | 'removed' | 'quarantined' | 'gone' | 'busy';

/**
 * The caller must hold the lock of the node that owned the file; `locks` is its memory of the
 * spool locks it has watched (stale-locks.ts). The file is renamed to its
 * sealed name *before* it is read, under the drainers' claim lock for that name: a writer that
 * is in fact still alive then sees its file gone and acknowledges nothing more (see writer.ts),
 * and every byte it acknowledged before the rename is in what is read here.
 * Safe to repeat after a crash at any point: every step is idempotent.
 */
export async function sealLeftover(root: string, path: string, by: string, log: Logger, locks: StaleLocks): Promise<LeftoverOutcome> {
  const dir = dirOf(path);
  const sealed = path.slice(0, -OPEN_EXT.length) + SEALED_EXT;
  const release = await locks.tryLock(sealed);
  if (!release) return 'busy';
  try {
    try {
      await fsp.rename(path, sealed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Someone renamed it already (a takeover that crashed, or another node): finish its work.
      if (!(await exists(sealed))) return 'gone';
    }
    await fsyncDir(dir);
    return await cutAndCheck(root, sealed, by, log);
  } finally {
    await release().catch(() => undefined);
  }
}

async function exists(path: string): Promise<boolean> {
  return fsp.stat(path).then(
    () => true,
    () => false,
  );
}

async function cutAndCheck(root: string, path: string, by: string, log: Logger): Promise<LeftoverOutcome> {
  const dir = dirOf(path);
  const buf = await fsp.readFile(path);
  const dec = decodeSegment(buf);
  if (dec.headerProblem) {
    switch (dec.headerProblem.code) {
      case 'truncated':
        // The process died before its first fsync of this file finished: nothing in it was acknowledged.
        await fsp.unlink(path);
        await fsyncDir(dir);
        log.warn({ file: path, bytes: buf.length }, 'removed leftover segment with a torn header');
        return 'removed';
      case 'unsupported-version':
        // Written by a newer build: leave it sealed and untouched for an upgraded drainer to read.
        log.error({ file: path, err: dec.headerProblem.message }, 'sealed leftover segment of a newer format without reading it');
        return 'sealed';
      case 'corrupt':
        await quarantineFile(root, path, { reason: 'corrupt-header', detail: dec.headerProblem.message, by });
        log.error({ file: path, err: dec.headerProblem.message }, 'quarantined leftover segment with a damaged header');
        return 'quarantined';
    }
  }
  if (dec.tail) {
    const tail = buf.subarray(dec.tail.offset);
    // A tail of zeros is preallocated or never-written space; anything else is kept for a look.
    if (tail.some((b) => b !== 0)) {
      await quarantineBytes(root, path, tail, { offset: dec.tail.offset, reason: 'torn-tail', by });
    }
    const fh = await fsp.open(path, 'r+');
    try {
      await fh.truncate(dec.validEnd);
      await fh.sync();
    } finally {
      await fh.close();
    }
    log.warn({ file: path, cutBytes: tail.length, keptRecords: dec.records.length }, 'cut torn tail of leftover segment');
  }
  if (dec.records.length === 0 && dec.gaps.length === 0) {
    await fsp.unlink(path);
    await fsyncDir(dir);
    return 'removed';
  }
  // Gaps in the middle stay in the file: the drainer quarantines them when it loads the segment.
  log.info({ file: path, records: dec.records.length }, 'sealed leftover segment');
  return 'sealed';
}

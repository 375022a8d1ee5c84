// Small files every node of a cluster shares. Those the first node creates (the webhook secrets,
// the id secret): readOrCreateShared. Those operators and the scheduler change (API keys, desired
// modes, schedules and their progress): readJsonFile and updateJsonFile.
//
// readOrCreateShared: Created atomically and durably: the content goes to a temp file that is
// fsynced, then hard-linked to its name (link refuses to replace an existing file, so two nodes
// starting at once agree on one content), then the directory is fsynced. A crash leaves either
// no file or the whole file, never an empty one that stops every node from starting.
// updateJsonFile: rewritten the same way (temp, fsync, rename, directory fsync): the old file or
// the new one, never a mix.
//
// A file that is nevertheless empty or not whole JSON (left by an older build's crash, or a hand
// edit) is refused with INTAKE_SHARED_FILE_DAMAGED naming it, never replaced or read as empty:
// a new secret would break every receiver's signature check or change the ids of Idempotency-Keys,
// and an empty key list would open the cluster. The operator restores it (docs/operations.md).
import { promises as fsp } from 'node:fs';
import { Errors } from '../errors.js';
import { fsyncDir, mkdirDurable, writeFileDurable, writeFileSynced } from '../spool/fsutil.js';
import { StaleLocks, type Release } from '../spool/stale-locks.js';

/** Parse a shared file's text; a damaged file is an error that names it and says what to do. */
export function parseSharedFile<T>(path: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    const what = text.trim() === '' ? 'empty' : 'not whole JSON';
    throw Errors.sharedFileDamaged(
      `${path} is ${what} (left by a crash of an older build, or edited by hand); intake will not replace it: restore it from a backup, or see docs/operations.md, "Durability", for what removing it means`,
      { cause: err },
    );
  }
}

async function readShared<T>(path: string): Promise<T> {
  return parseSharedFile<T>(path, await fsp.readFile(path, 'utf8'));
}

/** Stale time of the locks on the small shared files (a read-modify-write takes milliseconds). */
const SHARED_STALE_MS = 10_000;

/**
 * Lock a shared file for a read-modify-write, waiting while another process holds it. A lock
 * nobody refreshed for `staleMs` (as this process saw it: stale-locks.ts) is taken over; one
 * that stays held, and refreshed, for twice that throws INTAKE_LOCK_BUSY.
 */
export function lockShared(path: string, staleMs = SHARED_STALE_MS): Promise<Release> {
  return new StaleLocks(staleMs).lockWaiting(path, 2 * staleMs + 5000);
}

export async function readOrCreateShared<T>(path: string, dir: string, make: () => T): Promise<T> {
  try {
    return await readShared<T>(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdirDurable(dir);
  const value = make();
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFileSynced(tmp, JSON.stringify(value, null, 2) + '\n', 0o600);
  try {
    await fsp.link(tmp, path);
    await fsyncDir(dir);
    return value;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return await readShared<T>(path); // another node made it first: theirs wins
  } finally {
    await fsp.unlink(tmp).catch(() => undefined);
  }
}

/** A small JSON file under cluster/, or `empty()` while it does not exist. */
export async function readJsonFile<T>(path: string, normalize: (raw: Partial<T> | null) => T): Promise<T> {
  try {
    return normalize(await readShared<Partial<T>>(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return normalize(null);
    throw err;
  }
}

/**
 * Read-modify-write of a small JSON file under a lock (lockShared, stale after `staleMs`),
 * written durably, so two writers (operators, or two nodes for a moment) never lose each
 * other's change. Returns what `change` returns.
 */
export async function updateJsonFile<T, R>(
  path: string,
  o: { dir: string; normalize: (raw: Partial<T> | null) => T; staleMs?: number; mode?: number },
  change: (f: T) => R,
): Promise<R> {
  await mkdirDurable(o.dir);
  const release = await lockShared(path, o.staleMs);
  try {
    const f = await readJsonFile(path, o.normalize);
    const out = change(f);
    await writeFileDurable(path, JSON.stringify(f, null, 2) + '\n', o.mode);
    return out;
  } finally {
    await release();
  }
}

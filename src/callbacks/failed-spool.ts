// The failed-callback spool, on shared storage: one segment file per parked callback (the same
// format as request segments, one record of kind callbackEntry). It needs no database, so
// every node, in any mode, retries what is due.
//
//   <root>/callbacks/retry/<due ms, 13 digits>-<webhook-id>.seg   waiting for its next attempt
//   <root>/callbacks/dead/<webhook-id>.seg                          out of attempts; `intake callbacks replay`
//
// A state change writes the new file (durably) before removing the old one, so a crash leaves
// at worst both: the callback is then sent once more, under the same webhook-id.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { decodeSegment, encodeHeader, encodeRecord, RecordKind } from '../spool/format.js';
import { fsyncDir, mkdirDurable, writeFileDurable } from '../spool/fsutil.js';
import { parseCallbackEntry, type CallbackEntryRecord } from '../spool/records.js';

export const retryDir = (root: string) => join(root, 'callbacks', 'retry');
export const deadDir = (root: string) => join(root, 'callbacks', 'dead');

export interface SpooledCallback {
  path: string;
  dueAt: number;
  id: string;
}

async function writeEntry(dir: string, name: string, entry: CallbackEntryRecord, by: string): Promise<string> {
  await mkdirDurable(dir);
  const path = join(dir, name);
  const data = Buffer.concat([
    encodeHeader({ node: by, segment: uuidv7(), createdAt: Date.now() }),
    encodeRecord(RecordKind.callbackEntry, JSON.stringify(entry)),
  ]);
  await writeFileDurable(path, data);
  return path;
}

const retryName = (dueAt: number, id: string) => `${String(Math.max(0, Math.round(dueAt))).padStart(13, '0')}-${id}.seg`;

/** Park a callback for a later attempt at `dueAt` (wall-clock ms). */
export function park(root: string, entry: CallbackEntryRecord, dueAt: number, by: string): Promise<string> {
  return writeEntry(retryDir(root), retryName(dueAt, entry.id), entry, by);
}

/** Move an entry from `oldPath` to its next state (rescheduled, dead). */
export async function move(oldPath: string, write: () => Promise<string>): Promise<void> {
  // The same name (rescheduled to the very millisecond it was due) was overwritten in place.
  if ((await write()) === oldPath) return;
  await fsp.rm(oldPath, { force: true });
  await fsyncDir(oldPath.slice(0, oldPath.lastIndexOf('/')));
}

/** Out of attempts: to dead/. An unrecorded outcome does not go along (a replay sends again). */
export function bury(root: string, entry: CallbackEntryRecord, by: string): Promise<string> {
  const { pendingOutcome: _outcome, recordTries: _tries, ...rest } = entry;
  return writeEntry(deadDir(root), `${entry.id}.seg`, rest, by);
}

export async function remove(path: string): Promise<void> {
  await fsp.rm(path, { force: true });
  await fsyncDir(path.slice(0, path.lastIndexOf('/')));
}

async function names(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Ids that already have an entry in the failed-callback spool (retry or dead). A callback there
 * has its one retry chain: the outbox must not start a second one (it would, when a dispatcher
 * parked it and died before recording that, and the row's lease then ran out).
 */
export async function spooledIds(root: string): Promise<{ retry: Set<string>; dead: Set<string> }> {
  const retry = new Set((await names(retryDir(root))).map((n) => n.slice(14, -4)));
  const dead = new Set((await names(deadDir(root))).map((n) => n.slice(0, -4)));
  return { retry, dead };
}

/** Entries whose next attempt is due (by the time in their name), earliest first. */
export async function listDue(root: string, now = Date.now()): Promise<SpooledCallback[]> {
  const out: SpooledCallback[] = [];
  for (const n of await names(retryDir(root))) {
    const dueAt = Number(n.slice(0, 13));
    if (!(dueAt <= now)) break; // names sort by due time
    out.push({ path: join(retryDir(root), n), dueAt, id: n.slice(14, -4) });
  }
  return out;
}

export async function listAll(root: string, which: 'retry' | 'dead'): Promise<SpooledCallback[]> {
  const dir = which === 'retry' ? retryDir(root) : deadDir(root);
  return (await names(dir)).map((n) =>
    which === 'retry' ? { path: join(dir, n), dueAt: Number(n.slice(0, 13)), id: n.slice(14, -4) } : { path: join(dir, n), dueAt: 0, id: n.slice(0, -4) },
  );
}

/** Read an entry; null if the file is gone, a damaged or foreign file throws. */
export async function readEntry(path: string): Promise<CallbackEntryRecord | null> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const dec = decodeSegment(buf);
  const rec = dec.records.find((r) => r.kind === RecordKind.callbackEntry);
  const entry = rec ? parseCallbackEntry(rec.json) : null;
  if (!entry || dec.headerProblem) throw Object.assign(new Error(`damaged failed-callback entry ${path}`), { code: 'INTAKE_SEGMENT_CORRUPT' });
  return entry;
}

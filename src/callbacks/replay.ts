// What an operator does with the failed-callback spool, from the CLI (`intake callbacks`) or the
// admin HTTP routes (the dashboard): list what waits or is dead, and replay dead callbacks. One
// place, so both ways act alike.
import { join } from 'node:path';
import type { CallbackEntryRecord } from '../spool/records.js';
import { StaleLocks } from '../spool/stale-locks.js';
import { deadDir, listAll, move, park, readEntry } from './failed-spool.js';

/** A replay takes milliseconds; a lock this old was left by a process that died. */
const LOCK_STALE_MS = 10_000;
const httpLocks = new StaleLocks(LOCK_STALE_MS);

/** One spooled callback as an operator sees it (never its body or tenant secret). */
export interface ListedCallback {
  id: string;
  requestId: string;
  tenant: string;
  url: string;
  attempts: number;
  /** When the next attempt is due (ISO 8601); null for a dead callback. */
  dueAt: string | null;
  firstFailedAt: string;
  lastStatus: number | null;
  lastError: string | null;
  /** An outcome found (the callback needs no more sending) that waits for the database. */
  outcomePending: string | null;
}

export interface SpooledEntry {
  path: string;
  dueAt: number;
  entry: CallbackEntryRecord;
}

/** Entries waiting for a retry or dead, in name order (retry: due first); at most `limit` read. */
export async function spooledEntries(root: string, which: 'retry' | 'dead', limit = Infinity): Promise<{ total: number; entries: SpooledEntry[] }> {
  const files = await listAll(root, which);
  const entries: SpooledEntry[] = [];
  for (const f of files) {
    if (entries.length >= limit) break;
    // Gone meanwhile (retried, replayed) or damaged (the retrier quarantines it): not listed.
    const entry = await readEntry(f.path).catch(() => null);
    if (entry) entries.push({ path: f.path, dueAt: f.dueAt, entry });
  }
  return { total: files.length, entries };
}

export function listed({ dueAt, entry: e }: SpooledEntry, which: 'retry' | 'dead'): ListedCallback {
  return {
    id: e.id,
    requestId: e.requestId,
    tenant: e.tenant,
    url: e.url,
    attempts: e.attempts,
    dueAt: which === 'dead' ? null : new Date(dueAt).toISOString(),
    firstFailedAt: new Date(e.firstFailedAt).toISOString(),
    lastStatus: e.lastStatus,
    lastError: e.lastError,
    outcomePending: e.pendingOutcome?.status ?? null,
  };
}

/**
 * Move one dead callback back to be retried now, with a fresh attempt budget (its age counts
 * again from now; the attempt count keeps growing, so the receiver sees how often it was sent).
 * Every node's retrier sends it at its next poll, under the same webhook-id. Two operators
 * replaying the same callback at once make one retry entry, not two: the dead file is locked and
 * read again under the lock. False when it was gone by then (replayed or purged meanwhile).
 */
export async function replay(root: string, dead: SpooledEntry, by: string, o: { wait: boolean } = { wait: true }): Promise<boolean> {
  let release: (() => Promise<void>) | null;
  try {
    // Judged stale by progress on this process's own clock, like every spool lock (stale-locks.ts).
    // An operator's command waits for a replay in flight (a lock a crashed replayer left is taken
    // over after the stale time); an HTTP replay does not: the entry being replayed by someone
    // else is the answer (404), and this process's one StaleLocks remembers a left lock across
    // requests, so a later replay takes it over.
    release = o.wait ? await new StaleLocks(LOCK_STALE_MS).lockWaiting(dead.path, 2 * LOCK_STALE_MS + 5000) : await httpLocks.tryLock(dead.path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  if (!release) return false;
  try {
    const entry = await readEntry(dead.path);
    if (!entry) return false;
    const now = Date.now();
    await move(dead.path, () => park(root, { ...entry, attemptsBeforeReplay: entry.attempts, firstFailedAt: now }, now, by));
    return true;
  } finally {
    await release().catch(() => undefined);
  }
}

/** A webhook-id as the spool names its files: nothing that could leave the dead/ folder. */
const WEBHOOK_ID = /^[A-Za-z0-9_-]{1,100}$/;

/** The dead callback with this webhook-id, or null if there is none. */
export async function deadEntry(root: string, id: string): Promise<SpooledEntry | null> {
  if (!WEBHOOK_ID.test(id)) return null;
  const path = join(deadDir(root), `${id}.seg`);
  const entry = await readEntry(path);
  return entry ? { path, dueAt: 0, entry } : null;
}

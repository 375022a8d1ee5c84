// Spool locks judged stale by progress, never by clocks. Every lock user of the cluster (the node
// lock, the seal claim on a leftover segment, the drainers' segment claims, the failed-callback
// claims, the small shared files under cluster/) takes its locks through here.
//
// Why not proper-lockfile's own staleness: it compares the lock's mtime, which the holder sets
// with its own clock (utimes), with the checker's clock, so a holder whose clock is an hour
// behind looks dead to everyone at once (observed: a receive node started an hour behind was
// taken over within 25 s and exited). Here an observer instead remembers the last state it saw
// of a lock (inode, mtime, ctime: any refresh or new holder changes it) and when it first saw
// that state, on its own monotonic clock; a lock is stale only when its state has not changed
// for the stale time as this observer measured it. The values are only ever compared for
// equality, so a holder whose clock is hours off, but which keeps refreshing, is never taken over.
//
// proper-lockfile is kept for what it does well: mkdir as the atomic test-and-set, the holder's
// periodic refresh (utimes) and its compromise detection (the holder sees the lock gone or
// changed under it and calls onCompromised). It is given a stale time it can never reach, so it
// never judges by clock itself, and always an explicit refresh period (its default, stale/2,
// would be a timer beyond Node's range).
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { Logger } from 'pino';
import lockfile from 'proper-lockfile';
import { Errors } from '../errors.js';

/** A stale time proper-lockfile can never reach (a century): its clock-based check never fires. */
const NEVER_STALE_MS = 100 * 365 * 24 * 3_600_000;

/** Suffix of a stale lock moved aside before it is removed (see takeAway). */
export const STALE_LOCK_MARK = '.stale-';

/**
 * How often a held lock is refreshed. proper-lockfile's smallest period is 1000 ms, so with the
 * smallest stale time (2000 ms) a holder has a margin of one second of event-loop stall
 * before another process may judge the lock stale.
 */
export function lockUpdateMs(staleMs: number): number {
  return Math.max(1000, Math.floor(staleMs / 4));
}

export type Release = () => Promise<void>;

export interface LockOptions {
  /** Called (once) when the holder finds its lock removed or changed by someone else. */
  onCompromised?: (err: Error) => void;
  /** Take a lock over after this much stillness instead of the stale time (a dead process on this host). */
  takeOverAfterMs?: number;
}

/** The state of a lock directory: any refresh (utimes) or a new holder changes it. Null when absent. */
async function lockState(dir: string): Promise<{ full: string; kept: string } | null> {
  try {
    const st = await fsp.stat(dir, { bigint: true });
    // ctime moves with every utimes even when the mtime lands on the same value (second precision),
    // but a rename moves it too; `kept` is what survives the rename aside.
    const kept = `${st.ino}:${st.mtimeNs}`;
    return { full: `${kept}:${st.ctimeNs}`, kept };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * One observer's memory of the spool locks it has looked at. Keep one per long-lived user (the
 * drainer, the leader's duties, the retrier): what it has seen is what lets it judge.
 */
export class StaleLocks {
  readonly staleMs: number;
  private readonly log: Logger | null;
  private readonly seen = new Map<string, { state: string; since: number; lookedAt: number }>();

  constructor(staleMs: number, log?: Logger) {
    this.staleMs = staleMs;
    this.log = log ?? null;
  }

  /** How long (ms, this process's monotonic clock) the lock at `dir` has been seen in `state`. */
  private stillFor(dir: string, state: string): number {
    const now = performance.now();
    const prev = this.seen.get(dir);
    if (!prev || prev.state !== state) {
      this.seen.set(dir, { state, since: now, lookedAt: now });
      this.forgetOld(now);
      return 0;
    }
    prev.lookedAt = now;
    return now - prev.since;
  }

  /** Memory stays bounded: locks not looked at for a while (their files are gone) are forgotten. */
  private forgetOld(now: number): void {
    if (this.seen.size < 256) return;
    for (const [dir, s] of this.seen) if (now - s.lookedAt > 4 * this.staleMs) this.seen.delete(dir);
  }

  /**
   * Take the lock on `file` (its lock is the directory `<file>.lock`), taking over a lock that
   * has not moved for the stale time as this observer measured it. Null when someone else holds
   * it (fresh, or not watched long enough yet to tell).
   */
  async tryLock(file: string, o: LockOptions = {}): Promise<Release | null> {
    const dir = `${file}.lock`;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const release = await lockfile.lock(file, {
          stale: NEVER_STALE_MS,
          update: lockUpdateMs(this.staleMs),
          realpath: false,
          retries: 0,
          onCompromised: o.onCompromised ?? (() => undefined),
        });
        this.seen.delete(dir);
        return release;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      }
      const state = await lockState(dir);
      if (state === null) continue; // released this instant: try again
      const still = this.stillFor(dir, state.full);
      if (still < (o.takeOverAfterMs ?? this.staleMs)) return null;
      if (!(await this.takeAway(dir, state))) return null;
      this.seen.delete(dir);
      this.log?.warn({ lock: dir, stillMs: Math.round(still) }, 'took over a spool lock whose holder stopped refreshing it');
    }
    return null;
  }

  /** tryLock, polling until the lock is taken, or throwing INTAKE_LOCK_BUSY after waitMs. */
  async lockWaiting(file: string, waitMs: number, o: LockOptions = {}): Promise<Release> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const release = await this.tryLock(file, o);
      if (release) return release;
      if (performance.now() > deadline) throw Errors.lockBusy(`${file} is locked by another process that keeps refreshing its lock; retry later`);
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 150));
    }
  }

  /**
   * Remove a stale lock only if it is still the one judged stale: move it aside (rename is
   * atomic: after it, no holder can refresh it under its name, and a holder that tries finds its
   * lock gone and knows it is compromised), check the moved directory is in the state judged,
   * then delete it. If the holder refreshed between the last look and the move, it is alive:
   * put its lock back, unless a new one was made meanwhile (then the holder sees its lock
   * changed at its next refresh and stops, as after any takeover).
   */
  private async takeAway(dir: string, judged: { kept: string }): Promise<boolean> {
    const aside = `${dir}${STALE_LOCK_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await fsp.rename(dir, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true; // removed meanwhile: try to take it
      throw err;
    }
    const now = await lockState(aside);
    if (now?.kept === judged.kept) {
      await fsp.rm(aside, { recursive: true, force: true });
      return true;
    }
    if ((await lockState(dir)) === null) await fsp.rename(aside, dir).catch(() => undefined);
    await fsp.rm(aside, { recursive: true, force: true }).catch(() => undefined);
    return false;
  }
}

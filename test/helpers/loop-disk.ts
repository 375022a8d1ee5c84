// A small ext4 disk for power-loss tests: an image file in os.tmpdir() attached to a loop device
// and mounted, and "what the disk holds" taken from it at any moment as a consistent copy.
//
// Why a copy of the image file is what a disk would hold after a power cut:
//   process ── write ──► ext4 page cache of the mounted file system (dirty data, dirty metadata
//   buffers of /dev/loopN, the running journal transaction)  ── writeback / journal commit /
//   fdatasync ──► loop driver ──► the image file (through the host's page cache) ──► host disk
// The loop driver writes every bio it completes into the image file before completing it, so
// the image file, read through the host's page cache, holds exactly what ext4 has handed to its
// "disk", no more: whatever ext4 still keeps dirty in memory (unsynced data, uncommitted
// metadata) is not in it, just as it would not be on a real disk when the power goes. (Reading
// /dev/loopN instead would be wrong: its buffer cache holds ext4's dirty metadata, and an
// O_DIRECT read of it would write that back first.) The host's page cache is coherent with the
// image file, so dropping it or reading with O_DIRECT changes nothing; the copy is slightly
// kinder than a disk with a volatile write cache (a write ext4 handed over but never flushed is
// kept), which is never what an acknowledged request relies on: fdatasync flushes.
//
// The kernel may still write back to the mounted file system while the copy is read (the
// flusher, a journal commit), which could tear the copy. snapshot() therefore reads the image
// again and again until one full pass finds no change: then every block it holds is the one
// the device held when that pass began, so the copy is the disk at one instant.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { sleep } from './http.js';

const CHUNK = 1 << 20;
const ZERO = Buffer.alloc(CHUNK);

/** Run a command; throw with its output unless its exit code is in `ok`. */
export function run(cmd: string, args: string[], ok: readonly number[] = [0]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${cmd} could not run: ${r.error.message}`);
  const out = `${r.stdout}${r.stderr}`.trim();
  if (r.status === null || !ok.includes(r.status)) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}: ${out}`);
  return { code: r.status, out };
}

/** Fail (never skip) when this machine cannot run the power-loss test, naming what is missing. */
export function requireLoopDisks(): void {
  if (process.getuid?.() !== 0) throw new Error('the power-loss test needs root (losetup, mount)');
  const missing = ['losetup', 'mkfs.ext4', 'fsck.ext4', 'mount', 'umount'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (missing.length > 0) throw new Error(`the power-loss test needs ${missing.join(', ')} (Debian packages mount and e2fsprogs)`);
}

/** Make a sparse image file of `mib` MiB holding a fresh ext4 (inode tables and journal written now, not lazily later). */
export function makeExt4Image(path: string, mib: number): void {
  run('truncate', ['-s', `${mib}M`, path]);
  run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', path]);
}

export interface LoopMount {
  image: string;
  dev: string;
  dir: string;
  /** Unmount and detach; safe to call twice, and after a failed mount. */
  release(): Promise<void>;
}

/** Attach `image` to a free loop device and mount it at `dir` with `options` (mount -o). */
export async function mountImage(image: string, dir: string, options = 'noatime'): Promise<LoopMount> {
  mkdirSync(dir, { recursive: true });
  const dev = run('losetup', ['-f', '--show', image]).out;
  let mounted = false;
  let released = false;
  const m: LoopMount = {
    image,
    dev,
    dir,
    async release() {
      if (released) return;
      if (mounted) await unmount(dir);
      mounted = false;
      await detach(dev);
      released = true;
    },
  };
  try {
    run('mount', ['-t', 'ext4', '-o', options, dev, dir]);
    mounted = true;
  } catch (err) {
    await m.release();
    throw err;
  }
  return m;
}

async function unmount(dir: string): Promise<void> {
  // A process that just exited may hold the mount busy for a moment.
  for (let i = 0; i < 50; i++) {
    if (spawnSync('umount', [dir]).status === 0) return;
    await sleep(100);
  }
  run('umount', ['-l', dir]);
}

async function detach(dev: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (spawnSync('losetup', ['-d', dev]).status === 0) return;
    await sleep(100);
  }
  run('losetup', ['-d', dev]);
}

/**
 * Copy `image` to `copy` as one instant of the disk (see the top of this file): sparse (zero
 * MiBs are left as holes), repeated until a whole pass reads no change. Returns the passes made.
 */
export async function snapshot(image: string, copy: string, maxPasses = 20): Promise<number> {
  const src = await open(image, 'r');
  const dst = await open(copy, 'w');
  try {
    const size = (await src.stat()).size;
    await dst.truncate(size);
    const seen: string[] = [];
    const buf = Buffer.alloc(CHUNK);
    for (let pass = 1; pass <= maxPasses; pass++) {
      let changed = 0;
      for (let i = 0, pos = 0; pos < size; i++, pos += CHUNK) {
        const len = Math.min(CHUNK, size - pos);
        const { bytesRead } = await src.read(buf, 0, len, pos);
        if (bytesRead !== len) throw new Error(`${image}: short read at ${pos}`);
        const part = buf.subarray(0, len);
        const zero = part.equals(ZERO.subarray(0, len));
        const h = zero ? 'zero' : createHash('sha1').update(part).digest('hex');
        if (seen[i] === h) continue;
        changed++;
        // A chunk that was zero in every pass so far stays a hole.
        if (!zero || seen[i] !== undefined) await dst.write(part, 0, len, pos);
        seen[i] = h;
      }
      if (pass > 1 && changed === 0) return pass;
    }
    throw new Error(`${image} kept changing over ${maxPasses} passes: no consistent copy`);
  } finally {
    await src.close();
    await dst.close();
  }
}

/** fsck.ext4 -fy: replays the journal and repairs; 0 or 1 (errors corrected) are fine, more is a broken file system. */
export function fsckRepair(image: string): { code: number; out: string } {
  return run('fsck.ext4', ['-fy', image], [0, 1]);
}

/** Remove a file or folder, ignoring absence. */
export function removeQuietly(path: string): void {
  rmSync(path, { recursive: true, force: true });
}

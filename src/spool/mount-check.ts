// The start-time check of the file system under the spool (docs/operations.md, "Shared
// storage"). It reads the mount of the spool root from /proc/self/mountinfo and warns, with a
// code, about mount options under which another node can see the spool too late or a write can
// be lost: what every node relies on is that a lock's mtime, a sealed segment's size and a
// heartbeat's content are fresh when another node looks, and that an fsync that returned 0 holds.
// It only warns: the operator may know better (say a single node on a cached mount), and a
// start refused for a mount option would turn a config mistake into an outage.
import { promises as fsp } from 'node:fs';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-mount options (rw, noatime, ...) and the file system's own (vers=4.2, hard, ...), together. */
  options: Map<string, string>;
}

export interface MountWarning {
  code: string;
  message: string;
}

export const MountCodes = {
  /** NFS mounted `soft`/`softerr`: an operation that times out fails with EIO instead of waiting for the server. */
  soft: 'INTAKE_SPOOL_MOUNT_SOFT',
  /** NFS older than 4.1: no sessions, so a retransmitted mkdir, link or rename can fail though it was done. */
  nfsVersion: 'INTAKE_SPOOL_MOUNT_NFS_VERSION',
  /** Attributes or names cached longer than a node may see another's lock or heartbeat late. */
  cache: 'INTAKE_SPOOL_MOUNT_CACHE',
  /** tmpfs/ramfs: nothing survives a reboot, so no 202 is durable. */
  volatile: 'INTAKE_SPOOL_MOUNT_VOLATILE',
} as const;

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function parseOptions(...lists: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const list of lists) {
    for (const o of list.split(',')) {
      if (!o) continue;
      const i = o.indexOf('=');
      m.set(i < 0 ? o : o.slice(0, i), i < 0 ? '' : o.slice(i + 1));
    }
  }
  return m;
}

/** Lines of /proc/self/mountinfo (proc(5)): `id parent major:minor root mountpoint opts [tags] - fstype source superopts`. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 3) continue;
    out.push({ mountPoint: unescape(f[4]!), fsType: f[sep + 1]!, source: unescape(f[sep + 2]!), options: parseOptions(f[5]!, f[sep + 3] ?? '') });
  }
  return out;
}

/** The mount holding `path` (an absolute, resolved path): the longest mount point above it; the last one mounted wins. */
export function mountOf(entries: MountEntry[], path: string): MountEntry | null {
  let best: MountEntry | null = null;
  for (const e of entries) {
    const p = e.mountPoint;
    const above = p === '/' || path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`);
    if (above && (!best || p.length >= best.mountPoint.length)) best = e;
  }
  return best;
}

export interface CheckLimits {
  /** --lock-stale-ms: another node judges a lock by its mtime, so cached attributes must be much younger. */
  lockStaleMs: number;
  /** --dead-after-ms: a heartbeat seen late makes a live node look dead. */
  deadAfterMs: number;
}

/**
 * The longest cached attributes must stay well inside both margins: a lock refreshed every
 * quarter of its stale time, and a heartbeat's counter judged over --dead-after-ms.
 */
export function maxCacheMs(l: CheckLimits): number {
  return Math.min(l.lockStaleMs / 4, l.deadAfterMs / 3);
}

/**
 * Warnings for the mount of the spool. `glusterArgs` are the command-line arguments of the
 * GlusterFS client serving a fuse.glusterfs mount (its cache timeouts are not in mountinfo);
 * null when they could not be read.
 */
export function checkMount(m: MountEntry, limits: CheckLimits, glusterArgs: string[] | null = null): MountWarning[] {
  const w: MountWarning[] = [];
  const where = `the spool's file system (${m.fsType} ${m.source} on ${m.mountPoint})`;
  const limitMs = maxCacheMs(limits);
  if (m.fsType === 'tmpfs' || m.fsType === 'ramfs') {
    w.push({ code: MountCodes.volatile, message: `${where} is in memory: a reboot loses every request acknowledged with 202; put the spool on a disk` });
  }
  if (m.fsType === 'nfs' || m.fsType === 'nfs4') {
    if (m.options.has('soft') || m.options.has('softerr')) {
      w.push({ code: MountCodes.soft, message: `${where} is mounted soft: a slow server turns writes, renames and lock refreshes into EIO (503s, lost node locks); mount it hard` });
    }
    const vers = m.options.get('vers') ?? m.options.get('nfsvers') ?? (m.fsType === 'nfs4' ? '4' : '3');
    const [major, minor] = vers.split('.').map(Number);
    if ((major ?? 0) < 4 || (major === 4 && (minor ?? 0) < 1)) {
      w.push({ code: MountCodes.nfsVersion, message: `${where} is NFS version ${vers}: without NFSv4.1 sessions a retransmitted mkdir, link or rename can fail though the server did it (a lock or seal that errors); mount with vers=4.2 or 4.1` });
    }
    const seconds = (k: string, dflt: number) => (m.options.has(k) ? Number(m.options.get(k)) : dflt);
    const acMs = m.options.has('noac') ? 0 : 1000 * Math.max(seconds('acregmax', 60), seconds('acdirmax', 60));
    if (acMs > limitMs) {
      w.push({ code: MountCodes.cache, message: `${where} caches attributes up to ${acMs / 1000} s: another node may see a lock's mtime or a heartbeat that old, over the ${limitMs} ms this configuration allows (--lock-stale-ms/4, --dead-after-ms/3); mount with actimeo=1 (or lower), or raise --lock-stale-ms and --dead-after-ms` });
    }
    // A name looked up a moment ago is trusted while cached: then a writer does not see that a
    // taker renamed its open segment (spool-format.md), nor a node another's new file.
    const lookup = m.options.get('lookupcache');
    if (lookup !== 'none' && acMs > 0) {
      w.push({ code: MountCodes.cache, message: `${where} caches lookups (lookupcache=${lookup ?? 'all'}) with attribute caching on: a rename or a new file by another node (a takeover of this node's segment, new keys) can stay unseen here; mount with lookupcache=none (or actimeo=0)` });
    }
  }
  if (m.fsType === 'fuse.glusterfs' && glusterArgs) {
    for (const k of ['attribute-timeout', 'entry-timeout', 'negative-timeout']) {
      const v = glusterArgs.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
      // The client's defaults: 1 s for attributes and entries; no negative caching.
      const ms = 1000 * Number(v ?? (k === 'negative-timeout' ? 0 : 1));
      if (ms > 0) {
        w.push({ code: MountCodes.cache, message: `${where} keeps ${k}=${ms / 1000} s in the kernel: another node's lock mtime, segment size or new file can look stale here; mount with -o attribute-timeout=0,entry-timeout=0,negative-timeout=0` });
      }
    }
  }
  return w;
}

/** Arguments of the glusterfs client process serving `mountPoint` (it runs on this host), or null. */
export async function glusterClientArgs(mountPoint: string): Promise<string[] | null> {
  let pids: string[];
  try {
    pids = (await fsp.readdir('/proc')).filter((p) => /^\d+$/.test(p));
  } catch {
    return null;
  }
  for (const pid of pids) {
    try {
      const args = (await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      if (/(^|\/)glusterfs$/.test(args[0] ?? '') && args.at(-1) === mountPoint) return args;
    } catch {
      // gone, or not ours to read
    }
  }
  return null;
}

/** The warnings for the spool at `root`, read from this process's mount table; none when it cannot be read. */
export async function checkSpoolMount(root: string, limits: CheckLimits): Promise<{ mount: MountEntry | null; warnings: MountWarning[] }> {
  let text: string;
  let path: string;
  try {
    text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
    path = await fsp.realpath(root);
  } catch {
    return { mount: null, warnings: [] }; // not Linux, or no spool yet: nothing to say
  }
  const mount = mountOf(parseMountinfo(text), path);
  if (!mount) return { mount: null, warnings: [] };
  const gluster = mount.fsType === 'fuse.glusterfs' ? await glusterClientArgs(mount.mountPoint) : null;
  return { mount, warnings: checkMount(mount, limits, gluster) };
}

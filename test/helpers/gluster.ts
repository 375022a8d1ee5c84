// A real network file system for the cluster tests: one GlusterFS volume on a brick under the
// temp dir, mounted through FUSE once per node, so every node has its own client and its own
// caches, as on separate hosts (Debian packages glusterfs-server and glusterfs-client; needs
// root, as CI has). glusterd is started if it does not run. Missing tools or a glusterd that
// will not start fail the test with a message saying what to install; nothing is mocked.
//
// One volume per test file keeps it fast (a volume and its mounts take a second or two); each
// scenario gets its own folder on it (spoolDirs).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { sleep } from './http.js';
import { tempDir } from './tmp.js';

/**
 * Volume options every intake spool on GlusterFS needs (docs/operations.md, "Shared storage"):
 * these client-side caches let one client see another's file stale for up to a second (an old
 * lock mtime, a short size of a sealed segment, a replaced heartbeat's old content).
 */
export const GLUSTER_VOLUME_OPTIONS: Record<string, string> = {
  'performance.stat-prefetch': 'off',
  'performance.quick-read': 'off',
  'performance.open-behind': 'off',
  'performance.io-cache': 'off',
  'performance.read-ahead': 'off',
  'performance.readdir-ahead': 'off',
};

/** FUSE mount options intake needs: no kernel caching of attributes, names or missing names. */
export const GLUSTER_MOUNT_OPTIONS = 'attribute-timeout=0,entry-timeout=0,negative-timeout=0';

/** Where each node finds the spool root, and where the test and the operator CLI find it. */
export interface SpoolDirs {
  forNode(id: string): string;
  operator: string;
  /** What the test prints: `local` or `glusterfs`. */
  kind: string;
}

/** Every node and the operator on one local folder (one host, or a single node). */
export function localSpoolDirs(path: string): SpoolDirs {
  return { forNode: () => path, operator: path, kind: 'local' };
}

export interface GlusterVolume {
  name: string;
  /** Mount points of the one volume: mounts[0] is the operator's (the test's), the others the nodes'. */
  mounts: string[];
  /** One more mount of the volume with these mount options ('' for GlusterFS's defaults); unmounted by close(). */
  mount(mountOptions: string): Promise<string>;
  /** A fresh folder `sub` on the volume: node i of `nodes` sees it through mounts[i + 1]. */
  spoolDirs(sub: string, nodes: string[]): SpoolDirs;
  /** Unmount, stop and delete the volume, remove its folders (and stop glusterd if we started it). Idempotent. */
  close(): Promise<void>;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}${err && code === -1 ? err.message : ''}`.trim() });
    });
  });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`GlusterFS test volume: \`${cmd} ${args.join(' ')}\` failed (${r.code}): ${r.out}`);
  return r.out;
}

function findTool(name: string, pkg: string): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`GlusterFS test volume: ${name} not found: install the Debian package ${pkg} (apt-get install -y ${pkg})`);
}

const gluster = (args: string[]) => must('gluster', ['--mode=script', ...args]);

/** Mounted file systems by mount point (from /proc/self/mountinfo). */
function mountedFs(): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep > 4) m.set(f[4]!, f[sep + 1]!);
  }
  return m;
}

/** Start glusterd unless it answers already; returns its pid if this call started it. */
async function ensureGlusterd(dir: string): Promise<number | null> {
  if ((await run('gluster', ['--mode=script', 'pool', 'list'], 15_000)).code === 0) return null;
  const pidFile = join(dir, 'glusterd.pid');
  const started = await run(findTool('glusterd', 'glusterfs-server'), ['-p', pidFile], 30_000);
  if (started.code !== 0) throw new Error(`GlusterFS test volume: glusterd did not start (${started.code}): ${started.out}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await run('gluster', ['--mode=script', 'pool', 'list'], 15_000);
    if (r.code === 0) break;
    if (Date.now() > deadline) throw new Error(`GlusterFS test volume: glusterd does not answer 30 s after it was started: ${r.out}`);
    await sleep(200);
  }
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** A fresh volume with `mounts` FUSE mounts (one for the test, one per node). */
export async function startGlusterVolume(o: { mounts: number; options?: Record<string, string>; mountOptions?: string }): Promise<GlusterVolume> {
  if (process.getuid?.() !== 0) throw new Error('GlusterFS test volume: glusterd and FUSE mounts need root (CI runs as root)');
  findTool('gluster', 'glusterfs-server');
  findTool('mount.glusterfs', 'glusterfs-client');
  const tmp = tempDir('intake-gluster-');
  const name = `intake${process.pid}x${Math.random().toString(36).slice(2, 7)}`;
  const mounts: string[] = [];
  let created = false;
  let glusterdPid: number | null = null;
  let closing: Promise<void> | null = null;

  const unmountAllSync = () => {
    for (const m of mounts) spawnSync('umount', ['-l', m]);
  };
  process.once('exit', unmountAllSync);

  const close = () =>
    (closing ??= (async () => {
      process.removeListener('exit', unmountAllSync);
      const problems: string[] = [];
      for (const m of mounts) {
        if (!mountedFs().has(m)) continue;
        // A node killed a moment ago may still hold a file open: retry, then detach lazily.
        let r = await run('umount', [m]);
        for (let i = 0; r.code !== 0 && i < 20; i++) {
          await sleep(250);
          r = await run('umount', [m]);
        }
        if (r.code !== 0) r = await run('umount', ['-l', m]);
        if (r.code !== 0) problems.push(`umount ${m}: ${r.out}`);
      }
      if (created) {
        const stop = await run('gluster', ['--mode=script', 'volume', 'stop', name, 'force']);
        if (stop.code !== 0) problems.push(`volume stop: ${stop.out}`);
        const del = await run('gluster', ['--mode=script', 'volume', 'delete', name]);
        if (del.code !== 0) problems.push(`volume delete: ${del.out}`);
      }
      if (glusterdPid !== null) {
        try {
          process.kill(glusterdPid, 'SIGTERM');
        } catch {
          // gone already
        }
      }
      if (problems.length === 0) tmp.cleanup();
      else throw new Error(`GlusterFS test volume ${name} not cleaned up (left in ${tmp.path}):\n${problems.join('\n')}`);
    })());

  try {
    glusterdPid = await ensureGlusterd(tmp.path);
    const brick = join(tmp.path, 'brick');
    // glusterd refuses localhost for a brick; the machine's own name resolves to this host.
    await gluster(['volume', 'create', name, `${hostname()}:${brick}`, 'force']);
    created = true;
    for (const [k, v] of Object.entries(o.options ?? GLUSTER_VOLUME_OPTIONS)) await gluster(['volume', 'set', name, k, v]);
    await gluster(['volume', 'start', name]);
    const mountOne = async (mountOptions: string): Promise<string> => {
      const m = join(tmp.path, `mnt${mounts.length}`);
      mkdirSync(m);
      mounts.push(m);
      await must('mount', ['-t', 'glusterfs', ...(mountOptions ? ['-o', mountOptions] : []), `localhost:/${name}`, m]);
      const fs = mountedFs().get(m);
      if (fs !== 'fuse.glusterfs') throw new Error(`GlusterFS test volume: ${m} is ${fs ?? 'not mounted'} after mount -t glusterfs`);
      return m;
    };
    for (let i = 0; i < o.mounts; i++) await mountOne(o.mountOptions ?? GLUSTER_MOUNT_OPTIONS);
    return {
      name,
      mounts,
      mount: mountOne,
      spoolDirs(sub, nodes) {
        if (nodes.length + 1 > mounts.length) throw new Error(`${nodes.length} nodes need ${nodes.length + 1} mounts; the volume has ${mounts.length}`);
        mkdirSync(join(mounts[0]!, sub), { recursive: true });
        const byNode = new Map(nodes.map((id, i) => [id, join(mounts[i + 1]!, sub, 'spool')]));
        return {
          forNode(id) {
            const p = byNode.get(id);
            if (!p) throw new Error(`no mount for node ${id}`);
            return p;
          },
          operator: join(mounts[0]!, sub, 'spool'),
          kind: 'glusterfs',
        };
      },
      close,
    };
  } catch (err) {
    await close().catch((e: Error) => console.error(e.message));
    throw err;
  }
}


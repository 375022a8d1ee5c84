// Desired modes, written by `intake mode` and read by every node. Each write bumps the
// generation; nodes report the generation they applied in their heartbeat, which is how
// `intake mode --wait` knows the switch is done.
import { promises as fsp } from 'node:fs';
import type { Mode } from '../config.js';
import { writeFileDurable } from '../spool/fsutil.js';
import { clusterDir, desiredPath, drainedDir, drainedPath } from './paths.js';
import { lockShared } from './shared-file.js';

export interface Desired {
  generation: number;
  /** Mode for every node (set by --all), or null. */
  all: Mode | null;
  /** Per-node modes (set by --node), which win over `all`. */
  nodes: Record<string, Mode>;
  updatedAt: string | null;
}

const EMPTY: Desired = { generation: 0, all: null, nodes: {}, updatedAt: null };

export async function readDesired(root: string): Promise<Desired> {
  try {
    return { ...EMPTY, ...(JSON.parse(await fsp.readFile(desiredPath(root), 'utf8')) as Partial<Desired>) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...EMPTY };
    throw err;
  }
}

/** Read-modify-write under a lock, so two operators never lose each other's change. */
export async function updateDesired(root: string, change: (d: Desired) => void): Promise<Desired> {
  await fsp.mkdir(clusterDir(root), { recursive: true });
  const release = await lockShared(desiredPath(root));
  try {
    const d = await readDesired(root);
    change(d);
    d.generation += 1;
    d.updatedAt = new Date().toISOString();
    await writeFileDurable(desiredPath(root), JSON.stringify(d, null, 2) + '\n');
    return d;
  } finally {
    await release();
  }
}

export function effectiveMode(d: Desired, node: string, startMode: Mode): Mode {
  return d.nodes[node] ?? d.all ?? startMode;
}

export async function setDrained(root: string, node: string, drained: boolean): Promise<void> {
  await fsp.mkdir(drainedDir(root), { recursive: true });
  if (drained) await writeFileDurable(drainedPath(root, node), new Date().toISOString() + '\n');
  else await fsp.rm(drainedPath(root, node), { force: true });
}

export async function isDrained(root: string, node: string): Promise<boolean> {
  return fsp.stat(drainedPath(root, node)).then(
    () => true,
    () => false,
  );
}

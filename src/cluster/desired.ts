// Desired modes, written by `intake mode` and read by every node. Each write bumps the
// generation; nodes report the generation they applied in their heartbeat, which is how
// `intake mode --wait` knows the switch is done.
import { promises as fsp } from 'node:fs';
import type { Mode } from '../config.js';
import { fsyncDir, mkdirDurable, writeFileDurable } from '../spool/fsutil.js';
import { clusterDir, desiredPath, drainedDir, drainedPath } from './paths.js';
import { readJsonFile, updateJsonFile } from './shared-file.js';

export interface Desired {
  generation: number;
  /** Mode for every node (set by --all), or null. */
  all: Mode | null;
  /** Per-node modes (set by --node), which win over `all`. */
  nodes: Record<string, Mode>;
  updatedAt: string | null;
}

const EMPTY: Desired = { generation: 0, all: null, nodes: {}, updatedAt: null };

const normalizeDesired = (raw: Partial<Desired> | null): Desired => ({ ...EMPTY, nodes: {}, ...raw });

export function readDesired(root: string): Promise<Desired> {
  return readJsonFile(desiredPath(root), normalizeDesired);
}

/** Read-modify-write under a lock, so two operators never lose each other's change. */
export function updateDesired(root: string, change: (d: Desired) => void): Promise<Desired> {
  return updateJsonFile(desiredPath(root), { dir: clusterDir(root), normalize: normalizeDesired }, (d) => {
    change(d);
    d.generation += 1;
    d.updatedAt = new Date().toISOString();
    return d;
  });
}

export function effectiveMode(d: Desired, node: string, startMode: Mode): Mode {
  return d.nodes[node] ?? d.all ?? startMode;
}

export async function setDrained(root: string, node: string, drained: boolean): Promise<void> {
  await mkdirDurable(drainedDir(root));
  if (drained) await writeFileDurable(drainedPath(root, node), new Date().toISOString() + '\n');
  else {
    await fsp.rm(drainedPath(root, node), { force: true });
    await fsyncDir(drainedDir(root)).catch(() => undefined); // no folder: nothing was drained
  }
}

export async function isDrained(root: string, node: string): Promise<boolean> {
  return fsp.stat(drainedPath(root, node)).then(
    () => true,
    () => false,
  );
}

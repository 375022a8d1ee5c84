// Where things live under the spool root. Every part that touches spool files asks here.
//
//   <root>/nodes/<node>/<segment>.open   the node's open segment (one at a time), being appended
//   <root>/nodes/<node>/<segment>.seg    sealed segments, waiting for a drainer
//   <root>/nodes/<node>/owner.json       host and pid of the process that holds the node lock
//   <root>/nodes/<node>.lock/            the node lock, held while the node runs (stale-locks.ts)
//   <root>/nodes/<node>/<segment>.seg.lock/  a drainer's claim on a sealed segment
//   <root>/quarantine/                   damaged bytes and whole files, each with a .json report
//   <root>/archive/<node>/               drained segments, when archiving is on
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { STALE_LOCK_MARK } from './stale-locks.js';

export const OPEN_EXT = '.open';
export const SEALED_EXT = '.seg';

export const nodesDir = (root: string) => join(root, 'nodes');
export const nodeDir = (root: string, node: string) => join(root, 'nodes', node);
export const quarantineDir = (root: string) => join(root, 'quarantine');
export const archiveDir = (root: string, node: string) => join(root, 'archive', node);
export const openPath = (root: string, node: string, segment: string) => join(nodeDir(root, node), segment + OPEN_EXT);
export const sealedPath = (root: string, node: string, segment: string) => join(nodeDir(root, node), segment + SEALED_EXT);

/** A node id becomes a directory name: keep it to a safe, portable alphabet. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface SegmentFile {
  node: string;
  segment: string;
  path: string;
  state: 'open' | 'sealed';
}

/** Node ids that have a directory under the spool root. */
export async function listNodes(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(nodesDir(root));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  // Not a node lock, nor one a taker moved aside and crashed before removing (stale-locks.ts).
  return names.filter((n) => NODE_ID_PATTERN.test(n) && !n.endsWith('.lock') && !n.includes(`.lock${STALE_LOCK_MARK}`)).sort();
}

/** Segment files of one node, oldest first (segment ids are UUIDv7, so name order is time order). */
export async function listSegments(root: string, node: string): Promise<SegmentFile[]> {
  let names: string[];
  try {
    names = await fsp.readdir(nodeDir(root, node));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: SegmentFile[] = [];
  for (const name of names.sort()) {
    if (name.endsWith(SEALED_EXT)) {
      const segment = name.slice(0, -SEALED_EXT.length);
      out.push({ node, segment, path: join(nodeDir(root, node), name), state: 'sealed' });
    } else if (name.endsWith(OPEN_EXT)) {
      const segment = name.slice(0, -OPEN_EXT.length);
      out.push({ node, segment, path: join(nodeDir(root, node), name), state: 'open' });
    }
  }
  return out;
}

/** Every segment of every node, oldest first within a node. */
export async function listAllSegments(root: string): Promise<SegmentFile[]> {
  const out: SegmentFile[] = [];
  for (const node of await listNodes(root)) out.push(...(await listSegments(root, node)));
  return out;
}

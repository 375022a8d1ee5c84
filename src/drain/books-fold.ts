// Which drained segments the books may fold into their node's checkpoint (schema v7,
// books_checkpoints; Store.foldSegments does the fold). Without folding, segments.log and
// drained_segments grow by a line and a row per segment forever, and so does every look at the
// books.
//
// A node's log is folded from its checkpoint's offset up to the end of a line, over a prefix in
// which every listed segment is accounted for for good:
//   - drained (its drained_segments row in the snapshot just read) and gone from the spool: the
//     spool read before the snapshot did not see it, and a stat after the snapshot still does
//     not (a drainer writes the row before it deletes the file, so a file gone after its row
//     never comes back: nothing can drain it a second time and write a second row), or
//   - quarantined whole (its report in quarantine/, which the books count on their own).
// and drained longer ago than --books-fold-after-ms (an hour): recent segments keep their row,
// so verify still checks each one's quarantine reports, and a file an operator restores from a
// backup soon after finds its row (its drain then changes nothing).
// A segment listed twice (its first add failed and was made again) is folded only with its
// last line, so a line after the checkpoint never names a folded segment.
import { promises as fsp } from 'node:fs';
import { openPath, sealedPath } from '../spool/layout.js';
import type { LoggedSegment } from '../spool/segment-log.js';
import type { FoldRequest } from '../store/store.js';

/** Segments folded per node and run at most: one transaction stays small. */
export const MAX_FOLD_SEGMENTS = 5000;

export interface FoldInput {
  root: string;
  /** Each node's log lines from the checkpoint offset the books started from. */
  logs: Map<string, LoggedSegment[]>;
  /** Each node's checkpoint offset in the database snapshot (0: none). */
  checkpointAt: Map<string, number>;
  /** `node/segment` of every drained_segments row in the snapshot, and how long ago it was drained. */
  drained: Map<string, number>;
  /** Only segments drained longer ago than this are folded (recent ones keep their detail). */
  foldAfterMs: number;
  /** `node/segment` of every segment file the books read in the spool. */
  inSpool: Set<string>;
  /** `node/segment` of every segment quarantined whole. */
  wholeFiles: Set<string>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export async function planFolds(input: FoldInput, max = MAX_FOLD_SEGMENTS): Promise<FoldRequest[]> {
  const out: FoldRequest[] = [];
  for (const [node, lines] of input.logs) {
    const from = input.checkpointAt.get(node) ?? 0;
    const open = lines.filter((l) => l.end > from);
    const lastEnd = new Map<string, number>();
    for (const l of open) lastEnd.set(l.id, l.end);
    let to = from;
    let fold: string[] = [];
    const prefix = new Set<string>();
    let reach = from;
    for (const l of open) {
      const k = `${node}/${l.id}`;
      const age = input.drained.get(k);
      const drained = age !== undefined && age >= input.foldAfterMs && !input.inSpool.has(k);
      if (!drained && !input.wholeFiles.has(k)) break;
      if (drained) prefix.add(l.id);
      if (prefix.size > max) break;
      reach = Math.max(reach, lastEnd.get(l.id)!);
      if (reach <= l.end) {
        to = l.end;
        fold = [...prefix];
      }
    }
    if (fold.length === 0) continue;
    // After the snapshot: a file still there is not gone for good (its drainer may still be
    // deleting it, or died before): fold nothing of this node this time.
    const present = await Promise.all(fold.map(async (id) => (await exists(sealedPath(input.root, node, id))) || (await exists(openPath(input.root, node, id)))));
    if (present.some(Boolean)) continue;
    out.push({ node, fromOffset: from, toOffset: to, segments: fold });
  }
  return out;
}

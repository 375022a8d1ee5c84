// Each node's list of the segments it ever acknowledged a request in:
// <root>/nodes/<node>/segments.log, one segment id per line, appended (and fdatasynced) when a
// segment's first batch is durable, before that batch is acknowledged. Segments leave the
// spool (drained, archived, quarantined whole), but their ids stay here, so `intake verify`
// can tell a segment that was drained from one that vanished (a file removed by hand, a
// storage fault): every id listed must be in the database's drained_segments, still in the
// spool, or in quarantine. One short line per segment (about one a second on a busy node).
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeFully } from './fsutil.js';
import { nodeDir } from './layout.js';

export const SEGMENT_LOG = 'segments.log';
export const segmentLogPath = (root: string, node: string) => join(nodeDir(root, node), SEGMENT_LOG);

const SEGMENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Appends to one node's log. Not safe for two writers: only the node's own spool writer uses it. */
export class SegmentLog {
  private fh: FileHandle | null = null;
  private size = 0;

  private readonly root: string;
  private readonly node: string;

  constructor(root: string, node: string) {
    this.root = root;
    this.node = node;
  }

  /** Durably add `segment`. Throws when it could not be made durable (the caller fails the batch). */
  async add(segment: string): Promise<void> {
    const first = !this.fh;
    if (!this.fh) {
      this.fh = await fsp.open(segmentLogPath(this.root, this.node), 'a');
      this.size = (await this.fh.stat()).size;
    }
    // A leading newline: a line torn by a crash stays on its own line, which the reader skips.
    const line = Buffer.from(`\n${segment}\n`);
    try {
      await writeFully(this.fh, line, this.size);
      this.size += line.length;
      await this.fh.datasync();
      if (first) await fsyncDir(nodeDir(this.root, this.node));
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close().catch(() => undefined);
  }
}

/** One listed segment and the byte offset just past its line (a checkpoint may stop there). */
export interface LoggedSegment {
  id: string;
  end: number;
}

/**
 * The whole lines of a node's log from byte `offset` on (a checkpoint's log_offset), in order,
 * each with the offset past it. A torn last line (no newline yet) is not listed; damaged lines
 * are skipped. Repeats are kept (a segment listed twice: books-fold.ts must see both).
 */
export async function readSegmentLogFrom(root: string, node: string, offset: number): Promise<LoggedSegment[]> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(segmentLogPath(root, node), 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    if (size <= offset) return [];
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    // Ids are ASCII: one byte a character, so string indexes are byte offsets.
    const text = buf.subarray(0, bytesRead).toString('latin1');
    const out: LoggedSegment[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const line = text.slice(start, nl);
      if (SEGMENT_ID.test(line)) out.push({ id: line, end: offset + nl + 1 });
      start = nl + 1;
    }
    return out;
  } finally {
    await fh.close();
  }
}

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

/** The segment ids a node's log lists (an absent log lists none: a node of an older build). */
export async function readSegmentLog(root: string, node: string): Promise<string[]> {
  let text: string;
  try {
    text = await fsp.readFile(segmentLogPath(root, node), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return [...new Set(text.split('\n').filter((l) => SEGMENT_ID.test(l)))];
}

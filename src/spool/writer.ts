// The spool writer: appends records to this node's open segment with group commit.
//
// Every append waits in a queue. One loop takes everything queued, writes it with one write
// (byte count checked), one fdatasync and, for a new file, one directory fsync, then resolves
// all of it at once. Requests that arrive while a sync runs form the next batch, so the batch
// grows with the load and no timer is needed. A write or sync error fails the whole batch
// and abandons the segment (Linux may drop dirty pages after a failed fsync, so nothing in
// that file is trusted past its last good sync); the next batch starts a new segment.
//
// States: running -> closing (no new appends; queued ones finish; the open segment is sealed)
// -> closed. destroy() stops at once and leaves the open segment for recovery.
import { promises as fsp, constants as C } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { v7 as uuidv7 } from 'uuid';
import { Errors, IntakeError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { encodeHeader } from './format.js';
import { fsyncDir, isNoSpace, writeFully } from './fsutil.js';
import { listSegments, nodeDir, openPath, sealedPath } from './layout.js';
import { sealLeftover } from './recover.js';
import { StaleLocks } from './stale-locks.js';
import { SegmentLog } from './segment-log.js';

export interface SpoolWriterOptions {
  root: string;
  node: string;
  /** Seal the open segment once it holds this many bytes. */
  maxSegmentBytes: number;
  /** Seal the open segment this long after its first record, so a quiet node's work moves on. */
  sealAfterMs: number;
  /** Refuse appends (503) while this many bytes wait for a sync: the disk cannot keep up. */
  maxQueuedBytes?: number;
  /** Stale time of spool locks (see node-lock.ts). */
  lockStaleMs: number;
  log: Logger;
  metrics: Metrics;
}

interface Pending {
  buf: Buffer;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface OpenSegment {
  id: string;
  path: string;
  fh: FileHandle;
  ino: number;
  /** Bytes written to the file. */
  size: number;
  /** Bytes known durable (after a successful fdatasync). */
  synced: number;
  records: number;
  /** Header bytes not yet written: they go out with the first batch. */
  header: Buffer | null;
  dirSynced: boolean;
  /** performance.now() of the first record, 0 while empty. */
  firstRecordAt: number;
  /** Listed in the node's segments.log (segment-log.ts): done with its first batch of records. */
  logged: boolean;
}

/** A file this writer gave up on and must still seal (or remove) once the disk allows. */
interface Orphan {
  path: string;
  keepBytes: number;
}

class TakenOverError extends Error {
  readonly code = 'INTAKE_SEGMENT_TAKEN_OVER';
}

export class SpoolWriter {
  private readonly o: Required<SpoolWriterOptions>;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private seg: OpenSegment | null = null;
  private running: Promise<void> | null = null;
  private sealWanted = false;
  private probeWanted = false;
  private orphans: Orphan[] = [];
  /** This node's leftover open segments (from a previous run) whose seal claim was busy at start. */
  private leftovers: string[] = [];
  /** What this writer has seen of the seal claims on its leftovers (stale-locks.ts). */
  private readonly locks: StaleLocks;
  private leftoverRetry: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private healthyNow = true;
  private lastErrorCode: string | null = null;
  /** Set once this node's files were taken over by another node: what every append gets from then on. */
  private lostErr: IntakeError | null = null;
  private readonly segmentLog: SegmentLog;

  constructor(opts: SpoolWriterOptions) {
    this.o = { maxQueuedBytes: 256 * 1024 * 1024, ...opts };
    this.locks = new StaleLocks(opts.lockStaleMs, opts.log);
    this.segmentLog = new SegmentLog(opts.root, opts.node);
  }

  /** False after a failed write or sync, until a new segment could be made durable again. */
  get healthy(): boolean {
    return this.healthyNow;
  }

  get lastError(): string | null {
    return this.lastErrorCode;
  }

  /** Seal what the previous run of this node left open, then start taking appends. */
  async start(): Promise<void> {
    if (this.state !== 'new') return;
    await fsp.mkdir(nodeDir(this.o.root, this.o.node), { recursive: true });
    for (const f of await listSegments(this.o.root, this.o.node)) {
      if (f.state !== 'open') continue;
      const outcome = await sealLeftover(this.o.root, f.path, this.o.node, this.o.log, this.locks);
      // A claim a dead process left on the sealed name: retry from tick() once it is stale.
      if (outcome === 'busy') this.leftovers.push(f.path);
    }
    this.state = 'running';
    const tickMs = Math.max(20, Math.min(250, Math.floor(this.o.sealAfterMs / 4)));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  /** Resolves once `record` (a framed record) is on stable storage; rejects with an IntakeError otherwise. */
  append(record: Buffer): Promise<void> {
    if (this.state !== 'running') return Promise.reject(this.lostErr ?? Errors.shuttingDown('this node is shutting down; retry on another node'));
    if (this.queuedBytes + record.length > this.o.maxQueuedBytes) {
      return Promise.reject(Errors.spoolUnavailable('spool writes are behind; retry shortly'));
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ buf: record, resolve, reject });
      this.queuedBytes += record.length;
      this.kick();
    });
  }

  /** Graceful: refuse new appends, finish queued ones, seal the open segment. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const wasRunning = this.state === 'running';
    this.state = 'closing';
    this.closing = (async () => {
      this.stopTimer();
      while (this.running) await this.running;
      if (wasRunning && this.seg) await this.sealCurrent();
      if (!this.lostErr) await this.retryOrphans();
      await this.leftoverRetry;
      await this.segmentLog.close();
      this.state = 'closed';
    })();
    return this.closing;
  }

  /** At once: fail queued appends, close the file unsealed (the next start recovers it). */
  async destroy(err?: Error): Promise<void> {
    this.state = 'closed';
    this.stopTimer();
    const e = err instanceof IntakeError ? err : Errors.shuttingDown('this node is stopping');
    for (const p of this.queue.splice(0)) p.reject(e);
    this.queuedBytes = 0;
    const seg = this.seg;
    this.seg = null;
    await seg?.fh.close().catch(() => undefined);
    await this.segmentLog.close();
  }

  /**
   * Another node took this node's files over: its node lock was taken (the process stalled past
   * the lock's stale time, say SIGSTOP or a storage hang, and the leader judged it dead), or its
   * open segment was renamed away. Acknowledge nothing more, not even into a new segment, and
   * leave every file alone: they are the lock holder's business now (the leader seals what is
   * open; this node's next start finds whatever is left). A batch already past its sync and
   * ownership check is acknowledged: its bytes are in the file the taker reads.
   */
  async lose(why: string): Promise<void> {
    this.markLost(why);
    while (this.running) await this.running;
    const seg = this.seg;
    this.seg = null;
    await seg?.fh.close().catch(() => undefined);
  }

  private markLost(why: string): void {
    if (this.lostErr) return;
    this.lostErr = Errors.shuttingDown(`${why}: this node stopped accepting; retry on another node`);
    this.state = 'closed';
    this.healthyNow = false;
    this.lastErrorCode = 'INTAKE_SEGMENT_TAKEN_OVER';
    this.stopTimer();
    for (const p of this.queue.splice(0)) p.reject(this.lostErr);
    this.queuedBytes = 0;
    this.o.log.error({ why }, 'spool taken over by another node; refusing every request from now on');
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const seg = this.seg;
    if (seg && seg.records > 0 && performance.now() - seg.firstRecordAt >= this.o.sealAfterMs) this.sealWanted = true;
    if (!this.healthyNow && !this.seg && this.queue.length === 0) this.probeWanted = true;
    if (this.sealWanted || this.probeWanted) this.kick();
    if (this.orphans.length > 0 && !this.running) void this.retryOrphans();
    if (this.leftovers.length > 0 && !this.leftoverRetry) void this.retryLeftovers();
  }

  private retryLeftovers(): Promise<void> {
    this.leftoverRetry ??= (async () => {
      const left: string[] = [];
      for (const path of this.leftovers) {
        try {
          if ((await sealLeftover(this.o.root, path, this.o.node, this.o.log, this.locks)) === 'busy') left.push(path);
        } catch (err) {
          this.o.log.error({ err, file: path }, 'sealing leftover segment failed; will retry');
          left.push(path);
        }
      }
      this.leftovers = left;
    })().finally(() => {
      this.leftoverRetry = null;
    });
    return this.leftoverRetry;
  }

  private kick(): void {
    if (this.running || this.state === 'closed') return;
    this.running = this.loop().finally(() => {
      this.running = null;
      if (this.state !== 'closed' && (this.queue.length > 0 || this.sealWanted)) this.kick();
    });
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.lostErr) return;
      if (this.sealWanted) {
        this.sealWanted = false;
        if (this.seg) await this.sealCurrent();
        continue;
      }
      if (this.probeWanted) {
        this.probeWanted = false;
        await this.probe();
        continue;
      }
      if (this.queue.length === 0) return;
      await this.commitBatch(this.takeBatch());
    }
  }

  private takeBatch(): Pending[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.buf.length <= this.o.maxSegmentBytes)) {
      bytes += this.queue[n]!.buf.length;
      n++;
    }
    this.queuedBytes -= bytes;
    return this.queue.splice(0, n);
  }

  private async openSegment(): Promise<OpenSegment> {
    const id = uuidv7();
    const path = openPath(this.o.root, this.o.node, id);
    const fh = await fsp.open(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o644);
    try {
      const st = await fh.stat();
      const header = encodeHeader({ node: this.o.node, segment: id, createdAt: Date.now() });
      return { id, path, fh, ino: st.ino, size: 0, synced: 0, records: 0, header, dirSynced: false, firstRecordAt: 0, logged: false };
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fsp.unlink(path).catch(() => undefined);
      throw err;
    }
  }

  /** Write `bufs` to the open segment (made if needed) and make them durable. */
  private async writeDurable(bufs: Buffer[]): Promise<OpenSegment> {
    if (!this.seg) this.seg = await this.openSegment();
    const seg = this.seg;
    const data = Buffer.concat(seg.header ? [seg.header, ...bufs] : bufs);
    await writeFully(seg.fh, data, seg.size);
    seg.size += data.length;
    await seg.fh.datasync();
    if (!seg.dirSynced) {
      await fsyncDir(nodeDir(this.o.root, this.o.node));
      seg.dirSynced = true;
    }
    // A drainer that judged this node dead (say the event loop stalled past the lock's stale
    // time) renames the open file before reading it. Acknowledge only if the file is still ours
    // after the sync: then the rename, and the drainer's read, come after these bytes.
    const st = await fsp.stat(seg.path).catch(() => null);
    if (!st || st.ino !== seg.ino) throw new TakenOverError('open segment was taken over by another node');
    // The books (intake verify): a segment holding acknowledged records is listed before the
    // first of them is acknowledged. A failure here fails the batch like a failed sync.
    if (!seg.logged && bufs.length > 0) {
      await this.segmentLog.add(seg.id);
      seg.logged = true;
    }
    seg.header = null;
    seg.synced = seg.size;
    return seg;
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    const bytes = batch.reduce((n, p) => n + p.buf.length, 0);
    if (this.seg && this.seg.records > 0 && this.seg.size + bytes > this.o.maxSegmentBytes) await this.sealCurrent();
    const t0 = performance.now();
    try {
      const seg = await this.writeDurable(batch.map((p) => p.buf));
      if (seg.records === 0) seg.firstRecordAt = performance.now();
      seg.records += batch.length;
      this.o.metrics.fsyncSeconds.observe((performance.now() - t0) / 1000);
      this.o.metrics.batchRecords.observe(batch.length);
      this.markHealthy();
    } catch (err) {
      if (err instanceof TakenOverError) this.markLost('open segment taken over by another node');
      await this.abandon(err);
      const e = isNoSpace(err)
        ? Errors.spoolFull('the spool is full; retry later', { cause: err })
        : Errors.spoolUnavailable(`the spool could not make the request durable (${errCode(err)}); retry`, { cause: err });
      for (const p of batch) p.reject(e);
      return;
    }
    for (const p of batch) p.resolve();
  }

  /** After a failure: try to make a fresh segment durable; success makes the writer healthy again. */
  private async probe(): Promise<void> {
    if (this.seg || this.state !== 'running') return;
    try {
      const seg = await this.writeDurable([]);
      this.markHealthy();
      this.o.log.info({ segment: seg.id }, 'spool writable again');
    } catch (err) {
      await this.abandon(err, true);
    }
  }

  private markHealthy(): void {
    this.healthyNow = true;
    this.lastErrorCode = null;
  }

  /** Give up on the open segment after a failed write or sync. Nothing after its last good sync is kept. */
  private async abandon(err: unknown, quiet = false): Promise<void> {
    this.healthyNow = false;
    this.lastErrorCode = errCode(err);
    this.o.metrics.spoolErrors.inc({ code: this.lastErrorCode });
    if (!quiet) this.o.log.error({ err, segment: this.seg?.id }, 'spool write failed; batch refused, segment abandoned');
    const seg = this.seg;
    this.seg = null;
    if (!seg) return;
    await seg.fh.close().catch(() => undefined);
    if (err instanceof TakenOverError) return; // the file is another node's business now
    // A file whose durable part is only its header (a probe's, or one whose first batch failed)
    // holds nothing acknowledged: remove it rather than seal an empty segment.
    this.orphans.push({ path: seg.path, keepBytes: seg.records > 0 ? seg.synced : 0 });
    await this.retryOrphans();
  }

  private async sealCurrent(): Promise<void> {
    const seg = this.seg;
    if (!seg) return;
    this.seg = null;
    try {
      await seg.fh.close();
    } catch (err) {
      this.o.log.error({ err, segment: seg.id }, 'closing segment failed');
    }
    if (seg.records === 0) {
      this.orphans.push({ path: seg.path, keepBytes: 0 });
      await this.retryOrphans();
      return;
    }
    try {
      await fsp.rename(seg.path, sealedPath(this.o.root, this.o.node, seg.id));
      await fsyncDir(nodeDir(this.o.root, this.o.node));
      this.o.metrics.segmentsSealed.inc();
      this.o.log.debug({ segment: seg.id, records: seg.records, bytes: seg.size }, 'segment sealed');
    } catch (err) {
      this.o.log.error({ err, segment: seg.id }, 'sealing segment failed; will retry');
      this.orphans.push({ path: seg.path, keepBytes: seg.synced });
    }
  }

  private orphanRetry: Promise<void> | null = null;

  /** Cut each abandoned file to its last durable byte and seal it (or remove it when it holds nothing acknowledged). */
  private retryOrphans(): Promise<void> {
    if (this.orphanRetry) return this.orphanRetry;
    this.orphanRetry = (async () => {
      const left: Orphan[] = [];
      for (const o of this.orphans) {
        try {
          if (o.keepBytes === 0) {
            await fsp.unlink(o.path).catch((err: NodeJS.ErrnoException) => {
              if (err.code !== 'ENOENT') throw err;
            });
          } else {
            const fh = await fsp.open(o.path, 'r+');
            try {
              await fh.truncate(o.keepBytes);
              await fh.sync();
            } finally {
              await fh.close();
            }
            const id = o.path.slice(o.path.lastIndexOf('/') + 1).replace(/\.open$/, '');
            await fsp.rename(o.path, sealedPath(this.o.root, this.o.node, id));
            this.o.metrics.segmentsSealed.inc();
          }
          await fsyncDir(nodeDir(this.o.root, this.o.node));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          left.push(o);
        }
      }
      this.orphans = left;
    })().finally(() => {
      this.orphanRetry = null;
    });
    return this.orphanRetry;
  }
}

function errCode(err: unknown): string {
  return (err as { code?: string } | undefined)?.code ?? 'EUNKNOWN';
}

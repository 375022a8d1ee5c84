// The drainer (save mode): moves every node's sealed segments into the database, exactly once.
//
// For each sealed segment: claim it (proper-lockfile; a stale claim of a dead drainer is taken
// over), read and check it, quarantine damaged bytes, insert its records with insert-if-absent
// on the id, commit, then delete (or archive) the file and fsync the directory. A crash at any
// point leaves the file for the next claim, and the re-insert finds the ids already present.
// Segments are found by chokidar events and by a periodic scan (NFS sends no events across hosts).
// (Sealing what dead nodes left open is the cluster leader's duty: src/cluster/duties.ts.)
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import lockfile from 'proper-lockfile';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { decodeSegment, RecordKind } from '../spool/format.js';
import { fsyncDir } from '../spool/fsutil.js';
import { archiveDir, listAllSegments, nodeDir, nodesDir, SEALED_EXT, type SegmentFile } from '../spool/layout.js';
import { lockUpdateMs } from '../spool/node-lock.js';
import { quarantineBytes, quarantineFile } from '../spool/quarantine.js';
import { parseCallbackOutcome, parseRequestRecord, type CallbackOutcomeRecord, type RequestRecord } from '../spool/records.js';
import type { Store } from '../store/store.js';

export interface DrainerOptions {
  root: string;
  /** This node's id (logged as the quarantiner). */
  node: string;
  store: Store;
  log: Logger;
  metrics: Metrics;
  scanIntervalMs: number;
  lockStaleMs: number;
  /** Move drained segments to archive/ instead of deleting them. */
  archive: boolean;
  /**
   * Segments drained at once. PostgreSQL gains from 2 (one backend per segment, while this
   * process decodes the next); SQLite has one writer, so more than 1 only adds waiting.
   */
  concurrency?: number;
}

export type DrainOutcome = 'drained' | 'busy' | 'gone' | 'unsupported' | 'quarantined';

const MAX_BACKOFF_MS = 5000;

export class Drainer {
  private readonly o: DrainerOptions;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private failures = 0;
  private retryAt = 0;
  /** Files of a newer format: logged once, looked at again only after a while. */
  private unsupported = new Map<string, number>();
  private closing: Promise<void> | null = null;

  constructor(opts: DrainerOptions) {
    this.o = opts;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    await fsp.mkdir(nodesDir(this.o.root), { recursive: true });
    this.watcher = chokidar.watch(nodesDir(this.o.root), { depth: 1, ignoreInitial: true });
    this.watcher.on('add', (p) => {
      if (p.endsWith(SEALED_EXT)) this.kick();
    });
    this.watcher.on('error', (err) => this.o.log.warn({ err }, 'spool watcher error; periodic scans continue'));
    this.timer = setInterval(() => this.kick(), this.o.scanIntervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Graceful: finish the segment being drained, then stop. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.state = 'closing';
    this.closing = (async () => {
      if (this.timer) clearInterval(this.timer);
      await this.watcher?.close();
      while (this.running) await this.running;
      this.state = 'closed';
    })();
    return this.closing;
  }

  /** Resolves when a pass finds nothing left to drain (tests and `intake` tooling use it). */
  async drainAll(): Promise<void> {
    for (;;) {
      while (this.running) await this.running;
      const sealed = (await listAllSegments(this.o.root)).filter((f) => f.state === 'sealed' && !this.unsupported.has(f.path));
      if (sealed.length === 0) return;
      this.kick();
      await this.running;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private kick(): void {
    if (this.state !== 'running') return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (Date.now() < this.retryAt) return;
    this.running = this.loop().finally(() => {
      this.running = null;
    });
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        const worked = await this.pass();
        if (this.failures > 0) this.o.log.info({ failures: this.failures }, 'drain recovered');
        this.failures = 0;
        if (worked) this.again = true;
      } catch (err) {
        this.failures++;
        this.o.metrics.drainErrors.inc();
        const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(this.failures, 10));
        this.retryAt = Date.now() + delay * (0.5 + Math.random() / 2);
        if (this.failures === 1 || this.failures % 20 === 0) {
          this.o.log.error({ err, failures: this.failures }, 'drain failed; backing off and retrying');
        }
        return;
      }
    } while (this.again && this.state === 'running');
  }

  /** One scan: drain what is sealed. True if anything moved. */
  private async pass(): Promise<boolean> {
    // Oldest first across all nodes: segment ids are UUIDv7.
    const sealed = (await listAllSegments(this.o.root)).filter((f) => f.state === 'sealed').sort((a, b) => (a.segment < b.segment ? -1 : 1));
    this.o.metrics.backlogSegments.set(sealed.length);
    let worked = false;
    let next = 0;
    const runner = async () => {
      while (next < sealed.length && this.state === 'running') {
        const f = sealed[next++]!;
        const skipUntil = this.unsupported.get(f.path);
        if (skipUntil !== undefined && Date.now() < skipUntil) continue;
        const outcome = await this.drainSegment(f);
        if (outcome === 'drained' || outcome === 'quarantined') worked = true;
      }
    };
    // allSettled: a failed runner must not let the pass end (and close() go on) while another
    // runner is still inside a transaction.
    const results = await Promise.allSettled(Array.from({ length: Math.max(1, this.o.concurrency ?? 1) }, runner));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return worked;
  }

  /** Claim, load and remove one sealed segment. */
  async drainSegment(f: SegmentFile): Promise<DrainOutcome> {
    const { root, log, metrics, store } = this.o;
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(f.path, {
        stale: this.o.lockStaleMs,
        update: lockUpdateMs(this.o.lockStaleMs),
        retries: 0,
        realpath: false,
        // Someone took our claim over (we stalled past the stale time). The id key keeps the
        // database right whichever of us commits; we finish and let the delete race.
        onCompromised: (err) => log.warn({ err, segment: f.segment }, 'segment claim lost to another drainer'),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') return 'busy';
      throw err;
    }
    try {
      let buf: Buffer;
      try {
        buf = await fsp.readFile(f.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone'; // drained by another node meanwhile
        throw err;
      }
      const t0 = performance.now();
      const dec = decodeSegment(buf);
      if (dec.headerProblem) {
        if (dec.headerProblem.code === 'unsupported-version') {
          if (!this.unsupported.has(f.path)) log.error({ code: Errors.segmentVersionUnsupported.code, file: f.path, err: dec.headerProblem.message }, 'segment left for an upgraded node');
          this.unsupported.set(f.path, Date.now() + 60_000);
          return 'unsupported';
        }
        await quarantineFile(root, f.path, { reason: `header-${dec.headerProblem.code}`, detail: dec.headerProblem.message, by: this.o.node });
        metrics.quarantined.inc({ reason: 'header' });
        log.error({ code: Errors.segmentCorrupt.code, file: f.path, err: dec.headerProblem.message }, 'quarantined segment with a damaged header');
        return 'quarantined';
      }
      const requests: RequestRecord[] = [];
      const outcomes: CallbackOutcomeRecord[] = [];
      for (const rec of dec.records) {
        if (rec.kind === RecordKind.request) {
          const r = parseRequestRecord(rec.json);
          if (r) {
            requests.push(r);
            continue;
          }
        } else if (rec.kind === RecordKind.callbackOutcome) {
          const o = parseCallbackOutcome(rec.json);
          if (o) {
            outcomes.push(o);
            continue;
          }
        }
        const known = rec.kind === RecordKind.request || rec.kind === RecordKind.callbackOutcome;
        await this.quarantine(f, buf, rec.offset, rec.length, known ? 'bad-record' : 'unhandled-kind');
      }
      for (const gap of dec.gaps) await this.quarantine(f, buf, gap.offset, gap.length, gap.reason);
      // A sealed segment was fully synced before its rename: bytes past the last intact record are damage.
      if (dec.tail) await this.quarantine(f, buf, dec.tail.offset, dec.tail.length, 'corrupt-tail');

      const inserted = await store.insertRequests(requests);
      // After the requests: an outcome may concern a callback whose row this drain just made possible.
      await store.recordCallbackOutcomes(outcomes);
      metrics.drainRecords.inc({ result: 'inserted' }, inserted);
      metrics.drainRecords.inc({ result: 'duplicate' }, requests.length - inserted);

      if (this.o.archive) {
        const dest = archiveDir(root, f.node);
        await fsp.mkdir(dest, { recursive: true });
        await fsp.rename(f.path, join(dest, f.segment + SEALED_EXT));
        await fsyncDir(dest);
      } else {
        await fsp.unlink(f.path).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      await fsyncDir(nodeDir(root, f.node));
      metrics.drainSegments.inc();
      log.info(
        { segment: f.segment, segmentNode: f.node, records: requests.length, inserted, ms: Math.round(performance.now() - t0) },
        'segment drained',
      );
      return 'drained';
    } finally {
      await release().catch(() => undefined);
    }
  }

  private async quarantine(f: SegmentFile, buf: Buffer, offset: number, length: number, reason: string): Promise<void> {
    await quarantineBytes(this.o.root, f.path, buf.subarray(offset, offset + length), { offset, reason, by: this.o.node });
    this.o.metrics.quarantined.inc({ reason });
    this.o.log.error({ code: Errors.segmentCorrupt.code, segment: f.segment, segmentNode: f.node, offset, length, reason }, 'quarantined damaged bytes of a segment');
  }
}

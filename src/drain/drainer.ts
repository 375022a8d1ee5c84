// The drainer (save mode): moves every node's sealed segments into the database, exactly once.
//
// For each sealed segment: claim it (a lock; a claim of a dead drainer that nobody refreshed for
// the stale time, as this node saw it, is taken over: spool/stale-locks.ts), read and check it in the decode worker (decoder.ts: never on the event loop),
// quarantine damaged bytes, insert its records with insert-if-absent on the id, commit, then
// delete (or archive) the file and fsync the directory. A crash at any point leaves the file for
// the next claim, and the re-insert finds the ids already present. A record the database
// refuses is found by bisection and quarantined (isolate.ts); a segment that fails otherwise is
// retried after its own backoff while the others go on, and two different segments failing with
// no success between (the database is down) back the whole drainer off.
// Segments are found by chokidar events and by a periodic scan (NFS sends no events across hosts).
// (Sealing what dead nodes left open is the cluster leader's duty: src/cluster/duties.ts.)
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { HeaderProblem } from '../spool/format.js';
import { fsyncDir, mkdirDurable, readRange } from '../spool/fsutil.js';
import { archiveDir, listAllSegments, nodeDir, nodesDir, SEALED_EXT, type SegmentFile } from '../spool/layout.js';
import { StaleLocks } from '../spool/stale-locks.js';
import { quarantineBytes, quarantineFile, type RecordKindName } from '../spool/quarantine.js';
import { describeDbError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { SegmentDecoder } from './decoder.js';
import type { RequestRecord } from '../spool/records.js';
import { findIdempotencyConflicts } from './idempotency-conflicts.js';
import { insertIsolating, type Located, type Refused } from './isolate.js';
import { backoffMs, SegmentRetries } from './retries.js';

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

/**
 * Different segments failing with no success between that mean the database (or the spool) is
 * down rather than one segment being bad: the pass stops and the drainer backs off.
 */
const OUTAGE_AFTER = 2;

export class Drainer {
  private readonly o: DrainerOptions;
  private readonly decoder: SegmentDecoder;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  /** Passes in a row that ended in an outage, and when the next pass may start. */
  private failures = 0;
  private retryAt = 0;
  /** Segments that failed since the last segment that succeeded. */
  private readonly failedSinceSuccess = new Set<string>();
  private readonly retries = new SegmentRetries();
  /** Files of a newer format: logged once, looked at again only after a while. */
  private unsupported = new Map<string, number>();
  private closing: Promise<void> | null = null;
  /** What this drainer has seen of other drainers' claims: a claim is stale only once it watched it stand still. */
  private readonly locks: StaleLocks;

  constructor(opts: DrainerOptions) {
    this.o = opts;
    this.locks = new StaleLocks(opts.lockStaleMs, opts.log);
    this.decoder = new SegmentDecoder({ log: opts.log });
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    await mkdirDurable(nodesDir(this.o.root));
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
      await this.decoder.close();
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
        if (await this.pass()) this.again = true;
      } catch (err) {
        this.failures++;
        this.retryAt = Date.now() + backoffMs(this.failures);
        if (this.failures === 1 || this.failures % 20 === 0) {
          this.o.log.error({ err, failures: this.failures }, 'drain failed; backing off and retrying');
        }
        return;
      }
    } while (this.again && this.state === 'running');
  }

  /** One scan: drain what is sealed and due. True if anything moved; throws on an outage. */
  private async pass(): Promise<boolean> {
    // Oldest first across all nodes: segment ids are UUIDv7.
    const sealed = (await listAllSegments(this.o.root)).filter((f) => f.state === 'sealed').sort((a, b) => (a.segment < b.segment ? -1 : 1));
    this.o.metrics.backlogSegments.set(sealed.length);
    this.retries.keepOnly(new Set(sealed.map((f) => f.path)));
    let worked = false;
    let outage = false;
    let lastErr: unknown;
    let next = 0;
    const runner = async () => {
      while (next < sealed.length && this.state === 'running' && !outage) {
        const f = sealed[next++]!;
        const skipUntil = this.unsupported.get(f.path);
        if ((skipUntil !== undefined && Date.now() < skipUntil) || !this.retries.due(f.path)) continue;
        try {
          const outcome = await this.drainSegment(f);
          this.retries.succeed(f.path);
          if (outcome === 'drained' || outcome === 'quarantined') {
            worked = true;
            this.succeeded();
          }
        } catch (err) {
          lastErr = err;
          this.segmentFailed(f, err);
          // After an outage's backoff, the first failure of a pass ends it again: a probe, not a
          // walk through the whole backlog against a database that is still down.
          if (this.failedSinceSuccess.size >= OUTAGE_AFTER) outage = true;
        }
      }
    };
    // A runner never throws: a failed segment waits for its own retry and the pass goes on.
    await Promise.all(Array.from({ length: Math.max(1, this.o.concurrency ?? 1) }, runner));
    if (outage) throw lastErr;
    return worked;
  }

  private succeeded(): void {
    this.failedSinceSuccess.clear();
    if (this.failures > 0) this.o.log.info({ failures: this.failures }, 'drain recovered');
    this.failures = 0;
  }

  private segmentFailed(f: SegmentFile, err: unknown): void {
    this.failedSinceSuccess.add(f.path);
    this.o.metrics.drainErrors.inc();
    const n = this.retries.fail(f.path);
    // During an outage the drainer's own line says it all; otherwise say which segment waits.
    if (this.failures === 0 && (n === 1 || n % 20 === 0)) {
      this.o.log.warn({ err, segment: f.segment, segmentNode: f.node, failures: n }, 'segment drain failed; retrying it later');
    }
  }

  /** Claim, load and remove one sealed segment. */
  async drainSegment(f: SegmentFile): Promise<DrainOutcome> {
    const { root, log, metrics, store } = this.o;
    const release = await this.locks.tryLock(f.path, {
      // Someone took our claim over (we stalled past the stale time). The id key keeps the
      // database right whichever of us commits; we finish and let the delete race.
      onCompromised: (err) => log.warn({ err, segment: f.segment }, 'segment claim lost to another drainer'),
    });
    if (!release) return 'busy';
    try {
      const t0 = performance.now();
      const dec = await this.decoder.decode(f.path);
      if (dec.kind === 'gone') return 'gone'; // drained by another node meanwhile
      if (dec.kind === 'header') return await this.badHeader(f, dec.problem);
      for (const d of dec.damaged) {
        await this.quarantine(f, d, { reason: d.reason });
        log.error({ code: Errors.segmentCorrupt.code, segment: f.segment, segmentNode: f.node, offset: d.offset, length: d.length, reason: d.reason }, 'quarantined damaged bytes of a segment');
      }

      const requests = await insertIsolating(dec.requests, (rs) => store.insertRequests(rs));
      // After the requests: an outcome may concern a callback whose row this drain just made possible.
      const outcomes = await insertIsolating(dec.outcomes, async (os) => {
        await store.recordCallbackOutcomes(os);
        return os.length;
      });
      // After the requests of the same segment, so a cancel finds its request's row; a cancel
      // that comes first (its request in a later-drained segment) waits as a tombstone that the
      // request's insert honours (store.ts, applyCancels).
      const cancels = await insertIsolating(dec.cancels, (cs) => store.applyCancels(cs));
      for (const r of requests.refused) await this.quarantineRefused(f, r, 'request');
      for (const r of outcomes.refused) await this.quarantineRefused(f, r, 'callbackOutcome');
      for (const r of cancels.refused) await this.quarantineRefused(f, r, 'cancel');
      const { inserted } = requests;
      const duplicates = dec.requests.length - requests.refused.length - inserted;
      metrics.drainRecords.inc({ result: 'inserted' }, inserted);
      metrics.drainRecords.inc({ result: 'duplicate' }, duplicates);
      const conflicts = duplicates > 0 ? await findIdempotencyConflicts(store, dec.requests) : [];
      for (const c of conflicts) await this.quarantineConflict(f, c);
      // The books (intake verify): noted once the rows are committed and the refused records are
      // in quarantine, before the file goes. A crash before this leaves the file to be drained
      // again (counted in the spool till then); a crash after it leaves file and row, and verify
      // counts the segment once, from the row. Insert-if-absent: a re-drain changes nothing.
      await store.recordDrainedSegment({ node: f.node, segment: f.segment, requests: dec.requests.length, refused: requests.refused.length, conflicts: conflicts.length, drainedBy: this.o.node });

      if (this.o.archive) {
        const dest = archiveDir(root, f.node);
        await mkdirDurable(dest);
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
        { segment: f.segment, segmentNode: f.node, records: dec.requests.length, inserted, cancels: dec.cancels.length, cancelled: cancels.inserted, refused: requests.refused.length + outcomes.refused.length + cancels.refused.length, ms: Math.round(performance.now() - t0) },
        'segment drained',
      );
      return 'drained';
    } finally {
      await release().catch(() => undefined);
    }
  }

  /** A header we cannot read: leave a newer format for an upgraded node, quarantine damage. */
  private async badHeader(f: SegmentFile, problem: HeaderProblem): Promise<DrainOutcome> {
    const { log } = this.o;
    if (problem.code === 'unsupported-version') {
      if (!this.unsupported.has(f.path)) log.error({ code: Errors.segmentVersionUnsupported.code, file: f.path, err: problem.message }, 'segment left for an upgraded node');
      this.unsupported.set(f.path, Date.now() + 60_000);
      return 'unsupported';
    }
    await quarantineFile(this.o.root, f.path, { reason: `header-${problem.code}`, detail: problem.message, by: this.o.node });
    this.o.metrics.quarantined.inc({ reason: 'header' });
    log.error({ code: Errors.segmentCorrupt.code, file: f.path, err: problem.message }, 'quarantined segment with a damaged header');
    return 'quarantined';
  }

  /** A record the database refused on its own: its bytes go to quarantine, the rest of the segment is stored. */
  private async quarantineRefused(f: SegmentFile, r: Refused<{ id: string }>, kind: RecordKindName): Promise<void> {
    const { code, message } = describeDbError(r.err);
    await this.quarantine(f, r.item, { reason: 'db-refused', detail: message, dbCode: code, kind });
    this.o.log.error(
      { code: Errors.recordRefused.code, segment: f.segment, segmentNode: f.node, offset: r.item.offset, length: r.item.length, id: r.item.value.id, dbCode: code, err: message },
      'quarantined a record the database refused',
    );
  }

  /** A keyed request whose id is stored with another body: the first stands, this one is kept in quarantine. */
  private async quarantineConflict(f: SegmentFile, c: Located<RequestRecord>): Promise<void> {
    const { id, idempotencyKey, tenant } = c.value;
    await this.quarantine(f, c, { reason: 'idempotency-conflict', kind: 'request', detail: `request ${id} (tenant ${tenant}, Idempotency-Key ${JSON.stringify(idempotencyKey)}) is stored with another body; the first one stands` });
    this.o.log.warn(
      { code: Errors.idempotencyConflict.code, segment: f.segment, segmentNode: f.node, offset: c.offset, id, tenant },
      'an Idempotency-Key was reused with another body; the stored request stands, this one is in quarantine',
    );
  }

  /** Copy a byte range of the segment to quarantine/, read back from the file (the decode worker returns offsets, not bytes). */
  private async quarantine(f: SegmentFile, at: Omit<Located<unknown>, 'value'>, info: { reason: string; detail?: string; dbCode?: string; kind?: RecordKindName }): Promise<void> {
    const bytes = await readRange(f.path, at.offset, at.length);
    await quarantineBytes(this.o.root, f.path, bytes, { offset: at.offset, by: this.o.node, ...info });
    this.o.metrics.quarantined.inc({ reason: info.reason });
  }
}

// SegmentDecoder: the drainer's handle on its decode worker (decode-worker.ts), one long-lived
// worker per drainer. The worker reads, checks and parses a whole segment off the event loop;
// the records come back in chunks, one per event-loop turn. A worker that dies (a bug, memory
// exhausted) fails only the attempts in flight; the next decode starts a new worker.
import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import type { HeaderProblem } from '../spool/format.js';
import type { CallbackOutcomeRecord, CancelRecord, RequestRecord } from '../spool/records.js';
import type { FromWorker, ToWorker } from './decode-messages.js';
import type { Located } from './isolate.js';
import type { ParsedSegment } from './parse-segment.js';

export type DecodedFile = { kind: 'gone' } | { kind: 'header'; problem: HeaderProblem } | ({ kind: 'ok' } & ParsedSegment);

interface Job {
  requests: Located<RequestRecord>[];
  outcomes: Located<CallbackOutcomeRecord>[];
  cancels: Located<CancelRecord>[];
  resolve(d: DecodedFile): void;
  reject(err: unknown): void;
}

export interface SegmentDecoderOptions {
  log: Logger;
  /** Limits of the worker's own heap (a worker over them dies alone, not the node). */
  resourceLimits?: ResourceLimits;
}

export class SegmentDecoder {
  private readonly o: SegmentDecoderOptions;
  private worker: Worker | null = null;
  private readonly jobs = new Map<number, Job>();
  private lastJob = 0;
  private closed = false;

  constructor(opts: SegmentDecoderOptions) {
    this.o = opts;
  }

  /** Read and parse the segment at `path` in the worker. */
  decode(path: string): Promise<DecodedFile> {
    if (this.closed) return Promise.reject(Errors.internal('segment decoder used after close'));
    const w = this.worker ?? this.spawn();
    const job = ++this.lastJob;
    return new Promise<DecodedFile>((resolve, reject) => {
      this.jobs.set(job, { requests: [], outcomes: [], cancels: [], resolve, reject });
      // Held only while a job is in flight: an idle worker never keeps the process alive.
      if (this.jobs.size === 1) w.ref();
      this.post(w, { type: 'decode', job, path });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    this.failAll(Errors.internal('segment decoder closed'));
    if (w) await w.terminate();
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./decode-worker.js', import.meta.url), this.o.resourceLimits ? { resourceLimits: this.o.resourceLimits } : {});
    w.unref();
    w.on('message', (m: FromWorker) => this.onMessage(w, m));
    // 'error' (an uncaught exception, memory exhausted) is followed by 'exit'; the first one counts.
    w.on('error', (err) => this.lost(w, err));
    w.on('exit', (exitCode) => this.lost(w, Errors.internal(`segment decode worker exited with code ${exitCode}`)));
    this.worker = w;
    return w;
  }

  private post(w: Worker, m: ToWorker): void {
    w.postMessage(m);
  }

  private onMessage(w: Worker, m: FromWorker): void {
    const j = this.jobs.get(m.job);
    if (m.type === 'chunk') {
      // Taken even for a job no one waits for any more: the worker moves on to the next one.
      this.post(w, { type: 'more', job: m.job });
      for (const r of m.requests) j?.requests.push(r);
      for (const o of m.outcomes) j?.outcomes.push(o);
      for (const c of m.cancels ?? []) j?.cancels.push(c);
      return;
    }
    if (!j) return;
    this.jobs.delete(m.job);
    if (this.jobs.size === 0) w.unref();
    if (m.type === 'failed') j.reject(Object.assign(new Error(m.message), { code: m.code }));
    else if (m.end.kind === 'ok') j.resolve({ kind: 'ok', requests: j.requests, outcomes: j.outcomes, cancels: j.cancels, damaged: m.end.damaged });
    else j.resolve(m.end);
  }

  private lost(w: Worker, err: unknown): void {
    if (this.worker !== w) return; // already replaced, or closed
    this.worker = null;
    this.o.log.error({ err, code: Errors.internal.code, jobs: this.jobs.size }, 'segment decode worker died; its segments are retried with a new one');
    this.failAll(Errors.internal('segment decode worker died', { cause: err }));
    void w.terminate();
  }

  private failAll(err: unknown): void {
    for (const j of this.jobs.values()) j.reject(err);
    this.jobs.clear();
  }
}

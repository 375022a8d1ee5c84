// The drainer's decode worker: reads a segment file, checks and parses it (parse-segment.ts) and
// sends its records back in chunks, off the event loop that serves HTTP. One job at a time; a
// damaged file is a result, never a crash (decodeSegment and the record parsers do not throw).
import { readFile } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { CHUNK_BYTES, CHUNK_RECORDS, type FromWorker, type ToWorker } from './decode-messages.js';
import type { Located } from './isolate.js';
import { parseSegment } from './parse-segment.js';

if (!parentPort) throw new Error('decode-worker.js runs as a worker thread of the drainer');
const port = parentPort;

/** Resolves when the drainer has taken the last chunk sent. */
let taken: (() => void) | null = null;
let queue = Promise.resolve();

port.on('message', (m: ToWorker) => {
  if (m.type === 'more') {
    const t = taken;
    taken = null;
    t?.();
    return;
  }
  queue = queue.then(() => decode(m.job, m.path));
});

function post(m: FromWorker): void {
  port.postMessage(m);
}

function send(m: FromWorker): Promise<void> {
  const p = new Promise<void>((resolve) => (taken = resolve));
  post(m);
  return p;
}

function* chunks<T>(items: Located<T>[]): Generator<Located<T>[]> {
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    bytes += items[i]!.length;
    if (i + 1 - start >= CHUNK_RECORDS || bytes >= CHUNK_BYTES) {
      yield items.slice(start, i + 1);
      start = i + 1;
      bytes = 0;
    }
  }
  if (start < items.length) yield items.slice(start);
}

async function decode(job: number, path: string): Promise<void> {
  try {
    let buf: Buffer;
    try {
      buf = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return post({ type: 'done', job, end: { kind: 'gone' } });
      throw err;
    }
    const content = parseSegment(buf);
    if (content.kind === 'header') return post({ type: 'done', job, end: content });
    for (const requests of chunks(content.requests)) await send({ type: 'chunk', job, requests, outcomes: [] });
    for (const outcomes of chunks(content.outcomes)) await send({ type: 'chunk', job, requests: [], outcomes });
    for (const cancels of chunks(content.cancels)) await send({ type: 'chunk', job, requests: [], outcomes: [], cancels });
    post({ type: 'done', job, end: { kind: 'ok', damaged: content.damaged } });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    post({ type: 'failed', job, code: e?.code, message: e?.message ?? String(err) });
  }
}

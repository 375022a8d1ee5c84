// The drainer's decode worker, for real: a whole segment is read and parsed off the event loop
// and comes back in small pieces, equal to what the same parse gives in this thread; damaged and
// missing files are results, not crashes; a worker that dies fails only the decode in flight,
// and the next decode gets a new worker.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { CHUNK_RECORDS, type FromWorker, type ToWorker } from '../../src/drain/decode-messages.js';
import { SegmentDecoder } from '../../src/drain/decoder.js';
import { parseSegment } from '../../src/drain/parse-segment.js';
import { RecordKind, encodeRecord } from '../../src/spool/format.js';
import { dropSegment, requestFrame, testRequest } from '../helpers/segments.js';
import { sleep } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const NODE = 'writer-decode';
const tmp = tempDir('intake-decoder-');
after(() => tmp.cleanup());

/** A full-size segment: 20,000 request records (about 9 MiB), a damaged frame and an outcome in it. */
function bigSegment(): { path: string; bytes: Buffer } {
  const frames = Array.from({ length: 20_000 }, (_, i) => requestFrame(testRequest(i, NODE, { i, pad: 'x'.repeat(300) })));
  frames[7_000] = Buffer.from(frames[7_000]!).fill(0x55, 20, 40);
  frames.push(encodeRecord(RecordKind.callbackOutcome, JSON.stringify({ id: 'cb-1', status: 'delivered', attempts: 1, lastStatus: 200, lastError: null, at: 1 })));
  return dropSegment(tmp.path, NODE, frames);
}

function quietLog() {
  const lines: string[] = [];
  return { log: pino({ level: 'info' }, { write: (s: string) => void lines.push(s) }), lines };
}

describe('SegmentDecoder', () => {
  test('a full segment decodes off the event loop to what an in-thread parse gives', async (t) => {
    const seg = bigSegment();
    const decoder = new SegmentDecoder(quietLog());
    try {
      await decoder.decode(seg.path); // warm the worker up
      const t0 = performance.now();
      const here = parseSegment(readFileSync(seg.path));
      const inThreadMs = performance.now() - t0;

      const lag = monitorEventLoopDelay({ resolution: 5 });
      lag.enable();
      const there = await decoder.decode(seg.path);
      lag.disable();

      assert.equal(there.kind, 'ok');
      assert.equal(here.kind, 'ok');
      if (there.kind !== 'ok' || here.kind !== 'ok') return;
      assert.equal(there.requests.length, 19_999);
      assert.deepEqual(there, { kind: 'ok', requests: here.requests, outcomes: here.outcomes, cancels: here.cancels, damaged: here.damaged });
      assert.deepEqual(
        there.damaged.map((d) => d.reason),
        ['bad-frame'],
      );
      const maxLagMs = lag.max / 1e6;
      t.diagnostic(`in-thread parse ${inThreadMs.toFixed(1)} ms; event loop blocked at most ${maxLagMs.toFixed(1)} ms meanwhile`);
      // The whole parse blocks this thread for inThreadMs; through the worker, no turn comes near it.
      assert.ok(maxLagMs < Math.max(25, inThreadMs / 2), `event loop blocked up to ${maxLagMs.toFixed(1)} ms (in-thread parse: ${inThreadMs.toFixed(1)} ms)`);
    } finally {
      await decoder.close();
    }
  });

  test('the worker sends at most CHUNK_RECORDS records a message, each only after the last was taken', async () => {
    const seg = bigSegment();
    const worker = new Worker(new URL('../../src/drain/decode-worker.js', import.meta.url));
    const inbox: FromWorker[] = [];
    let arrived: (() => void) | null = null;
    worker.on('message', (m: FromWorker) => {
      inbox.push(m);
      arrived?.();
    });
    const nextMessage = async (): Promise<FromWorker> => {
      while (inbox.length === 0) await new Promise<void>((r) => (arrived = r));
      return inbox.shift()!;
    };
    const send = (m: ToWorker) => worker.postMessage(m);
    try {
      send({ type: 'decode', job: 1, path: seg.path });
      const sizes: number[] = [];
      for (;;) {
        const m = await nextMessage();
        assert.equal(m.job, 1);
        if (m.type !== 'chunk') {
          assert.equal(m.type === 'done' && m.end.kind, 'ok');
          break;
        }
        sizes.push(m.requests.length + m.outcomes.length);
        await sleep(sizes.length === 1 ? 300 : 0);
        assert.equal(inbox.length, 0, 'nothing more is sent until the chunk is taken');
        send({ type: 'more', job: 1 });
      }
      assert.ok(sizes.every((n) => n >= 1 && n <= CHUNK_RECORDS), `chunk sizes ${sizes.join(',')}`);
      assert.equal(
        sizes.reduce((a, b) => a + b, 0),
        20_000,
        'every intact record comes back once',
      );
    } finally {
      await worker.terminate();
    }
  });

  test('garbage and missing files are results; a worker that dies fails only its decode and is replaced', async () => {
    const { log, lines } = quietLog();
    // A heap this small cannot hold a full segment's records: the worker dies of it, the test does not.
    const decoder = new SegmentDecoder({ log, resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 } });
    try {
      const junk = join(tmp.path, 'junk.seg');
      writeFileSync(junk, 'not a segment at all');
      assert.deepEqual(await decoder.decode(junk), { kind: 'header', problem: { code: 'corrupt', message: 'not an intake segment (bad magic)' } });
      assert.deepEqual(await decoder.decode(join(tmp.path, 'missing.seg')), { kind: 'gone' });

      const big = bigSegment();
      await assert.rejects(decoder.decode(big.path), (err: { code?: string }) => err.code === 'INTAKE_INTERNAL');
      assert.ok(lines.some((l) => l.includes('segment decode worker died')), 'the death is logged');

      const small = dropSegment(tmp.path, NODE, [requestFrame(testRequest(1, NODE))]);
      const again = await decoder.decode(small.path);
      assert.equal(again.kind === 'ok' && again.requests.length, 1, 'a new worker decodes the next segment');
    } finally {
      await decoder.close();
    }
    await assert.rejects(decoder.decode(join(tmp.path, 'junk.seg')), /after close/);
  });
});

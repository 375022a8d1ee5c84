// Latency to visible: one request at a time to a daemon in mode both; after its 202, poll
// GET /v1/requests/:id until it answers 200. The time from the 202 to the first 200 is governed
// by --seal-after-ms (the segment's age seal) plus the drain of the sealed segment. Each request
// waits for the previous one to be visible, so each is the first record of a fresh segment
// (the quiet-node case, the slowest one).
import { join } from 'node:path';
import { percentile, REQUEST_BODY, removeDir, say, sleep, startTrackedDaemon, stopChild, tempDir } from './common.js';

export interface VisibleResult {
  sealAfterMs: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  minMs: number;
  pollMs: number;
}

export async function runVisible(sealAfterMs: number, samples: number, pollMs: number): Promise<VisibleResult> {
  const dir = tempDir('intake-bench-visible-');
  try {
    const d = await startTrackedDaemon({
      spool: join(dir, 'spool'),
      db: `sqlite:${join(dir, 'intake.db')}`,
      mode: 'both',
      nodeId: 'bench-visible',
      args: ['--seal-after-ms', String(sealAfterMs)],
    });
    try {
      say(`visible: ${samples} requests one at a time, --seal-after-ms ${sealAfterMs}`);
      const times: number[] = [];
      for (let i = 0; i < samples; i++) {
        const res = await fetch(`${d.url}/v1/requests`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: REQUEST_BODY,
          signal: AbortSignal.timeout(10_000),
        });
        const accepted = performance.now();
        const body = (await res.json()) as { id?: string };
        if (res.status !== 202 || !body.id) throw new Error(`POST answered ${res.status}: ${JSON.stringify(body)}`);
        const deadline = accepted + Math.max(30_000, sealAfterMs * 10);
        for (;;) {
          const g = await fetch(`${d.url}/v1/requests/${body.id}`, { signal: AbortSignal.timeout(10_000) });
          await g.arrayBuffer();
          if (g.status === 200) {
            times.push(performance.now() - accepted);
            break;
          }
          if (g.status !== 404) throw new Error(`GET answered ${g.status}`);
          if (performance.now() > deadline) throw new Error(`request ${body.id} not visible after ${Math.round(performance.now() - accepted)} ms`);
          await sleep(pollMs);
        }
      }
      const sorted = [...times].sort((a, b) => a - b);
      return {
        sealAfterMs,
        samples: sorted.length,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        minMs: sorted[0] ?? NaN,
        maxMs: sorted[sorted.length - 1] ?? NaN,
        pollMs,
      };
    } finally {
      await stopChild(d.proc);
    }
  } finally {
    removeDir(dir);
  }
}

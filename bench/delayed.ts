// Delayed requests, cancels and synchronous answers, in the shape of Trigger Hook's published
// figures (create a delayed task, delete it, consume with confirm): one node in mode `both` per
// engine, over HTTP keep-alive from the benchmark process.
//   create: N POST /v1/requests with delay_seconds 3600 (stored `scheduled`), C at a time;
//   delete: once all N are in the database, N DELETE /v1/requests/:id, C at a time;
//   synchronous answer: while a worker loop claims and completes at once, POSTs with
//   `Prefer: wait=5` (answered 200 with the result) against plain POSTs (202), S each,
//   8 at a time: the round trip's p50/p99 next to the same node's plain 202.
// Claim + confirm is the "Claim + complete round trips" and "processing alone" figures.
import http from 'node:http';
import { join } from 'node:path';
import type { BenchPg } from './pg.js';
import { percentile, removeDir, say, startTrackedDaemon, stopChild, tempDir } from './common.js';
import { daemonEnv, type Engine, type Receiver } from './callbacks.js';
import { scrape } from './prom.js';
import { requestJson, sampleResult } from './work-loop.js';

export interface DelayedOptions {
  requests: number;
  concurrency: number;
  syncSamples: number;
}

export interface DelayedResult {
  engine: Engine;
  requests: number;
  createPerS: number;
  deletePerS: number;
  deleteStatuses: Record<string, number>;
  sync: { p50Ms: number; p99Ms: number; answered200: number; samples: number };
  plain: { p50Ms: number; p99Ms: number; samples: number };
}

const call = requestJson;

/** Run `task(i)` for i < n, `concurrency` at a time; returns the seconds it took. */
async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await task(next++);
  }));
  return (performance.now() - t0) / 1000;
}

async function drained(url: string): Promise<number> {
  const text = await scrape(url);
  let n = 0;
  for (const m of text.matchAll(/^intake_drain_records_total\{[^}]*\} ([0-9.e+]+)$/gm)) n += Number(m[1]);
  return n;
}

export async function runDelayed(engine: Engine, o: DelayedOptions, receiver: Receiver, pgs: BenchPg | null): Promise<DelayedResult> {
  const dir = tempDir(`intake-bench-delayed-${engine}-`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const hook = `${receiver.url}/hooks/intake`;
  try {
    const db = engine === 'sqlite' ? `sqlite:${join(dir, 'intake.db')}` : await pgs!.freshDb();
    const d = await startTrackedDaemon({ spool: join(dir, 'spool'), db, mode: 'both', nodeId: `bench-delayed-${engine}`, args: ['--seal-after-ms', '100'], env: daemonEnv() });
    try {
      const body = (i: number) => ({ payload: { task: i }, callback_url: hook, delay_seconds: 3600 });
      const ids: string[] = new Array(o.requests);
      say(`delayed (${engine}): create ${o.requests} delayed requests, ${o.concurrency} at a time`);
      const createS = await pool(o.requests, o.concurrency, async (i) => {
        const r = await call(agent, d.url, 'POST', '/v1/requests', body(i));
        if (r.status !== 202) throw new Error(`create answered ${r.status}: ${JSON.stringify(r.json)}`);
        ids[i] = r.json.id as string;
      });
      const deadline = performance.now() + 60_000;
      while ((await drained(d.url)) < o.requests) {
        if (performance.now() > deadline) throw new Error('the delayed requests did not reach the database within 60 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      say(`delayed (${engine}): delete them, ${o.concurrency} at a time`);
      const deleteStatuses: Record<string, number> = {};
      const deleteS = await pool(o.requests, o.concurrency, async (i) => {
        const r = await call(agent, d.url, 'DELETE', `/v1/requests/${ids[i]}`);
        deleteStatuses[r.status] = (deleteStatuses[r.status] ?? 0) + 1;
      });

      // A worker that claims and completes at once, for the synchronous answers.
      let working = true;
      const worker = (async () => {
        while (working) {
          const c = await call(agent, d.url, 'POST', '/v1/work/claim', { limit: 50 });
          const items = (c.json?.items ?? []) as { id: string; lease_token: string }[];
          if (items.length === 0) {
            await new Promise((r) => setTimeout(r, 2));
            continue;
          }
          await call(agent, d.url, 'POST', '/v1/work/complete', { items: items.map((w, i) => ({ id: w.id, lease_token: w.lease_token, result: sampleResult(i) })) });
        }
      })();
      const timed = async (headers: Record<string, string>) => {
        const lat: number[] = [];
        let ok200 = 0;
        await pool(o.syncSamples, 8, async (i) => {
          const t = performance.now();
          const r = await call(agent, d.url, 'POST', '/v1/requests', { payload: { sync: i }, callback_url: hook }, headers);
          lat.push(performance.now() - t);
          if (r.status === 200) ok200++;
        });
        lat.sort((a, b) => a - b);
        return { p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99), samples: lat.length, answered200: ok200 };
      };
      say(`delayed (${engine}): ${o.syncSamples} synchronous round trips (Prefer: wait=5) and as many plain 202s`);
      const sync = await timed({ prefer: 'wait=5' });
      const plain = await timed({});
      working = false;
      await worker;
      return {
        engine,
        requests: o.requests,
        createPerS: o.requests / createS,
        deletePerS: o.requests / deleteS,
        deleteStatuses,
        sync,
        plain: { p50Ms: plain.p50Ms, p99Ms: plain.p99Ms, samples: plain.samples },
      };
    } finally {
      await stopChild(d.proc);
    }
  } finally {
    agent.destroy();
    removeDir(dir);
  }
}

export function renderDelayed(all: (DelayedResult | Error)[]): string[] {
  if (all.length === 0) return [];
  const out = ['## Delayed requests, cancels and synchronous answers', ''];
  out.push(
    "Trigger Hook's shape (create a delayed task, delete it, consume with confirm), on one node in mode `both` per engine, over HTTP keep-alive from the benchmark process. **create**: POST /v1/requests with `delay_seconds: 3600` (stored `scheduled`: claims never see it), 64 at a time; **delete**: once all are in the database, DELETE /v1/requests/:id, 64 at a time; claim + confirm is in \"Claim + complete round trips\" and \"processing alone\" above. **synchronous answer**: while a worker claims and completes at once, POST /v1/requests with `Prefer: wait=5` (a 200 with the result) against the same node's plain 202, 8 at a time. Trigger Hook's published figures (t2.micro with RDS: create 1,396/s, delete 1,920/s, confirm 49,905/s) come from other hardware: for orientation only.",
    '',
  );
  out.push('| Engine | requests | create delayed/s | delete/s | delete answers | sync round trip p50 / p99 (answered 200) | plain 202 p50 / p99 |', '|---|---:|---:|---:|---|---:|---:|');
  for (const r of all) {
    if (r instanceof Error) {
      out.push(`| failed: ${r.message.split('\n')[0]} | | | | | | |`);
      continue;
    }
    out.push(
      `| ${r.engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'} | ${r.requests.toLocaleString('en-US')} | ${Math.round(r.createPerS).toLocaleString('en-US')} | ${Math.round(r.deletePerS).toLocaleString('en-US')} | ${Object.entries(r.deleteStatuses).map(([k, v]) => `${k}: ${v}`).join(', ')} | ${r.sync.p50Ms.toFixed(1)} ms / ${r.sync.p99Ms.toFixed(1)} ms (${r.sync.answered200} of ${r.sync.samples}) | ${r.plain.p50Ms.toFixed(1)} ms / ${r.plain.p99Ms.toFixed(1)} ms |`,
    );
  }
  out.push('');
  return out;
}

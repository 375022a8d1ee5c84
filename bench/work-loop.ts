// Processing-API workers for the benchmark: N loops in the benchmark process over one HTTP
// keep-alive agent, each claiming (POST /v1/work/claim {limit}) and completing what it got,
// either one POST /v1/work/:id/complete per item or one POST /v1/work/complete for the whole
// claim. Work is counted when its complete answers inside the measured window, so a warm-up
// before the window and a run that goes on after it change nothing.
import http from 'node:http';
import { Samples, sleep } from './common.js';

/** What a processor sends back: a ~300-byte result, so a callback body is ~500 bytes. */
export function sampleResult(i = 0): Record<string, unknown> {
  return {
    decision: 'approved',
    reviewer: 'ops-bot-7',
    score: 0.93,
    reference: `rev_${(100000 + i).toString(36)}_c41e`,
    notes: 'Address verified against the carrier database; Saturday delivery confirmed with the customer by phone.',
    checks: ['address', 'payment', 'fraud-score', 'stock'],
  };
}

export function postJson(agent: http.Agent, base: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  return requestJson(agent, base, 'POST', path, body);
}

/** One HTTP call over `agent`; the answer parsed as JSON when it is JSON (else its text). */
export function requestJson(agent: http.Agent, base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${path}`,
      { method, agent, headers: { ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}), ...headers }, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = text;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

export interface WorkerOptions {
  /** The node's base URL. */
  url: string;
  workers: number;
  /** Claim limit. */
  limit: number;
  /** One POST /v1/work/complete per claim (else one POST /v1/work/:id/complete per item). */
  batchComplete: boolean;
  /** performance.now() bounds of the measured window; the loops stop at `end`. */
  start: number;
  end: number;
  /**
   * Sleep after an empty claim: `[first, longest]` ms, doubling while claims stay empty (a worker
   * polling a quiet queue in a tight loop would load the node with empty claims).
   */
  emptySleepMs: [number, number];
  /** End the window at the first empty claim inside it: the backlog ran out. */
  stopWhenEmpty?: boolean;
  /** Stop early (the loops finish their current round trip). */
  stop?: () => boolean;
}

export interface WorkerResult {
  workers: number;
  limit: number;
  batchComplete: boolean;
  /** Items whose complete answered "completed" inside the window. */
  items: number;
  /** Seconds of the window (shorter than asked when the backlog ran out or the loops were stopped). */
  seconds: number;
  ranDry: boolean;
  /** Claim + complete(s) of one claim, as the worker saw it. */
  roundTrips: Samples;
  claims: Samples;
  /** Each complete call (per item, or the whole batch). */
  completes: Samples;
  /** Claims answered with no items inside the window. */
  emptyClaims: number;
  errors: Record<string, number>;
}

interface Claimed {
  id: string;
  lease_token: string;
}

export async function runWorkers(o: WorkerOptions): Promise<WorkerResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.workers });
  const r: WorkerResult = {
    workers: o.workers,
    limit: o.limit,
    batchComplete: o.batchComplete,
    items: 0,
    seconds: 0,
    ranDry: false,
    roundTrips: new Samples(),
    claims: new Samples(),
    completes: new Samples(),
    emptyClaims: 0,
    errors: {},
  };
  let end = o.end;
  let stopped = false;
  const note = (what: string, n = 1) => (r.errors[what] = (r.errors[what] ?? 0) + n);
  const inWindow = (t: number) => t >= o.start && t <= end;
  let k = 0;

  /** Completes the claimed items; returns how many completed. */
  const complete = async (items: Claimed[]): Promise<number> => {
    if (o.batchComplete) {
      const t = performance.now();
      const res = await postJson(agent, o.url, '/v1/work/complete', { items: items.map((it) => ({ id: it.id, lease_token: it.lease_token, result: sampleResult(k++) })) });
      if (inWindow(performance.now())) r.completes.add(performance.now() - t);
      if (res.status !== 200) {
        note(`batch complete ${res.status}`);
        return 0;
      }
      let ok = 0;
      for (const a of (res.json as { items: { status?: string; error?: { code: string } }[] }).items) {
        if (a.status === 'completed') ok++;
        else note(`complete ${a.error?.code ?? 'unknown'}`);
      }
      return ok;
    }
    let ok = 0;
    for (const it of items) {
      const t = performance.now();
      const res = await postJson(agent, o.url, `/v1/work/${it.id}/complete`, { lease_token: it.lease_token, result: sampleResult(k++) });
      if (res.status !== 200) {
        note(`complete ${res.status}`);
        continue;
      }
      if (inWindow(performance.now())) r.completes.add(performance.now() - t);
      ok++;
    }
    return ok;
  };

  const worker = async () => {
    let empties = 0;
    while (!stopped && performance.now() < end && !o.stop?.()) {
      const t0 = performance.now();
      let items: Claimed[];
      try {
        const c = await postJson(agent, o.url, '/v1/work/claim', { limit: o.limit, lease_seconds: 60 });
        if (c.status !== 200) {
          note(`claim ${c.status}`);
          await sleep(10);
          continue;
        }
        items = (c.json as { items?: Claimed[] }).items ?? [];
      } catch (err) {
        note(`claim: ${(err as Error).message}`);
        await sleep(10);
        continue;
      }
      const t1 = performance.now();
      if (items.length === 0) {
        if (inWindow(t1)) r.emptyClaims++;
        if (o.stopWhenEmpty && t1 >= o.start && !stopped) {
          stopped = true;
          r.ranDry = true;
          end = Math.min(end, t1);
          break;
        }
        await sleep(Math.min(o.emptySleepMs[1], o.emptySleepMs[0] * 2 ** empties++));
        continue;
      }
      empties = 0;
      let ok: number;
      try {
        ok = await complete(items);
      } catch (err) {
        note(`complete: ${(err as Error).message}`);
        continue;
      }
      const t2 = performance.now();
      if (ok > 0 && inWindow(t2)) {
        r.items += ok;
        r.claims.add(t1 - t0);
        r.roundTrips.add(t2 - t0);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: o.workers }, worker));
  } finally {
    agent.destroy();
  }
  r.seconds = Math.max(0, (Math.min(end, performance.now()) - o.start) / 1000);
  return r;
}

// The traffic of each role through a load balancer, and where it went: clients that POST
// requests and read them back, workers that claim and complete, the counters HAProxy and the
// nodes keep per server, and a callback receiver. Every answer that is not the expected one is
// kept, with its body, for the test to show.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ROLE_BACKENDS, type Haproxy, type HaproxyRole } from '../helpers/haproxy.js';
import { get, post, sleep } from '../helpers/http.js';

/** Run fn over items, at most `limit` at once. */
export async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

const answer = (what: string, r: { status: number; body: unknown }) => `${what}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`;

/** POST each key once (no retry: every first answer must be a 202); returns key -> id and the other answers. */
export async function submit(lb: string, keys: string[], callbackUrl: string): Promise<{ acked: Map<string, string>; wrong: string[] }> {
  const acked = new Map<string, string>();
  const wrong: string[] = [];
  await eachLimit(keys, 16, async (key) => {
    try {
      const r = await post(`${lb}/v1/requests`, { payload: { key }, callback_url: callbackUrl }, { 'idempotency-key': key });
      if (r.status === 202 && typeof r.body?.id === 'string') acked.set(key, r.body.id as string);
      else wrong.push(answer(`POST ${key}`, r));
    } catch (err) {
      wrong.push(`POST ${key}: ${(err as Error).message}`);
    }
  });
  return { acked, wrong };
}

export interface WorkLog {
  /** id -> times it was handed out by a claim */
  claimed: Map<string, number>;
  /** id -> times a complete answered ok */
  completed: Map<string, number>;
  /** Work API calls that answered 200. */
  calls: number;
  wrong: string[];
}

/**
 * Four workers claim and complete until every id of `ids` is completed (or the time is up, or
 * too much went wrong). Two complete one by one, two with the batch form; the result is
 * {done: id}. Leases are long, so nothing is claimed twice unless something is wrong.
 */
export async function work(lb: string, ids: ReadonlySet<string>, timeoutMs: number): Promise<WorkLog> {
  const log: WorkLog = { claimed: new Map(), completed: new Map(), calls: 0, wrong: [] };
  const deadline = performance.now() + timeoutMs;
  const count = (m: Map<string, number>, id: string) => m.set(id, (m.get(id) ?? 0) + 1);
  const call = async (what: string, path: string, body: unknown) => {
    const r = await post(`${lb}${path}`, body).catch((err: Error) => ({ status: 0, body: err.message }));
    if (r.status === 200) log.calls++;
    else log.wrong.push(answer(what, r));
    return r.status === 200 ? r.body : null;
  };
  const worker = async (batch: boolean) => {
    while (log.completed.size < ids.size && performance.now() < deadline && log.wrong.length < 20) {
      const claim = await call('claim', '/v1/work/claim', { limit: 10, lease_seconds: 600 });
      const items = (claim?.items ?? []) as { id: string; lease_token: string }[];
      if (items.length === 0) {
        await sleep(100); // not drained into the database yet, or all handed out
        continue;
      }
      for (const it of items) {
        count(log.claimed, it.id);
        if (!ids.has(it.id)) log.wrong.push(`claimed ${it.id}, which this round did not send`);
      }
      if (batch) {
        const done = await call('batch complete', '/v1/work/complete', { items: items.map((it) => ({ id: it.id, lease_token: it.lease_token, result: { done: it.id } })) });
        for (const r of (done?.items ?? []) as { id: string; status?: string; error?: unknown }[]) {
          if (r.status === 'completed') count(log.completed, r.id);
          else log.wrong.push(`batch complete of ${r.id}: ${JSON.stringify(r)}`);
        }
      } else {
        for (const it of items) {
          if (await call(`complete ${it.id}`, `/v1/work/${it.id}/complete`, { lease_token: it.lease_token, result: { done: it.id } })) count(log.completed, it.id);
        }
      }
    }
  };
  await Promise.all([false, false, true, true].map(worker));
  if (log.completed.size < ids.size && log.wrong.length < 20) log.wrong.push(`${ids.size - log.completed.size} ids not completed within ${timeoutMs} ms`);
  return log;
}

/** GET every id through the load balancer: 200, completed once with {done: id}, received by one of `receivers`. */
export async function readBack(lb: string, acked: ReadonlyMap<string, string>, receivers: readonly string[]): Promise<{ ok: number; wrong: string[] }> {
  const wrong: string[] = [];
  let ok = 0;
  await eachLimit([...acked], 16, async ([key, id]) => {
    const r = await get(`${lb}/v1/requests/${id}`);
    const b = r.body as { status?: string; result?: { done?: string }; node_id?: string; attempts?: number; idempotency_key?: string } | null;
    if (r.status !== 200) wrong.push(answer(`GET ${id}`, r));
    else if (b?.status !== 'completed' || b.result?.done !== id || b.attempts !== 1 || b.idempotency_key !== key || !receivers.includes(b.node_id ?? '')) {
      wrong.push(`GET ${id} (key ${key}), received by one of ${receivers.join(', ')}: ${JSON.stringify(b).slice(0, 300)}`);
    } else ok++;
  });
  return { ok, wrong };
}

/** Per role backend and server: the 2xx and 5xx answers HAProxy passed on. */
export type LbAnswers = Record<HaproxyRole, Record<string, { ok: number; failed: number }>>;

export async function lbAnswers(h: Haproxy): Promise<LbAnswers> {
  const stats = await h.stats();
  const out: LbAnswers = { ingest: {}, work: {} };
  for (const role of ['ingest', 'work'] as const) {
    for (const s of stats) if (s.proxy === ROLE_BACKENDS[role] && s.name !== 'BACKEND') out[role][s.name] = { ok: s.hrsp2xx, failed: s.hrsp5xx };
  }
  return out;
}

export function lbDelta(after: LbAnswers, before: LbAnswers): LbAnswers {
  const out: LbAnswers = { ingest: {}, work: {} };
  for (const role of ['ingest', 'work'] as const) {
    for (const [name, a] of Object.entries(after[role])) {
      const b = before[role][name] ?? { ok: 0, failed: 0 };
      out[role][name] = { ok: a.ok - b.ok, failed: a.failed - b.failed };
    }
  }
  return out;
}

/** What a node itself counted: requests it accepted, items it handed out and completed. */
export interface NodeCounts {
  accepted: number;
  claimed: number;
  completed: number;
}

export async function nodeCounts(port: number): Promise<NodeCounts> {
  const r = await get(`http://127.0.0.1:${port}/metrics`);
  if (r.status !== 200) throw new Error(`GET /metrics of the node on ${port}: ${r.status}`);
  const text = String(r.body);
  // Labels in either order; a series never touched is not printed (0).
  const value = (name: string, labels: Record<string, string>) => {
    const has = Object.entries(labels).map(([k, v]) => `(?=[^}]*${k}="${v}")`).join('');
    return Number(new RegExp(`^${name}\\{${has}[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  };
  return {
    accepted: value('intake_requests_total', { outcome: 'accepted' }),
    claimed: value('intake_work_items_total', { op: 'claim', outcome: 'ok' }),
    completed: value('intake_work_items_total', { op: 'complete', outcome: 'ok' }),
  };
}

/** A callback receiver on 127.0.0.1: webhook-id -> deliveries; always 200. */
export async function startReceiver(): Promise<{ url: string; deliveries: Map<string, number>; close(): Promise<void> }> {
  const deliveries = new Map<string, number>();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const id = String(req.headers['webhook-id'] ?? '');
      deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    deliveries,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// The processing API: processors (people or programs) claim pending requests with a lease,
// complete them with a result (which records the callback in the same transaction), release
// them, or extend the lease. A lease that runs out returns the request to the queue.
// Completes and releases come one by one or as a batch; either way the work API group-commits
// them (src/work/api.ts).
import type { FastifyInstance } from 'fastify';
import { Errors, IntakeError } from '../errors.js';
import type { RouteContext, WorkRole } from '../http/context.js';
import { isRequestId } from '../http/ids.js';
import { refuseUnstorable } from '../http/unstorable.js';
import type { ClaimedWork, CompleteItem, LeaseItem, LeaseOutcome } from '../store/store.js';
import { claimSchema, completeBatchSchema, completeSchema, extendSchema, releaseBatchSchema, releaseSchema } from './schemas.js';

const MAX_CLAIM = 1000;
/** Items of one batch complete or release at most. */
const MAX_BATCH_ITEMS = 1000;
const MAX_LEASE_S = 3600;
/** The Standard Webhooks event type of a completed request. */
export const COMPLETED_EVENT = 'request.completed';
export const webhookIdFor = (requestId: string) => `msg_${requestId}`;

function object(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw Errors.badRequest('the body must be a JSON object');
  return body as Record<string, unknown>;
}

function intIn(v: unknown, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw Errors.badRequest(`${name} must be an integer from ${min} to ${max}`);
  return v;
}

function token(b: Record<string, unknown>): string {
  if (typeof b.lease_token !== 'string' || b.lease_token.length === 0 || b.lease_token.length > 64) throw Errors.badRequest('lease_token is required');
  return b.lease_token;
}

function problem(outcome: LeaseOutcome, id: string): IntakeError | null {
  if (outcome === 'not-found') return Errors.notFound(`request ${id} does not exist`);
  if (outcome === 'conflict') return Errors.leaseConflict(`request ${id} is not claimed under this lease (it expired, was released, claimed by another worker, or completed: under another lease, or under this one with another result)`);
  return null;
}

function check(outcome: LeaseOutcome, id: string): void {
  const e = problem(outcome, id);
  if (e) throw e;
}

/** A completion as the store takes it. The callback body is fixed now, so every attempt sends the same bytes under the same webhook-id. */
function completion(tenant: string, id: string, leaseToken: string, result: unknown): CompleteItem {
  const text = JSON.stringify(result);
  refuseUnstorable(text, `the result of ${id}`);
  const body = JSON.stringify({ type: COMPLETED_EVENT, timestamp: new Date().toISOString(), data: { id, status: 'completed', result } });
  return { id, tenant, leaseToken, result: text, callback: { id: webhookIdFor(id), body } };
}

/** The items of a batch: a malformed batch is refused whole, before anything is written. */
function batchItems(body: unknown, withResult: boolean): { id: string; leaseToken: string; result?: unknown }[] {
  const b = object(body);
  if (!Array.isArray(b.items) || b.items.length === 0) throw Errors.badRequest('items must be a non-empty array');
  if (b.items.length > MAX_BATCH_ITEMS) throw Errors.badRequest(`at most ${MAX_BATCH_ITEMS} items per batch`);
  const seen = new Set<string>();
  return b.items.map((raw: unknown, i: number) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw Errors.badRequest(`items[${i}] must be an object`);
    const it = raw as Record<string, unknown>;
    if (typeof it.id !== 'string' || it.id.length === 0) throw Errors.badRequest(`items[${i}].id is required`);
    if (seen.has(it.id)) throw Errors.badRequest(`items[${i}].id ${it.id} appears twice in the batch`);
    seen.add(it.id);
    let leaseToken: string;
    try {
      leaseToken = token(it);
    } catch {
      throw Errors.badRequest(`items[${i}].lease_token is required`);
    }
    if (withResult && it.result === undefined) throw Errors.badRequest(`items[${i}].result is required`);
    return { id: it.id, leaseToken, result: it.result };
  });
}

/** Per-item answers of a batch, in order; ids that cannot be request ids are not found without asking the store. */
async function perItem<I extends LeaseItem>(
  items: I[],
  write: (valid: I[]) => Promise<LeaseOutcome[]>,
  okStatus: string,
): Promise<{ items: ({ id: string; status: string } | { id: string; error: { code: string; message: string } })[] }> {
  const valid = items.filter((it) => isRequestId(it.id));
  const outcomes = new Map<string, LeaseOutcome>();
  const written = valid.length > 0 ? await write(valid) : [];
  valid.forEach((it, i) => outcomes.set(it.id, written[i]!));
  return {
    items: items.map((it) => {
      const e = problem(outcomes.get(it.id) ?? 'not-found', it.id);
      return e ? { id: it.id, error: { code: e.code, message: e.message } } : { id: it.id, status: okStatus };
    }),
  };
}

function present(w: ClaimedWork) {
  return {
    id: w.id,
    lease_token: w.leaseToken,
    lease_expires_at: new Date(w.leaseExpiresAt).toISOString(),
    attempts: w.attempts,
    lane: w.lane,
    received_at: new Date(w.receivedAt).toISOString(),
    payload: JSON.parse(w.payload) as unknown,
    metadata: w.metadata === null ? null : (JSON.parse(w.metadata) as unknown),
  };
}

/** An id that cannot be a request id is a 404 on both engines (PostgreSQL would refuse to compare it). */
function requestId(id: string): string {
  if (!isRequestId(id)) throw Errors.notFound(`request ${id} does not exist`);
  return id;
}

export function registerWorkRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const work = (): WorkRole => {
    const w = ctx.work();
    if (!w) throw Errors.notSaveMode(`node ${ctx.nodeId} does not serve the processing API in its current mode; use a save-mode node`);
    return w;
  };

  // Every route here needs the process scope; the tenant comes from the caller's key.
  const config = { scope: 'process' } as const;

  app.post('/v1/work/claim', { config, schema: claimSchema }, async (req) => {
    const w = work();
    const b = object(req.body);
    const limit = intIn(b.limit, 'limit', 1, MAX_CLAIM, 1);
    const leaseMs = intIn(b.lease_seconds, 'lease_seconds', 1, MAX_LEASE_S, 60) * 1000;
    if (b.lane !== undefined && b.lane !== null && typeof b.lane !== 'string') throw Errors.badRequest('lane must be a string');
    const { tenant, lanes: allowed } = req.principal;
    if (b.lane !== undefined && allowed !== null && (b.lane === null || !allowed.includes(b.lane as string))) {
      throw Errors.forbidden(`this API key may claim only from the lanes ${allowed.join(', ')}`);
    }
    const items = await w.claim({ tenant, limit, leaseMs, allowed, ...(b.lane === undefined ? {} : { lane: b.lane as string | null }) });
    return { items: items.map(present) };
  });

  app.post<{ Params: { id: string } }>('/v1/work/:id/complete', { config, schema: completeSchema }, async (req) => {
    const w = work();
    const b = object(req.body);
    const t = token(b);
    if (b.result === undefined) throw Errors.badRequest('result is required');
    const id = requestId(req.params.id);
    const [outcome] = await w.complete([completion(req.principal.tenant, id, t, b.result)]);
    check(outcome!, id);
    ctx.noteCompleted();
    return { id, status: 'completed' };
  });

  app.post('/v1/work/complete', { config, schema: completeBatchSchema }, async (req) => {
    const w = work();
    const items = batchItems(req.body, true).map((it) => completion(req.principal.tenant, it.id, it.leaseToken, it.result));
    const answer = await perItem(items, (valid) => w.complete(valid), 'completed');
    ctx.noteCompleted();
    return answer;
  });

  app.post<{ Params: { id: string } }>('/v1/work/:id/release', { config, schema: releaseSchema }, async (req) => {
    const w = work();
    const b = object(req.body);
    const id = requestId(req.params.id);
    const [outcome] = await w.release([{ id, tenant: req.principal.tenant, leaseToken: token(b) }]);
    check(outcome!, id);
    return { id, status: 'pending' };
  });

  app.post('/v1/work/release', { config, schema: releaseBatchSchema }, async (req) => {
    const w = work();
    const items = batchItems(req.body, false).map((it) => ({ id: it.id, tenant: req.principal.tenant, leaseToken: it.leaseToken }));
    return perItem(items, (valid) => w.release(valid), 'pending');
  });

  app.post<{ Params: { id: string } }>('/v1/work/:id/extend', { config, schema: extendSchema }, async (req) => {
    const w = work();
    const b = object(req.body);
    const leaseMs = intIn(b.lease_seconds, 'lease_seconds', 1, MAX_LEASE_S, 60) * 1000;
    const id = requestId(req.params.id);
    check(await w.extend({ id, tenant: req.principal.tenant, leaseToken: token(b) }, leaseMs), id);
    return { id, status: 'claimed', lease_expires_at: new Date(Date.now() + leaseMs).toISOString() };
  });
}

// The processing API: processors (people or programs) claim pending requests with a lease,
// complete them with a result (which records the callback in the same transaction), release
// them, or extend the lease. A lease that runs out returns the request to the queue.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';
import type { IntakeContext } from '../intake/server.js';
import type { ClaimedWork, LeaseOutcome, Store } from '../store/store.js';
import { LaneClaimer } from './lanes.js';
import { isRequestId } from '../intake/ids.js';

const MAX_CLAIM = 100;
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

/** An id that cannot be a request id is a 404 on both engines (PostgreSQL would refuse to compare it). */
function requestId(id: string): string {
  if (!isRequestId(id)) throw Errors.notFound(`request ${id} does not exist`);
  return id;
}

function check(outcome: LeaseOutcome, id: string): void {
  if (outcome === 'not-found') throw Errors.notFound(`request ${id} does not exist`);
  if (outcome === 'conflict') throw Errors.leaseConflict(`request ${id} is not claimed under this lease (it expired, was released, completed, or claimed by another worker)`);
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

export function registerWorkRoutes(app: FastifyInstance, ctx: IntakeContext): void {
  const claimers = new WeakMap<Store, LaneClaimer>();
  const store = (): Store => {
    const s = ctx.store();
    if (!s) throw Errors.notSaveMode(`node ${ctx.nodeId} does not serve the processing API in its current mode; use a save-mode node`);
    return s;
  };

  app.post('/v1/work/claim', async (req) => {
    const s = store();
    const b = object(req.body);
    const limit = intIn(b.limit, 'limit', 1, MAX_CLAIM, 1);
    const leaseMs = intIn(b.lease_seconds, 'lease_seconds', 1, MAX_LEASE_S, 60) * 1000;
    if (b.lane !== undefined && b.lane !== null && typeof b.lane !== 'string') throw Errors.badRequest('lane must be a string');
    let claimer = claimers.get(s);
    if (!claimer) claimers.set(s, (claimer = new LaneClaimer(s)));
    const items = await claimer.claim({ limit, leaseMs, leaseToken: randomUUID(), ...(b.lane === undefined ? {} : { lane: b.lane as string | null }) });
    return { items: items.map(present) };
  });

  app.post<{ Params: { id: string } }>('/v1/work/:id/complete', async (req) => {
    const s = store();
    const b = object(req.body);
    const t = token(b);
    if (b.result === undefined) throw Errors.badRequest('result is required');
    const id = requestId(req.params.id);
    const result = JSON.stringify(b.result);
    // The callback body is fixed now, so every attempt sends the same bytes under the same webhook-id.
    const body = JSON.stringify({ type: COMPLETED_EVENT, timestamp: new Date().toISOString(), data: { id, status: 'completed', result: b.result } });
    check(await s.completeWork(id, t, result, { id: webhookIdFor(id), body }), id);
    ctx.noteCompleted();
    return { id, status: 'completed' };
  });

  app.post<{ Params: { id: string } }>('/v1/work/:id/release', async (req) => {
    const b = object(req.body);
    check(await store().releaseWork(requestId(req.params.id), token(b)), req.params.id);
    return { id: req.params.id, status: 'pending' };
  });

  app.post<{ Params: { id: string } }>('/v1/work/:id/extend', async (req) => {
    const b = object(req.body);
    const leaseMs = intIn(b.lease_seconds, 'lease_seconds', 1, MAX_LEASE_S, 60) * 1000;
    check(await store().extendWork(requestId(req.params.id), token(b), leaseMs), req.params.id);
    return { id: req.params.id, status: 'claimed', lease_expires_at: new Date(Date.now() + leaseMs).toISOString() };
  });
}

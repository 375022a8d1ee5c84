// POST /v1/requests and GET /v1/requests/:id.
//
// POST: validate, give an id, frame a record, append it to the spool and answer 202 only once
// the spool writer says the batch holding it is fdatasync'ed. Nothing is written for a refused request.
// With `Prefer: wait=N` (and GET with `?wait=N`) the answer may wait, after the fsync, for the
// request to be completed (wait.ts, waiters.ts; docs/callbacks.md, "Synchronous answers").
import type { FastifyInstance } from 'fastify';
import { Errors, IntakeError } from '../errors.js';
import { encodeRecord, RecordKind } from '../spool/format.js';
import { encodeRequestRecord } from '../spool/records.js';
import type { CallbackState, StoredRequest } from '../store/store.js';
import type { RouteContext } from '../http/context.js';
import { isRequestId } from '../http/ids.js';
import { DirectInserts } from './direct-insert.js';
import { RecentKeys } from './idempotency.js';
import { newRequestId } from './ids.js';
import { validateIdempotencyKey, validateNewRequest, withDelay } from './validate.js';
import { preferredWaitS, queryWaitS, waitForCompletion } from './wait.js';
import { readSchema, submitSchema } from './schemas.js';

export function registerRequestRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const recent = new RecentKeys();
  const direct = new DirectInserts(() => ctx.store(), ctx.log.child({ part: 'wait' }));
  // A client's own requests: the submit scope, within the key's tenant.
  const config = { scope: 'submit' } as const;

  app.post('/v1/requests', { config, schema: submitSchema }, async (req, reply) => {
    try {
      const spool = ctx.spool();
      if (!spool) throw Errors.notAccepting(`node ${ctx.nodeId} does not accept requests in its current mode`);
      const idempotencyKey = validateIdempotencyKey(req.headers['idempotency-key']);
      const body = validateNewRequest(req.body, (h) => ctx.refuseAddress(h));
      const tenant = req.principal.tenant;
      const id = newRequestId(tenant, idempotencyKey, ctx.idSecret);
      const fingerprint = idempotencyKey === null ? null : RecentKeys.fingerprint(body);
      if (fingerprint !== null) {
        const before = recent.get(id);
        if (before !== undefined && before !== fingerprint) {
          throw Errors.idempotencyConflict(`Idempotency-Key ${JSON.stringify(idempotencyKey)} was used for a different request; use a new key for a new request`);
        }
        recent.remember(id, fingerprint);
      }
      const fields = withDelay({ id, tenant, idempotencyKey, receivedAt: Date.now(), node: ctx.nodeId, ...body });
      const record = encodeRecord(RecordKind.request, encodeRequestRecord(fields));
      try {
        await spool.append(record);
      } catch (err) {
        if (fingerprint !== null) recent.forget(id, fingerprint); // nothing was accepted under it
        throw err;
      }
      ctx.metrics.requests.inc({ outcome: 'accepted' });
      ctx.noteAccepted();
      const statusUrl = `/v1/requests/${id}`;
      // Prefer: wait=N: only a node that reads the database can see the completion (a receive
      // node never touches it), so elsewhere the preference is not applied and the 202 comes now.
      const waitS = ctx.store() ? preferredWaitS(req.headers.prefer, ctx.maxWaitS) : 0;
      if (waitS > 0) {
        await direct.insert(fields); // claimable now, not after the segment is sealed and drained
        // The request is accepted: whatever goes wrong while waiting, the answer is the 202 (an
        // error would make a client without an Idempotency-Key send it again, under a new id).
        const { row, ended } = await waitForCompletion(ctx, { id, tenant, ms: waitS * 1000, absent: 'wait' }).catch((err: unknown) => {
          req.log.warn({ err, id }, 'waiting for a completion failed; answering 202');
          return { row: null, ended: 'timeout' as const };
        });
        if (ended !== 'stopping' && row?.status === 'completed') {
          return reply
            .code(200)
            .header('preference-applied', `wait=${waitS}`)
            .header('location', statusUrl)
            .send({ id, status: 'completed', result: row.result === null ? null : (JSON.parse(row.result) as unknown) });
        }
      }
      return reply.code(202).header('location', statusUrl).send({ id, status_url: statusUrl });
    } catch (err) {
      ctx.metrics.requests.inc({ outcome: err instanceof IntakeError ? err.code : 'INTAKE_INTERNAL' });
      throw err;
    }
  });

  app.get<{ Params: { id: string }; Querystring: { wait?: string } }>('/v1/requests/:id', { config, schema: readSchema }, async (req) => {
    const store = ctx.store();
    if (!store) throw Errors.notSaveMode(`node ${ctx.nodeId} does not read the database in its current mode; ask a save-mode node`);
    const { id } = req.params;
    const waitS = queryWaitS(req.query.wait, ctx.maxWaitS);
    if (waitS > 0 && isRequestId(id)) {
      // Long poll: the current state as soon as it is completed, else after waitS. An id that is
      // not stored (yet), or is another tenant's, answers 404 at once, exactly as without wait.
      const { row, ended } = await waitForCompletion(ctx, { id, tenant: req.principal.tenant, ms: waitS * 1000, absent: 'answer' });
      if (!row || ended === 'absent') throw Errors.notFound(`request ${id} is not in the database (yet)`);
      return present(row, await store.getCallback(id));
    }
    const row = isRequestId(id) ? await store.getRequest(id) : null;
    // Not in the database yet may also mean "accepted, still in the spool": a sealed segment
    // reaches the database within about a second. Another tenant's request is not found either.
    if (!row || row.tenant !== req.principal.tenant) throw Errors.notFound(`request ${id} is not in the database (yet)`);
    return present(row, await store.getCallback(id));
  });
}

function present(r: StoredRequest, cb: CallbackState | null) {
  return {
    id: r.id,
    status: r.status,
    received_at: new Date(r.receivedAt).toISOString(),
    stored_at: new Date(r.storedAt).toISOString(),
    node_id: r.node,
    callback_url: r.callbackUrl,
    lane: r.lane,
    not_before: r.notBefore === null ? null : new Date(r.notBefore).toISOString(),
    idempotency_key: r.idempotencyKey,
    payload: JSON.parse(r.payload) as unknown,
    metadata: r.metadata === null ? null : (JSON.parse(r.metadata) as unknown),
    attempts: r.attempts,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    completed_at: r.completedAt === null ? null : new Date(r.completedAt).toISOString(),
    callback: cb && {
      webhook_id: cb.id,
      status: cb.status,
      attempts: cb.attempts,
      last_status: cb.lastStatus,
      last_error: cb.lastError,
      updated_at: new Date(cb.updatedAt).toISOString(),
    },
  };
}

// DELETE /v1/requests/:id: cancel a request until a processor claims it.
//
// A save-mode node asks its database: 200 {status: 'cancelled'} (again 200 for a request
// cancelled before), 409 INTAKE_NOT_CANCELLABLE once claimed or completed, 404 for another
// tenant's request. A request may also be accepted and still in the spool, so an id the
// database does not know, that could still be there, is cancelled through the spool like a
// request is accepted: a cancel record is appended, and 202 {status: 'cancelling'} is sent only
// after its batch is fdatasync'ed. The drainer applies it; if it reaches the database before its
// request, it waits there as a tombstone that the request's insert honours. A receive-mode node
// cannot look at the database at all and records every cancel of a well-formed id (one of
// another tenant, or of no request, then changes nothing). A save-only node, which has no
// spool writer, leaves the tombstone in the database itself: as durable, and sooner.
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';
import type { RouteContext } from '../http/context.js';
import { isRequestId } from '../http/ids.js';
import { encodeRecord, RecordKind } from '../spool/format.js';
import { listAllSegments } from '../spool/layout.js';
import type { CancelRecord } from '../spool/records.js';
import { cancelSchema } from './schemas.js';

/** Allowance for a request id's clock against its segment's (the same node's clock: only ordering within a node matters). */
const CLOCK_MARGIN_MS = 60_000;

/** The ms timestamp of a UUIDv7, or null for another version (ids derived from an Idempotency-Key are UUIDv8). */
export function uuidv7Time(id: string): number | null {
  if (id[14] !== '7') return null;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/**
 * Could a request with this id still be in the spool, not yet in the database? A request is
 * appended to a segment created no later than its id; once every segment that old is drained
 * (gone from the spool), a request that is not in the database never was accepted.
 */
export async function couldBeSpooled(root: string, id: string): Promise<boolean> {
  const t = uuidv7Time(id);
  if (t === null) return true;
  for (const s of await listAllSegments(root)) {
    const created = uuidv7Time(s.segment);
    if (created === null || created <= t + CLOCK_MARGIN_MS) return true;
  }
  return false;
}

export function registerCancelRoute(app: FastifyInstance, ctx: RouteContext, spoolRoot: string): void {
  const config = { scope: 'submit' } as const;

  app.delete<{ Params: { id: string } }>('/v1/requests/:id', { config, schema: cancelSchema }, async (req, reply) => {
    const { id } = req.params;
    const tenant = req.principal.tenant;
    if (!isRequestId(id)) throw Errors.notFound(`request ${id} does not exist`);
    const store = ctx.store();
    if (store) {
      const outcome = await store.cancelRequest(id, tenant);
      if (outcome === 'cancelled') return { id, status: 'cancelled' };
      if (outcome === 'conflict') throw Errors.notCancellable(`request ${id} is claimed or completed already; it can no longer be cancelled`);
      // Stored, but another tenant's; or not stored and not in the spool either.
      if ((await store.getRequest(id)) !== null || !(await couldBeSpooled(spoolRoot, id))) throw Errors.notFound(`request ${id} does not exist`);
    }
    const cancel: CancelRecord = { id, tenant, at: Date.now(), node: ctx.nodeId };
    const spool = ctx.spool();
    if (spool) {
      await spool.append(encodeRecord(RecordKind.cancel, JSON.stringify(cancel)));
    } else if (store) {
      // The request may have been drained since the look above: then it is cancelled now.
      if ((await store.applyCancels([cancel])) > 0) return { id, status: 'cancelled' };
      const again = await store.cancelRequest(id, tenant);
      if (again === 'cancelled') return { id, status: 'cancelled' };
      if (again === 'conflict') throw Errors.notCancellable(`request ${id} is claimed or completed already; it can no longer be cancelled`);
    } else {
      throw Errors.notAccepting(`node ${ctx.nodeId} can neither read the database nor write the spool in its current mode`);
    }
    return reply.code(202).send({ id, status: 'cancelling' });
  });
}

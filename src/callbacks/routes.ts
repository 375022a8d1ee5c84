// The failed-callback spool over HTTP, for operators (admin scope) and the dashboard: what waits
// for a retry, what is dead, and replaying a dead callback. The same code as `intake callbacks`
// (replay.ts); the spool needs no database, so any node in any mode answers.
import { deadListSchema, replaySchema, waitingListSchema } from './schemas.js';
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';
import { deadEntry, listed, replay, spooledEntries, type ListedCallback } from './replay.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

/** The HTTP API's spelling (snake_case, as every other answer). */
function wire(c: ListedCallback) {
  return {
    id: c.id,
    request_id: c.requestId,
    tenant: c.tenant,
    url: c.url,
    attempts: c.attempts,
    due_at: c.dueAt,
    first_failed_at: c.firstFailedAt,
    last_status: c.lastStatus,
    last_error: c.lastError,
  };
}

function limitOf(v: string | undefined): number {
  if (v === undefined) return DEFAULT_LIMIT;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > MAX_LIMIT) throw Errors.badRequest(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  return n;
}

export function registerCallbackRoutes(app: FastifyInstance, o: { spool: string; nodeId: string }): void {
  const config = { scope: 'admin' } as const;

  // GET /v1/callbacks/dead and /v1/callbacks/waiting: {total, callbacks: [the first `limit`]}.
  for (const [path, which, schema] of [
    ['/v1/callbacks/dead', 'dead', deadListSchema],
    ['/v1/callbacks/waiting', 'retry', waitingListSchema],
  ] as const) {
    app.get<{ Querystring: { limit?: string } }>(path, { config, schema }, async (req) => {
      const { total, entries } = await spooledEntries(o.spool, which, limitOf(req.query.limit));
      return { total, callbacks: entries.map((e) => wire(listed(e, which))) };
    });
  }

  // POST /v1/callbacks/:id/replay: a dead callback is retried now, by every node's retrier.
  app.post<{ Params: { id: string } }>('/v1/callbacks/:id/replay', { config, schema: replaySchema }, async (req, reply) => {
    const { id } = req.params;
    const dead = await deadEntry(o.spool, id);
    if (!dead || !(await replay(o.spool, dead, o.nodeId, { wait: false }))) throw Errors.notFound(`no dead callback ${id}`);
    req.log.info({ webhookId: id, key: req.principal.keyId }, 'dead callback replayed over HTTP');
    return reply.code(202).send({ id, status: 'waiting' });
  });
}

// Liveness, readiness (the load balancer's check), the cluster view and Prometheus metrics.
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';
import type { RouteContext } from '../http/context.js';
import type { Store } from '../store/store.js';
import { clusterSchema, healthzSchema, metricsSchema, readyzSchema } from './schemas.js';

/** A database that does not answer within this is reported as such, not waited for. */
const SCHEMA_TIMEOUT_MS = 2000;

async function schemaOf(store: Store | null): Promise<{ current: number; latest: number } | { error: string } | null> {
  if (!store) return null;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${SCHEMA_TIMEOUT_MS} ms`)), SCHEMA_TIMEOUT_MS);
  });
  try {
    const s = await Promise.race([store.schema(), late]);
    return { current: s.current, latest: s.latest };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

export function registerHealthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  // The load balancer's checks need no key; metrics need the admin scope once keys exist.
  const open = { scope: 'public' } as const;

  app.get('/healthz', { config: open, schema: healthzSchema }, async () => ({ status: 'ok', node: ctx.nodeId }));

  // ?role=ingest (the default): this node takes POST /v1/requests; ?role=work: it serves the
  // processing API and reads requests (save mode). One backend per role in the load balancer.
  app.get<{ Querystring: { role?: string } }>('/readyz', { config: open, schema: readyzSchema }, async (req, reply) => {
    const role = req.query.role ?? 'ingest';
    if (role !== 'ingest' && role !== 'work') throw Errors.badRequest('role must be ingest or work');
    const r = ctx.readiness(role);
    if (!r.ready) return reply.code(503).send({ status: 'unavailable', node: ctx.nodeId, role, reason: r.reason });
    return { status: 'ready', node: ctx.nodeId, role };
  });

  // The cluster as this node sees it: nodes, modes, leader, backlog, running totals (the admin
  // scope), and the database's schema as this node's store reads it (null in receive mode).
  app.get('/v1/cluster', { config: { scope: 'admin' }, schema: clusterSchema }, async () => ({ ...ctx.cluster(), schema: await schemaOf(ctx.store()) }));

  app.get('/metrics', { config: { scope: 'admin' }, schema: metricsSchema }, async (_req, reply) => {
    void reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}

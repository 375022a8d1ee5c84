// Liveness, readiness (the load balancer's check), the cluster view and Prometheus metrics.
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';
import type { RouteContext } from '../http/context.js';
import { clusterSchema, healthzSchema, metricsSchema, readyzSchema } from './schemas.js';

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

  // The cluster as this node sees it: nodes, modes, leader, backlog (the admin scope).
  app.get('/v1/cluster', { config: { scope: 'admin' }, schema: clusterSchema }, async () => ctx.cluster());

  app.get('/metrics', { config: { scope: 'admin' }, schema: metricsSchema }, async (_req, reply) => {
    void reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}

// Liveness, readiness (the load balancer's check) and Prometheus metrics.
import type { FastifyInstance } from 'fastify';
import type { RouteContext } from '../http/context.js';

export function registerHealthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/healthz', async () => ({ status: 'ok', node: ctx.nodeId }));

  app.get('/readyz', async (_req, reply) => {
    const r = ctx.readiness();
    if (!r.ready) return reply.code(503).send({ status: 'unavailable', node: ctx.nodeId, reason: r.reason });
    return { status: 'ready', node: ctx.nodeId };
  });

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}

// The node's HTTP server: every route group registered in this one place, one error shape,
// explicit timeouts. Route groups (intake/, work/) know only src/http/, never each other.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { Errors, IntakeError, errorBody } from '../errors.js';
import { registerAuth, type Authenticator } from '../http/auth.js';
import type { RouteContext } from '../http/context.js';
import { clientErrorHandler, frameworkErrors } from '../http/client-errors.js';
import { applyLimits, nodeServerOptions, type HttpLimits } from '../http/limits.js';
import { registerHealthRoutes } from '../intake/health.js';
import { registerRequestRoutes } from '../intake/requests.js';
import { registerCancelRoute } from '../intake/cancel.js';
import { registerWorkRoutes } from '../work/routes.js';
import { registerCallbackRoutes } from '../callbacks/routes.js';
import { registerDashboard } from '../intake/dashboard.js';
import { registerOpenApi } from '../http/openapi.js';
import { packageVersion } from '../package.js';

export interface ServerOptions extends HttpLimits {
  bodyLimitBytes: number;
  keepAliveTimeoutMs: number;
  /** The spool root (a cancel asks whether a request could still be in it). */
  spool: string;
  /** The longest synchronous wait (Prefer: wait, ?wait=N): a waiting client's socket is idle that long. */
  maxWaitS?: number;
}

const FASTIFY_TO_INTAKE: Record<string, (msg: string) => IntakeError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: (m) => Errors.bodyTooLarge(m),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => Errors.unsupportedMediaType('the body must be application/json'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => Errors.badJson('the body is empty'),
  FST_ERR_CTP_INVALID_JSON_BODY: (m) => Errors.badJson(m),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: (m) => Errors.badRequest(m),
};

function toIntakeError(err: FastifyError): IntakeError {
  if (err instanceof IntakeError) return err;
  const mapped = err.code ? FASTIFY_TO_INTAKE[err.code] : undefined;
  if (mapped) return mapped(err.message);
  if (err instanceof SyntaxError) return Errors.badJson(`the body is not valid JSON: ${err.message}`);
  if (err.statusCode === 408) return Errors.requestTimeout('the request took too long to arrive');
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return Errors.badRequest(err.message);
  return Errors.internal('internal error', { cause: err });
}

export async function buildServer(ctx: RouteContext, auth: Authenticator, opts: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: ctx.log as FastifyBaseLogger,
    // nothing logged per request on the hot path; errors are logged below
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes,
    // Abuse limits and the answers of the HTTP layer (src/http/limits.ts, client-errors.ts).
    http: nodeServerOptions(opts),
    clientErrorHandler: clientErrorHandler({ limits: opts, log: ctx.log, metrics: ctx.metrics }),
    frameworkErrors,
    requestTimeout: opts.requestTimeoutMs,
    keepAliveTimeout: opts.keepAliveTimeoutMs,
    // A socket idle this long is closed; a client waiting for a synchronous answer is idle too.
    connectionTimeout: Math.max(opts.requestTimeoutMs + opts.headersTimeoutMs, (opts.maxWaitS ?? 0) * 1000 + 5000),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true },
  });
  // The API speaks JSON only: anything else is a 415, not a string that fails validation later.
  app.removeContentTypeParser('text/plain');
  applyLimits(app, opts, { log: ctx.log, metrics: ctx.metrics });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const e = toIntakeError(err);
    if (e.statusCode >= 500) req.log.error({ err: e.cause ?? err, code: e.code, url: req.url }, 'request failed');
    if (e.retryAfterS !== undefined) void reply.header('retry-after', String(e.retryAfterS));
    void reply.code(e.statusCode).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody(Errors.routeNotFound(`no route ${req.method} ${req.url.split('?')[0]}`)));
  });

  // The document generator learns every route as it is added: it comes first.
  await registerOpenApi(app, packageVersion);
  registerAuth(app, auth);
  registerHealthRoutes(app, ctx);
  registerRequestRoutes(app, ctx);
  registerCancelRoute(app, ctx, opts.spool);
  registerWorkRoutes(app, ctx);
  registerCallbackRoutes(app, { spool: opts.spool, nodeId: ctx.nodeId });
  registerDashboard(app, auth);
  return app;
}

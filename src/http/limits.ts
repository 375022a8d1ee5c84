// The limits that keep one client (or many) from exhausting a node: connections, header bytes
// and count, slow clients (headers and request timeouts), JSON nesting depth. Each is a flag
// and an INTAKE_* variable (src/config.ts); docs/operations.md "Abuse limits" says what a
// refused client sees.
import type { ServerOptions } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { useJsonBodyParser } from './json-body.js';

export interface HttpLimits {
  maxConnections: number;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  maxJsonDepth: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * Node keeps the raw headers of a request only up to maxHeadersCount (silently dropping the
 * rest). Left at Node's default, which is far above --max-header-count, the count checked below
 * is the real one; the bytes are bounded by --max-header-bytes anyway.
 */
const NODE_MAX_HEADERS_COUNT = 2000;
export const MAX_HEADER_COUNT_LIMIT = NODE_MAX_HEADERS_COUNT / 2;

/** Options for Node's http.createServer (fastify's `http` option). */
export function nodeServerOptions(l: HttpLimits): ServerOptions {
  return {
    maxHeaderSize: l.maxHeaderBytes,
    headersTimeout: l.headersTimeoutMs,
    // Node checks both timeouts on a timer, every 30 s by default: a 10 s headers timeout would
    // then cut a slow client off after up to 40 s. Checking every second (more often for a
    // shorter timeout) walks only the connections in the middle of a request: cheap.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(l.headersTimeoutMs, l.requestTimeoutMs) / 2))),
  };
}

export function applyLimits(app: FastifyInstance, l: HttpLimits, deps: { log: Logger; metrics: Metrics }): void {
  const server = app.server;
  // Over the limit Node closes a new connection at once, before reading a byte: it costs the
  // node nothing, and the client knows the request was not seen (docs/operations.md).
  server.maxConnections = l.maxConnections;
  let lastWarned = -Infinity;
  let droppedSinceWarn = 0;
  server.on('drop', () => {
    deps.metrics.connectionsDropped.inc();
    droppedSinceWarn++;
    // At most one line a minute: a flood of connections must not become a flood of log lines.
    if (performance.now() - lastWarned >= 60_000) {
      deps.log.warn({ dropped: droppedSinceWarn, maxConnections: l.maxConnections }, 'connections refused: over --max-connections');
      lastWarned = performance.now();
      droppedSinceWarn = 0;
    }
  });

  server.maxHeadersCount = NODE_MAX_HEADERS_COUNT;
  // Node only drops headers over its count, it never refuses; this refuses. First of the
  // onRequest hooks, so an oversized request costs nothing more (no key lookup, no body read).
  app.addHook('onRequest', (req, _reply, done) => {
    const count = req.raw.rawHeaders.length / 2;
    if (count > l.maxHeaderCount) done(Errors.headersTooLarge(`the request has ${count} headers, more than ${l.maxHeaderCount} (--max-header-count)`));
    else done();
  });

  useJsonBodyParser(app, l.maxJsonDepth);
}

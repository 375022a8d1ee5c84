// Answers the HTTP layer gives before a request reaches a route, in the same error shape as
// every other refusal: {error: {code, message}}.
//  - Node's parser and timers (the server's clientError event): a malformed request line or
//    header, headers over --max-header-bytes, a request cut off by the headers or request
//    timeout, a connection that ended in the middle of a request. There is no request object
//    then: the answer is written on the socket as raw HTTP/1.1 and the connection is closed.
//  - fastify's router (frameworkErrors): a URL with bad percent-encoding, a path segment too long.
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Errors, errorBody, type IntakeError } from '../errors.js';
import type { Metrics } from '../metrics.js';

export interface ClientErrorLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxHeaderBytes: number;
}

/** The error Node reports on a connection (a parse error has an HPE_* code and a reason). */
export interface ConnectionError extends Error {
  code?: string;
  reason?: string;
}

export function clientErrorFor(err: ConnectionError, limits: ClientErrorLimits): IntakeError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return Errors.requestTimeout(
        `the request did not arrive in time: its headers must arrive within ${limits.headersTimeoutMs} ms (--headers-timeout-ms), all of it within ${limits.requestTimeoutMs} ms (--request-timeout-ms)`,
      );
    case 'HPE_HEADER_OVERFLOW':
      return Errors.headersTooLarge(`the request line and headers are over ${limits.maxHeaderBytes} bytes (--max-header-bytes)`);
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return Errors.bodyTooLarge('the extensions of a chunk are too large');
    case 'HPE_INVALID_EOF_STATE':
      return Errors.badRequest('the connection ended before the whole request arrived (a truncated body)');
    default:
      // The parser's reason names the fault; the bytes themselves are never echoed.
      return Errors.badRequest(`the request is not valid HTTP/1.1: ${err.reason ?? err.code ?? 'unknown error'}`);
  }
}

/** An answer written straight on the socket: there is no response object at this stage. */
export function rawAnswer(e: IntakeError): string {
  const body = JSON.stringify(errorBody(e));
  return (
    `HTTP/1.1 ${e.statusCode} ${STATUS_CODES[e.statusCode] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/**
 * Whether a response has started on this socket. Node's own clientError fallback asks the same
 * (socket._httpMessage is internal to Node, and how it does it): a second status line in the
 * middle of a response would corrupt it for the client, so then the connection is only closed.
 */
function responseStarted(socket: Socket): boolean {
  const res = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  return res?.headersSent === true;
}

/** The server's clientError listener (fastify's clientErrorHandler option). */
export function clientErrorHandler(opts: { limits: ClientErrorLimits; log: Logger; metrics: Metrics }): (err: ConnectionError, socket: Socket) => void {
  return (err, socket) => {
    // A reset connection has nobody left to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const e = clientErrorFor(err, opts.limits);
    opts.metrics.httpClientErrors.inc({ code: e.code });
    // Debug only: a flood of bad clients must not flood the log too (the metric counts them).
    opts.log.debug({ code: e.code, cause: err.code, remote: socket.remoteAddress }, 'client error answered at the HTTP layer');
    if (socket.writable && !responseStarted(socket)) socket.write(rawAnswer(e));
    socket.destroy();
  };
}

/** fastify's frameworkErrors option: router errors that never reach the error handler. */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const e =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? Errors.urlTooLong('a segment of the path is too long')
      : err.code === 'FST_ERR_BAD_URL'
        ? Errors.badRequest('the URL is not valid (bad percent-encoding)')
        : Errors.internal('internal error', { cause: err });
  if (e.statusCode >= 500) reply.log.error({ err, code: e.code }, 'request failed');
  void reply.code(e.statusCode).send(errorBody(e));
}

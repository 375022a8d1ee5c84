// The HTTP layer of callbacks: one undici Agent (a keep-alive pool per origin, no pipelining)
// whose connector is the SSRF guard (connector.ts). Callbacks are CPU-bound on the sender:
// undici's parser and its low-level dispatch API (no response stream) take about half the CPU
// per callback that node:http's client did.
//
// The outcome of an attempt is its status line: 2xx delivered, 410 gone, anything else (a 3xx
// too: redirects are never followed) a failure. The response body is read and dropped only so
// the connection can be reused; past MAX_BODY bytes, or past the attempt's deadline once the
// status is in, the connection is closed instead and the outcome stands (as it does when the
// receiver drops the connection during the body).
import { Agent, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'undici/types/header.js';
import { guardedConnector } from './connector.js';
import type { SsrfGuard } from './ssrf.js';

export interface SendResult {
  ok: boolean;
  /** HTTP status, or null when no answer came (timeout, reset, refused, blocked). */
  status: number | null;
  /** The receiver asked to wait this long (Retry-After), or null. */
  retryAfterMs: number | null;
  /** 410 Gone: the receiver wants no more attempts for this callback. */
  gone: boolean;
  error: string | null;
}

export interface SenderOptions {
  guard: SsrfGuard;
  connectTimeoutMs: number;
  /** The whole attempt: waiting for a connection, connecting, sending, the answer. */
  timeoutMs: number;
  /** Connections per receiver origin at most (default 64: the dispatcher's concurrency). */
  maxSockets?: number;
  /** Response body bytes read (and dropped) at most before the connection is closed instead (default 64 KiB). */
  maxBodyBytes?: number;
  /** Told of every attempt and how long it took (the node's metrics). */
  onAttempt?: (r: SendResult, seconds: number) => void;
}

/**
 * Why an attempt failed, as a metric label: `http_4xx`, `http_5xx`, `http_other` (a redirect,
 * not followed), `timeout`, `blocked` (the SSRF guard), `bad_url`, `connection` (refused,
 * reset, DNS). Null for a delivery.
 */
export function failureClass(r: SendResult): string | null {
  if (r.ok) return null;
  if (r.status !== null) return r.status >= 400 && r.status < 500 ? 'http_4xx' : r.status >= 500 ? 'http_5xx' : 'http_other';
  const e = r.error ?? '';
  if (e.startsWith('callback refused')) return 'blocked';
  if (e.startsWith('bad URL')) return 'bad_url';
  if (/timed out|TIMEOUT/.test(e)) return 'timeout';
  return 'connection';
}

const MAX_BODY = 64 * 1024;
// An idle connection is closed after this long, or when the receiver's Keep-Alive hint says so
// (capped): long enough to carry a burst, short enough not to hold sockets on quiet receivers.
const KEEP_ALIVE_MS = 4000;
const KEEP_ALIVE_MAX_MS = 60_000;

export function parseRetryAfter(v: string | undefined, now = Date.now()): number | null {
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : null;
}

export class CallbackSender {
  private readonly o: SenderOptions;
  private readonly agent: Agent;

  constructor(o: SenderOptions) {
    this.o = o;
    this.agent = new Agent({
      connect: guardedConnector(o.guard, o.connectTimeoutMs),
      connections: o.maxSockets ?? 64,
      pipelining: 1,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MAX_MS,
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
    });
  }

  async send(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const t0 = performance.now();
    const r = await this.attempt(url, headers, body);
    this.o.onAttempt?.(r, (performance.now() - t0) / 1000);
    return r;
  }

  private attempt(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return Promise.resolve(fail(`bad URL ${url}`));
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return Promise.resolve(fail(`bad URL ${url}`));
    return new Promise<SendResult>((resolve) => {
      const attempt = new Attempt(resolve, this.o.timeoutMs, this.o.maxBodyBytes ?? MAX_BODY);
      this.agent.dispatch(
        {
          origin: u.origin,
          path: u.pathname + u.search,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'intake-callbacks', ...headers },
          body,
        },
        attempt,
      );
    });
  }

  /** Closes every connection; an attempt still in flight fails. */
  close(): Promise<void> {
    return this.agent.destroy().catch(() => undefined);
  }
}

/** One attempt, as an undici dispatch handler: no response stream, the body is counted and dropped. */
class Attempt implements Dispatcher.DispatchHandler {
  private readonly resolve: (r: SendResult) => void;
  private readonly timeoutMs: number;
  private readonly maxBody: number;
  private readonly timer: NodeJS.Timeout;
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  private expired = false;
  private ended = false;
  private status = 0;
  private retryAfter: string | undefined;
  private bodyBytes = 0;

  constructor(resolve: (r: SendResult) => void, timeoutMs: number, maxBody: number) {
    this.resolve = resolve;
    this.timeoutMs = timeoutMs;
    this.maxBody = maxBody;
    this.timer = setTimeout(() => this.expire(), timeoutMs);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The deadline passed while the attempt waited for a connection: do not send it now.
    if (this.expired) controller.abort(new Error(`timed out after ${this.timeoutMs} ms`));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: informational, the answer is still to come
    this.status = statusCode;
    const ra = headers['retry-after'];
    this.retryAfter = Array.isArray(ra) ? ra[0] : ra;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bodyBytes += chunk.length;
    if (this.bodyBytes <= this.maxBody) return;
    this.settle(this.answer());
    controller.abort(new Error(`response body over ${this.maxBody} bytes`));
  }

  onResponseEnd(): void {
    this.ended = true;
    // With pipelining 1, undici hands the connection back to its pool one event-loop turn after
    // the response (a setImmediate queued once this returns). Answer after that turn, so the
    // next callback to this receiver finds the connection free instead of opening another.
    queueMicrotask(() => setImmediate(() => this.settle(this.answer())));
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    // A connection lost while the body was still coming: the status line had the answer.
    this.settle(this.status ? this.answer() : fail(describe(err as NodeJS.ErrnoException, this.timeoutMs)));
  }

  private expire(): void {
    this.expired = true;
    const why = new Error(`timed out after ${this.timeoutMs} ms`);
    // With the status in, only the body was late: the receiver has answered.
    this.settle(this.status ? this.answer() : fail(why.message));
    if (!this.ended) this.controller?.abort(why);
  }

  private answer(): SendResult {
    const status = this.status;
    const ok = status >= 200 && status < 300;
    return {
      ok,
      status,
      retryAfterMs: parseRetryAfter(this.retryAfter),
      gone: status === 410,
      error: ok ? null : status >= 300 && status < 400 ? `redirect ${status} not followed` : `HTTP ${status}`,
    };
  }

  private settle(r: SendResult): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(r);
  }
}

function describe(err: NodeJS.ErrnoException, timeoutMs: number): string {
  switch (err.code) {
    case 'INTAKE_SSRF_BLOCKED':
      return err.message;
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return `timed out after ${timeoutMs} ms`;
    default:
      return `${err.code ?? 'ERROR'}: ${err.message}`;
  }
}

function fail(error: string): SendResult {
  return { ok: false, status: null, retryAfterMs: null, gone: false, error };
}

// The HTTP layer of callbacks: one keep-alive agent per scheme whose DNS lookup is the SSRF
// guard, a connect timeout and a total timeout, no redirects followed (a 3xx is a failure).
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
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
  timeoutMs: number;
  maxSockets?: number;
}

export function parseRetryAfter(v: string | undefined, now = Date.now()): number | null {
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : null;
}

export class CallbackSender {
  private readonly o: SenderOptions;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(o: SenderOptions) {
    this.o = o;
    const agentOpts = { keepAlive: true, maxSockets: o.maxSockets ?? 64, lookup: o.guard.lookup as never };
    this.httpAgent = new http.Agent(agentOpts);
    this.httpsAgent = new https.Agent(agentOpts);
  }

  send(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return Promise.resolve(fail(`bad URL ${url}`));
    }
    // An IP literal is connected to without a lookup: judge it here. (The WHATWG parser has
    // already turned 2130706433 or 0x7f.1 into 127.0.0.1.)
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const why = this.o.guard.refuse(host);
      if (why) return Promise.resolve(fail(`callback refused: ${why}`));
    }
    const mod = u.protocol === 'https:' ? https : http;
    const data = Buffer.from(body, 'utf8');
    return new Promise<SendResult>((resolve) => {
      let settled = false;
      const done = (r: SendResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(total);
        resolve(r);
      };
      const req = mod.request(
        u,
        {
          method: 'POST',
          agent: u.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
          headers: { 'content-type': 'application/json', 'content-length': String(data.length), 'user-agent': 'intake-callbacks', ...headers },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          res.resume(); // the body is not needed; read it so the socket can be reused
          res.on('end', () =>
            done({
              ok: status >= 200 && status < 300,
              status,
              retryAfterMs: parseRetryAfter(res.headers['retry-after']),
              gone: status === 410,
              error: status >= 200 && status < 300 ? null : status >= 300 && status < 400 ? `redirect ${status} not followed` : `HTTP ${status}`,
            }),
          );
          res.on('error', (err) => done(fail(err.message)));
        },
      );
      const total = setTimeout(() => req.destroy(new Error(`timed out after ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
      req.on('socket', (s) => {
        if (!s.connecting) return;
        const t = setTimeout(() => req.destroy(new Error(`connect timed out after ${this.o.connectTimeoutMs} ms`)), this.o.connectTimeoutMs);
        s.once('connect', () => clearTimeout(t));
        s.once('close', () => clearTimeout(t));
      });
      req.on('error', (err: NodeJS.ErrnoException) => done(fail(err.code === 'INTAKE_SSRF_BLOCKED' ? err.message : `${err.code ?? 'ERROR'}: ${err.message}`)));
      req.end(data);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

function fail(error: string): SendResult {
  return { ok: false, status: null, retryAfterMs: null, gone: false, error };
}

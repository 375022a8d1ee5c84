// Raw HTTP/1.1 over node:net, for what fetch will not send: malformed request lines, oversized
// or endless headers, truncated and slow bodies, connections that are never used.
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  /** null when the server closed without answering. */
  status: number | null;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** The body parsed as JSON when it is JSON, else the text. */
  body: any;
  /** Everything the server sent. */
  text: string;
  /** How the connection ended: the server closed it (end), reset it, or the helper gave up waiting. */
  end: 'closed' | 'reset' | 'waited';
}

export function parseAnswer(text: string, end: RawAnswer['end']): RawAnswer {
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) return { status: null, headers: {}, body: null, text, end };
  const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '');
  const len = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
  const raw = text.slice(split + 4, len === undefined ? undefined : split + 4 + len);
  let body: unknown = raw;
  try {
    body = JSON.parse(raw);
  } catch {
    // not JSON: keep the text
  }
  return { status: m ? Number(m[1]) : null, headers, body, text, end };
}

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

export function rawConnect(url: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const { host, port } = hostPort(url);
    const s = connect(port, host, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Collects what the server sends until it closes the connection (or waitMs passes: then the helper closes it). */
export function collect(s: Socket, waitMs = 20_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let text = '';
    let end: RawAnswer['end'] = 'closed';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') end = 'reset';
    });
    const timer = setTimeout(() => {
      end = 'waited';
      s.destroy();
    }, waitMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(text, end));
    });
  });
}

/** Sends `data` on a new connection (half-closing it after when `halfClose`) and waits for the server to close it. */
export async function rawExchange(url: string, data: string, opts: { halfClose?: boolean; waitMs?: number } = {}): Promise<RawAnswer> {
  const s = await rawConnect(url);
  const answer = collect(s, opts.waitMs);
  if (data) s.write(data);
  if (opts.halfClose) s.end();
  return answer;
}

/**
 * A slow client: sends `head`, then `drip` every `everyMs` for as long as the server keeps the
 * connection open. It never stops by itself, so when its answer comes the server cut it off.
 */
export async function slowClient(url: string, head: string, opts: { drip?: string; everyMs?: number; waitMs?: number } = {}): Promise<RawAnswer> {
  const s = await rawConnect(url);
  const answer = collect(s, opts.waitMs);
  s.write(head);
  const timer = setInterval(() => {
    if (!s.destroyed && s.writable) s.write(opts.drip ?? 'a');
  }, opts.everyMs ?? 100);
  s.once('close', () => clearInterval(timer));
  return answer;
}

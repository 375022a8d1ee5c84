// A real node:http callback receiver for the sender's tests: it records every request (after
// reading its body) and counts the TCP connections it accepts, so connection reuse is visible.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface TestReceiver {
  url: string;
  port: number;
  /** TCP connections accepted so far. */
  connections: number;
  /** Connections open now. */
  open: Set<Socket>;
  requests: Received[];
  close(): Promise<void>;
}

export type Answer = (req: Received, res: http.ServerResponse) => void;

export async function startReceiver(answer: Answer, host = '127.0.0.1', port = 0): Promise<TestReceiver> {
  const r: TestReceiver = { url: '', port: 0, connections: 0, open: new Set(), requests: [], close: async () => undefined };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const got = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      r.requests.push(got);
      answer(got, res);
    });
  });
  server.on('connection', (s: Socket) => {
    r.connections++;
    r.open.add(s);
    s.on('close', () => r.open.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://${host.includes(':') ? `[${host}]` : host}:${r.port}`;
  r.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return r;
}

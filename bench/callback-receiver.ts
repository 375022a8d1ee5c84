// The callback receiver of the benchmark: a plain node:http server on 127.0.0.1 (its own
// process, so it does not share an event loop with the benchmark) that reads each POST body and
// answers 200 with an empty body, keep-alive. It counts what it gets and says so:
//   GET  /_stats          {count, unique, bytes, firstAt, lastAt, connections}  (times: performance.timeOrigin + now(), ms;
//                         connections: TCP connections accepted since the reset, /_stats's own included)
//   POST /_reset?expect=N zero the counters; print {"reached":N,"at":…} on stdout when the Nth POST arrives
// Every other POST is a delivery; `unique` counts distinct webhook-id headers (duplicates show redelivery).
//
// Usage: node dist/bench/callback-receiver.js; prints {"msg":"receiver started","url":...}.
import http from 'node:http';

const now = () => performance.timeOrigin + performance.now();
let count = 0;
let bytes = 0;
let firstAt: number | null = null;
let lastAt: number | null = null;
let expect = 0;
let ids = new Set<string>();
let connections = 0;

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/_stats') {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ count, unique: ids.size, bytes, firstAt, lastAt, connections }));
    return;
  }
  if (url.startsWith('/_reset')) {
    req.resume();
    count = 0;
    bytes = 0;
    firstAt = null;
    lastAt = null;
    ids = new Set();
    connections = 0;
    expect = Number(new URL(url, 'http://x').searchParams.get('expect') ?? 0);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
    return;
  }
  let n = 0;
  req.on('data', (d: Buffer) => (n += d.length));
  req.on('end', () => {
    const t = now();
    count++;
    bytes += n;
    firstAt ??= t;
    lastAt = t;
    const id = req.headers['webhook-id'];
    if (typeof id === 'string') ids.add(id);
    res.writeHead(200, { 'content-length': '0' });
    res.end();
    if (count === expect) process.stdout.write(`${JSON.stringify({ reached: count, at: t })}\n`);
  });
});
server.on('connection', () => connections++);
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;

server.listen(0, '127.0.0.1', () => {
  const a = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ msg: 'receiver started', url: `http://127.0.0.1:${a.port}` })}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

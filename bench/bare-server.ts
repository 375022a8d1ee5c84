// The baseline of the ingest benchmark: a bare fastify server configured like intake's (same
// body limit, no request logging), parsing the same JSON and answering the same 202 shape
// without validating, encoding or writing anything. The gap to intake is the price of
// validation plus durability (record encoding, write, fdatasync).
//
// Usage: node dist/bench/bare-server.js [--port N]; prints {"msg":"bare server started","url":...}.
import Fastify from 'fastify';
import { v7 as uuidv7 } from 'uuid';

const portArg = process.argv.indexOf('--port');
const port = portArg >= 0 ? Number(process.argv[portArg + 1]) : 0;

const app = Fastify({
  logger: false,
  bodyLimit: 1024 * 1024,
  requestTimeout: 30_000,
  keepAliveTimeout: 65_000,
});

app.post('/v1/requests', async (req, reply) => {
  const body = req.body as { payload?: unknown } | null;
  if (typeof body !== 'object' || body === null) return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: 'not an object' } });
  const id = uuidv7();
  const statusUrl = `/v1/requests/${id}`;
  return reply.code(202).header('location', statusUrl).send({ id, status_url: statusUrl });
});

const url = await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`${JSON.stringify({ msg: 'bare server started', url })}\n`);

const stop = () => {
  void app.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

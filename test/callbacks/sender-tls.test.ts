// https callbacks go through the same guarded connector: a forbidden literal or name is refused
// before any TCP connection, the receiver's certificate is verified (a self-signed one fails),
// and with the certificate trusted (NODE_EXTRA_CA_CERTS, in a child process: the sender has no
// CA option) callbacks are delivered over one kept-alive TLS connection.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CallbackSender } from '../../src/callbacks/sender.js';
import { SsrfGuard } from '../../src/callbacks/ssrf.js';
import { tempDir } from '../helpers/tmp.js';

// A throwaway self-signed certificate for 127.0.0.1 and localhost (P-256, valid until 2126); test use only.
const KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgd3sZyAddV/Ud4Qes
HQFPzSIk+OI4h88lsH9PsAx2WEChRANCAASIq9yfWzL+ePj+E60NSMIymmMx53iy
m50n8raqc8YsH++QPNyhSfHFcHs08hiSr63E3IXU5rn0qFj80diMmVTT
-----END PRIVATE KEY-----
`;
const CERT = `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUIgh7xCqV/ddX+lx5i79Q66PxCBQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEzMDEyNDkzMVoYDzIxMjYxMTA2
MTI0OTMxWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASIq9yfWzL+ePj+E60NSMIymmMx53iym50n8raqc8YsH++QPNyhSfHF
cHs08hiSr63E3IXU5rn0qFj80diMmVTTo28wbTAdBgNVHQ4EFgQUc51W/rmN/psY
0sHx1xEfKxijgkowHwYDVR0jBBgwFoAUc51W/rmN/psY0sHx1xEfKxijgkowDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIhAOrCzBJiynYAf8SyYvzn354Rj+78TiJfuJssn7vlxgYAAiAM
iQXK8DxHXcfCoh7u/icYgZIzHCIQ0qQtWCBuaRFnMg==
-----END CERTIFICATE-----
`;

describe('https callbacks', () => {
  const tmp = tempDir('intake-tls-');
  let server: https.Server;
  let url = '';
  let connections = 0;
  let requests = 0;
  before(async () => {
    server = https.createServer({ key: KEY, cert: CERT }, (req, res) => {
      requests++;
      req.resume();
      req.on('end', () => res.writeHead(200).end());
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    tmp.cleanup();
  });

  test('a forbidden literal or name is refused before any connection', async () => {
    const port = (server.address() as AddressInfo).port;
    const guard = new SsrfGuard([], (_name, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }]));
    const sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 3000 });
    try {
      for (const target of [url, `https://hooks.tls.test:${port}/hook`]) {
        const r = await sender.send(target, {}, '{}');
        assert.equal(r.status, null, target);
        assert.match(r.error ?? '', /^callback refused: /, target);
      }
      assert.equal(connections, 0);
    } finally {
      await sender.close();
    }
  });

  test('the certificate is verified: a self-signed receiver gets a handshake and no callback', async () => {
    const sender = new CallbackSender({ guard: new SsrfGuard(['127.0.0.1/32']), connectTimeoutMs: 1000, timeoutMs: 3000 });
    try {
      const r = await sender.send(url, {}, '{}');
      assert.equal(r.ok, false);
      assert.equal(r.status, null);
      assert.match(r.error ?? '', /self[- ]signed|SELF_SIGNED/i);
      assert.ok(connections >= 1, 'no TLS connection was tried');
      assert.equal(requests, 0);
    } finally {
      await sender.close();
    }
  });

  test('with the certificate trusted, callbacks are delivered over one kept-alive connection', async () => {
    const ca = join(tmp.path, 'ca.pem');
    writeFileSync(ca, CERT);
    const modules = new URL('../../src/callbacks/', import.meta.url).href;
    const script = `
      const { CallbackSender } = await import('${modules}sender.js');
      const { SsrfGuard } = await import('${modules}ssrf.js');
      const s = new CallbackSender({ guard: new SsrfGuard(['127.0.0.1/32']), connectTimeoutMs: 2000, timeoutMs: 5000 });
      const out = [];
      for (let i = 0; i < 20; i++) out.push(await s.send(${JSON.stringify(url)}, { 'webhook-id': 'msg_' + i }, '{}'));
      await s.close();
      process.stdout.write(JSON.stringify(out));`;
    const before = { connections, requests };
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: ca }, timeout: 30_000 }, (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      ),
    );
    const results = JSON.parse(stdout) as { ok: boolean; status: number }[];
    assert.equal(results.length, 20);
    for (const r of results) assert.deepEqual([r.ok, r.status], [true, 200]);
    assert.equal(requests - before.requests, 20);
    assert.equal(connections - before.connections, 1);
  });
});

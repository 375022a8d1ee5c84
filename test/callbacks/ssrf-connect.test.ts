// The SSRF guard judges a name when a connection is made, on the addresses it resolves to then
// (a resolver hook plays DNS: names no real server would answer for, answers that change). The
// allowed receiver is on 127.0.0.2 (allow-list 127.0.0.2/32) and answers `connection: close`, so
// every callback connects (and resolves) anew; a trap on 127.0.0.1, same port, must get nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import net from 'node:net';
import { CallbackSender } from '../../src/callbacks/sender.js';
import { SsrfGuard } from '../../src/callbacks/ssrf.js';
import { startReceiver, type TestReceiver } from '../helpers/receiver.js';

const NAME = 'hooks.rebind.test';
const v4 = (address: string): LookupAddress => ({ address, family: 4 });

describe('SSRF guard at connect time', () => {
  let rcv: TestReceiver;
  let trap: net.Server;
  let trapHits = 0;
  /** What the next lookups of NAME answer, in turn. */
  let answers: LookupAddress[][] = [];
  const lookups: string[] = [];
  let sender: CallbackSender;

  before(async () => {
    for (let tries = 0; ; tries++) {
      rcv = await startReceiver((_req, res) => res.writeHead(200, { connection: 'close' }).end(), '127.0.0.2');
      trap = net.createServer((c) => {
        trapHits++;
        c.destroy();
      });
      const bound = await new Promise<boolean>((resolve) => {
        trap.once('error', () => resolve(false));
        trap.listen(rcv.port, '127.0.0.1', () => resolve(true));
      });
      if (bound) break;
      await rcv.close();
      if (tries === 10) throw new Error('no port free on both 127.0.0.2 and 127.0.0.1');
    }
    const guard = new SsrfGuard(['127.0.0.2/32'], (hostname, cb) => {
      lookups.push(hostname);
      const a = answers.shift();
      if (!a) return cb(Object.assign(new Error(`no answer scripted for ${hostname}`), { code: 'ENOTFOUND' }), []);
      cb(null, a);
    });
    sender = new CallbackSender({ guard, connectTimeoutMs: 1000, timeoutMs: 3000 });
  });
  after(async () => {
    await sender.close();
    await rcv.close();
    await new Promise<void>((r) => trap.close(() => r()));
  });

  const send = () => sender.send(`http://${NAME}:${rcv.port}/hook`, {}, '{}');

  test('allowed answer → delivered; the same name rebound to loopback → refused, the trap untouched', async () => {
    answers = [[v4('127.0.0.2')], [v4('127.0.0.1')], [v4('127.0.0.2')]];
    assert.equal((await send()).ok, true);
    const r = await send();
    assert.deepEqual(r, { ok: false, status: null, retryAfterMs: null, gone: false, error: `callback refused: ${NAME} resolves to 127.0.0.1 is not a public address` });
    assert.equal((await send()).ok, true, 'the name is judged on every connect, not once');
    assert.equal(rcv.requests.length, 2);
    assert.equal(lookups.length, 3, 'one lookup per connection');
    assert.equal(trapHits, 0);
  });

  test('one forbidden address among the answers refuses the name; so do mapped and metadata addresses', async () => {
    // Off this machine: only ever handed to the sender once the guard is known to refuse it.
    assert.ok(new SsrfGuard(['127.0.0.2/32']).refuse('169.254.169.254'));
    const before = rcv.requests.length;
    for (const a of [
      [v4('127.0.0.2'), v4('127.0.0.1')],
      [{ address: '::ffff:127.0.0.1', family: 6 }],
      [v4('169.254.169.254')],
      [{ address: '::1', family: 6 }],
    ]) {
      answers = [a];
      const r = await send();
      assert.equal(r.status, null, JSON.stringify(a));
      assert.match(r.error ?? '', new RegExp(`^callback refused: ${NAME} resolves to`), JSON.stringify(a));
    }
    answers = [[]];
    assert.match((await send()).error ?? '', /ENOTFOUND/);
    assert.equal(rcv.requests.length, before);
    assert.equal(trapHits, 0);
  });
});

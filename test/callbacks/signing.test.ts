// Signatures checked by the reference implementation of Standard Webhooks (npm `standardwebhooks`),
// not by our own code: what intake signs must verify for any receiver that uses the library.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { webhookHeaders } from '../../src/callbacks/signing.js';

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

/** A random JSON body like a callback's, with non-ASCII text and varying sizes. */
function randomBody(): string {
  const alphabet = 'abcxyz 0189 é ✓ 😀 "\\\n\t{}[],:';
  const chars = Array.from({ length: randomInt(0, 400) }, () => alphabet[randomInt(alphabet.length)]).join('');
  return JSON.stringify({
    type: 'request.completed',
    timestamp: new Date(Date.now() - randomInt(1e9)).toISOString(),
    data: { id: randomUUID(), status: 'completed', result: { text: chars, n: Math.random(), list: Array.from({ length: randomInt(5) }, () => randomInt(1e6)) } },
  });
}

const verifies = (secret: string, body: string, headers: Record<string, string>): boolean => {
  try {
    new Webhook(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
};

/**
 * Headers made at now + shiftS seconds and verified at the real time, in the same wall-clock
 * second (so a second boundary between signing and verifying cannot move the edge case).
 */
function signedAt(secrets: string[], id: string, body: string, shiftS: number): { headers: Record<string, string>; ok: boolean } {
  for (;;) {
    const s0 = Math.floor(Date.now() / 1000);
    const headers = webhookHeaders(secrets, id, body, Date.now() + shiftS * 1000);
    const ok = verifies(secrets[0]!, body, headers);
    if (Math.floor(Date.now() / 1000) === s0) return { headers, ok };
  }
}

describe('Standard Webhooks signatures, checked by the reference library', () => {
  test('1,000 random valid callbacks verify', () => {
    let passed = 0;
    for (let i = 0; i < 1000; i++) {
      const secret = newSecret();
      const id = i % 2 === 0 ? `msg_${randomUUID()}` : `msg_${randomBytes(randomInt(1, 40)).toString('base64url')}`;
      const body = randomBody();
      const headers = webhookHeaders([secret], id, body);
      assert.match(headers['webhook-signature']!, /^v1,[A-Za-z0-9+/]+={0,2}$/);
      assert.equal(headers['webhook-id'], id);
      assert.match(headers['webhook-timestamp']!, /^\d{10}$/);
      // verify() returns the parsed JSON payload when a signature matches, and throws otherwise.
      const parsed = new Webhook(secret).verify(body, headers);
      assert.deepEqual(parsed, JSON.parse(body));
      // The same, with the body as the raw bytes a receiver reads off the socket.
      new Webhook(secret).verify(Buffer.from(body, 'utf8'), headers);
      passed++;
    }
    assert.equal(passed, 1000);
  });

  test('a changed body, id, timestamp or secret fails', () => {
    let refused = 0;
    for (let i = 0; i < 200; i++) {
      const secret = newSecret();
      const id = `msg_${randomUUID()}`;
      const body = randomBody();
      const headers = webhookHeaders([secret], id, body);
      assert.ok(verifies(secret, body, headers), 'the unchanged callback verifies');

      // One character of the body changed (and a body with a byte more).
      const pos = randomInt(body.length);
      const changed = body.slice(0, pos) + (body[pos] === 'a' ? 'b' : 'a') + body.slice(pos + 1);
      assert.equal(verifies(secret, changed, headers), false, 'changed body');
      assert.equal(verifies(secret, body + ' ', headers), false, 'body with a trailing space');
      // Another id under the same signature.
      assert.equal(verifies(secret, body, { ...headers, 'webhook-id': `msg_${randomUUID()}` }), false, 'changed id');
      assert.equal(verifies(secret, body, { ...headers, 'webhook-id': `${id}x` }), false, 'id with a character more');
      // Another timestamp under the same signature (close enough to pass the tolerance check).
      const ts = Number(headers['webhook-timestamp']);
      assert.equal(verifies(secret, body, { ...headers, 'webhook-timestamp': String(ts - 1) }), false, 'timestamp moved by 1 s');
      // A wrong secret.
      assert.equal(verifies(newSecret(), body, headers), false, 'wrong secret');
      // A signature that is not v1, and a missing header.
      assert.equal(verifies(secret, body, { ...headers, 'webhook-signature': headers['webhook-signature']!.replace(/^v1,/, 'v2,') }), false, 'not v1');
      const { ['webhook-signature']: _omit, ...unsigned } = headers;
      assert.equal(verifies(secret, body, unsigned), false, 'no signature header');
      refused += 9;
    }
    assert.equal(refused, 1800);
  });

  test('a timestamp 301 s in the past or the future fails; 299 s passes', () => {
    const secret = newSecret();
    for (let i = 0; i < 20; i++) {
      const id = `msg_${randomUUID()}`;
      const body = randomBody();
      // Correctly signed, but with a timestamp outside the library's 5 minute tolerance.
      assert.equal(signedAt([secret], id, body, -301).ok, false, 'signed 301 s ago');
      assert.equal(signedAt([secret], id, body, +301).ok, false, 'signed 301 s ahead');
      assert.equal(signedAt([secret], id, body, -299).ok, true, 'signed 299 s ago');
      assert.equal(signedAt([secret], id, body, +299).ok, true, 'signed 299 s ahead');
    }
  });

  test('rotation: headers signed with two secrets verify under either, and not under a third', () => {
    for (let i = 0; i < 200; i++) {
      const next = newSecret();
      const old = newSecret();
      const id = `msg_${randomUUID()}`;
      const body = randomBody();
      const headers = webhookHeaders([next, old], id, body);
      const sigs = headers['webhook-signature']!.split(' ');
      assert.equal(sigs.length, 2, 'one signature per secret');
      for (const s of sigs) assert.match(s, /^v1,[A-Za-z0-9+/]+={0,2}$/);
      assert.ok(verifies(next, body, headers), 'new secret');
      assert.ok(verifies(old, body, headers), 'old secret');
      assert.equal(verifies(newSecret(), body, headers), false, 'unrelated secret');
      assert.equal(verifies(old, `${body} `, headers), false, 'changed body under the old secret');
      // Each signature alone verifies under its own secret only.
      assert.ok(verifies(next, body, { ...headers, 'webhook-signature': sigs[0]! }));
      assert.equal(verifies(old, body, { ...headers, 'webhook-signature': sigs[0]! }), false);
      assert.ok(verifies(old, body, { ...headers, 'webhook-signature': sigs[1]! }));
    }
  });

  test('secrets without the whsec_ prefix sign the same bytes', () => {
    const raw = randomBytes(32).toString('base64');
    const id = `msg_${randomUUID()}`;
    const body = randomBody();
    const now = Date.now();
    assert.deepEqual(webhookHeaders([raw], id, body, now), webhookHeaders([`whsec_${raw}`], id, body, now));
    assert.ok(verifies(`whsec_${raw}`, body, webhookHeaders([raw], id, body)));
  });
});

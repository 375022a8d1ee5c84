// Standard Webhooks signatures (https://www.standardwebhooks.com): the signed content is
// "<webhook-id>.<webhook-timestamp>.<body>", HMAC-SHA256 with the secret's bytes, base64;
// the header carries "v1,<signature>", several separated by spaces while a secret is rotated.
import { createHmac } from 'node:crypto';

const PREFIX = 'whsec_';

export function secretBytes(secret: string): Buffer {
  return Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64');
}

export function sign(secret: string, id: string, timestampS: number, body: string): string {
  return createHmac('sha256', secretBytes(secret)).update(`${id}.${timestampS}.${body}`).digest('base64');
}

/** The three headers of one attempt. Every secret in `secrets` signs (new and old during rotation). */
export function webhookHeaders(secrets: string[], id: string, body: string, nowMs = Date.now()): Record<string, string> {
  const ts = Math.floor(nowMs / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': secrets.map((s) => `v1,${sign(s, id, ts, body)}`).join(' '),
  };
}

// Calls with an API key, and keys made with the real CLI (`intake keys create`).
import assert from 'node:assert/strict';
import { runCli } from './daemon.js';

export interface Reply {
  status: number;
  body: any;
}

export async function call(method: string, url: string, o: { key?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.key !== undefined) headers.authorization = `Bearer ${o.key}`;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // metrics are text
  }
  return { status: res.status, body };
}

export async function createKey(spool: string, tenant: string, scope: string, lane?: string): Promise<{ id: string; key: string }> {
  const r = await runCli(['keys', 'create', '--tenant', tenant, '--scope', scope, ...(lane ? ['--lane', lane] : []), '--json', '--spool', spool]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { id: string; key: string };
  assert.match(out.key, /^ik_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  return out;
}

// Small HTTP client helpers over Node's fetch.
export interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = 10000): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    // A string or bytes are sent as they are (bad JSON, bytes that are not UTF-8); anything else as JSON.
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, body: text ? safeJson(text) : null, headers: res.headers };
}

export async function get(url: string, timeoutMs = 10000): Promise<Answer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  return { status: res.status, body: text ? safeJson(text) : null, headers: res.headers };
}

/** A GET whose body is kept as the text that came (a test that compares numbers exactly must not let JSON.parse round them first). */
export async function getText(url: string, timeoutMs = 10000): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, text: await res.text() };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value or the time runs out (then throw with `what`). */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 20000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export async function del(url: string, headers: Record<string, string> = {}, timeoutMs = 10000): Promise<Answer> {
  const res = await fetch(url, { method: 'DELETE', headers, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  return { status: res.status, body: text ? safeJson(text) : null, headers: res.headers };
}

// The one parser of JSON bodies (every route: requests, work API). A 202 or 200 promises that
// what the client sent is what is kept, so it refuses, with a 400 and nothing written, what
// could not be kept exactly:
//  - bytes that are not UTF-8 (decoding them as text would turn them into U+FFFD);
//  - an object with the same key twice (JSON.parse keeps only the last value);
//  - a number a double cannot hold as written (1e400 would become null, 2^64 would lose digits):
//    a number passes when its decimal value is the one JSON.stringify writes for the parsed
//    double, so 1.0, 1e2, 0.1 and 1E-7 pass and 0.1000000000000000000001 does not. -0 passes
//    and is kept as 0: the same value in decimal terms, and neither PostgreSQL's numeric nor
//    JSON.stringify has a negative zero, so refusing it would only punish encoders (Python's
//    json.dumps(-0.0) writes -0.0) for a difference no reader of the value can see;
//  - arrays and objects nested deeper than --max-json-depth: deep JSON would be accepted and
//    then overflow the stack later (JSON.stringify of the payload, PostgreSQL's jsonb cast when
//    draining, a result in a callback body), a 500 or a segment that cannot drain.
// The checks are one loop over the text with an explicit stack (no recursion of its own to
// overflow), so the ingest path stays cheap: see bench/json-body.ts.
//
// Payloads are the clients' data, stored as sent: a key named __proto__ or constructor is legal
// JSON and must not cost a 400. Plain JSON.parse is safe here because bodies are only validated
// and serialised again, never merged into other objects (JSON.parse makes __proto__ an own key).
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { Errors, type IntakeError } from '../errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** Where the string that opens at `open` (a quote) ends: its closing quote, or -1 if it never does. */
function stringEnd(text: string, open: number): number {
  let q = text.indexOf('"', open + 1);
  while (q !== -1) {
    // A quote preceded by an odd number of backslashes is escaped. Each run of backslashes is
    // counted once (for the quote right after it), so the whole scan stays linear.
    let b = q - 1;
    while (text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q;
    q = text.indexOf('"', q + 1);
  }
  return -1;
}

/** Characters a JSON number token is made of besides digits. */
function inNumber(c: number): boolean {
  return c === DOT || c === MINUS || c === 0x65 || c === 0x45 || c === 0x2b;
}

/** A decimal without its sign as significant digits (no leading or trailing zeros) and the exponent of the last one; zero is "". */
function decimalOf(s: string): { digits: string; exp: number } {
  let i = s.charCodeAt(0) === MINUS ? 1 : 0;
  let e = s.indexOf('e', i);
  if (e === -1) e = s.indexOf('E', i);
  const mantissa = e === -1 ? s.slice(i) : s.slice(i, e);
  let exp = e === -1 ? 0 : Number(s.slice(e + 1));
  const dot = mantissa.indexOf('.');
  let digits = mantissa;
  if (dot !== -1) {
    digits = mantissa.slice(0, dot) + mantissa.slice(dot + 1);
    exp -= mantissa.length - dot - 1;
  }
  let end = digits.length;
  while (end > 0 && digits.charCodeAt(end - 1) === DIGIT_0) end--;
  exp += digits.length - end;
  for (i = 0; i < end && digits.charCodeAt(i) === DIGIT_0; i++);
  return { digits: digits.slice(i, end), exp: i === end ? 0 : exp };
}

/** Why the number token `t` cannot be kept exactly, or null when it can. */
export function inexactNumber(t: string): string | null {
  const v = Number(t);
  if (!Number.isFinite(v)) return 'it is beyond the range of a double (it would be kept as null)';
  const kept = String(v);
  const a = decimalOf(t);
  const b = decimalOf(kept);
  if (a.digits === b.digits && a.exp === b.exp) return null;
  return `a double cannot hold it (it would be kept as ${kept})`;
}

/** A key's text: its characters between the quotes, escapes decoded; null when the escapes are not valid JSON (JSON.parse says so). */
function keyOf(text: string, open: number, close: number): string | null {
  const raw = text.slice(open + 1, close);
  if (raw.indexOf('\\') === -1) return raw;
  try {
    return JSON.parse(text.slice(open, close + 1)) as string;
  } catch {
    return null;
  }
}

const shown = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/**
 * One pass over `text`: what makes it unfit to be kept (the first such thing), or null.
 * Nesting deeper than `maxDepth` is found even after another fault (it decides whether the
 * text may be parsed at all). The text need not be valid JSON: the scan never throws on it,
 * and JSON.parse judges it afterwards.
 */
export function scanJson(text: string, maxDepth: number): IntakeError | null {
  let fault: IntakeError | null = null;
  let depth = 0;
  // Per depth: the keys seen so far in the object open there (null for an array). The sets are
  // reused from one object to the next at the same depth, so a body allocates one per level.
  const keys: (Set<string> | null)[] = [];
  const pool: Set<string>[] = [];
  // A string right after { or , inside an object is a key.
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end === -1) return fault; // an unterminated string: JSON.parse refuses it
      if (expectKey && fault === null) {
        const seen = keys[depth];
        const key = keyOf(text, i, end);
        if (seen && key !== null) {
          if (seen.has(key)) fault = Errors.jsonDuplicateKey(`the key ${shown(key)} appears twice in one object (at character ${i}): only one value could be kept`);
          else seen.add(key);
        }
      }
      expectKey = false;
      i = end;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) return Errors.jsonTooDeep(`the body nests arrays and objects more than ${maxDepth} levels deep (--max-json-depth)`);
      if (c === OPEN_OBJECT) {
        const set = (pool[depth] ??= new Set<string>());
        set.clear();
        keys[depth] = set;
      } else keys[depth] = null;
      expectKey = c === OPEN_OBJECT;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (depth > 0) depth--;
      expectKey = false;
    } else if (c === COMMA) {
      expectKey = keys[depth] != null;
    } else if (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) {
      // Without an exponent and with at most 15 digits, a decimal is between 1e-15 and 1e15 and
      // has at most DBL_DIG significant digits, so the double nearest to it prints as it again:
      // most numbers are done here, without the costlier comparison of inexactNumber.
      let digits = c === MINUS ? 0 : 1;
      let plain = true;
      let end = i + 1;
      for (; end < text.length; end++) {
        const d = text.charCodeAt(end);
        if (d >= DIGIT_0 && d <= DIGIT_9) digits++;
        else if (inNumber(d)) plain &&= d === DOT;
        else break;
      }
      if (fault === null && (digits > 15 || !plain)) {
        const t = text.slice(i, end);
        const why = inexactNumber(t);
        if (why) fault = Errors.jsonInexactNumber(`the number ${shown(t)} (at character ${i}) cannot be kept exactly: ${why}`);
      }
      expectKey = false;
      i = end - 1;
    }
  }
  return fault;
}

/** Parse a body's bytes, or throw the 400 that says why they cannot be kept as sent. */
export function parseJsonBody(bytes: Buffer, maxDepth: number): unknown {
  if (!isUtf8(bytes)) throw Errors.badUtf8('the body is not valid UTF-8: its bytes could not be kept as sent');
  const text = bytes.toString('utf8');
  // A leading byte-order mark is dropped, as fastify's own parser did.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.length === 0) throw Errors.badJson('the body is empty');
  const fault = scanJson(body, maxDepth);
  if (fault?.code === Errors.jsonTooDeep.code) throw fault;
  let value: unknown;
  try {
    value = JSON.parse(body) as unknown;
  } catch (err) {
    throw Errors.badJson(`the body is not valid JSON: ${(err as Error).message}`);
  }
  if (fault) throw fault;
  return value;
}

/** Replaces fastify's application/json parser (the body limit still applies: fastify reads the bytes). */
export function useJsonBodyParser(app: FastifyInstance, maxDepth: number): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, bytes, done) => {
    try {
      done(null, parseJsonBody(bytes as Buffer, maxDepth));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

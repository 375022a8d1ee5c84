// The one parser of JSON bodies (every route: requests, work API). It refuses a body that nests
// arrays and objects deeper than --max-json-depth before parsing it: deep JSON would otherwise
// be accepted and then overflow the stack later (JSON.stringify of the payload, PostgreSQL's
// jsonb cast when draining, a result in a callback body), a 500 or a segment that cannot drain.
// The check is a single loop over the text (no recursion of its own to overflow).
//
// Payloads are the clients' data, stored as sent: a key named __proto__ or constructor is legal
// JSON and must not cost a 400. Plain JSON.parse is safe here because bodies are only validated
// and serialised again, never merged into other objects (JSON.parse makes __proto__ an own key).
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

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

/** Whether arrays and objects in `text` nest more than `max` levels deep (brackets inside strings do not count). */
export function nestsDeeperThan(text: string, max: number): boolean {
  // Nesting deeper than max takes more than max opening brackets.
  if (text.length <= max) return false;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i);
      if (i === -1) return false; // an unterminated string: JSON.parse refuses it
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > max) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

export function parseJsonBody(text: string, maxDepth: number): unknown {
  // A leading byte-order mark is dropped, as fastify's own parser did.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.length === 0) throw Errors.badJson('the body is empty');
  if (nestsDeeperThan(body, maxDepth)) throw Errors.jsonTooDeep(`the body nests arrays and objects more than ${maxDepth} levels deep (--max-json-depth)`);
  try {
    return JSON.parse(body) as unknown;
  } catch (err) {
    throw Errors.badJson(`the body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Replaces fastify's application/json parser (the body limit still applies: fastify reads the text). */
export function useJsonBodyParser(app: FastifyInstance, maxDepth: number): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, text, done) => {
    try {
      done(null, parseJsonBody(text as string, maxDepth));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

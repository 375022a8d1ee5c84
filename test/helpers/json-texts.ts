// fast-check arbitraries of JSON texts as a careless client writes them: numbers in every
// spelling (big integers, long decimals, huge and tiny exponents, -0), keys twice (also spelled
// with escapes), deep nesting, odd whitespace, unicode escapes (pairs, lone surrogates, U+0000),
// and bytes that are not UTF-8. Each text says what it must be refused for (`must`: error codes,
// any one of which is a right answer) and whether a number in it may be refused (`risky`: a
// number a double may not hold exactly as written); a text with neither must be accepted.
import fc from 'fast-check';

export const CODES = {
  badUtf8: 'INTAKE_BAD_UTF8',
  tooDeep: 'INTAKE_JSON_TOO_DEEP',
  badJson: 'INTAKE_BAD_JSON',
  duplicateKey: 'INTAKE_JSON_DUPLICATE_KEY',
  inexactNumber: 'INTAKE_JSON_INEXACT_NUMBER',
  badRequest: 'INTAKE_BAD_REQUEST',
} as const;

export interface JsonPiece {
  text: string;
  must: string[];
  risky: boolean;
  /** Levels of arrays and objects. */
  depth: number;
}

const piece = (text: string, must: string[] = [], risky = false, depth = 0): JsonPiece => ({ text, must, risky, depth });

/** JSON's four whitespace characters, mostly none; now and then a space JSON does not allow. */
const ws: fc.Arbitrary<JsonPiece> = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('', '', '', ' ', '\n', '\t', '\r\n  ', ' \t ').map((t) => piece(t)) },
  { weight: 1, arbitrary: fc.constantFrom('\u00a0', '\u2028', '\f', '\v').map((t) => piece(t, [CODES.badJson])) },
);

const numbers: fc.Arbitrary<JsonPiece> = fc.oneof(
  fc.integer().map((n) => piece(String(n))),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => piece(String(v))),
  // Other spellings of a double's value: an upper-case E and an explicit sign, trailing zeros.
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => piece(v.toExponential().replace('e', 'E'))),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).map((v) => piece(`${String(v)}${String(v).includes('.') && !String(v).includes('e') ? '000' : ''}`)),
  fc.constantFrom('-0', '-0.0', '1.0', '1e2', '0.1', '1E-7', '0e400', '5e-324', '1.7976931348623157e308', '9007199254740992').map((t) => piece(t)),
  fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '0.1000000000000000000001', '1e-400', '9007199254740993').map((t) => piece(t, [CODES.inexactNumber])),
  // Numbers a double may or may not hold as written.
  fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }).map((n) => piece(String(n), [], true)),
  fc
    .tuple(fc.stringMatching(/^-?[1-9][0-9]{0,19}$/), fc.stringMatching(/^[0-9]{1,20}$/), fc.integer({ min: -330, max: 330 }))
    .map(([a, b, e]) => piece(`${a}.${b}e${e}`, [], true)),
);

/** A part of a string literal, as written between the quotes. */
const stringPart: fc.Arbitrary<JsonPiece> = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }).map((s) => piece(JSON.stringify(s).slice(1, -1))) },
  { weight: 2, arbitrary: fc.constantFrom('\\n', '\\t', '\\"', '\\\\', '\\/', '\\b', '\\f', '\\r').map((t) => piece(t)) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: 0xffff }).filter((c) => c < 0xd800 || c > 0xdfff), fc.boolean())
      .map(([c, upper]) => piece(`\\u${c.toString(16).padStart(4, '0')[upper ? 'toUpperCase' : 'toLowerCase']()}`)),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => {
      const s = String.fromCodePoint(c);
      return piece(`\\u${s.charCodeAt(0).toString(16)}\\u${s.charCodeAt(1).toString(16)}`);
    }),
  },
  // The database cannot store these: U+0000 and lone surrogates (the x keeps a neighbour from pairing them).
  { weight: 1, arbitrary: fc.constantFrom('\\u0000', '\\ud800x', 'x\\uDC00', '\\uDBFFx').map((t) => piece(t, [CODES.badRequest])) },
  // A raw control character is not JSON.
  { weight: 1, arbitrary: fc.constantFrom('\u0001', '\n', '\u001f').map((t) => piece(t, [CODES.badJson])) },
);

function concat(parts: JsonPiece[], depth = 0): JsonPiece {
  return piece(
    parts.map((p) => p.text).join(''),
    parts.flatMap((p) => p.must),
    parts.some((p) => p.risky),
    depth,
  );
}

const stringLiteral: fc.Arbitrary<JsonPiece> = fc.array(stringPart, { maxLength: 4 }).map((ps) => concat([piece('"'), ...ps, piece('"')]));

/** Keys from a small set, so that objects often hold one twice, sometimes spelled with an escape. */
const key: fc.Arbitrary<JsonPiece> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('"a"', '"b"', '"__proto__"', '""', '"ü"', '"\\u0061"', '"\\u00fc"').map((t) => piece(t)) },
  { weight: 1, arbitrary: stringLiteral },
);

/** The key a literal decodes to; null when it is not valid JSON (then the text is refused anyway). */
function decodedKey(literal: string): string | null {
  try {
    return JSON.parse(literal) as string;
  } catch {
    return null;
  }
}

function objectOf(members: [JsonPiece, JsonPiece, JsonPiece, JsonPiece][]): JsonPiece {
  const seen = new Set<string>();
  let twice = false;
  const parts: JsonPiece[] = [piece('{')];
  members.forEach(([k, w1, v, w2], i) => {
    const name = decodedKey(k.text);
    if (name !== null && seen.has(name)) twice = true;
    if (name !== null) seen.add(name);
    parts.push(...(i > 0 ? [piece(',')] : []), w1, k, piece(':'), v, w2);
  });
  parts.push(piece('}'));
  const o = concat(parts, 1 + Math.max(0, ...members.map((m) => m[2].depth)));
  if (twice) o.must.push(CODES.duplicateKey);
  return o;
}

function arrayOf(items: [JsonPiece, JsonPiece][]): JsonPiece {
  const parts: JsonPiece[] = [piece('[')];
  items.forEach(([w, v], i) => parts.push(...(i > 0 ? [piece(',')] : []), w, v));
  parts.push(piece(']'));
  return concat(parts, 1 + Math.max(0, ...items.map((it) => it[1].depth)));
}

/** A value nested `n` arrays deep. */
function nested(n: number, v: JsonPiece): JsonPiece {
  return { ...v, text: `${'['.repeat(n)}${v.text}${']'.repeat(n)}`, depth: v.depth + n };
}

const { value } = fc.letrec<{ value: JsonPiece; array: JsonPiece; object: JsonPiece; deep: JsonPiece }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 2, arbitrary: fc.constantFrom('null', 'true', 'false').map((t) => piece(t)) },
    { weight: 6, arbitrary: numbers },
    { weight: 4, arbitrary: stringLiteral },
    { weight: 4, arbitrary: tie('array') },
    { weight: 4, arbitrary: tie('object') },
    { weight: 1, arbitrary: tie('deep') },
  ),
  array: fc.array(fc.tuple(ws, tie('value')), { maxLength: 4 }).map(arrayOf),
  object: fc.array(fc.tuple(key, ws, tie('value'), ws), { maxLength: 5 }).map(objectOf),
  // Around the depth limit (64): the route's own levels decide which side of it the text is.
  deep: fc.tuple(fc.integer({ min: 56, max: 68 }), fc.constantFrom('1', '{}', '"s"').map((t) => piece(t, [], false, t === '{}' ? 1 : 0))).map(([n, v]) => nested(n, v)),
}));

/** A whole JSON text with whitespace around it. */
export const jsonText: fc.Arbitrary<JsonPiece> = fc.tuple(ws, value, ws).map((ps) => concat(ps, ps[1].depth));

/** Sequences of bytes that are not UTF-8 (a stray byte, an overlong form, a cut sequence, an encoded surrogate). */
export const notUtf8: fc.Arbitrary<number[]> = fc.constantFrom([0xff], [0x80], [0xc3, 0x28], [0xc0, 0xaf], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0xf4, 0x90, 0x80, 0x80]);

/** The text as bytes, with `bad` (bytes that are not UTF-8) put inside its first string, or after it. */
export function bytesOf(text: string, bad: number[] | null): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (!bad) return b;
  const at = b.indexOf(0x22) + 1 || b.length;
  return Buffer.concat([b.subarray(0, at), Buffer.from(bad), b.subarray(at)]);
}

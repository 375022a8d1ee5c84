// containsNul: the guard that keeps U+0000 (which PostgreSQL cannot store) out of the database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { containsNul, parseCancelRecord, unstorableJson } from '../../src/spool/records.js';

test('containsNul(JSON text of v) is true exactly when v holds U+0000 in a string or key', () => {
  // Strings rich in backslashes, the letters of "u0000" and NUL itself, so escapes meet often.
  const tricky = fc.string({ unit: fc.constantFrom('\\', 'u', '0', '\u0000', 'a', '"'), maxLength: 12 });
  const value = fc.oneof(tricky, fc.dictionary(tricky, tricky, { maxKeys: 3 }), fc.array(tricky, { maxLength: 3 }));
  const hasNul = (v: unknown): boolean =>
    typeof v === 'string' ? v.includes('\u0000') : Array.isArray(v) ? v.some(hasNul) : typeof v === 'object' && v !== null ? Object.entries(v).some(([k, x]) => k.includes('\u0000') || hasNul(x)) : false;
  fc.assert(
    fc.property(value, (v) => containsNul(JSON.stringify(v)) === hasNul(v)),
    { numRuns: 5000 },
  );
});

test('containsNul on plain text looks for the raw character only where it is not JSON', () => {
  assert.equal(containsNul('https://example.com/a\u0000b'), true);
  assert.equal(containsNul('https://example.com/ab'), false);
  assert.equal(containsNul(JSON.stringify('\\u0000')), false, 'an escaped backslash followed by u0000 is text');
  assert.equal(containsNul(JSON.stringify('\\\u0000')), true);
});

test('unstorableJson(JSON text of v) is non-null exactly when v holds U+0000 or a lone surrogate in a string or key', () => {
  // Backslashes, the letters of escapes, NUL, both halves of a surrogate pair and a whole pair.
  const unit = fc.constantFrom('\\', 'u', 'd', '8', '0', '\u0000', '\ud800', '\udc00', '\ud83d\ude00', 'a', '"');
  const tricky = fc.string({ unit, maxLength: 10 });
  const value = fc.oneof(tricky, fc.dictionary(tricky, tricky, { maxKeys: 3 }), fc.array(tricky, { maxLength: 3 }));
  // A string is storable when it has no NUL and encodes to UTF-8 and back unchanged (no lone surrogate).
  const bad = (s: string) => s.includes('\u0000') || Buffer.from(s, 'utf8').toString('utf8') !== s;
  const holds = (v: unknown): boolean =>
    typeof v === 'string' ? bad(v) : Array.isArray(v) ? v.some(holds) : typeof v === 'object' && v !== null ? Object.entries(v).some(([k, x]) => bad(k) || holds(x)) : false;
  fc.assert(
    fc.property(value, (v) => (unstorableJson(JSON.stringify(v)) !== null) === holds(v)),
    { numRuns: 5000 },
  );
});

test('parseCancelRecord takes a cancel record and refuses anything else (the drainer quarantines it)', () => {
  const ok = { id: '0192f3a4-1b2c-7d3e-8f40-123456789abc', tenant: 'default', at: 1_795_693_749_689, node: 'web-1' };
  assert.deepEqual(parseCancelRecord(JSON.stringify({ ...ok, extra: 1 })), ok, 'unknown fields are ignored');
  for (const bad of ['{', 'null', '[]', JSON.stringify({ ...ok, id: 'x' }), JSON.stringify({ ...ok, at: '1' }), JSON.stringify({ ...ok, tenant: 1 }), JSON.stringify({ ...ok, node: 'a\u0000' })]) {
    assert.equal(parseCancelRecord(bad), null, bad);
  }
});

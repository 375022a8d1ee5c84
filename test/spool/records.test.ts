// containsNul: the guard that keeps U+0000 (which PostgreSQL cannot store) out of the database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { containsNul } from '../../src/spool/records.js';

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

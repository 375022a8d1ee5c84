// The JSON body parser on its own (src/http/json-body.ts): what it refuses because it could not
// be kept exactly, with which code, and what it lets through unchanged. The routes' answers are
// tested over HTTP in test/http/exact.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonBody } from '../../src/http/json-body.js';
import { IntakeError } from '../../src/errors.js';

const parse = (body: string | Buffer, depth = 64) => parseJsonBody(typeof body === 'string' ? Buffer.from(body) : body, depth);

function refused(body: string | Buffer, code: string, depth = 64): void {
  assert.throws(
    () => parse(body, depth),
    (e: unknown) => e instanceof IntakeError && e.code === code && e.statusCode === 400,
    `${String(body).slice(0, 60)} → ${code}`,
  );
}

test('numbers a double cannot hold as written are refused; those it can, in any spelling, pass', () => {
  for (const n of [
    '1e400',
    '-1e400',
    '123456789012345678901234567890',
    '0.1000000000000000000001',
    '9007199254740993',
    '1e-400',
    '2.5e-324',
    '18446744073709551616',
    '0.30000000000000001',
    `1${'0'.repeat(400)}`,
  ]) {
    refused(`{"n":${n}}`, 'INTAKE_JSON_INEXACT_NUMBER');
    refused(`[${n}]`, 'INTAKE_JSON_INEXACT_NUMBER');
  }
  const exact: [string, number][] = [
    ['1.0', 1],
    ['1e2', 100],
    ['0.1', 0.1],
    ['1E-7', 1e-7],
    ['-0', 0],
    ['-0.0e5', 0],
    ['0e400', 0],
    ['9007199254740992', 2 ** 53],
    ['1e21', 1e21],
    ['100000000000000000000000', 1e23],
    ['1.7976931348623157e308', Number.MAX_VALUE],
    ['5e-324', Number.MIN_VALUE],
    ['0.30000000000000004', 0.1 + 0.2],
    ['123456789012345', 123456789012345],
    ['-12345.6789012345', -12345.6789012345],
    ['1.50000000000000000000', 1.5],
    ['0.000000000000000000000000000001', 1e-30],
  ];
  // Compared as they will be kept: JSON.stringify's text (which writes -0 as 0).
  for (const [text, value] of exact) assert.equal(JSON.stringify(parse(`{"n":[${text}]}`)), JSON.stringify({ n: [value] }), text);
});

test('an object with a key twice is refused, also when escapes spell it differently; the same key in sibling or nested objects passes', () => {
  refused('{"a":1,"a":2}', 'INTAKE_JSON_DUPLICATE_KEY');
  refused('{"a":1,"\\u0061":2}', 'INTAKE_JSON_DUPLICATE_KEY');
  refused('{"x":[{"k":1,"j":{"k":2},"k":3}]}', 'INTAKE_JSON_DUPLICATE_KEY');
  refused('{"__proto__":1,"__proto__":2}', 'INTAKE_JSON_DUPLICATE_KEY');
  refused('{"":1,"":1}', 'INTAKE_JSON_DUPLICATE_KEY');
  assert.deepEqual(parse('[{"a":1},{"a":2}]'), [{ a: 1 }, { a: 2 }]);
  assert.deepEqual(parse('{"a":{"a":{"a":"a"}},"b":["a","a"]}'), { a: { a: { a: 'a' } }, b: ['a', 'a'] });
  assert.deepEqual(parse('{"a\\"":1,"a":2,"a\\\\":3}'), { 'a"': 1, a: 2, 'a\\': 3 });
  // A value equal to a key is not a key.
  assert.deepEqual(parse('{"k":"k","v":{"k":"v"}}'), { k: 'k', v: { k: 'v' } });
});

test('bytes that are not UTF-8 are refused; a byte-order mark is dropped; bad JSON stays INTAKE_BAD_JSON', () => {
  for (const bad of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0xc0, 0xaf], [0xf8, 0x88, 0x80, 0x80, 0x80]]) {
    refused(Buffer.concat([Buffer.from('{"s":"'), Buffer.from(bad), Buffer.from('"}')]), 'INTAKE_BAD_UTF8');
  }
  assert.deepEqual(parse(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"s":"ü🎉"}')])), { s: 'ü🎉' });
  refused('', 'INTAKE_BAD_JSON');
  refused('{"a":1,"a":', 'INTAKE_BAD_JSON');
  refused('[1e400', 'INTAKE_BAD_JSON');
  refused('{"a":01}', 'INTAKE_BAD_JSON');
});

test('depth is checked before parsing and wins over the other faults', () => {
  refused(`{"a":1,"a":${'['.repeat(100)}`, 'INTAKE_JSON_TOO_DEEP');
  refused(`[1e400,${'['.repeat(70)}${']'.repeat(70)}]`, 'INTAKE_JSON_TOO_DEEP');
  assert.deepEqual(parse(`${'['.repeat(3)}1${']'.repeat(3)}`, 3), [[[1]]]);
  refused(`${'['.repeat(4)}1${']'.repeat(4)}`, 'INTAKE_JSON_TOO_DEEP', 3);
});

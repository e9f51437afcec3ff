import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CborError, decode, encode } from '../src/cbor.js';

const hex = (b) => Buffer.from(b).toString('hex');
const bytes = (h) => new Uint8Array(Buffer.from(h, 'hex'));

// RFC 8949 appendix A examples this codec encodes the same way.
const RFC = [
  [0, '00'], [23, '17'], [24, '1818'], [1000, '1903e8'], [1000000, '1a000f4240'],
  [18446744073709551615n, '1bffffffffffffffff'], [-1, '20'], [-1000, '3903e7'],
  ['', '60'], ['IETF', '6449455446'], ['\u00fc', '62c3bc'], [bytes('01020304'), '4401020304'],
  [[1, [2, 3], [4, 5]], '8301820203820405'], [{ a: 1, b: [2, 3] }, 'a26161016162820203'],
  [false, 'f4'], [true, 'f5'], [null, 'f6'], [1.1, 'fb3ff199999999999a'],
];

test('RFC 8949 examples encode and decode', () => {
  for (const [value, h] of RFC) {
    assert.equal(hex(encode(value)), h, `encode ${h}`);
    assert.deepEqual(decode(bytes(h)), value, `decode ${h}`);
  }
});

test("other encoders' forms decode", () => {
  assert.equal(decode(bytes('f93c00')), 1.0);
  assert.equal(decode(bytes('fa47c35000')), 100000.0);
  assert.deepEqual(decode(bytes('9f018202039f0405ffff')), [1, [2, 3], [4, 5]]);
  assert.equal(decode(bytes('7f657374726561646d696e67ff')), 'streaming');
  assert.equal(decode(bytes('c11a514b67b0')), 1363896240);
});

test('bad bytes are a CborError naming the problem', () => {
  for (const [h, why] of [['', /truncated/], ['1a0000', /truncated/], ['0000', /bytes after/],
    ['62fffe', /not UTF-8/], ['1c', /reserved/], ['ff', /break/], ['81'.repeat(300) + '00', /deeper/]]) {
    assert.throws(() => decode(bytes(h)), (e) => e instanceof CborError && why.test(e.message), h);
  }
});

test('values CBOR cannot hold are refused', () => {
  assert.throws(() => encode(1n << 64n), /64 bits/);
  assert.throws(() => encode(new Map()), /cannot encode a Map/);
});

test('bytes come as any typed array, buffer or byte array', () => {
  const h = 'a161610f';
  assert.deepEqual(decode(bytes(h).buffer), { a: 15 });
  assert.deepEqual(decode(Array.from(bytes(h))), { a: 15 });
  assert.deepEqual(decode(new DataView(bytes(h).buffer)), { a: 15 });
  assert.throws(() => decode('a1'), /expected bytes, got String/);
});

test('keys, edges and marks survive as they came', () => {
  const proto = decode(bytes('a1695f5f70726f746f5f5fa16561646d696ef5'));
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, '__proto__ is a key, not the prototype');
  assert.deepEqual(Object.keys(proto), ['__proto__']);
  assert.equal(hex(encode(proto)), 'a1695f5f70726f746f5f5fa16561646d696ef5');
  assert.equal(decode(bytes('3b001fffffffffffff')), -9007199254740992n, '-2^53 is a bigint');
  assert.equal(decode(bytes('3b001ffffffffffffe')), -9007199254740991);
  assert.equal(decode(bytes('63efbbbf')), '\ufeff', 'a leading BOM is text');
});

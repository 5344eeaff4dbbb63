import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize, tryParseSize, StoreError } from '../../../src/backing/index.js';

test('size syntax: plain bytes and binary units, case-insensitive, optional B/iB', () => {
  assert.equal(parseSize('1048576'), 1048576);
  assert.equal(parseSize('512B'), 512);
  assert.equal(parseSize('4k'), 4096);
  assert.equal(parseSize('64M'), 64 * 2 ** 20);
  assert.equal(parseSize('64MiB'), 64 * 2 ** 20);
  assert.equal(parseSize(' 1GB '), 2 ** 30);
  assert.equal(parseSize('2T'), 2 * 2 ** 40);
  assert.equal(parseSize('1p'), 2 ** 50);
});

test('size syntax: garbage, zero, fractions, negatives and overflow are TGT_ERR_BS_BAD_SIZE', () => {
  for (const bad of ['', 'abc', '0', '0M', '1.5G', '-1', '12X', '64iB', '/dev/sda', '99999P']) {
    assert.throws(
      () => parseSize(bad),
      (e: unknown) => StoreError.is(e) && e.code === 'TGT_ERR_BS_BAD_SIZE',
      bad,
    );
    assert.equal(tryParseSize(bad), undefined);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nullStoreType, NULL_DEFAULT_SIZE, StoreError } from '../../../src/backing/index.js';

test('tgt §1.4: null store is 1 TiB and ignores a path that is not a size', async () => {
  const store = await nullStoreType.open('/dev/null', {});
  assert.equal(store.size, 2 ** 40);
  assert.equal(NULL_DEFAULT_SIZE, 2 ** 40);
  assert.equal(store.path, '/dev/null');
  assert.equal((await nullStoreType.open('', {})).path, 'None');
});

test('null store: a path that parses as a size sets the size', async () => {
  const store = await nullStoreType.open('4G', {});
  assert.equal(store.size, 4 * 2 ** 30);
});

test('null store: reads fill the buffer with zeroes (tgt leaves it stale)', async () => {
  const store = await nullStoreType.open('None', {});
  const buf = Buffer.alloc(4096, 0xa5);
  await store.read(buf, 2 ** 40 - 4096);
  assert.ok(buf.every((b) => b === 0));
});

test('null store: writes are discarded; reads after writes still return zeroes', async () => {
  const store = await nullStoreType.open('1M', {});
  await store.write([Buffer.alloc(512, 1)], 0, false);
  const buf = Buffer.alloc(512, 7);
  await store.read(buf, 0);
  assert.ok(buf.every((b) => b === 0));
});

test('null store: out-of-range and read-only misuse are typed errors', async () => {
  const store = await nullStoreType.open('1M', {});
  await assert.rejects(store.read(Buffer.alloc(512), 2 ** 20 - 511), { code: 'TGT_ERR_BS_OUT_OF_RANGE' });
  const ro = await nullStoreType.open('1M', { readonly: true });
  assert.equal(ro.capabilities.readonly, true);
  await assert.rejects(ro.write([Buffer.alloc(512)], 0, false), (e: unknown) => StoreError.is(e));
});

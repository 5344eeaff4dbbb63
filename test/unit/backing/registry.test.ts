import { test } from 'node:test';
import assert from 'node:assert/strict';
import { storeTypes, getStoreType, DEFAULT_STORE_TYPE } from '../../../src/backing/index.js';

test('tgt §1.4: rdwr is the default bstype and accepts bsoflags sync and direct', () => {
  assert.equal(DEFAULT_STORE_TYPE, 'rdwr');
  assert.deepEqual(getStoreType('rdwr')?.supportedOflags, ['sync', 'direct']);
});

test('registry: memory and null take no bsoflags; unknown names are undefined', () => {
  assert.deepEqual([...storeTypes.keys()], ['rdwr', 'memory', 'null']);
  assert.deepEqual(getStoreType('memory')?.supportedOflags, []);
  assert.deepEqual(getStoreType('null')?.supportedOflags, []);
  assert.equal(getStoreType('aio'), undefined);
  for (const [name, type] of storeTypes) assert.equal(type.name, name);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { memoryStoreType, MemoryStore, MEMORY_CHUNK_SIZE } from '../../../src/backing/index.js';

const CHUNK = MEMORY_CHUNK_SIZE;

async function openMemory(size: string): Promise<MemoryStore> {
  const store = await memoryStoreType.open(size, {});
  assert.ok(store instanceof MemoryStore);
  return store;
}

test('memory store: path is the size; a 1 GiB LU allocates nothing until written', async () => {
  const store = await openMemory('1G');
  assert.equal(store.size, 2 ** 30);
  assert.equal(store.path, '1G');
  assert.equal(store.allocatedBytes, 0);
  const buf = Buffer.alloc(8192, 0xff);
  await store.read(buf, 123456789);
  assert.ok(
    buf.every((b) => b === 0),
    'unwritten ranges read as zeroes',
  );
  assert.equal(store.allocatedBytes, 0, 'reads do not allocate');
});

test('memory store: bad size is rejected at open', async () => {
  await assert.rejects(memoryStoreType.open('lots', {}), { code: 'TGT_ERR_BS_BAD_SIZE' });
});

test('memory store: round trip of a multi-segment write at an unaligned offset across chunk boundaries', async () => {
  const store = await openMemory('1M');
  const data = randomBytes(3 * CHUNK + 777);
  const offset = CHUNK - 13;
  // Segments of odd sizes, as views of one buffer (like Data-Out PDUs).
  const segments = [data.subarray(0, 5), data.subarray(5, CHUNK + 100), data.subarray(CHUNK + 100)];
  await store.write(segments, offset, false);
  const back = Buffer.alloc(data.length);
  await store.read(back, offset);
  assert.deepEqual(back, data);
  // Bytes just outside the written range are still zero.
  const edges = Buffer.alloc(2);
  await store.read(edges.subarray(0, 1), offset - 1);
  await store.read(edges.subarray(1, 2), offset + data.length);
  assert.deepEqual(edges, Buffer.from([0, 0]));
  assert.equal(store.allocatedBytes, 5 * CHUNK);
});

test('memory store: last byte of the LU is writable; one past is TGT_ERR_BS_OUT_OF_RANGE', async () => {
  const store = await openMemory('1M');
  await store.write([Buffer.from([0x42])], 2 ** 20 - 1, false);
  const b = Buffer.alloc(1);
  await store.read(b, 2 ** 20 - 1);
  assert.equal(b[0], 0x42);
  await assert.rejects(store.write([Buffer.alloc(2)], 2 ** 20 - 1, false), {
    code: 'TGT_ERR_BS_OUT_OF_RANGE',
  });
  await assert.rejects(store.read(Buffer.alloc(1), 2 ** 20), { code: 'TGT_ERR_BS_OUT_OF_RANGE' });
});

test('memory store: unmap frees whole chunks and zeroes partial ones; reads return zeroes', async () => {
  const store = await openMemory('1M');
  await store.write([Buffer.alloc(4 * CHUNK, 0xee)], 0, false);
  assert.equal(store.allocatedBytes, 4 * CHUNK);
  assert.equal(store.capabilities.unmap, true);
  await store.unmap!(CHUNK / 2, 2 * CHUNK); // half of chunk 0, all of chunk 1, half of chunk 2
  assert.equal(store.allocatedBytes, 3 * CHUNK);
  const back = Buffer.alloc(4 * CHUNK);
  await store.read(back, 0);
  const expected = Buffer.alloc(4 * CHUNK, 0xee);
  expected.fill(0, CHUNK / 2, CHUNK / 2 + 2 * CHUNK);
  assert.deepEqual(back, expected);
});

test('memory store: readonly option refuses writes and unmap', async () => {
  const store = await memoryStoreType.open('1M', { readonly: true });
  assert.equal(store.capabilities.readonly, true);
  assert.equal(store.capabilities.unmap, false);
  await assert.rejects(store.write([Buffer.alloc(512)], 0, false), { code: 'TGT_ERR_BS_READONLY' });
});

test('memory store: allocation map is the set of chunks; a partial unmap that leaves only zeroes frees the chunk', async () => {
  const store = await openMemory('1M');
  assert.equal(store.allocationGranularity, CHUNK);
  assert.deepEqual(await store.allocationAt(0, 2 ** 20), { mapped: false, length: 2 ** 20 });
  await store.write([Buffer.alloc(100, 1)], CHUNK + 10, false);
  assert.deepEqual(await store.allocationAt(0, 2 ** 20), { mapped: false, length: CHUNK });
  assert.deepEqual(await store.allocationAt(CHUNK + 5, 2 ** 20), { mapped: true, length: CHUNK - 5 });
  await store.unmap(CHUNK, 200); // zeroes the only data of chunk 1: nothing left to keep
  assert.equal(store.allocatedBytes, 0);
  assert.deepEqual(await store.allocationAt(0, 2 ** 20), { mapped: false, length: 2 ** 20 });
});

test('memory store: the allocation map of a huge unwritten LU is answered without walking the hole', async () => {
  const store = await openMemory('1P');
  await store.write([Buffer.alloc(1, 1)], 2 ** 49, false);
  const started = Date.now();
  assert.deepEqual(await store.allocationAt(0, 2 ** 50), { mapped: false, length: 2 ** 49 });
  assert.deepEqual(await store.allocationAt(2 ** 49, 2 ** 50), { mapped: true, length: CHUNK });
  assert.deepEqual(await store.allocationAt(2 ** 49 + CHUNK, 2 ** 50), {
    mapped: false,
    length: 2 ** 50 - 2 ** 49 - CHUNK,
  });
  assert.ok(Date.now() - started < 100);
});

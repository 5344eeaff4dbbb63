import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  acquireBuffer,
  idleBufferCounts,
  POOLED_MAX_BYTES,
  releaseBuffer,
} from '../../../src/scsi/buffer-pool.js';

test('payload pool: a released buffer is handed out again for the next request of its size class', () => {
  const first = acquireBuffer(8000);
  const memory = first.buffer;
  releaseBuffer(first);
  const again = acquireBuffer(8192);
  assert.equal(again.buffer, memory);
  assert.equal(again.length, 8192);
  releaseBuffer(again);
});

test('payload pool: releasing a buffer twice (or a view of it) returns it once, so two owners never share it', () => {
  const buf = acquireBuffer(16 * 1024);
  releaseBuffer(buf);
  releaseBuffer(buf.subarray(100));
  const a = acquireBuffer(16 * 1024);
  const b = acquireBuffer(16 * 1024);
  assert.notEqual(a.buffer, b.buffer);
  releaseBuffer(a);
  releaseBuffer(b);
});

test("payload pool: buffers it did not hand out are never taken in (e.g. a slice of Node's 8 KiB pool)", () => {
  const before = idleBufferCounts();
  const foreign = Buffer.allocUnsafe(100); // a view of Node's shared 8 KiB allocation pool
  releaseBuffer(foreign);
  releaseBuffer(Buffer.from(new ArrayBuffer(4096)));
  assert.deepEqual(idleBufferCounts(), before);
});

test('payload pool: requests above the largest class are plain allocations, and releasing them is harmless', () => {
  const big = acquireBuffer(POOLED_MAX_BYTES + 1);
  assert.equal(big.length, POOLED_MAX_BYTES + 1);
  const before = idleBufferCounts();
  releaseBuffer(big);
  assert.deepEqual(idleBufferCounts(), before);
});

test('payload pool: idle buffers per size class are bounded (4 MiB of each)', () => {
  const held = Array.from({ length: 40 }, () => acquireBuffer(POOLED_MAX_BYTES));
  for (const b of held) releaseBuffer(b);
  assert.equal(idleBufferCounts().at(-1), (4 * 1024 * 1024) / POOLED_MAX_BYTES);
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoWorker, MAX_REQUEST_BYTES } from '../../../src/backing/io-worker.js';

const dir = mkdtempSync(join(tmpdir(), 'io-worker-'));
const workers: IoWorker[] = [];
after(async () => {
  for (const w of workers) assert.equal(w.running, true, 'the worker thread served every test (no fallback)');
  await Promise.all(workers.map((w) => w.terminate()));
  rmSync(dir, { recursive: true, force: true });
});

function newWorker(options: ConstructorParameters<typeof IoWorker>[0] = {}): IoWorker {
  const w = new IoWorker(options);
  workers.push(w);
  return w;
}

function sparseFile(name: string, size: number): number {
  const fd = openSync(join(dir, name), 'w+');
  ftruncateSync(fd, size);
  return fd;
}

function readBack(fd: number, length: number, position: number): Buffer {
  const out = Buffer.alloc(length);
  readSync(fd, out, 0, length, position);
  return out;
}

test('I/O worker: a write of several segments lands whole and reads back, also beyond 4 GiB', async () => {
  const w = newWorker();
  const fd = sparseFile('big.img', 6 * 2 ** 30);
  const parts = [randomBytes(512), randomBytes(3584), randomBytes(4096)];
  const at = 5 * 2 ** 30 + 8192; // needs both 32-bit halves of the position
  await w.write(fd, parts, at);
  assert.deepEqual(readBack(fd, 8192, at), Buffer.concat(parts), 'the file holds the segments in order');
  const into = Buffer.alloc(8192);
  await w.read(fd, into, at);
  assert.deepEqual(into, Buffer.concat(parts), 'the worker reads the same bytes into the caller buffer');
  closeSync(fd);
});

test('I/O worker: a read past the end of the file is zero-filled (the file shrank)', async () => {
  const w = newWorker();
  const fd = sparseFile('short.img', 4096);
  await w.write(fd, [Buffer.alloc(4096, 0xab)], 0);
  const into = Buffer.alloc(8192, 0xff);
  await w.read(fd, into, 0);
  assert.deepEqual(into.subarray(0, 4096), Buffer.alloc(4096, 0xab));
  assert.deepEqual(into.subarray(4096), Buffer.alloc(4096), 'bytes past EOF read as zeroes');
  closeSync(fd);
});

test('I/O worker: a failing syscall rejects with its errno code (EBADF), and the worker keeps serving', async () => {
  const w = newWorker();
  const path = join(dir, 'ro.img');
  closeSync(openSync(path, 'w'));
  const ro = openSync(path, 'r');
  await assert.rejects(w.write(ro, [Buffer.alloc(512)], 0), { code: 'EBADF' });
  const fd = sparseFile('after-error.img', 4096);
  await w.write(fd, [Buffer.alloc(512, 1)], 0);
  assert.deepEqual(readBack(fd, 512, 0), Buffer.alloc(512, 1));
  closeSync(ro);
  closeSync(fd);
});

test('I/O worker: more requests than slots and arena wait their turn and all complete with the right data', async () => {
  const w = newWorker({ slotCount: 4, arenaBytes: 48 * 1024 });
  const fd = sparseFile('many.img', 4 * 2 ** 20);
  const blocks = Array.from({ length: 120 }, () => randomBytes(16 * 1024));
  await Promise.all(blocks.map((b, i) => w.write(fd, [b], i * 16 * 1024)));
  for (let i = 0; i < blocks.length; i++) {
    assert.deepEqual(readBack(fd, 16 * 1024, i * 16 * 1024), blocks[i], `block ${i}`);
  }
  const reads = blocks.map(() => Buffer.alloc(16 * 1024));
  await Promise.all(reads.map((r, i) => w.read(fd, r, i * 16 * 1024)));
  reads.forEach((r, i) => assert.deepEqual(r, blocks[i], `read ${i}`));
  closeSync(fd);
});

test('I/O worker: requests above 128 KiB are not taken (they go to the thread pool)', () => {
  const w = newWorker();
  assert.equal(w.accepts(MAX_REQUEST_BYTES), true);
  assert.equal(w.accepts(MAX_REQUEST_BYTES + 512), false);
});

test('I/O worker: a stalled request does not hold up the ones behind it (they move to the thread pool)', async () => {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  const script = new URL(`../../helpers/stalling-io-thread.${ext}`, import.meta.url);
  const w = newWorker({ stallMs: 20, script });
  const fd = sparseFile('stall.img', 2 ** 20);
  const started = performance.now();
  const slow = w.write(fd, [Buffer.alloc(3584, 7)], 0); // the helper thread sleeps 400 ms on this size
  const others = Array.from({ length: 8 }, (_, i) =>
    w.write(fd, [Buffer.alloc(4096, i + 1)], (i + 1) * 4096),
  );
  await Promise.all(others);
  const othersMs = performance.now() - started;
  assert.ok(othersMs < 300, `the requests behind the stalled one finished after ${othersMs.toFixed(0)} ms`);
  assert.equal(w.accepts(4096), false, 'a stalled worker takes no new requests');
  await slow;
  for (let i = 0; i < 8; i++) assert.deepEqual(readBack(fd, 4096, (i + 1) * 4096), Buffer.alloc(4096, i + 1));
  assert.deepEqual(readBack(fd, 3584, 0), Buffer.alloc(3584, 7), 'the stalled write still lands');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.accepts(4096), true, 'once it drained the worker takes requests again');
  closeSync(fd);
});

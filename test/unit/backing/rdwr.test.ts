import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, open, rm, stat, chmod, writeFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rdwrStoreType } from '../../../src/backing/index.js';

const dir = await mkdtemp(join(tmpdir(), 'tgt-ts-rdwr-'));
after(() => rm(dir, { recursive: true, force: true }));

let counter = 0;
/** A sparse file of `size` bytes. */
async function sparseFile(size: number): Promise<string> {
  const path = join(dir, `disk${counter++}.img`);
  await writeFile(path, '');
  await truncate(path, size);
  return path;
}

test('rdwr: size comes from fstat of a regular file', async () => {
  const path = await sparseFile(64 * 2 ** 20 + 512);
  const store = await rdwrStoreType.open(path, {});
  try {
    assert.equal(store.size, 64 * 2 ** 20 + 512);
    assert.equal(store.path, path);
    assert.deepEqual(store.capabilities, {
      flush: true,
      fua: true,
      unmap: store.capabilities.unmap,
      readonly: false,
    });
  } finally {
    await store.close();
  }
});

test('rdwr: round trip of vectored writes at unaligned offsets, with and without fua, lands in the file', async () => {
  const path = await sparseFile(2 ** 20);
  const store = await rdwrStoreType.open(path, {});
  try {
    const data = randomBytes(70001);
    const segs = [data.subarray(0, 1), data.subarray(1, 4097), data.subarray(4097)];
    await store.write(segs, 12345, false);
    await store.write([data.subarray(0, 999)], 500000, true);
    await store.flush();
    const back = Buffer.alloc(data.length);
    await store.read(back, 12345);
    assert.deepEqual(back, data);
    // The bytes really are in the file at those offsets (not only in some cache of ours).
    const fh = await open(path, 'r');
    const direct = Buffer.alloc(999);
    await fh.read(direct, 0, 999, 500000);
    await fh.close();
    assert.deepEqual(direct, data.subarray(0, 999));
  } finally {
    await store.close();
  }
});

test('rdwr: writes of more segments than IOV_MAX are completed (partial writev resumes)', async () => {
  const path = await sparseFile(2 ** 20);
  const store = await rdwrStoreType.open(path, {});
  try {
    const data = randomBytes(3000 * 7);
    const segs = Array.from({ length: 3000 }, (_, i) => data.subarray(i * 7, i * 7 + 7));
    await store.write(segs, 3, false);
    const back = Buffer.alloc(data.length);
    await store.read(back, 3);
    assert.deepEqual(back, data);
  } finally {
    await store.close();
  }
});

test('rdwr: a read past the current end of a file that shrank after open is zero-filled', async () => {
  const path = await sparseFile(8192);
  const store = await rdwrStoreType.open(path, {});
  try {
    await store.write([Buffer.alloc(8192, 0x77)], 0, false);
    await truncate(path, 4096);
    const buf = Buffer.alloc(8192, 0xff);
    await store.read(buf, 0);
    assert.ok(buf.subarray(0, 4096).every((b) => b === 0x77));
    assert.ok(buf.subarray(4096).every((b) => b === 0));
  } finally {
    await store.close();
  }
});

test('rdwr: requests past the size fixed at open are TGT_ERR_BS_OUT_OF_RANGE', async () => {
  const path = await sparseFile(4096);
  const store = await rdwrStoreType.open(path, {});
  try {
    await assert.rejects(store.read(Buffer.alloc(512), 3585), { code: 'TGT_ERR_BS_OUT_OF_RANGE' });
    await assert.rejects(store.write([Buffer.alloc(1)], 4096, false), { code: 'TGT_ERR_BS_OUT_OF_RANGE' });
  } finally {
    await store.close();
  }
});

test('rdwr: unmap punches a hole: reads back zeroes and the file allocated blocks shrink', async () => {
  const path = await sparseFile(4 * 2 ** 20);
  const store = await rdwrStoreType.open(path, {});
  try {
    assert.equal(store.capabilities.unmap, true, 'the fs-native-extensions binding loads on Linux');
    await store.write([Buffer.alloc(4 * 2 ** 20, 0x5a)], 0, false);
    await store.flush();
    const before = (await stat(path)).blocks;
    await store.unmap!(2 ** 20, 2 * 2 ** 20);
    const back = Buffer.alloc(4 * 2 ** 20);
    await store.read(back, 0);
    assert.ok(back.subarray(0, 2 ** 20).every((b) => b === 0x5a));
    assert.ok(back.subarray(2 ** 20, 3 * 2 ** 20).every((b) => b === 0));
    assert.ok(back.subarray(3 * 2 ** 20).every((b) => b === 0x5a));
    // 2 MiB punched = 4096 fewer 512-byte blocks (tmpfs, ext4, xfs, btrfs all punch holes)
    const after = (await stat(path)).blocks;
    assert.ok(after <= before - 4096, `blocks ${before} -> ${after}`);
  } finally {
    await store.close();
  }
});

test('rdwr: allocation map: a fresh sparse file is all holes; writes map, unmaps deallocate whole fs blocks', async () => {
  const path = await sparseFile(2 ** 20);
  const store = await rdwrStoreType.open(path, {});
  try {
    const g = store.allocationGranularity!;
    assert.ok(g >= 512 && (g & (g - 1)) === 0, `granularity ${g}`);
    assert.deepEqual(await store.allocationAt!(0, 2 ** 20), { mapped: false, length: 2 ** 20 });
    await store.write([Buffer.alloc(4 * g, 1)], 4 * g, false);
    assert.deepEqual(await store.allocationAt!(0, 2 ** 20), { mapped: false, length: 4 * g });
    assert.deepEqual(await store.allocationAt!(4 * g, 2 ** 20), { mapped: true, length: 4 * g });
    await store.unmap!(5 * g + 1, 2 * g); // only granule 6 lies wholly inside
    assert.deepEqual(await store.allocationAt!(4 * g, 2 ** 20), { mapped: true, length: 2 * g });
    assert.deepEqual(await store.allocationAt!(6 * g, 2 ** 20), { mapped: false, length: g });
    assert.deepEqual(await store.allocationAt!(7 * g, 2 ** 20), { mapped: true, length: g });
  } finally {
    await store.close();
  }
});

test('rdwr: allocation map: a file with data starts all mapped (holes made before open are not known)', async () => {
  const path = await sparseFile(2 ** 20);
  await writeFile(path, Buffer.alloc(2 ** 20, 3));
  const store = await rdwrStoreType.open(path, {});
  try {
    assert.deepEqual(await store.allocationAt!(0, 2 ** 20), { mapped: true, length: 2 ** 20 });
  } finally {
    await store.close();
  }
});

test('rdwr: unmap of an unaligned sub-block range zeroes exactly that range', async (t) => {
  const path = await sparseFile(65536);
  const store = await rdwrStoreType.open(path, {});
  try {
    if (!store.capabilities.unmap) return t.skip('hole punching binding unavailable: unmap not offered');
    await store.write([Buffer.alloc(65536, 1)], 0, false);
    await store.unmap!(1000, 5000);
    const back = Buffer.alloc(65536);
    await store.read(back, 0);
    const expected = Buffer.alloc(65536, 1).fill(0, 1000, 6000);
    assert.deepEqual(back, expected);
  } finally {
    await store.close();
  }
});

test('rdwr bsoflags=sync: O_SYNC store keeps fua native and round-trips', async () => {
  const path = await sparseFile(65536);
  const store = await rdwrStoreType.open(path, { sync: true });
  try {
    assert.equal(store.capabilities.fua, true);
    const data = randomBytes(3000);
    await store.write([data], 77, true);
    const back = Buffer.alloc(3000);
    await store.read(back, 77);
    assert.deepEqual(back, data);
  } finally {
    await store.close();
  }
});

test('rdwr bsoflags=direct: aligned and unaligned requests both round-trip (unaligned via buffered retry)', async (t) => {
  const path = await sparseFile(2 ** 20);
  let store;
  try {
    store = await rdwrStoreType.open(path, { direct: true });
  } catch (err) {
    return t.skip(`filesystem refuses O_DIRECT: ${(err as Error).message}`);
  }
  try {
    const aligned = randomBytes(65536);
    await store.write([aligned], 4096, false);
    const unaligned = randomBytes(1000);
    await store.write([unaligned.subarray(0, 10), unaligned.subarray(10)], 70001, true);
    const back1 = Buffer.alloc(65536);
    await store.read(back1, 4096);
    assert.deepEqual(back1, aligned);
    const back2 = Buffer.alloc(1000);
    await store.read(back2, 70001);
    assert.deepEqual(back2, unaligned);
  } finally {
    await store.close();
  }
});

test('rdwr: explicit readonly option opens O_RDONLY and refuses writes', async () => {
  const path = await sparseFile(4096);
  const store = await rdwrStoreType.open(path, { readonly: true });
  try {
    assert.deepEqual(store.capabilities, { flush: false, fua: false, unmap: false, readonly: true });
    await assert.rejects(store.write([Buffer.alloc(1)], 0, false), { code: 'TGT_ERR_BS_READONLY' });
    await store.read(Buffer.alloc(4096), 0);
  } finally {
    await store.close();
  }
});

test('rdwr: a directory or character device is refused', async () => {
  await assert.rejects(rdwrStoreType.open(dir, { readonly: true }), { code: 'TGT_ERR_BS_BAD_FILE_TYPE' });
  await assert.rejects(rdwrStoreType.open('/dev/zero', {}), { code: 'TGT_ERR_BS_BAD_FILE_TYPE' });
  await assert.rejects(rdwrStoreType.open(join(dir, 'missing'), {}), { code: 'ENOENT' });
});

// The EACCES fallback needs a user without CAP_DAC_OVERRIDE. As root we re-run the open in a
// child process as uid/gid 65534 (nobody); as an ordinary user we open a 0444 file directly.
test('tgt §1.4: rdwr falls back to O_RDONLY on EACCES and the LU becomes read-only', async (t) => {
  const path = await sparseFile(4096);
  await chmod(path, 0o444);
  const isRoot = process.getuid?.() === 0;
  if (!isRoot) {
    const store = await rdwrStoreType.open(path, {});
    assert.equal(store.capabilities.readonly, true);
    await store.close();
    return;
  }
  await chmod(dir, 0o755);
  const moduleUrl = new URL('../../../src/backing/rdwr.js', import.meta.url).href;
  const script = join(dir, 'probe.mjs');
  await writeFile(
    script,
    `const { rdwrStoreType } = await import(${JSON.stringify(moduleUrl)});
     const s = await rdwrStoreType.open(${JSON.stringify(path)}, {});
     process.stdout.write(JSON.stringify(s.capabilities)); await s.close();`,
  );
  await chmod(script, 0o644);
  const child = spawn(process.execPath, [...process.execArgv, script], {
    uid: 65534,
    gid: 65534,
    cwd: fileURLToPath(new URL('.', import.meta.url)),
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0 && /EACCES|permission denied/i.test(err) && !out) {
    return t.skip(`cannot run the probe as nobody here: ${err.split('\n')[0]}`);
  }
  assert.equal(code, 0, err);
  assert.deepEqual(JSON.parse(out), { flush: false, fua: false, unmap: false, readonly: true });
});

test('rdwr: block-device size probe (used without sysfs) finds the last readable sector', async () => {
  const { probeSizeByReading } = await import('../../../src/backing/rdwr.js');
  for (const sectors of [0, 1, 2, 3, 1000, 4097]) {
    const path = await sparseFile(sectors * 512);
    assert.equal(await probeSizeByReading(path), sectors * 512, `${sectors} sectors`);
  }
});

test('rdwr readNow: a page-cache read is done at once and returns the written data; out of range still throws', async () => {
  const path = await sparseFile(1 << 20);
  const store = await rdwrStoreType.open(path, {});
  try {
    const data = randomBytes(8192);
    await store.write([data], 4096, false);
    const into = Buffer.alloc(8192);
    assert.equal(store.readNow?.(into, 4096, false), true, 'cached: read at once');
    assert.ok(into.equals(data));
    assert.throws(() => store.readNow?.(Buffer.alloc(512), (1 << 20) - 256, false));
  } finally {
    await store.close();
  }
});

test('rdwr readNow: with O_DIRECT (every read waits for the medium) it declines and read() does the work', async (t) => {
  const path = await sparseFile(1 << 20);
  let store;
  try {
    store = await rdwrStoreType.open(path, { direct: true });
  } catch {
    t.skip('this filesystem refuses O_DIRECT');
    return;
  }
  try {
    const into = Buffer.alloc(4096);
    assert.equal(store.readNow?.(into, 0, true), false);
    await store.read(into, 0);
    assert.ok(into.equals(Buffer.alloc(4096)), 'a hole reads as zeroes');
  } finally {
    await store.close();
  }
});

test('rdwr writeNow: a page-cache write is done at once and reads back; a read-only store or a range past the end still throws', async () => {
  const path = await sparseFile(1 << 20);
  const store = await rdwrStoreType.open(path, {});
  try {
    const data = randomBytes(4096);
    assert.equal(store.writeNow?.([data.subarray(0, 1000), data.subarray(1000)], 8192), true);
    const back = Buffer.alloc(4096);
    await store.read(back, 8192);
    assert.ok(back.equals(data));
    assert.throws(() => store.writeNow?.([Buffer.alloc(512)], (1 << 20) - 256));
    await assert.rejects(
      store.write([Buffer.alloc(512)], (1 << 20) - 256, true),
      'the FUA path checks the range too',
    );
  } finally {
    await store.close();
  }
  const readOnly = await rdwrStoreType.open(path, { readonly: true });
  try {
    assert.throws(() => readOnly.writeNow?.([Buffer.alloc(512)], 0), /read-only/);
  } finally {
    await readOnly.close();
  }
});

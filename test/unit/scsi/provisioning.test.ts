import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { MemoryStore, MEMORY_CHUNK_SIZE } from '../../../src/backing/memory.js';
import { cdb10, cdb16, dataIn, makeHarness, senseText, submit } from './harness.js';

const BS = 512;
const BLOCKS = 2048; // 1 MiB
const CHUNK_BLOCKS = MEMORY_CHUNK_SIZE / BS;

async function thin() {
  const h = await makeHarness();
  await h.system.updateLu(1, 1n, { thin_provisioning: '1' });
  return h;
}

function getLbaStatus(lba: number, alloc = 1024): number[] {
  const c = Buffer.alloc(16);
  c[0] = 0x9e;
  c[1] = 0x12;
  c.writeBigUInt64BE(BigInt(lba), 2);
  c.writeUInt32BE(alloc, 10);
  return [...c];
}

/** Decoded LBA status descriptors: [lba, blocks, status]. */
function descriptors(d: Buffer): [number, number, number][] {
  const n = (d.readUInt32BE(0) - 4) / 16;
  const out: [number, number, number][] = [];
  for (let i = 0; i < n; i++) {
    const o = 8 + i * 16;
    out.push([Number(d.readBigUInt64BE(o)), d.readUInt32BE(o + 8), d[o + 12]! & 0x0f]);
  }
  return out;
}

function unmapList(...ranges: [number, number][]): Buffer {
  const b = Buffer.alloc(8 + 16 * ranges.length);
  b.writeUInt16BE(6 + 16 * ranges.length, 0);
  b.writeUInt16BE(16 * ranges.length, 2);
  ranges.forEach(([lba, n], i) => {
    b.writeBigUInt64BE(BigInt(lba), 8 + 16 * i);
    b.writeUInt32BE(n, 16 + 16 * i);
  });
  return b;
}

const unmapCdb = (len: number) => [0x42, 0, 0, 0, 0, 0, 0, len >> 8, len & 0xff, 0];

test('sbc4 5.7 GET LBA STATUS reports the store allocation map: written mapped, unwritten and unmapped deallocated', async () => {
  const { nexus } = await thin();
  assert.deepEqual(descriptors(dataIn(await submit(nexus, getLbaStatus(0)))), [[0, BLOCKS, 1]]);
  await submit(nexus, cdb10(0x2a, CHUNK_BLOCKS, 1), { dataOut: Buffer.alloc(BS, 1) });
  assert.deepEqual(descriptors(dataIn(await submit(nexus, getLbaStatus(0)))), [
    [0, CHUNK_BLOCKS, 1],
    [CHUNK_BLOCKS, CHUNK_BLOCKS, 0],
    [2 * CHUNK_BLOCKS, BLOCKS - 2 * CHUNK_BLOCKS, 1],
  ]);
  // the first descriptor starts at the requested LBA, and only what fits the allocation length is sent
  const one = dataIn(await submit(nexus, getLbaStatus(CHUNK_BLOCKS + 3, 24)));
  assert.equal(one.length, 24);
  assert.deepEqual(descriptors(Buffer.concat([one, Buffer.alloc(32)])).slice(0, 1), [
    [CHUNK_BLOCKS + 3, CHUNK_BLOCKS - 3, 0],
  ]);
  const cmd = await submit(nexus, unmapCdb(24), { dataOut: unmapList([CHUNK_BLOCKS, CHUNK_BLOCKS]) });
  assert.equal(cmd.status, ScsiStatus.Good);
  assert.deepEqual(descriptors(dataIn(await submit(nexus, getLbaStatus(0)))), [[0, BLOCKS, 1]]);
});

test('sbc4 5.7 GET LBA STATUS: a block is deallocated only when all of it is (unmap smaller than the granule stays mapped)', async () => {
  const { nexus } = await thin();
  await submit(nexus, cdb10(0x2a, 0, 8), { dataOut: Buffer.alloc(8 * BS, 1) });
  await submit(nexus, unmapCdb(24), { dataOut: unmapList([0, 1]) });
  assert.deepEqual(descriptors(dataIn(await submit(nexus, getLbaStatus(0, 24)))), [[0, CHUNK_BLOCKS, 0]]);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 0, 1))), Buffer.alloc(BS)); // LBPRZ
});

test('sbc4 6.6.4 VPD B0 with thin provisioning: unmap limits, OPTIMAL UNMAP GRANULARITY = store granule, MAXIMUM WRITE SAME LENGTH', async () => {
  const { system, nexus } = await makeHarness();
  const b0 = async () => dataIn(await submit(nexus, [0x12, 0x01, 0xb0, 0, 255, 0]));
  let d = await b0();
  assert.equal(d.readUInt32BE(20), 0); // MAXIMUM UNMAP LBA COUNT: no UNMAP
  assert.equal(d.readUInt32BE(28), 0);
  assert.equal(Number(d.readBigUInt64BE(36)), 0xffff);
  await system.updateLu(1, 1n, { thin_provisioning: '1' });
  d = await b0();
  assert.equal(d.readUInt32BE(20), 0xffffffff);
  assert.ok(d.readUInt32BE(24) > 0);
  assert.equal(d.readUInt32BE(28), CHUNK_BLOCKS);
  assert.equal(d.readUInt32BE(32) >>> 31, 1); // UGAVALID
});

test('sbc4 WRITE SAME with UNMAP deallocates whatever the block holds (UNMAP=1 ANCHOR=0 is an unmap operation)', async () => {
  const { nexus } = await thin();
  await submit(nexus, cdb10(0x2a, 0, CHUNK_BLOCKS), { dataOut: Buffer.alloc(CHUNK_BLOCKS * BS, 9) });
  const ws = await submit(nexus, cdb10(0x41, 0, CHUNK_BLOCKS, 0x08), { dataOut: Buffer.alloc(BS, 0xff) });
  assert.equal(ws.status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 0, 4))), Buffer.alloc(4 * BS));
  assert.deepEqual(descriptors(dataIn(await submit(nexus, getLbaStatus(0)))), [[0, BLOCKS, 1]]);
  // NDOB (16 only): no Data-Out at all
  await submit(nexus, cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(BS, 9) });
  assert.equal((await submit(nexus, cdb16(0x93, 0, CHUNK_BLOCKS, 0x09))).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 0, 1))), Buffer.alloc(BS));
});

test('sbc4 5.47 WRITE SAME: Data-Out other than one block, or more than MAXIMUM WRITE SAME LENGTH blocks -> INVALID FIELD IN CDB', async () => {
  const { nexus } = await thin();
  const blk = Buffer.alloc(BS, 1);
  assert.equal(
    senseText(await submit(nexus, cdb10(0x41, 0, 1, 0x08), { dataOut: blk.subarray(0, BS / 2) })),
    '5/24/0',
  );
  assert.equal(senseText(await submit(nexus, cdb10(0x41, 0, 1, 0x08), { dataOut: [blk, blk] })), '5/24/0');
  const big = await makeHarness({ size: 0x10000 * BS + BS });
  assert.equal(senseText(await submit(big.nexus, cdb16(0x93, 0, 0x10000), { dataOut: blk })), '5/24/0');
  // 0 blocks = to the end: limited as well when that is more than the maximum
  assert.equal(senseText(await submit(big.nexus, cdb16(0x93, 0, 0), { dataOut: blk })), '5/24/0');
  assert.equal((await submit(big.nexus, cdb16(0x93, 2, 0), { dataOut: blk })).status, ScsiStatus.Good);
});

/** A memory store that has run out of space: every write and unmap fails with ENOSPC. */
/** Out of space on every write: the asynchronous write() and the at-once writeNow() alike. */
class FullStore extends MemoryStore {
  override async write(): Promise<void> {
    throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
  }
  override writeNow(): boolean {
    throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
  }
  override async unmap(): Promise<void> {
    throw Object.assign(new Error('quota'), { code: 'EDQUOT' });
  }
}

test('sbc4 4.7.3.6 out of space (ENOSPC/EDQUOT) -> DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT, never a crash', async () => {
  const { system, nexus } = await makeHarness({ wrap: (m) => new FullStore(m.path, m.size, false) });
  await system.updateLu(1, 1n, { thin_provisioning: '1' });
  const blk = Buffer.alloc(BS, 1);
  assert.equal(senseText(await submit(nexus, cdb10(0x2a, 0, 1), { dataOut: blk })), '7/27/7');
  assert.equal(senseText(await submit(nexus, cdb10(0x41, 0, 4), { dataOut: blk })), '7/27/7');
  assert.equal(senseText(await submit(nexus, unmapCdb(24), { dataOut: unmapList([0, 8]) })), '7/27/7');
  assert.equal((await submit(nexus, cdb10(0x28, 0, 1))).status, ScsiStatus.Good); // reads still work
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { cdb10, dataIn, GatedStore, makeHarness, senseText, submit } from './harness.js';

const BS = 512;
const BLOCKS = 2048;

/** WRITE ATOMIC(16) CDB (SBC-4 5.48): 16-bit TRANSFER LENGTH at byte 12, ATOMIC BOUNDARY at 10. */
function writeAtomic(lba: bigint, blocks: number, byte1 = 0, boundary = 0): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x9c;
  c[1] = byte1;
  c.writeBigUInt64BE(lba, 2);
  c.writeUInt16BE(boundary, 10);
  c.writeUInt16BE(blocks, 12);
  return c;
}

test('sbc4 5.48 WRITE ATOMIC(16) writes the blocks; FUA honoured; 0 blocks is GOOD', async () => {
  let store!: GatedStore;
  const { nexus } = await makeHarness({ wrap: (m) => (store = new GatedStore(m)) });
  const data = Buffer.alloc(4 * BS, 0x5c);
  assert.equal((await submit(nexus, writeAtomic(10n, 4), { dataOut: data })).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 10, 4))), data);
  await submit(nexus, writeAtomic(0n, 1, 0x18), { dataOut: Buffer.alloc(BS) }); // DPO + FUA
  assert.equal(store.writeCalls.at(-1)!.fua, true);
  assert.equal((await submit(nexus, writeAtomic(0n, 0))).status, ScsiStatus.Good);
});

test('sbc4 5.48 WRITE ATOMIC(16): range, WRPROTECT, ATOMIC BOUNDARY, limit and short Data-Out are refused before any write', async () => {
  let store!: GatedStore;
  const { nexus } = await makeHarness({ wrap: (m) => (store = new GatedStore(m)) });
  const blk = Buffer.alloc(BS, 1);
  assert.equal(
    senseText(await submit(nexus, writeAtomic(BigInt(BLOCKS - 1), 2), { dataOut: [blk, blk] })),
    '5/21/0',
  );
  assert.equal(senseText(await submit(nexus, writeAtomic(1n << 63n, 1), { dataOut: blk })), '5/21/0');
  assert.equal(senseText(await submit(nexus, writeAtomic(0n, 1, 0x20), { dataOut: blk })), '5/24/0');
  assert.equal(senseText(await submit(nexus, writeAtomic(0n, 1, 0, 1), { dataOut: blk })), '5/24/0');
  // above MAXIMUM ATOMIC TRANSFER LENGTH (1 MiB = 2048 blocks of 512)
  const big = await makeHarness({ size: 4 * 1024 * 1024 });
  assert.equal(
    senseText(await submit(big.nexus, writeAtomic(0n, 2049), { writeLength: 2049 * BS })),
    '5/24/0',
  );
  // half the data: nothing at all is written
  assert.equal(
    senseText(await submit(nexus, writeAtomic(0n, 2), { dataOut: blk, writeLength: 2 * BS })),
    '5/e/3',
  );
  assert.equal(store.writeCalls.length, 0);
});

test('sbc4 6.6.4 VPD B0 reports the WRITE ATOMIC limits; RSOC usage data carries DPO/FUA', async () => {
  const { nexus } = await makeHarness();
  const b0 = dataIn(await submit(nexus, [0x12, 1, 0xb0, 0, 255, 0]));
  assert.equal(b0.readUInt32BE(44), 2048); // MAXIMUM ATOMIC TRANSFER LENGTH
  assert.ok(b0.readUInt32BE(44) <= b0.readUInt32BE(8)); // <= MAXIMUM TRANSFER LENGTH
  assert.equal(b0.readUInt32BE(48), 0); // ATOMIC ALIGNMENT
  assert.equal(b0.readUInt32BE(52), 0); // ATOMIC TRANSFER LENGTH GRANULARITY
  const rsoc = dataIn(await submit(nexus, [0xa3, 0x0c, 0x01, 0x9c, 0, 0, 0, 0, 1, 0, 0, 0]));
  assert.equal(rsoc[1]! & 0x07, 0x03); // supported
  assert.equal(rsoc[5]! & 0x18, 0x18);
});

test('sbc4 5.25 START STOP UNIT under PREVENT refuses both eject and load (MEDIUM REMOVAL PREVENTED)', async () => {
  const { system, nexus } = await makeHarness();
  await system.updateLu(1, 1n, { removable: '1' });
  await submit(nexus, [0x1b, 0, 0, 0, 0x02, 0]); // eject
  await submit(nexus, [0x1e, 0, 0, 0, 1, 0]); // PREVENT
  assert.equal(senseText(await submit(nexus, [0x1b, 0, 0, 0, 0x03, 0])), '5/53/2');
  await submit(nexus, [0x1e, 0, 0, 0, 0, 0]);
  assert.equal((await submit(nexus, [0x1b, 0, 0, 0, 0x03, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, [0, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { cdb10, cdb16, dataIn, GatedStore, makeHarness, senseOf, senseText, submit } from './harness.js';

const BS = 512;
const BLOCKS = 2048; // 1 MiB

async function gated() {
  let store!: GatedStore;
  const h = await makeHarness({ wrap: (m) => (store = new GatedStore(m)) });
  return { ...h, store };
}

test('sbc4 READ/WRITE 6/10/12/16 round trip', async () => {
  const { nexus } = await makeHarness();
  const forms: [number, number, (lba: number, n: number) => number[]][] = [
    [0x0a, 0x08, (lba, n) => [0, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, n, 0]],
    [0x2a, 0x28, (lba, n) => cdb10(0, lba, n)],
    [0xaa, 0xa8, (lba, n) => [0, 0, 0, 0, (lba >> 8) & 0xff, lba & 0xff, 0, 0, 0, n, 0, 0]],
    [0x8a, 0x88, (lba, n) => cdb16(0, lba, n)],
  ];
  let lba = 0;
  for (const [w, r, make] of forms) {
    const data = Buffer.alloc(2 * BS, w);
    const wc = make(lba, 2);
    wc[0] = w;
    assert.equal((await submit(nexus, wc, { dataOut: data })).status, ScsiStatus.Good);
    const rc = make(lba, 2);
    rc[0] = r;
    const rd = await submit(nexus, rc);
    assert.deepEqual(dataIn(rd), data);
    lba += 2;
  }
});

test('sbc4 5.15 READ(6) transfer length 0 reads 256 blocks', async () => {
  const { nexus } = await makeHarness();
  const r = await submit(nexus, [0x08, 0, 0, 0, 0, 0], { readLength: 256 * BS });
  assert.equal(r.status, ScsiStatus.Good);
  assert.equal(r.dataInLength, 256 * BS);
});

test('sbc4 4.5 READ(10)/WRITE(16) past capacity -> LBA OUT OF RANGE; 0 blocks at the end is fine', async () => {
  const { nexus } = await makeHarness();
  assert.equal(senseText(await submit(nexus, cdb10(0x28, BLOCKS - 1, 2))), '5/21/0');
  assert.equal(senseText(await submit(nexus, cdb10(0x28, BLOCKS + 1, 0))), '5/21/0');
  assert.equal(senseText(await submit(nexus, cdb10(0x28, 0xffffffff, 0))), '5/21/0');
  assert.equal(
    senseText(await submit(nexus, cdb16(0x8a, 2 ** 40, 1), { dataOut: Buffer.alloc(BS) })),
    '5/21/0',
  );
  assert.equal((await submit(nexus, cdb10(0x28, 0, 0))).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, cdb10(0x28, BLOCKS - 1, 1))).status, ScsiStatus.Good);
});

test('sbc4 RDPROTECT/WRPROTECT != 0 -> INVALID FIELD IN CDB (no protection information)', async () => {
  const { nexus } = await makeHarness();
  assert.equal(senseText(await submit(nexus, cdb10(0x28, 0, 1, 0x20))), '5/24/0');
  assert.equal(
    senseText(await submit(nexus, cdb10(0x2a, 0, 1, 0x40), { dataOut: Buffer.alloc(BS) })),
    '5/24/0',
  );
  // DPO and FUA are accepted
  assert.equal((await submit(nexus, cdb10(0x28, 0, 1, 0x18))).status, ScsiStatus.Good);
});

test('sbc4 transfer length above the VPD B0 maximum -> INVALID FIELD IN CDB', async () => {
  const { nexus } = await makeHarness({ size: 64 * 1024 * 1024 });
  assert.equal(senseText(await submit(nexus, cdb10(0x28, 0, 0xffff))), '5/24/0');
});

test('libiscsi read residuals: EDTL smaller than the transfer -> only EDTL bytes read, full dataInLength', async () => {
  const { nexus, store } = await gated();
  const r = await submit(nexus, cdb10(0x28, 0, 1), { readLength: 200 });
  assert.equal(r.status, ScsiStatus.Good);
  assert.equal(r.dataInLength, BS);
  assert.equal(r.dataIn!.length, 200);
  const z = await submit(nexus, cdb10(0x28, 0, 1), { readLength: 0 });
  assert.equal(z.status, ScsiStatus.Good);
  assert.equal(z.dataInLength, BS);
  assert.equal(store.log.length, 1); // EDTL 0: the store is not even asked
});

test('libiscsi write residuals: whole blocks received are written, a partial block is refused', async () => {
  const { nexus, store } = await gated();
  // two blocks in the CDB, one block of data: GOOD, one block written
  const w = await submit(nexus, cdb10(0x2a, 0, 2), { dataOut: Buffer.alloc(BS, 1) });
  assert.equal(w.status, ScsiStatus.Good);
  assert.equal(w.writeTransferLength, 2 * BS);
  assert.deepEqual(store.writeCalls.at(-1), { offset: 0, length: BS, fua: false });
  // one block in the CDB, 200 bytes sent: INVALID FIELD IN INFORMATION UNIT, nothing written
  const calls = store.writeCalls.length;
  const p = await submit(nexus, cdb10(0x2a, 4, 1), { dataOut: Buffer.alloc(200, 2) });
  assert.equal(senseText(p), '5/e/3');
  assert.equal(p.writeTransferLength, BS);
  assert.equal(store.writeCalls.length, calls);
  // more data than the CDB: only the CDB's blocks are written
  const o = await submit(nexus, cdb10(0x2a, 8, 1), {
    dataOut: [Buffer.alloc(300, 3), Buffer.alloc(10000 - 300, 3)],
  });
  assert.equal(o.status, ScsiStatus.Good);
  assert.equal(store.writeCalls.at(-1)!.length, BS);
});

test('sbc4 FUA / WCE=0: durable before status (store FUA, else write + flush)', async () => {
  const { nexus, store } = await gated();
  await submit(nexus, cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(BS) });
  assert.equal(store.writeCalls.at(-1)!.fua, false); // WCE=1 by default, no FUA
  await submit(nexus, cdb10(0x2a, 0, 1, 0x08), { dataOut: Buffer.alloc(BS) });
  assert.equal(store.writeCalls.at(-1)!.fua, true);
  store.capabilitiesOverride = { fua: false, flush: true };
  await submit(nexus, cdb10(0x2a, 0, 1, 0x08), { dataOut: Buffer.alloc(BS) });
  assert.equal(store.writeCalls.at(-1)!.fua, false);
  assert.equal(store.flushes, 1);
});

test('sbc4 store failures -> MEDIUM ERROR (read 11/00, write 0C/00), never a crash', async () => {
  const { nexus, store } = await gated();
  store.failReads = true;
  assert.equal(senseText(await submit(nexus, cdb10(0x28, 0, 1))), '3/11/0');
  store.failWrites = true;
  assert.equal(senseText(await submit(nexus, cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(BS) })), '3/c/0');
});

test('sbc4 4.12 writes to a readonly LU -> DATA PROTECT / WRITE PROTECTED; reads still work', async () => {
  const { system, nexus } = await makeHarness();
  await system.updateLu(1, 1n, { readonly: '1' });
  assert.equal(senseText(await submit(nexus, cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(BS) })), '7/27/0');
  assert.equal(senseText(await submit(nexus, cdb10(0x41, 0, 1), { dataOut: Buffer.alloc(BS) })), '7/27/0');
  assert.equal((await submit(nexus, cdb10(0x28, 0, 1))).status, ScsiStatus.Good);
});

test('sbc4 5.30 VERIFY: BYTCHK=0 GOOD, BYTCHK=1 compares -> MISCOMPARE with INFORMATION', async () => {
  const { nexus } = await makeHarness();
  const data = Buffer.alloc(2 * BS, 0x5a);
  await submit(nexus, cdb10(0x2a, 10, 2), { dataOut: data });
  assert.equal((await submit(nexus, cdb10(0x2f, 10, 2))).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, cdb10(0x2f, 10, 2, 0x02), { dataOut: data })).status, ScsiStatus.Good);
  const bad = Buffer.from(data);
  bad[BS + 7] = 0;
  const m = await submit(nexus, cdb10(0x2f, 10, 2, 0x02), { dataOut: bad });
  assert.deepEqual(senseOf(m), { key: 0xe, asc: 0x1d, ascq: 0, information: BS + 7 });
  assert.equal(senseText(await submit(nexus, cdb10(0x2f, BLOCKS, 1))), '5/21/0');
  assert.equal(senseText(await submit(nexus, cdb10(0x2f, 0, 1, 0x20))), '5/24/0'); // VRPROTECT
});

test('sbc4 5.44 WRITE AND VERIFY writes the data', async () => {
  const { nexus } = await makeHarness();
  const data = Buffer.alloc(BS, 0x33);
  assert.equal((await submit(nexus, cdb10(0x2e, 3, 1, 0x02), { dataOut: data })).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 3, 1))), data);
});

test('sbc4 5.3 COMPARE AND WRITE: writes on match, MISCOMPARE with offset otherwise', async () => {
  const { nexus } = await makeHarness();
  const old = Buffer.alloc(BS, 0x11);
  const neu = Buffer.alloc(BS, 0x22);
  await submit(nexus, cdb10(0x2a, 5, 1), { dataOut: old });
  const caw = (lba: number, n: number) => {
    const c = cdb16(0x89, lba, 0);
    c[13] = n;
    return c;
  };
  assert.equal((await submit(nexus, caw(5, 1), { dataOut: [old, neu] })).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 5, 1))), neu);
  const wrong = Buffer.from(old);
  const m = await submit(nexus, caw(5, 1), { dataOut: [wrong, old] });
  assert.deepEqual(senseOf(m), { key: 0xe, asc: 0x1d, ascq: 0, information: 0 });
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 5, 1))), neu); // unchanged
  assert.equal(senseText(await submit(nexus, caw(BLOCKS, 1), { dataOut: [old, neu] })), '5/21/0');
  assert.equal(senseText(await submit(nexus, caw(0, 200), { dataOut: [old, neu] })), '5/24/0');
});

test('sbc4 5.24 SYNCHRONIZE CACHE(10/16): range checked, IMMED accepted', async () => {
  const { nexus } = await makeHarness();
  assert.equal((await submit(nexus, cdb10(0x35, 0, 0))).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, cdb10(0x35, 0, 0, 0x02))).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, cdb16(0x91, 0, 8))).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, cdb10(0x35, BLOCKS, 8))), '5/21/0');
});

test('sbc4 5.16/5.17 READ CAPACITY(10/16): last LBA, block size, PMI rule, LBPME with thin provisioning', async () => {
  const { system, nexus } = await makeHarness();
  const r10 = await submit(nexus, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([dataIn(r10).readUInt32BE(0), dataIn(r10).readUInt32BE(4)], [BLOCKS - 1, BS]);
  assert.equal(senseText(await submit(nexus, [0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0])), '5/24/0');
  const rc16 = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
  let r16 = dataIn(await submit(nexus, rc16));
  assert.equal(Number(r16.readBigUInt64BE(0)), BLOCKS - 1);
  assert.equal(r16[14]! & 0xc0, 0);
  await system.updateLu(1, 1n, { thin_provisioning: '1', lbppbe: '3' });
  r16 = dataIn(await submit(nexus, rc16));
  assert.equal(r16[13], 3);
  assert.equal(r16[14]! & 0xc0, 0xc0); // LBPME, LBPRZ
});

test('sbc4 5.47 WRITE SAME(10): repeats the block; UNMAP needs thin provisioning', async () => {
  const { system, nexus, store } = await gated();
  const blk = Buffer.alloc(BS, 0x77);
  assert.equal((await submit(nexus, cdb10(0x41, 100, 3), { dataOut: blk })).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 100, 3))), Buffer.alloc(3 * BS, 0x77));
  // without thin provisioning the UNMAP bit is unsupported, like UNMAP itself (libiscsi WriteSame10.UnmapVPD)
  assert.equal(
    senseText(await submit(nexus, cdb10(0x41, 100, 3, 0x08), { dataOut: Buffer.alloc(BS) })),
    '5/20/0',
  );
  await system.updateLu(1, 1n, { thin_provisioning: '1' });
  assert.equal(
    (await submit(nexus, cdb10(0x41, 100, 3, 0x08), { dataOut: Buffer.alloc(BS) })).status,
    ScsiStatus.Good,
  );
  assert.equal(store.log.at(-1), `unmap ${100 * BS} ${3 * BS}`);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 100, 3))), Buffer.alloc(3 * BS));
  assert.equal(senseText(await submit(nexus, cdb10(0x41, BLOCKS - 1, 2), { dataOut: blk })), '5/21/0');
  assert.equal(senseText(await submit(nexus, cdb10(0x41, 0, 1, 0x10), { dataOut: blk })), '5/24/0'); // ANCHOR
  // NUMBER OF LOGICAL BLOCKS 0 = to the end of the medium
  assert.equal((await submit(nexus, cdb16(0x93, BLOCKS - 4, 0), { dataOut: blk })).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, BLOCKS - 4, 4))), Buffer.alloc(4 * BS, 0x77));
});

test('sbc4 5.28 UNMAP: INVALID OPCODE without thin provisioning; descriptors range checked', async () => {
  const { system, nexus, store } = await gated();
  const list = (lba: number, n: number) => {
    const b = Buffer.alloc(24);
    b.writeUInt16BE(22, 0);
    b.writeUInt16BE(16, 2);
    b.writeBigUInt64BE(BigInt(lba), 8);
    b.writeUInt32BE(n, 16);
    return b;
  };
  const cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0];
  assert.equal(senseText(await submit(nexus, cdb, { dataOut: list(0, 8) })), '5/20/0');
  await system.updateLu(1, 1n, { thin_provisioning: '1' });
  assert.equal((await submit(nexus, cdb, { dataOut: list(16, 8) })).status, ScsiStatus.Good);
  assert.equal(store.log.at(-1), `unmap ${16 * BS} ${8 * BS}`);
  assert.equal(senseText(await submit(nexus, cdb, { dataOut: list(BLOCKS - 1, 8) })), '5/21/0');
  assert.equal((await submit(nexus, [0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0])).status, ScsiStatus.Good); // empty list
  assert.equal(
    senseText(await submit(nexus, [0x42, 0, 0, 0, 0, 0, 0, 0, 4, 0], { dataOut: Buffer.alloc(4) })),
    '5/1a/0',
  );
});

test('sbc4 5.7 GET LBA STATUS describes the range from the starting LBA', async () => {
  const { system, nexus } = await makeHarness();
  await system.updateLu(1, 1n, { thin_provisioning: '1' });
  const cdb = [0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 64, 0, 0];
  const d = dataIn(await submit(nexus, cdb));
  assert.equal(d.readUInt32BE(0), 20);
  assert.equal(Number(d.readBigUInt64BE(8)), 10);
  assert.equal(d.readUInt32BE(16), BLOCKS - 10);
  const oob = [0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 64, 0, 0];
  assert.equal(senseText(await submit(nexus, oob)), '5/21/0');
});

test('sbc4 5.23/5.8 START STOP UNIT ejects removable media; PREVENT refuses the eject', async () => {
  const { system, nexus } = await makeHarness();
  await system.updateLu(1, 1n, { removable: '1' });
  await submit(nexus, [0x1e, 0, 0, 0, 1, 0]);
  assert.equal(senseText(await submit(nexus, [0x1b, 1, 0, 0, 0x02, 0])), '5/53/2');
  await submit(nexus, [0x1e, 0, 0, 0, 0, 0]);
  assert.equal((await submit(nexus, [0x1b, 1, 0, 0, 0x02, 0])).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '2/3a/0'); // MEDIUM NOT PRESENT
  assert.equal((await submit(nexus, [0x1b, 1, 0, 0, 0x03, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, [0, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
});

test('sbc4 5.4 FORMAT UNIT is a no-op that rejects FMTPINFO/FMTDATA/defect list formats', async () => {
  const { nexus } = await makeHarness();
  assert.equal((await submit(nexus, [0x04, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, [0x04, 0x10, 0, 0, 0, 0])), '5/24/0');
  assert.equal(senseText(await submit(nexus, [0x04, 0x80, 0, 0, 0, 0])), '5/24/0');
});

test('sbc4 PRE-FETCH(10/16): GOOD in range, LBA OUT OF RANGE past the end', async () => {
  const { nexus } = await makeHarness();
  assert.equal((await submit(nexus, cdb10(0x34, 0, 8))).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, cdb16(0x90, BLOCKS, 8))), '5/21/0');
});

test('sbc4 5.3 COMPARE AND WRITE: Data-Out other than 2 x NUMBER OF LOGICAL BLOCKS -> INVALID FIELD IN CDB', async () => {
  const { nexus } = await makeHarness();
  const caw = (n: number) => {
    const c = cdb16(0x89, 0, 0);
    c[13] = n;
    return c;
  };
  const blk = Buffer.alloc(BS, 0);
  // libiscsi CompareAndWrite.Simple at 256 blocks: NUMBER OF LOGICAL BLOCKS wraps to 0 with 256 KiB of data
  assert.equal(senseText(await submit(nexus, caw(0), { dataOut: [blk, blk] })), '5/24/0');
  assert.equal(senseText(await submit(nexus, caw(1), { dataOut: [blk, blk, blk, blk] })), '5/24/0');
  assert.equal(senseText(await submit(nexus, caw(3), { dataOut: [blk, blk, blk, blk] })), '5/24/0');
  assert.equal((await submit(nexus, caw(0))).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, caw(2), { dataOut: [blk, blk, blk, blk] })).status, ScsiStatus.Good);
});

test('sbc4 5.7 GET LBA STATUS on a fully provisioned LU: everything mapped; past the end -> LBA OUT OF RANGE', async () => {
  const { nexus } = await makeHarness();
  const status = (lba: bigint) => {
    const c = Buffer.alloc(16);
    c[0] = 0x9e;
    c[1] = 0x12;
    c.writeBigUInt64BE(lba, 2);
    c.writeUInt32BE(24, 10);
    return submit(nexus, c);
  };
  const d = dataIn(await status(BigInt(BLOCKS - 1)));
  assert.equal(d.readUInt32BE(16), 1);
  assert.equal(d[20], 0); // mapped
  for (const lba of [BigInt(BLOCKS + 1), 1n << 63n, (1n << 64n) - 1n])
    assert.equal(senseText(await status(lba)), '5/21/0');
});

test('sbc4 5.8 ORWRITE(16): ORs the data into the medium; ORPROTECT and range checked', async () => {
  const { nexus } = await makeHarness();
  await submit(nexus, cdb10(0x2a, 7, 2), { dataOut: Buffer.alloc(2 * BS, 0xa0) });
  assert.equal(
    (await submit(nexus, cdb16(0x8b, 7, 2), { dataOut: Buffer.alloc(2 * BS, 0x05) })).status,
    ScsiStatus.Good,
  );
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 7, 2))), Buffer.alloc(2 * BS, 0xa5));
  assert.equal(
    senseText(await submit(nexus, cdb16(0x8b, 0, 1, 0x20), { dataOut: Buffer.alloc(BS) })),
    '5/24/0',
  );
  assert.equal(senseText(await submit(nexus, cdb16(0x8b, BLOCKS + 1, 0))), '5/21/0');
  assert.equal((await submit(nexus, cdb16(0x8b, 0, 0))).status, ScsiStatus.Good);
});

test('sbc4 5.12/5.13 READ DEFECT DATA(10/12): empty list, header echoes the requested format', async () => {
  const { nexus } = await makeHarness();
  const d10 = dataIn(await submit(nexus, [0x37, 0, 0x0d, 0, 0, 0, 0, 0, 32, 0]));
  assert.deepEqual([...d10], [0, 0x0d, 0, 0]);
  const d12 = dataIn(await submit(nexus, [0xb7, 0x05, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]));
  assert.deepEqual([...d12], [0, 0x05, 0, 0, 0, 0, 0, 0]);
});

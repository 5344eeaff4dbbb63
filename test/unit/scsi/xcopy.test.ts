import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminError } from '../../../src/scsi/admin-error.js';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { cdb10, dataIn, makeHarness, senseText, submit } from './harness.js';

const BS = 512;

/** NAA-3 designator of LU `lun` of target `tid` (VPD 83h, as tgt builds it). */
function naa3(tid: number, lun: number): Buffer {
  const d = Buffer.alloc(12);
  d[0] = 0x01; // binary
  d[1] = 0x03; // association LU, type NAA
  d[3] = 8;
  d.writeBigUInt64BE((BigInt(tid) << 32n) | BigInt(lun), 4);
  d[4] = (d[4]! & 0x0f) | 0x30;
  return d;
}

/** Identification descriptor target descriptor (E4h) for a block device. */
function target(
  designator: Buffer,
  opts: { luIdType?: number; nul?: boolean; type?: number; bs?: number } = {},
): Buffer {
  const t = Buffer.alloc(32);
  t[0] = opts.type ?? 0xe4;
  t[1] = ((opts.luIdType ?? 0) << 6) | (opts.nul ? 0x20 : 0);
  designator.copy(t, 4);
  t.writeUIntBE(opts.bs ?? BS, 29, 3);
  return t;
}

/** Block device to block device segment descriptor (02h). */
function segment(
  src: number,
  dst: number,
  blocks: number,
  srcLba: number,
  dstLba: number,
  type = 0x02,
): Buffer {
  const s = Buffer.alloc(28);
  s[0] = type;
  s.writeUInt16BE(24, 2);
  s.writeUInt16BE(src, 4);
  s.writeUInt16BE(dst, 6);
  s.writeUInt16BE(blocks, 10);
  s.writeBigUInt64BE(BigInt(srcLba), 12);
  s.writeBigUInt64BE(BigInt(dstLba), 20);
  return s;
}

/** EXTENDED COPY(LID1) parameter list. */
function paramList(listId: number, targets: Buffer[], segments: Buffer[], usage = 0): Buffer {
  const h = Buffer.alloc(16);
  h[0] = listId;
  h[1] = usage << 3;
  const td = Buffer.concat(targets);
  const sd = Buffer.concat(segments);
  h.writeUInt16BE(td.length, 2);
  h.writeUInt32BE(sd.length, 8);
  return Buffer.concat([h, td, sd]);
}

function xcopyCdb(len: number): number[] {
  const c = Buffer.alloc(16);
  c[0] = 0x83;
  c.writeUInt32BE(len, 10);
  return [...c];
}

function rcr(sa: number, listId = 0): number[] {
  const c = Buffer.alloc(16);
  c[0] = 0x84;
  c[1] = sa;
  c[2] = listId;
  c.writeUInt32BE(1024, 10);
  return [...c];
}

test('spc4 6.4 EXTENDED COPY within one LU: block to block segment, target named by its NAA designator', async () => {
  const { nexus } = await makeHarness();
  const data = Buffer.alloc(8 * BS);
  for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
  await submit(nexus, cdb10(0x2a, 0, 8), { dataOut: data });
  const list = paramList(1, [target(naa3(1, 1))], [segment(0, 0, 8, 0, 1000)]);
  assert.equal((await submit(nexus, xcopyCdb(list.length), { dataOut: list })).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 1000, 8))), data);
  // overlapping ranges copy like memmove (destination above the source: backwards)
  const shifted = paramList(2, [target(naa3(1, 1))], [segment(0, 0, 8, 1000, 1004)]);
  await submit(nexus, xcopyCdb(shifted.length), { dataOut: shifted });
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 1004, 8))), data);
  // COPY STATUS of list 1: completed without errors, 8 blocks in bytes
  const st = dataIn(await submit(nexus, rcr(0, 1)));
  assert.deepEqual([st[4], st.readUInt16BE(5), st[7], st.readUInt32BE(8)], [1, 1, 0, 8 * BS]);
  // the standard INQUIRY says the LU has a copy manager (3PC)
  assert.equal(dataIn(await submit(nexus, [0x12, 0, 0, 0, 36, 0]))[5]! & 0x08, 0x08);
});

test('spc4 6.4 EXTENDED COPY between LUs and targets of the daemon', async () => {
  const { system, nexus } = await makeHarness();
  assert.equal(system.createTarget('iscsi', 2, 'iqn.2024-01.test:t2'), AdminError.Success);
  assert.equal(await system.createLu(2, 3n, { path: String(1024 * 1024) }), AdminError.Success);
  const other = system.targets.get(2)!.createNexus(9, 'iqn.2024-01.test:init', 'info');
  for (const lu of system.targets.get(2)!.luns) other.luInfo(lu).unitAttentions.length = 0;
  const data = Buffer.alloc(4 * BS, 0x3c);
  await submit(nexus, cdb10(0x2a, 10, 4), { dataOut: data });
  const list = paramList(0, [target(naa3(1, 1)), target(naa3(2, 3))], [segment(0, 1, 4, 10, 20)], 3);
  assert.equal((await submit(nexus, xcopyCdb(list.length), { dataOut: list })).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(other, cdb10(0x28, 20, 4), { lun: 3 })), data);
  // LIST ID USAGE 11b: nothing is held
  assert.equal(senseText(await submit(nexus, rcr(0, 0))), '5/24/0');
});

test('spc4 6.4 EXTENDED COPY parameter list checks: lengths, limits, descriptor types', async () => {
  const { nexus } = await makeHarness();
  const td = target(naa3(1, 1));
  const good = paramList(1, [td], [segment(0, 0, 1, 0, 8)]);
  assert.equal((await submit(nexus, xcopyCdb(0))).status, ScsiStatus.Good); // empty list: nothing to do
  for (const cut of [16 + 31, good.length - 1])
    assert.equal(senseText(await submit(nexus, xcopyCdb(cut), { dataOut: good.subarray(0, cut) })), '5/1a/0');
  const nine = paramList(1, new Array<Buffer>(9).fill(td), [segment(0, 0, 1, 0, 8)]);
  assert.equal(senseText(await submit(nexus, xcopyCdb(nine.length), { dataOut: nine })), '5/26/6');
  const many = paramList(1, [td], new Array<Buffer>(65).fill(segment(0, 0, 1, 0, 8)));
  assert.equal(senseText(await submit(nexus, xcopyCdb(many.length), { dataOut: many })), '5/26/8');
  const huge = paramList(1, [td], new Array<Buffer>(147).fill(segment(0, 0, 1, 0, 8)));
  assert.equal(senseText(await submit(nexus, xcopyCdb(huge.length), { dataOut: huge })), '5/1a/0');
  const fc = paramList(1, [target(naa3(1, 1), { type: 0xe0 })], [segment(0, 0, 1, 0, 8)]);
  assert.equal(senseText(await submit(nexus, xcopyCdb(fc.length), { dataOut: fc })), '5/26/7');
  const stream = paramList(1, [td], [segment(0, 0, 1, 0, 8, 0x03)]);
  assert.equal(senseText(await submit(nexus, xcopyCdb(stream.length), { dataOut: stream })), '5/26/9');
  const luIdType = paramList(1, [target(naa3(1, 1), { luIdType: 2 })], [segment(0, 0, 1, 0, 8)]);
  assert.equal(senseText(await submit(nexus, xcopyCdb(luIdType.length), { dataOut: luIdType })), '5/24/0');
});

test('spc4 6.4 EXTENDED COPY failures are COPY ABORTED: unknown target, bad index, null device, past the end', async () => {
  const { nexus } = await makeHarness();
  const td = target(naa3(1, 1));
  const cases: [Buffer, string][] = [
    [paramList(1, [target(naa3(7, 7))], [segment(0, 0, 1, 0, 8)]), 'a/8/4'],
    [paramList(1, [td], [segment(0, 1, 1, 0, 8)]), 'a/8/4'],
    [paramList(1, [target(naa3(1, 1), { nul: true })], [segment(0, 0, 1, 0, 8)]), 'a/d/2'],
    [paramList(1, [td], [segment(0, 0, 8, 0, 2048 - 1)]), 'a/0/0'],
  ];
  for (const [list, sense] of cases)
    assert.equal(senseText(await submit(nexus, xcopyCdb(list.length), { dataOut: list })), sense);
  // the held status says "completed with errors"
  assert.equal(dataIn(await submit(nexus, rcr(0, 1)))[4], 2);
});

test('spc4 6.18.4 RECEIVE COPY RESULTS OPERATING PARAMETERS reports the limits the copy manager enforces', async () => {
  const { nexus } = await makeHarness();
  const d = dataIn(await submit(nexus, rcr(3)));
  assert.equal(d.readUInt32BE(0), d.length - 4);
  assert.equal(d.readUInt16BE(8), 8); // MAXIMUM TARGET DESCRIPTOR COUNT
  assert.equal(d.readUInt16BE(10), 64); // MAXIMUM SEGMENT DESCRIPTOR COUNT
  assert.equal(d.readUInt32BE(12), 4096); // MAXIMUM DESCRIPTOR LIST LENGTH
  assert.deepEqual([...d.subarray(44, 44 + d[43]!)], [0x02, 0xe4]);
  // unknown list identifier before any copy
  assert.equal(senseText(await submit(nexus, rcr(0, 5))), '5/24/0');
});

/** PERSISTENT RESERVE OUT with the basic 24-byte parameter list (key, service action key). */
function prOutCdb(action: number, type: number, key: bigint, sark: bigint) {
  const list = Buffer.alloc(24);
  list.writeBigUInt64BE(key, 0);
  list.writeBigUInt64BE(sark, 8);
  return { cdb: [0x5f, action, type, 0, 0, 0, 0, 0, 24, 0], dataOut: list };
}

test('spc4 6.4 / 5.13.1 EXTENDED COPY honours reservations on its copy targets as the sending I_T nexus', async () => {
  const { system, nexus } = await makeHarness();
  assert.equal(system.createTarget('iscsi', 2, 'iqn.2024-01.test:t2'), AdminError.Success);
  assert.equal(await system.createLu(2, 3n, { path: String(1024 * 1024) }), AdminError.Success);
  const other = system.targets.get(2)!.createNexus(9, 'iqn.2024-01.test:other', 'info');
  for (const lu of system.targets.get(2)!.luns) other.luInfo(lu).unitAttentions.length = 0;
  const data = Buffer.alloc(4 * BS, 0x5a);
  await submit(nexus, cdb10(0x2a, 10, 4), { dataOut: data });
  const copy = (listId: number, from: Buffer, to: Buffer) => {
    const list = paramList(listId, [from, to], [segment(0, 1, 4, 10, 20)]);
    return submit(nexus, xcopyCdb(list.length), { dataOut: list });
  };
  const readDst = async () => dataIn(await submit(other, cdb10(0x28, 20, 4), { lun: 3 }));

  // SPC-2 RESERVE(6) held by another nexus on the destination: nothing is written.
  assert.equal((await submit(other, [0x16, 0, 0, 0, 0, 0], { lun: 3 })).status, ScsiStatus.Good);
  assert.equal(senseText(await copy(1, target(naa3(1, 1)), target(naa3(2, 3)))), 'a/d/2');
  assert.deepEqual(await readDst(), Buffer.alloc(4 * BS));
  assert.equal((await submit(other, [0x17, 0, 0, 0, 0, 0], { lun: 3 })).status, ScsiStatus.Good);

  // WRITE EXCLUSIVE persistent reservation on the destination: the copy cannot write there...
  const reg = prOutCdb(0, 0, 0n, 0xabn);
  assert.equal((await submit(other, reg.cdb, { dataOut: reg.dataOut, lun: 3 })).status, ScsiStatus.Good);
  const we = prOutCdb(1, 1, 0xabn, 0n);
  assert.equal((await submit(other, we.cdb, { dataOut: we.dataOut, lun: 3 })).status, ScsiStatus.Good);
  assert.equal(senseText(await copy(2, target(naa3(1, 1)), target(naa3(2, 3)))), 'a/d/2');
  assert.deepEqual(await readDst(), Buffer.alloc(4 * BS));
  // ...but it may read from it (Write Exclusive lets everybody read) into our own LU.
  const back = paramList(3, [target(naa3(2, 3)), target(naa3(1, 1))], [segment(0, 1, 4, 20, 40)]);
  assert.equal((await submit(nexus, xcopyCdb(back.length), { dataOut: back })).status, ScsiStatus.Good);

  // Released: the same copy goes through.
  const release = prOutCdb(2, 1, 0xabn, 0n);
  assert.equal(
    (await submit(other, release.cdb, { dataOut: release.dataOut, lun: 3 })).status,
    ScsiStatus.Good,
  );
  assert.equal((await copy(4, target(naa3(1, 1)), target(naa3(2, 3)))).status, ScsiStatus.Good);
  assert.deepEqual(await readDst(), data);
});

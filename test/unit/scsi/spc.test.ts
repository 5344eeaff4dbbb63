import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { parseSense } from '../../../src/scsi/sense.js';
import { cdb10, dataIn, makeHarness, senseText, submit } from './harness.js';

test('spc4 6.6.2 standard INQUIRY: type, version, HiSup, CmdQue, identity, additional length', async () => {
  const { nexus } = await makeHarness();
  const d = dataIn(await submit(nexus, [0x12, 0, 0, 0, 255, 0]));
  assert.equal(d.length, 66);
  assert.equal(d[0], 0x00);
  assert.equal(d[2], 0x05);
  assert.equal(d[3], 0x12);
  assert.equal(d[4], 61);
  assert.equal(d[7], 0x02);
  assert.equal(d.subarray(8, 16).toString(), 'IET     ');
  assert.equal(d.subarray(16, 32).toString(), 'VIRTUAL-DISK    ');
  assert.equal(d.subarray(32, 36).toString(), '0001');
  assert.equal(d.readUInt16BE(58), 0x04c0);
});

test('spc4 6.6 INQUIRY: allocation length truncates; page code without EVPD -> INVALID FIELD', async () => {
  const { nexus } = await makeHarness();
  assert.equal((await submit(nexus, [0x12, 0, 0, 0, 5, 0])).dataInLength, 5);
  assert.equal(senseText(await submit(nexus, [0x12, 0, 0x80, 0, 255, 0])), '5/24/0');
  assert.equal(senseText(await submit(nexus, [0x12, 0x01, 0x42, 0, 255, 0])), '5/24/0');
});

test('spc4 7.7 VPD 00h lists 00 80 83 B0 B1 B2 for a disk; 80h serial right-aligned', async () => {
  const { nexus } = await makeHarness();
  const p0 = dataIn(await submit(nexus, [0x12, 1, 0x00, 0, 255, 0]));
  assert.deepEqual([...p0.subarray(4)], [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
  const p80 = dataIn(await submit(nexus, [0x12, 1, 0x80, 0, 255, 0]));
  assert.equal(p80.readUInt16BE(2), 36);
  assert.equal(p80.subarray(4).toString().trimStart(), 'beaf11');
});

test('spc4 7.7.3 VPD 83h: tgt-compatible T10/NAA-3/NAA-6 ids plus target port, its group and name', async () => {
  const { nexus } = await makeHarness();
  const d = dataIn(await submit(nexus, [0x12, 1, 0x83, 0, 255, 0]));
  let off = 4;
  const desc: { codeSet: number; assoc: number; type: number; value: Buffer }[] = [];
  while (off < d.length) {
    const len = d[off + 3]!;
    desc.push({
      codeSet: d[off]! & 0x0f,
      assoc: (d[off + 1]! >> 4) & 3,
      type: d[off + 1]! & 0x0f,
      value: d.subarray(off + 4, off + 4 + len),
    });
    off += 4 + len;
  }
  assert.equal(desc[0]!.type, 1);
  assert.equal(desc[0]!.value.toString('latin1').replace(/\0+$/, ''), 'IET     00010001');
  assert.deepEqual([...desc[1]!.value], [0x30, 0, 0, 0x01, 0, 0, 0, 0x01]); // NAA-3 tid<<32|lun
  // NAA-6: each character of "IET     00010001" as one hex digit (I,T,space -> 0; E -> e)
  assert.equal(desc[2]!.value.toString('hex'), '60000000000000000e00000000010001');
  assert.deepEqual(
    desc.map((x) => [x.assoc, x.type]),
    [
      [0, 1],
      [0, 3],
      [0, 3],
      [1, 4],
      [1, 5],
      [2, 8],
    ],
  );
  assert.equal(desc[5]!.value.toString('utf8').replace(/\0+$/, ''), 'iqn.2024-01.test:t1');
});

test('sbc4 6.6.4/6.6.6 VPD B0/B2 advertise unmap only when thin provisioned', async () => {
  const { system, nexus } = await makeHarness();
  let b0 = dataIn(await submit(nexus, [0x12, 1, 0xb0, 0, 255, 0]));
  assert.equal(b0[5], 128); // MAXIMUM COMPARE AND WRITE LENGTH
  assert.equal(b0.readUInt32BE(20), 0);
  assert.equal(dataIn(await submit(nexus, [0x12, 1, 0xb2, 0, 255, 0]))[5], 0);
  await system.updateLu(1, 1n, { thin_provisioning: '1', rotation_rate: '1' });
  b0 = dataIn(await submit(nexus, [0x12, 1, 0xb0, 0, 255, 0]));
  assert.equal(b0.readUInt32BE(20), 0xffffffff);
  assert.equal(dataIn(await submit(nexus, [0x12, 1, 0xb2, 0, 255, 0]))[5], 0xe4);
  assert.equal(dataIn(await submit(nexus, [0x12, 1, 0xb1, 0, 255, 0])).readUInt16BE(4), 1);
});

test('spc4 6.33 REPORT LUNS: all LUNs ascending; allocation length < 16 -> INVALID FIELD', async () => {
  const { system, nexus } = await makeHarness();
  await system.createLu(1, 300n, { path: '65536' });
  const d = dataIn(await submit(nexus, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]));
  assert.equal(d.readUInt32BE(0), 24);
  assert.deepEqual(
    [...d.subarray(8, 32)],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0x2c, 0, 0, 0, 0, 0, 0],
  );
  assert.equal(senseText(await submit(nexus, [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0])), '5/24/0');
  assert.equal(senseText(await submit(nexus, [0xa0, 0, 3, 0, 0, 0, 0, 0, 0, 64, 0, 0])), '5/24/0');
});

test('sam5 5.2 CONTROL byte with NACA or LINK -> INVALID FIELD IN CDB', async () => {
  const { nexus } = await makeHarness();
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0x04])), '5/24/0');
  assert.equal(senseText(await submit(nexus, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x01])), '5/24/0');
});

test('spc4 unknown opcode -> INVALID COMMAND OPERATION CODE; unknown service action -> INVALID FIELD', async () => {
  const { nexus } = await makeHarness();
  assert.equal(senseText(await submit(nexus, [0xd0, 0, 0, 0, 0, 0])), '5/20/0');
  assert.equal(senseText(await submit(nexus, [0x3c, 0, 0, 0, 0, 0, 0, 0, 0, 0])), '5/20/0'); // READ BUFFER
  assert.equal(
    senseText(await submit(nexus, [0x9e, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0])),
    '5/24/0',
  );
});

test('spc4 6.11 MODE SENSE(6): all pages, block descriptor, DBD, PC=changeable/default, PC=3 refused', async () => {
  const { nexus } = await makeHarness();
  const all = dataIn(await submit(nexus, [0x1a, 0, 0x3f, 0, 255, 0]));
  assert.equal(all[0], all.length - 1);
  assert.equal(all[2], 0x10); // DPOFUA, not WP
  assert.equal(all[3], 8);
  assert.equal(all.readUInt32BE(4), 2048);
  const caching = dataIn(await submit(nexus, [0x1a, 0x08, 0x08, 0, 255, 0]));
  assert.equal(caching[3], 0); // DBD
  assert.deepEqual([caching[4], caching[5], caching[6]! & 0x04], [0x08, 0x12, 0x04]); // WCE=1
  const changeable = dataIn(await submit(nexus, [0x1a, 0x08, 0x40 | 0x0a, 0, 255, 0]));
  assert.deepEqual([...changeable.subarray(4, 8)], [0x0a, 0x0a, 0x04, 0x06]); // D_SENSE, QERR changeable
  assert.equal(changeable[8], 0x08); // SWP changeable
  assert.equal(senseText(await submit(nexus, [0x1a, 0, 0xc0 | 0x08, 0, 255, 0])), '5/39/0');
  assert.equal(senseText(await submit(nexus, [0x1a, 0, 0x05, 0, 255, 0])), '5/24/0');
  const sub = dataIn(await submit(nexus, [0x5a, 0x08, 0x0a, 0xff, 0, 0, 0, 1, 0, 0]));
  assert.equal(sub.readUInt16BE(0), sub.length - 2);
  assert.equal(sub.length, 8 + 12 + 32); // control + control extension
});

test('spc4 6.9 MODE SELECT: WCE and D_SENSE change; other bits, PF=0, SP=1 refused; other nexus gets 2A/01', async () => {
  const { system, nexus } = await makeHarness();
  const lu = system.targets.get(1)!.findLu(1n)!;
  const other = system.targets.get(1)!.createNexus(2, 'iqn.other', '');
  other.luInfo(lu).unitAttentions.length = 0;
  const caching = dataIn(await submit(nexus, [0x1a, 0x08, 0x08, 0, 255, 0]));
  const list = Buffer.from(caching);
  list[0] = 0;
  list[6] = list[6]! & ~0x04; // WCE=0
  assert.equal(
    (await submit(nexus, [0x15, 0x10, 0, 0, list.length, 0], { dataOut: list })).status,
    ScsiStatus.Good,
  );
  assert.equal(lu.writeCacheEnabled, false);
  assert.equal(senseText(await submit(other, [0, 0, 0, 0, 0, 0])), '6/2a/1');
  assert.equal(nexus.luInfo(lu).unitAttentions.length, 0);
  const bad = Buffer.from(list);
  bad[7] = 0x55; // not changeable
  assert.equal(senseText(await submit(nexus, [0x15, 0x10, 0, 0, bad.length, 0], { dataOut: bad })), '5/26/0');
  assert.equal(
    senseText(await submit(nexus, [0x15, 0x00, 0, 0, list.length, 0], { dataOut: list })),
    '5/24/0',
  );
  assert.equal(
    senseText(await submit(nexus, [0x15, 0x11, 0, 0, list.length, 0], { dataOut: list })),
    '5/24/0',
  );
  assert.equal(
    senseText(await submit(nexus, [0x15, 0x10, 0, 0, list.length + 4, 0], { dataOut: list })),
    '5/1a/0',
  );
  // D_SENSE=1 switches the LU to descriptor-format sense
  const control = Buffer.from(dataIn(await submit(nexus, [0x1a, 0x08, 0x0a, 0, 255, 0])));
  control[0] = 0;
  control[6] = control[6]! | 0x04;
  await submit(nexus, [0x15, 0x10, 0, 0, control.length, 0], { dataOut: control });
  const oob = await submit(nexus, cdb10(0x28, 1 << 20, 1));
  assert.equal(oob.sense![0], 0x72);
});

test('spc4 6.39 REQUEST SENSE: NO SENSE, DESC format, allocation length', async () => {
  const { nexus } = await makeHarness();
  const r = await submit(nexus, [0x03, 0, 0, 0, 252, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  assert.deepEqual(parseSense(dataIn(r)), { key: 0, asc: 0, ascq: 0 });
  assert.equal(dataIn(await submit(nexus, [0x03, 1, 0, 0, 252, 0]))[0], 0x72);
  assert.equal((await submit(nexus, [0x03, 0, 0, 0, 8, 0])).dataInLength, 8);
});

test('spc2 7.21 RESERVE(6)/RELEASE(6): conflict for the other nexus, non-holder RELEASE is a no-op', async () => {
  const { system, nexus } = await makeHarness();
  const other = system.targets.get(1)!.createNexus(2, 'iqn.other', '');
  for (const lu of system.targets.get(1)!.luns) other.luInfo(lu).unitAttentions.length = 0;
  assert.equal((await submit(nexus, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(other, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.ReservationConflict);
  assert.equal((await submit(other, [0x17, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(other, [0x1a, 0, 0x3f, 0, 255, 0])).status, ScsiStatus.ReservationConflict);
  assert.equal((await submit(other, cdb10(0x28, 0, 1))).status, ScsiStatus.ReservationConflict);
  assert.equal((await submit(other, [0x12, 0, 0, 0, 96, 0])).status, ScsiStatus.Good); // INQUIRY exempt
  assert.equal((await submit(nexus, [0x1a, 0, 0x3f, 0, 255, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, [0x17, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(other, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  // released on I_T nexus loss
  await other.close();
  assert.equal((await submit(nexus, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
});

test('spc4 6.35 REPORT SUPPORTED OPERATION CODES: all, one, one with service action', async () => {
  const { nexus } = await makeHarness();
  const all = dataIn(
    await submit(nexus, [0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], { readLength: 4096 }),
  );
  const len = all.readUInt32BE(0);
  const ops: number[] = [];
  for (let o = 4; o < 4 + len; o += 8) ops.push(all[o]!);
  assert.ok(ops.includes(0x28) && ops.includes(0x2a) && ops.includes(0x89) && ops.includes(0x9e));
  const one = dataIn(await submit(nexus, [0xa3, 0x0c, 0x01, 0x28, 0, 0, 0, 0, 1, 0, 0, 0]));
  assert.equal(one[1]! & 0x07, 3);
  assert.equal(one.readUInt16BE(2), 10);
  assert.equal(one[4], 0x28);
  const sa = dataIn(await submit(nexus, [0xa3, 0x0c, 0x02, 0x9e, 0, 0x10, 0, 0, 1, 0, 0, 0]));
  assert.equal(sa.readUInt16BE(2), 16);
  assert.equal(sa[4], 0x9e);
  assert.equal(senseText(await submit(nexus, [0xa3, 0x0c, 0x01, 0x9e, 0, 0, 0, 0, 1, 0, 0, 0])), '5/24/0');
  assert.equal(senseText(await submit(nexus, [0xa3, 0x0c, 0x02, 0x28, 0, 0, 0, 0, 1, 0, 0, 0])), '5/24/0');
  const rctd = dataIn(
    await submit(nexus, [0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], { readLength: 8192 }),
  );
  assert.equal(rctd.readUInt32BE(0) % 20, 0);
  assert.equal(rctd[4 + 5]! & 0x02, 0x02); // CTDP
});

test('spc4 6.42 SEND DIAGNOSTIC: self-test succeeds, self-test with a code is refused', async () => {
  const { nexus } = await makeHarness();
  assert.equal((await submit(nexus, [0x1d, 0x04, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, [0x1d, 0x24, 0, 0, 0, 0])), '5/24/0');
});

test('tgt §5.1 unknown LUN: INQUIRY PQ=3/type 1Fh, REQUEST SENSE data 05/25/00, others CHECK 05/25/00', async () => {
  const { nexus } = await makeHarness();
  const inq = await submit(nexus, [0x12, 0, 0, 0, 96, 0], { lun: 9 });
  assert.equal(inq.status, ScsiStatus.Good);
  assert.equal(dataIn(inq)[0], 0x7f);
  const rs = await submit(nexus, [0x03, 0, 0, 0, 96, 0], { lun: 9 });
  assert.equal(rs.status, ScsiStatus.Good);
  assert.deepEqual(parseSense(dataIn(rs)), { key: 5, asc: 0x25, ascq: 0 });
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0], { lun: 9 })), '5/25/0');
  assert.equal(
    dataIn(await submit(nexus, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], { lun: 9 })).readUInt32BE(0),
    16,
  );
});

test('tgt §1.5 LUN 0 controller: INQUIRY type 0Ch "Controller", TUR GOOD, READ refused', async () => {
  const { nexus } = await makeHarness();
  const d = dataIn(await submit(nexus, [0x12, 0, 0, 0, 96, 0], { lun: 0 }));
  assert.equal(d[0], 0x0c);
  assert.equal(d.subarray(16, 26).toString(), 'Controller');
  assert.equal((await submit(nexus, [0, 0, 0, 0, 0, 0], { lun: 0 })).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, cdb10(0x28, 0, 1), { lun: 0 })), '5/20/0');
  assert.equal((await submit(nexus, cdb10(0x2f, 0, 1), { lun: 0 })).status, ScsiStatus.Good);
});

test('spc4 6.35 REPORT SUPPORTED OPERATION CODES one command: wrong REPORTING OPTIONS carries a field pointer', async () => {
  const { nexus } = await makeHarness();
  const rsoc = (options: number, op: number, sa = 0) =>
    submit(nexus, [0xa3, 0x0c, options, op, sa >> 8, sa & 0xff, 0, 0, 0xff, 0xff, 0, 0]);
  // PERSISTENT RESERVE IN has service actions: options 1 refused, 2 answered
  const bad = await rsoc(1, 0x5e);
  assert.equal(senseText(bad), '5/24/0');
  assert.deepEqual([...bad.sense!.subarray(15, 18)], [0xc8 | 2, 0, 2]); // SKSV, C/D, BPV bit 2, byte 2
  const one = dataIn(await rsoc(2, 0x5e, 1));
  assert.equal(one[1]! & 0x07, 3);
  assert.equal(one[4], 0x5e);
  assert.equal(senseText(await rsoc(2, 0x28)), '5/24/0');
  assert.equal(dataIn(await rsoc(1, 0x28))[4], 0x28);
  // an unsupported service action points at byte 1
  const sa = await submit(nexus, [0x9e, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
  assert.deepEqual([...sa.sense!.subarray(15, 18)], [0xc8 | 4, 0, 1]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { dataIn, makeHarness, senseText, submit } from './harness.js';

/** REPORT TARGET PORT GROUPS CDB: MAINTENANCE IN, service action 0Ah, PARAMETER DATA FORMAT `format`. */
function rtpg(format: number, alloc: number): number[] {
  const cdb = Buffer.alloc(12);
  cdb[0] = 0xa3;
  cdb[1] = (format << 5) | 0x0a;
  cdb.writeUInt32BE(alloc, 6);
  return [...cdb];
}

/** One target port group: active/optimized, AO_SUP, group 1, no status, one port: relative port 1. */
const GROUP_1 = [0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01];

/** Bytes of each VPD 83h designation descriptor, header included, keyed "association/type". */
function designators(page: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let off = 4; off + 4 <= page.length; off += 4 + page[off + 3]!)
    out.set(
      `${(page[off + 1]! >> 4) & 3}/${page[off + 1]! & 0x0f}`,
      page.subarray(off, off + 4 + page[off + 3]!),
    );
  return out;
}

test('spc4 6.37 REPORT TARGET PORT GROUPS: length-only header, one active/optimized group 1 holding relative port 1', async () => {
  const { nexus } = await makeHarness();
  const cmd = await submit(nexus, rtpg(0, 1024));
  assert.equal(cmd.status, ScsiStatus.Good);
  // RETURN DATA LENGTH 12: the group descriptor (8) and its one target port descriptor (4)
  assert.deepEqual([...dataIn(cmd)], [0, 0, 0, 12, ...GROUP_1]);
});

test('spc4 6.37 REPORT TARGET PORT GROUPS: extended header carries FORMAT TYPE 001b and IMPLICIT TRANSITION TIME 0', async () => {
  const { nexus } = await makeHarness();
  const d = dataIn(await submit(nexus, rtpg(1, 1024)));
  // RETURN DATA LENGTH counts the rest of the extended header too (sg_rtpg, scsi_dh_alua read it so)
  assert.deepEqual([...d], [0, 0, 0, 16, 0x10, 0, 0, 0, ...GROUP_1]);
});

test('spc4 4.2.5.6 REPORT TARGET PORT GROUPS: the allocation length truncates, RETURN DATA LENGTH stays whole', async () => {
  const { nexus } = await makeHarness();
  const cut = await submit(nexus, rtpg(0, 6));
  assert.equal(cut.status, ScsiStatus.Good);
  assert.deepEqual([...dataIn(cut)], [0, 0, 0, 12, 0x00, 0x01]);
  const extended = dataIn(await submit(nexus, rtpg(1, 8)));
  assert.deepEqual([...extended], [0, 0, 0, 16, 0x10, 0, 0, 0]);
  const none = await submit(nexus, rtpg(0, 0));
  assert.equal(none.status, ScsiStatus.Good);
  assert.equal(none.dataInLength, 0);
});

test('spc4 6.37 REPORT TARGET PORT GROUPS: an unknown PARAMETER DATA FORMAT is INVALID FIELD IN CDB at byte 1 bit 7', async () => {
  const { nexus } = await makeHarness();
  for (const format of [2, 3, 7]) {
    const cmd = await submit(nexus, rtpg(format, 1024));
    assert.equal(senseText(cmd), '5/24/0', `format ${format}`);
    assert.deepEqual([...cmd.sense!.subarray(15, 18)], [0xc8 | 7, 0, 1]); // SKSV, C/D, BPV bit 7, byte 1
  }
});

test('spc4 6.6.2 standard INQUIRY: TPGS 01b (implicit ALUA only) on the disk and on the LUN 0 controller', async () => {
  const { nexus } = await makeHarness();
  const disk = dataIn(await submit(nexus, [0x12, 0, 0, 0, 96, 0]));
  assert.equal((disk[5]! >> 4) & 0x03, 0b01);
  assert.equal(disk[5]! & 0x08, 0x08, '3PC is still set beside it');
  const controller = dataIn(await submit(nexus, [0x12, 0, 0, 0, 96, 0], { lun: 0 }));
  assert.equal((controller[5]! >> 4) & 0x03, 0b01);
  // the controller answers REPORT TARGET PORT GROUPS the same way
  assert.deepEqual([...dataIn(await submit(nexus, rtpg(0, 1024), { lun: 0 }))], [0, 0, 0, 12, ...GROUP_1]);
});

test('spc4 7.7.3 VPD 83h: target port group designator (5h) names group 1; the relative target port 1 descriptor is unchanged', async () => {
  const { nexus } = await makeHarness();
  for (const lun of [1, 0]) {
    const page = dataIn(await submit(nexus, [0x12, 1, 0x83, 0, 255, 0], { lun }));
    const d = designators(page);
    // PIV + iSCSI protocol identifier 5h, binary code set; association 1 (target port)
    assert.deepEqual([...d.get('1/4')!], [0x51, 0x94, 0, 4, 0, 0, 0, 1], `LUN ${lun} relative target port`);
    assert.deepEqual([...d.get('1/5')!], [0x51, 0x95, 0, 4, 0, 0, 0, 1], `LUN ${lun} target port group`);
    // both agree with REPORT TARGET PORT GROUPS: group 1, relative port 1
    const report = dataIn(await submit(nexus, rtpg(0, 1024), { lun }));
    assert.equal(report.readUInt16BE(4 + 2), d.get('1/5')!.readUInt16BE(6));
    assert.equal(report.readUInt16BE(4 + 8 + 2), d.get('1/4')!.readUInt16BE(6));
  }
});

test('spc4 6.35 REPORT SUPPORTED OPERATION CODES lists REPORT TARGET PORT GROUPS (A3h/0Ah), not SET TARGET PORT GROUPS', async () => {
  const { nexus } = await makeHarness();
  for (const lun of [1, 0]) {
    const all = dataIn(
      await submit(nexus, [0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], { lun, readLength: 4096 }),
    );
    const listed: string[] = [];
    for (let o = 4; o < 4 + all.readUInt32BE(0); o += 8)
      listed.push(`${all[o]!.toString(16)}/${all.readUInt16BE(o + 2).toString(16)}/${all[o + 5]! & 0x01}`);
    assert.ok(listed.includes('a3/a/1'), `LUN ${lun}: A3h service action 0Ah, SERVACTV`);
    assert.ok(!listed.some((x) => x.startsWith('a4/')), `LUN ${lun}: no MAINTENANCE OUT`);
    const one = dataIn(await submit(nexus, [0xa3, 0x0c, 0x02, 0xa3, 0, 0x0a, 0, 0, 1, 0, 0, 0], { lun }));
    assert.equal(one[1]! & 0x07, 3, 'supported as in the standard');
    // CDB usage: opcode, PARAMETER DATA FORMAT + service action, ALLOCATION LENGTH
    assert.deepEqual([...one.subarray(4)], [0xa3, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0]);
  }
});

test('spc4 6.45 SET TARGET PORT GROUPS (MAINTENANCE OUT 0Ah) stays INVALID COMMAND OPERATION CODE: implicit ALUA only', async () => {
  const { nexus } = await makeHarness();
  const stpg = [0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  assert.equal(senseText(await submit(nexus, stpg)), '5/20/0');
  assert.equal(senseText(await submit(nexus, stpg, { lun: 0 })), '5/20/0');
});

test('spc4 5.13.1 / spc2 5.5.1 REPORT TARGET PORT GROUPS runs while another I_T nexus holds the LU reserved', async () => {
  const { system, nexus } = await makeHarness();
  const other = system.targets.get(1)!.createNexus(2, 'iqn.2024-01.test:other', 'info');
  const lu = system.targets.get(1)!.findLu(1n)!;
  other.luInfo(lu).unitAttentions.length = 0;
  assert.equal((await submit(other, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good); // RESERVE(6)
  // a READ conflicts, the report does not
  assert.equal(
    (await submit(nexus, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])).status,
    ScsiStatus.ReservationConflict,
  );
  assert.deepEqual([...dataIn(await submit(nexus, rtpg(0, 1024)))], [0, 0, 0, 12, ...GROUP_1]);
});

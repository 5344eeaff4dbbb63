import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { dataIn, makeHarness, senseText, submit } from './harness.js';

/** MAINTENANCE IN / REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 6.40). */
function rstmf(allocation: number, repd = false): number[] {
  const c = Buffer.alloc(12);
  c[0] = 0xa3;
  c[1] = 0x0d;
  c[2] = repd ? 0x80 : 0;
  c.writeUInt32BE(allocation, 6);
  return [...c];
}

test('spc4 6.40 REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS: the functions the core carries out', async () => {
  const { nexus } = await makeHarness();
  for (const lun of [0, 1]) {
    const r = await submit(nexus, rstmf(4), { lun });
    assert.equal(r.status, ScsiStatus.Good, `LUN ${lun}`);
    const d = dataIn(r);
    // ATS ATSS CTSS LURS QTS TRS (no CLEAR ACA, no WAKEUP); QAES QTSS ITNRS
    assert.deepEqual([...d], [0xde, 0x07, 0, 0], `LUN ${lun}`);
  }
});

test('spc4 6.40 REPD: the 16-byte form, ADDITIONAL DATA LENGTH 0Ch, no timeouts; cut at the allocation length', async () => {
  const { nexus } = await makeHarness();
  const d = dataIn(await submit(nexus, rstmf(64, true)));
  assert.equal(d.length, 16);
  assert.deepEqual([d[0], d[1], d[3], d[4]], [0xde, 0x07, 0x0c, 0]);
  assert.equal(dataIn(await submit(nexus, rstmf(8, true))).length, 8);
});

test('spc4 6.40: ALLOCATION LENGTH below 4 -> INVALID FIELD IN CDB', async () => {
  const { nexus } = await makeHarness();
  assert.equal(senseText(await submit(nexus, rstmf(3))), '5/24/0');
});

test('spc4 6.35 REPORT SUPPORTED OPERATION CODES lists MAINTENANCE IN 0Dh', async () => {
  const { nexus } = await makeHarness();
  // one command, service action: opcode A3h, SA 0Dh (REPORTING OPTIONS 010b)
  const c = Buffer.alloc(12);
  c[0] = 0xa3;
  c[1] = 0x0c;
  c[2] = 0x02;
  c[3] = 0xa3;
  c.writeUInt16BE(0x0d, 4);
  c.writeUInt32BE(64, 6);
  const d = dataIn(await submit(nexus, [...c]));
  assert.equal(d[1]! & 0x07, 0x03, 'SUPPORT 011b: supported as the standard says');
  assert.deepEqual([...d.subarray(4, 7)], [0xa3, 0x1f, 0x80], 'CDB usage: opcode, SA field, REPD');
});

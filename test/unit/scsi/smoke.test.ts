import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { cdb10, dataIn, makeHarness, senseText, submit } from './harness.js';

test('end to end: INQUIRY, READ CAPACITY, WRITE, READ, REPORT LUNS, TUR, MODE SENSE', async () => {
  const { nexus } = await makeHarness();
  const inq = await submit(nexus, [0x12, 0, 0, 0, 96, 0]);
  assert.equal(inq.status, ScsiStatus.Good);
  assert.equal(dataIn(inq).subarray(16, 32).toString().trim(), 'VIRTUAL-DISK');
  const cap = await submit(nexus, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(dataIn(cap).readUInt32BE(0), 2047);
  const data = Buffer.alloc(1024, 0xab);
  const w = await submit(nexus, cdb10(0x2a, 10, 2), { dataOut: data });
  assert.equal(w.status, ScsiStatus.Good, w.sense ? senseText(w) : '');
  const r = await submit(nexus, cdb10(0x28, 10, 2));
  assert.deepEqual(dataIn(r), data);
  const rl = await submit(nexus, [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0]);
  assert.equal(dataIn(rl).readUInt32BE(0), 16);
  const tur = await submit(nexus, [0, 0, 0, 0, 0, 0]);
  assert.equal(tur.status, ScsiStatus.Good);
  const ms = await submit(nexus, [0x1a, 0, 0x3f, 0, 255, 0]);
  assert.equal(ms.status, ScsiStatus.Good);
});

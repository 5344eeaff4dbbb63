import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { parseSense } from '../../../src/scsi/sense.js';
import { dataIn, makeHarness, senseText, submit } from './harness.js';

test('sam5 5.14 after nexus creation: INQUIRY does not consume POWER ON, the next command gets 29/00 once', async () => {
  const { nexus } = await makeHarness({ keepUa: true });
  assert.equal((await submit(nexus, [0x12, 0, 0, 0, 96, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, [0x12, 0, 0, 0, 96, 0])).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '6/29/0');
  assert.equal((await submit(nexus, [0, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  // the UA is per LU: LUN 0 still has its own
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0], { lun: 0 })), '6/29/0');
});

test('spc4 6.39 REQUEST SENSE returns a pending UA as data with GOOD and clears it', async () => {
  const { nexus } = await makeHarness({ keepUa: true });
  const r = await submit(nexus, [0x03, 0, 0, 0, 252, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  assert.deepEqual(parseSense(dataIn(r)), { key: 6, asc: 0x29, ascq: 0 });
  assert.equal((await submit(nexus, [0, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
});

test('spc4 5.14 adding an LU: REPORTED LUNS DATA HAS CHANGED on the others, cleared by REPORT LUNS', async () => {
  const { system, nexus } = await makeHarness();
  await system.createLu(1, 2n, { path: '65536' });
  // REPORT LUNS runs despite the UA and clears 3F/0E for that LU
  const rl = await submit(nexus, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(rl.status, ScsiStatus.Good);
  assert.equal(dataIn(rl).readUInt32BE(0), 24);
  assert.equal((await submit(nexus, [0, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0], { lun: 0 })), '6/3f/e');
  // the new LU is new to this nexus: POWER ON first
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0], { lun: 2 })), '6/29/0');
  // removing it: the remaining LUs are told
  await system.deleteLu(1, 2n);
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '6/3f/e');
});

test('sam5 7.7 LOGICAL UNIT RESET: 29/03 on every nexus, PREVENT and reservation dropped', async () => {
  const { system, nexus } = await makeHarness();
  const { TmfFunction, TmfResult } = await import('../../../src/scsi/tmf.js');
  const { lunField } = await import('../../../src/scsi/lun-address.js');
  const lu = system.targets.get(1)!.findLu(1n)!;
  await submit(nexus, [0x1e, 0, 0, 0, 1, 0]);
  await submit(nexus, [0x16, 0, 0, 0, 0, 0]);
  assert.equal(lu.preventRemoval, true);
  assert.equal(
    await nexus.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0),
    TmfResult.FunctionComplete,
  );
  assert.equal(lu.preventRemoval, false);
  assert.equal(lu.reservation, null);
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '6/29/3');
  assert.equal(
    await nexus.taskManagement(TmfFunction.LogicalUnitReset, lunField(7), 0),
    TmfResult.LunNotFound,
  );
});

test('sbc4 offline LU: TUR NOT READY (MEDIUM NOT PRESENT when removable); INQUIRY still works', async () => {
  const { system, nexus } = await makeHarness();
  await system.updateLu(1, 1n, { online: '0' });
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '2/4/1');
  await system.updateLu(1, 1n, { removable: '1' });
  assert.equal(senseText(await submit(nexus, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])), '2/3a/0');
  assert.equal((await submit(nexus, [0x12, 0, 0, 0, 96, 0])).status, ScsiStatus.Good);
  const rs = await submit(nexus, [0x03, 0, 0, 0, 96, 0]);
  assert.deepEqual(parseSense(dataIn(rs)), { key: 2, asc: 0x3a, ascq: 0 });
  await system.updateLu(1, 1n, { online: '1' });
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '6/28/0'); // medium may have changed
  assert.equal((await submit(nexus, [0, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
});

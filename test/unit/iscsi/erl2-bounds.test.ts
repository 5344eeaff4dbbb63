/**
 * Error recovery level 2 where ERL 1's retention bounds (limits.ts maxRetainedBytesPerConnection,
 * maxRetainedResponsesPerConnection) evicted a READ's Data-In before its connection failed
 * (RFC 7143 7.2.2, 11.5.1, 11.5.6): TASK REASSIGN runs the READ again from the small record kept
 * of its command. An in-process target (the bounds are not tgtd options), hand-built PDUs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Session } from '../../../src/initiator/index.js';
import { inquiryCdb, read10Cdb } from '../../../src/initiator/cdb.js';
import type { IscsiLimits } from '../../../src/iscsi/limits.js';
import { bhsItt, bhsOpcode, DataInView, type Pdu } from '../../../src/iscsi/pdu.js';
import { Opcode, TmfResponse } from '../../../src/iscsi/spec.js';
import {
  dropConnection,
  pattern,
  sendRawCommand,
  taskReassign,
  untilStatus,
} from '../../integration/util.js';
import { BLOCK, LUN, startFabric, type FabricHarness } from './fabric/harness.js';

const PROPOSALS = {
  errorRecoveryLevel: 2,
  maxConnections: 4,
  defaultTime2Wait: 0,
  defaultTime2Retain: 20,
  initialR2T: true,
  immediateData: false,
  maxRecvDataSegmentLength: 8192,
};

/** A target at ERL 2 with `limits`, and a session (CID 0) whose unit attention is cleared. */
async function erl2Fabric(limits: Partial<IscsiLimits>): Promise<{ fabric: FabricHarness; s: Session }> {
  const fabric = await startFabric(limits);
  const target = fabric.system.targets.get(1)!;
  for (const [key, value] of [
    ['ErrorRecoveryLevel', '2'],
    ['MaxConnections', '4'],
    ['DefaultTime2Wait', '0'],
  ] as const) {
    assert.equal(fabric.driver.targetUpdate(target, key, value), 0, key);
  }
  const s = await fabric.login({ cid: 0, proposals: PROPOSALS });
  assert.equal(s.params.errorRecoveryLevel, 2);
  for (let i = 0; i < 3 && (await s.testUnitReady(LUN)).status !== 0; i++);
  return { fabric, s };
}

/** Another connection of `s`'s session, CID `cid`, in raw mode. */
async function addConnection(fabric: FabricHarness, s: Session, cid: number): Promise<Session> {
  const c = await fabric.login({
    initiatorName: s.options.initiatorName!,
    isid: s.isid,
    tsih: s.tsih,
    cid,
    initialCmdSN: s.cmdSN,
    proposals: PROPOSALS,
  });
  assert.equal(c.tsih, s.tsih, 'joined the session');
  c.setRawMode(true);
  return c;
}

/** TASK REASSIGN of `ref` on `s`; returns the response code. */
function reassign(s: Session, ref: number, expDataSN = 0): Promise<number> {
  return taskReassign(s, { itt: 0x9000 + ref, lun: LUN, ref, expDataSN });
}

/** The Data-In of `pdus` (ITT `itt`) concatenated in offset order. */
function dataOf(pdus: Pdu[], itt: number): Buffer {
  const parts = pdus
    .filter((p) => bhsOpcode(p.bhs) === Opcode.DataIn && bhsItt(p.bhs) === itt)
    .map((p) => ({ off: new DataInView(p.bhs).bufferOffset, data: p.data }))
    .sort((a, b) => a.off - b.off);
  return Buffer.concat(parts.map((p) => p.data));
}

test('rfc7143 7.2.2 / 11.5.1: a READ whose Data-In the ERL 1 byte bound evicted is run again on TASK REASSIGN; Data-In and status come on the new connection', async () => {
  const { fabric, s } = await erl2Fabric({ maxRetainedBytesPerConnection: 16 * 1024 });
  try {
    const data = pattern(64 * BLOCK, 31);
    assert.equal((await s.write10(LUN, 0, data, BLOCK)).status, 0);
    s.setRawMode(true);
    const budget = fabric.driver.dataOutBudget;
    const tag = 0x101;
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: read10Cdb(0, 64), read: true, edtl: 64 * BLOCK });
    assert.ok(dataOf(await untilStatus(s, tag), tag).equals(data), 'the first delivery');
    assert.ok(budget.used < 16 * 1024, `32 KiB is over the bound: not kept (${budget.used})`);
    await dropConnection(s);
    const c = await addConnection(fabric, s, 1);
    assert.equal(await reassign(c, tag), TmfResponse.FunctionComplete);
    const again = await untilStatus(c, tag);
    assert.ok(dataOf(again, tag).equals(data), 'read again, all of it');
    const last = new DataInView(again[again.length - 1]!.bhs);
    assert.equal(last.statusPresent, true);
    assert.equal(last.status, 0);
    assert.equal(last.statSN, (c.expStatSN - 1) >>> 0, 'the status takes the new connection StatSN');
    // This TMF's ExpStatSN acknowledges the new status: nothing is left to reassign.
    assert.equal(await reassign(c, tag), TmfResponse.TaskDoesNotExist);
    assert.ok(budget.used < 1024, `nothing of it is held any more: ${budget.used}`);
  } finally {
    await fabric.close();
  }
});

test('rfc7143 11.5.6: a READ run again after eviction sends its Data-In from ExpDataSN when the cut is unchanged', async () => {
  const { fabric, s } = await erl2Fabric({ maxRetainedBytesPerConnection: 16 * 1024 });
  try {
    const data = pattern(64 * BLOCK, 32);
    assert.equal((await s.write10(LUN, 128, data, BLOCK)).status, 0);
    s.setRawMode(true);
    const tag = 0x102;
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: read10Cdb(128, 64), read: true, edtl: 64 * BLOCK });
    assert.equal((await untilStatus(s, tag)).length, 4, '32 KiB in 8 KiB Data-In');
    await dropConnection(s);
    const c = await addConnection(fabric, s, 1);
    assert.equal(await reassign(c, tag, 2), TmfResponse.FunctionComplete);
    const again = (await untilStatus(c, tag)).filter((p) => bhsItt(p.bhs) === tag);
    assert.deepEqual(
      again.map((p) => new DataInView(p.bhs).dataSN),
      [2, 3],
      'DataSN 2 and 3 only',
    );
    assert.deepEqual(
      again.map((p) => new DataInView(p.bhs).bufferOffset),
      [16_384, 24_576],
    );
    assert.ok(Buffer.concat(again.map((p) => p.data)).equals(data.subarray(16_384)));
    assert.equal(new DataInView(again[1]!.bhs).statusPresent, true);
  } finally {
    await fabric.close();
  }
});

test('rfc7143 7.2.2: only a plain READ runs again; an evicted INQUIRY cannot be reassigned (1 task does not exist)', async () => {
  const { fabric, s } = await erl2Fabric({ maxRetainedBytesPerConnection: 64 });
  try {
    s.setRawMode(true);
    const inquiry = 0x103;
    const read = 0x104;
    sendRawCommand(s, { itt: inquiry, lun: LUN, cdb: inquiryCdb(false, 0, 255), read: true, edtl: 255 });
    sendRawCommand(s, { itt: read, lun: LUN, cdb: read10Cdb(0, 1), read: true, edtl: BLOCK });
    await untilStatus(s, inquiry);
    await untilStatus(s, read);
    await dropConnection(s);
    const c = await addConnection(fabric, s, 1);
    assert.equal(await reassign(c, inquiry), TmfResponse.TaskDoesNotExist);
    assert.equal(await reassign(c, read), TmfResponse.FunctionComplete);
    const again = await untilStatus(c, read);
    assert.equal(dataOf(again, read).length, BLOCK);
  } finally {
    await fabric.close();
  }
});

test('limits: the records of evicted READs are bounded by maxRetainedResponsesPerConnection; the oldest beyond it cannot be reassigned', async () => {
  const { fabric, s } = await erl2Fabric({
    maxRetainedBytesPerConnection: 16 * 1024,
    maxRetainedResponsesPerConnection: 2,
  });
  try {
    const data = pattern(3 * 64 * BLOCK, 33);
    assert.equal((await s.write10(LUN, 256, data, BLOCK)).status, 0);
    s.setRawMode(true);
    const tags = [0x105, 0x106, 0x107];
    // All three go out before any status is received: none is acknowledged.
    tags.forEach((tag, i) =>
      sendRawCommand(s, {
        itt: tag,
        lun: LUN,
        cdb: read10Cdb(256 + 64 * i, 64),
        read: true,
        edtl: 64 * BLOCK,
      }),
    );
    for (const tag of tags) await untilStatus(s, tag);
    await dropConnection(s);
    const c = await addConnection(fabric, s, 1);
    assert.equal(await reassign(c, tags[0]!), TmfResponse.TaskDoesNotExist, 'its record was dropped');
    for (let i = 1; i < tags.length; i++) {
      assert.equal(await reassign(c, tags[i]!), TmfResponse.FunctionComplete);
      const again = await untilStatus(c, tags[i]!);
      assert.ok(dataOf(again, tags[i]!).equals(data.subarray(i * 64 * BLOCK, (i + 1) * 64 * BLOCK)));
    }
  } finally {
    await fabric.close();
  }
});

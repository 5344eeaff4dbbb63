/**
 * Error recovery level 1 bookkeeping (src/iscsi/erl1.ts) and the Data-In layout it re-encodes
 * from (src/iscsi/data-in.ts): SNACK runs, what is kept until ExpStatSN acknowledges it and
 * within which bounds, and how lost Data-Out become holes for recovery R2Ts. The fabric case at
 * the end runs an in-process target to see the kept bytes counted in the daemon-wide budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataDirection, ScsiCommand, ScsiStatus, TaskAttribute } from '../../../src/scsi/command.js';
import {
  dataInPduCount,
  dataInSegment,
  encodeDataInAt,
  sendCommandResult,
  type DataInPlan,
} from '../../../src/iscsi/data-in.js';
import { Retention, snackRun, WriteRecovery } from '../../../src/iscsi/erl1.js';
import { encodeLun } from '../../../src/initiator/index.js';
import { read10Cdb } from '../../../src/initiator/cdb.js';
import type { IscsiLimits } from '../../../src/iscsi/limits.js';
import { DataInView, encodeScsiCommand, encodeSnackRequest, RejectView } from '../../../src/iscsi/pdu.js';
import { BHS_LENGTH, RejectReason, RESERVED_TAG, SnackType } from '../../../src/iscsi/spec.js';
import { IscsiTask } from '../../../src/iscsi/task.js';
import { BLOCK, LUN, startFabric } from './fabric/harness.js';

// --- Data-In layout --------------------------------------------------------------------------

/** The layout as the connection always cut it: MaxBurstLength sequences, MRDSL pieces. */
function referenceLayout(
  total: number,
  mxdsl: number,
  burst: number,
): { offset: number; length: number; final: boolean }[] {
  const out = [];
  for (let offset = 0; offset < total;) {
    const burstEnd = Math.min(total, (Math.floor(offset / burst) + 1) * burst);
    const length = Math.min(mxdsl, burstEnd - offset);
    out.push({ offset, length, final: offset + length === burstEnd });
    offset += length;
  }
  return out;
}

test('rfc7143 11.7.1: dataInSegment cuts MaxBurstLength sequences at MaxRecvDataSegmentLength, F at each end', () => {
  const cases: [number, number, number][] = [
    [1, 512, 512],
    [4096, 512, 4096],
    [10_000, 3000, 7000],
    [262_144, 8192, 262_144],
    [300_000, 8192, 65_536],
    [65_537, 65_536, 512],
    [1_000_003, 4000, 10_000],
  ];
  for (const [total, mxdsl, burst] of cases) {
    const want = referenceLayout(total, mxdsl, burst);
    assert.equal(dataInPduCount(total, mxdsl, burst), want.length, `count ${total}/${mxdsl}/${burst}`);
    for (let sn = 0; sn < want.length; sn++) {
      assert.deepEqual(
        dataInSegment({ length: total, maxXmitDataSegmentLength: mxdsl, maxBurstLength: burst }, sn),
        want[sn],
      );
    }
  }
  assert.equal(dataInPduCount(0, 512, 512), 0);
});

test('rfc7143 11.16.1: encodeDataInAt re-encodes exactly the Data-In first sent (status on the last one)', () => {
  const data = Buffer.alloc(20_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const cmd = new ScsiCommand(
    {
      cdb: Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 40, 0]),
      lun: Buffer.alloc(8),
      tag: 0x42,
      attribute: TaskAttribute.Simple,
      direction: DataDirection.Read,
      expectedReadLength: 20_480,
      expectedWriteLength: 0,
    },
    () => undefined,
  );
  cmd.dataIn = data;
  cmd.dataInLength = data.length;
  cmd.status = ScsiStatus.Good;
  const task = new IscsiTask(0x42, cmd, false);
  const sent: { bhs: Buffer; data: Buffer }[] = [];
  let statSn = 77;
  const seq = { takeStatSn: () => statSn++, expCmdSn: 5, maxCmdSn: 9 };
  const counts = sendCommandResult(
    task,
    { maxXmitDataSegmentLength: 3000, maxBurstLength: 8000 },
    seq,
    (bhs, d) => sent.push({ bhs: Buffer.from(bhs), data: Buffer.from(d as Buffer) }),
    { keepPlan: true }, // what ERL >= 1 retention asks for
  );
  const plan = counts.plan as DataInPlan;
  assert.equal(plan.pduCount, sent.length);
  assert.equal(counts.statSn, 77);
  assert.equal(counts.responses, 0, 'status collapsed into the last Data-In');
  const last = new DataInView(sent[sent.length - 1]!.bhs);
  assert.ok(last.statusPresent);
  assert.equal(last.statSN, 77);
  assert.equal(last.underflow, true);
  assert.equal(last.residualCount, 480);
  for (let sn = 0; sn < sent.length; sn++) {
    const bhs = Buffer.alloc(48);
    const payload = encodeDataInAt(bhs, plan, sn, 5, 9);
    assert.deepEqual(bhs, sent[sn]!.bhs, `header of DataSN ${sn}`);
    assert.deepEqual(payload, sent[sn]!.data, `payload of DataSN ${sn}`);
    assert.equal(payload.buffer, data.buffer, 'a view of the command buffer, not a copy');
  }
});

// --- SNACK runs ------------------------------------------------------------------------------

test('rfc7143 11.16.1: a SNACK run names [BegRun, BegRun+RunLength); RunLength 0 = to the end; 0/0 = all', () => {
  assert.deepEqual(snackRun(3, 2, 0, 10), { from: 3, count: 2 });
  assert.deepEqual(snackRun(3, 0, 0, 10), { from: 3, count: 7 });
  assert.deepEqual(snackRun(0, 0, 4, 10), { from: 4, count: 6 }, 'all unacknowledged');
  assert.deepEqual(snackRun(9, 1, 0, 10), { from: 9, count: 1 });
});

test('rfc7143 11.16.1 / 11.17.1: runs reaching unsent or acknowledged numbers are protocol errors', () => {
  assert.equal(snackRun(10, 1, 0, 10), 'not-sent');
  assert.equal(snackRun(8, 3, 0, 10), 'not-sent');
  assert.equal(snackRun(3, 1, 4, 10), 'acknowledged');
  assert.equal(snackRun(0, 0, 5, 5), 'not-sent', 'nothing unacknowledged');
});

test('rfc7143 11.16.1: StatSN runs wrap with serial arithmetic', () => {
  assert.deepEqual(snackRun(0xffffffff, 2, 0xfffffffe, 3), { from: 0xffffffff, count: 2 });
  assert.equal(snackRun(0xfffffffd, 1, 0xfffffffe, 3), 'acknowledged');
});

// --- Retention -------------------------------------------------------------------------------

function plan(itt: number, length: number): DataInPlan {
  return {
    itt,
    lun: Buffer.alloc(8),
    data: Buffer.alloc(length),
    length,
    maxXmitDataSegmentLength: 8192,
    maxBurstLength: 262_144,
    pduCount: dataInPduCount(length, 8192, 262_144),
    collapse: true,
    status: 0,
    overflow: false,
    underflow: false,
    residualCount: 0,
    statSn: 0,
  };
}

function retention(maxBytes = 1 << 20, maxEntries = 100, firstStatSn = 10) {
  const budget = { held: 0 };
  const released: number[] = [];
  const r = new Retention({ maxBytes, maxEntries }, firstStatSn, {
    hold: (b) => (budget.held += b),
    release: (b) => (budget.held -= b),
  });
  return { r, budget, released };
}

test('rfc7143 3.2.2.2: ExpStatSN releases the READs and responses it acknowledges, and their budget', () => {
  const { r, budget, released } = retention();
  const read = r.addRead(plan(1, 4096), 10, () => released.push(1));
  r.addResponse(10, null, null, read);
  r.addResponse(11, Buffer.alloc(48), Buffer.alloc(18));
  r.addRead(plan(2, 8192), 12, () => released.push(2));
  assert.equal(budget.held, r.bytes);
  assert.ok(r.bytes >= 4096 + 8192 + 18);
  r.acknowledge(11, 13);
  assert.deepEqual(released, [1]);
  assert.equal(r.read(1), undefined);
  assert.ok(r.read(2)?.plan);
  assert.equal(r.response(10, 13), 'acknowledged');
  assert.notEqual(typeof r.response(11, 13), 'string');
  r.acknowledge(13, 13);
  assert.deepEqual(released, [1, 2]);
  assert.equal(r.bytes, 0);
  assert.equal(budget.held, 0);
  assert.equal(r.responseCount + r.readCount, 0);
});

test('rfc7143 3.2.2.2: an ExpStatSN behind the last one or beyond what was sent changes nothing', () => {
  const { r } = retention();
  r.addResponse(10, Buffer.alloc(48), null);
  r.addResponse(11, Buffer.alloc(48), null);
  r.acknowledge(100, 12);
  assert.equal(r.responseCount, 2, 'beyond the next StatSN: ignored');
  r.acknowledge(11, 12);
  r.acknowledge(10, 12);
  assert.equal(r.expStatSn, 11, 'never moves back');
  assert.equal(r.response(12, 12), 'not-sent');
});

test('rfc7143 11.16.1: a response sent again with the same StatSN replaces the kept one, bytes counted once', () => {
  const { r, budget } = retention();
  r.addResponse(10, Buffer.alloc(48), Buffer.alloc(100));
  r.addResponse(11, Buffer.alloc(48), null);
  r.addResponse(10, Buffer.alloc(48), Buffer.alloc(20));
  assert.equal(r.responseCount, 2);
  assert.equal(budget.held, r.bytes);
  r.acknowledge(11, 12);
  assert.equal(r.response(10, 12), 'acknowledged', 'still in StatSN order');
  r.acknowledge(12, 12);
  assert.equal(budget.held, 0);
});

test('limits: retained bytes beyond the per-connection bound evict the oldest READ (SNACK reject from then on)', () => {
  const { r, budget, released } = retention(10_000, 100);
  r.addRead(plan(1, 6000), 10, () => released.push(1));
  r.addRead(plan(2, 6000), 11, () => released.push(2));
  assert.deepEqual(released, [1]);
  assert.equal(r.read(1)?.plan, null, 'evicted but remembered');
  assert.ok(r.read(2)?.plan);
  assert.ok(budget.held <= 10_000);
  r.addRead(plan(3, 20_000), 12, () => released.push(3));
  assert.equal(r.read(3)?.plan, null, 'too large to keep at all');
  assert.ok(budget.held <= 10_000);
});

test('limits: responses beyond the per-connection count are evicted oldest first', () => {
  const { r } = retention(1 << 20, 3);
  for (let sn = 10; sn < 15; sn++) r.addResponse(sn, Buffer.alloc(48), null);
  assert.equal(r.responseCount, 3);
  assert.equal(r.response(10, 15), 'evicted');
  assert.notEqual(typeof r.response(14, 15), 'string');
  r.clear();
  assert.equal(r.bytes, 0);
});

// --- Data-Out recovery -----------------------------------------------------------------------

test('rfc7143 7.9: a DataSN gap marks the bytes before the PDU as a hole, the sequence goes on', () => {
  const w = new WriteRecovery();
  w.open(7, 0, 4096, false);
  assert.equal(w.check(7, 0, 0, 1024), 'accept');
  assert.equal(w.advance(1024, false), null);
  assert.equal(w.check(7, 2, 2048, 1024), 'accept', 'DataSN 1 was lost');
  assert.deepEqual(w.holes, [{ offset: 1024, length: 1024 }]);
  w.advance(1024, false);
  assert.equal(w.check(7, 3, 3072, 1024), 'accept');
  const ended = w.advance(1024, true);
  assert.equal(ended?.ttt, 7);
  assert.equal(w.seq, null);
  assert.deepEqual(w.takeHole(), { offset: 1024, length: 1024 });
  assert.ok(w.idle);
});

test('rfc7143 7.8: a Data-Out lost to its data digest becomes a hole of exactly its range', () => {
  const w = new WriteRecovery();
  w.open(RESERVED_TAG, 512, 8192, false);
  assert.equal(w.check(RESERVED_TAG, 0, 512, 4096), 'accept');
  w.addHole({ offset: 512, length: 4096 });
  w.advance(4096, false);
  assert.equal(w.check(RESERVED_TAG, 1, 4608, 3584), 'accept');
  assert.ok(w.advance(3584, true));
  assert.deepEqual(w.holes, [{ offset: 512, length: 4096 }]);
});

test('rfc7143 11.8: a solicited sequence ending (F) short of its R2T leaves the rest as a hole', () => {
  const w = new WriteRecovery();
  w.open(9, 8192, 16_384, false);
  assert.equal(w.check(9, 0, 8192, 4096), 'accept');
  w.advance(4096, true);
  assert.deepEqual(w.holes, [{ offset: 12_288, length: 4096 }]);
});

test('rfc7143 7.9: DataSN already seen is stale; offsets that do not fit, or another TTT, are invalid', () => {
  const w = new WriteRecovery();
  w.open(5, 0, 4096, true);
  assert.equal(w.check(5, 0, 0, 1024), 'accept');
  w.advance(1024, false);
  assert.equal(w.check(5, 0, 0, 1024), 'stale');
  assert.equal(w.check(5, 1, 2048, 1024), 'invalid', 'DataSN in order, offset not');
  assert.equal(w.check(5, 1, 3584, 1024), 'invalid', 'beyond the R2T');
  assert.equal(w.check(5, 3, 512, 512), 'invalid', 'gap with an offset going back');
  assert.equal(w.check(6, 1, 1024, 1024), 'invalid', 'another TTT');
  assert.equal(w.check(RESERVED_TAG, 1, 1024, 1024), 'invalid');
  assert.equal(w.holes.length, 0, 'nothing recorded for refused PDUs');
});

test('rfc7143 13.18: data beyond a hole is parked and absorbed in offset order once the hole is filled', () => {
  const w = new WriteRecovery();
  const absorbed: number[] = [];
  const absorb = (d: Buffer): void => void absorbed.push(d[0]!);
  const seg = (tag: number, n: number): Buffer => Buffer.alloc(n, tag);
  let received = 0;
  received = w.place(received, 0, seg(1, 100), absorb);
  received = w.place(received, 300, seg(4, 100), absorb);
  received = w.place(received, 200, seg(3, 100), absorb);
  assert.equal(received, 100);
  assert.deepEqual(absorbed, [1]);
  received = w.place(received, 100, seg(2, 100), absorb);
  assert.equal(received, 400);
  assert.deepEqual(absorbed, [1, 2, 3, 4]);
  assert.equal(w.parked.length, 0);
});

// --- in-process target: the bytes kept are counted and given back ------------------------------

/** A fabric whose target offers ErrorRecoveryLevel=1, and a logged-in ERL 1 session. */
async function erl1Fabric(limits: Partial<IscsiLimits> = {}) {
  const fabric = await startFabric(limits);
  const target = fabric.system.targets.get(1)!;
  assert.equal(fabric.driver.targetUpdate(target, 'ErrorRecoveryLevel', '1'), 0);
  const s = await fabric.login({ proposals: { errorRecoveryLevel: 1 } });
  assert.equal(s.params.errorRecoveryLevel, 1);
  for (let i = 0; i < 3 && (await s.testUnitReady(LUN)).status !== 0; i++);
  return { fabric, s };
}

test('limits: a READ kept for Data SNACK is counted in the Data-Out budget until ExpStatSN passes its status', async () => {
  const { fabric, s } = await erl1Fabric();
  try {
    const budget = fabric.driver.dataOutBudget;
    assert.ok(budget.used < 1024, `only small responses kept after TEST UNIT READY: ${budget.used}`);
    const r = await s.read10(LUN, 0, 128, BLOCK);
    assert.equal(r.status, 0);
    assert.ok(budget.used >= 128 * BLOCK, `the 64 KiB read is kept: ${budget.used}`);
    // The next command's ExpStatSN acknowledges the read's status.
    assert.equal((await s.testUnitReady(LUN)).status, 0);
    assert.ok(budget.used < 1024, `released: ${budget.used}`);
    s.destroy();
    for (let i = 0; i < 50 && budget.used > 0; i++) await new Promise((ok) => setTimeout(ok, 10));
    assert.equal(budget.used, 0, 'all given back when the connection closes');
  } finally {
    await fabric.close();
  }
});

test('rfc7143 11.17.1: a READ too large for maxRetainedBytesPerConnection is not kept; a Data SNACK for it gets "SNACK reject"', async () => {
  const { fabric, s } = await erl1Fabric({ maxRetainedBytesPerConnection: 16 * 1024 });
  try {
    s.setRawMode(true);
    const itt = 0x777;
    s.sendPdu(
      encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
        itt,
        lun: encodeLun(LUN),
        cmdSN: s.takeCmdSN(),
        expStatSN: s.expStatSN,
        read: true,
        edtl: 64 * 1024,
        cdb: read10Cdb(0, 128),
      }),
    );
    let statSn = -1;
    while (statSn < 0) {
      const p = await s.receivePdu(5000);
      const v = new DataInView(p.bhs);
      if (v.opcode === 0x25 && v.statusPresent) statSn = v.statSN;
    }
    assert.ok(fabric.driver.dataOutBudget.used < 16 * 1024);
    const snack = encodeSnackRequest(Buffer.alloc(BHS_LENGTH), {
      type: SnackType.DataR2T,
      itt,
      expStatSN: statSn,
      begRun: 0,
      runLength: 1,
    });
    s.sendPdu(snack);
    const reject = await s.receivePdu(5000);
    assert.equal(new RejectView(reject.bhs).opcode, 0x3f);
    assert.equal(new RejectView(reject.bhs).reason, RejectReason.SnackReject);
  } finally {
    await fabric.close();
  }
});

test('rfc7143 11.7.3 ERL 0: sendCommandResult keeps no plan (nothing to re-encode), and every result is still exact', () => {
  const results: string[] = [];
  for (const length of [512, 20_000]) {
    const data = Buffer.alloc(length, length & 0xff);
    const cmd = new ScsiCommand(
      {
        cdb: Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 40, 0]),
        lun: Buffer.from([0, 5, 0, 0, 0, 0, 0, 0]),
        tag: length,
        attribute: TaskAttribute.Simple,
        direction: DataDirection.Read,
        expectedReadLength: length,
        expectedWriteLength: 0,
      },
      () => undefined,
    );
    cmd.dataIn = data;
    cmd.dataInLength = length;
    const sent: Buffer[] = [];
    const counts = sendCommandResult(
      new IscsiTask(length, cmd, false),
      { maxXmitDataSegmentLength: 8192, maxBurstLength: 262_144 },
      { takeStatSn: () => 1, expCmdSn: 1, maxCmdSn: 2 },
      (bhs, d) => sent.push(Buffer.concat([bhs, d as Buffer])),
    );
    assert.equal(counts.plan, null, 'no plan object at ERL 0');
    assert.equal(counts.dataInPdus, Math.ceil(length / 8192));
    const views = sent.map((b) => new DataInView(b.subarray(0, 48)));
    assert.ok(
      views.every((v) => v.itt === length && v.lun.equals(cmd.lun)),
      'each Data-In carries this command',
    );
    assert.ok(views.at(-1)!.statusPresent);
    results.push(Buffer.concat(sent.map((b) => b.subarray(48))).toString('hex'));
  }
  assert.equal(results[0], Buffer.alloc(512, 0).toString('hex'), 'first command data intact');
  assert.equal(results[1], Buffer.alloc(20_000, 20_000 & 0xff).toString('hex'), 'second command data intact');
});

/**
 * Error recovery level 2 bookkeeping (erl2.ts, and what erl1.ts gives it): detached tasks and
 * their retention timers, the Data-In a reassigned READ sends again, a reassigned write's R2T
 * state, and the unacknowledged statuses a failed connection hands over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataDirection, ScsiCommand, TaskAttribute } from '../../../src/scsi/command.js';
import { dataInPduCount, type DataInPlan } from '../../../src/iscsi/data-in.js';
import { Retention, WriteRecovery } from '../../../src/iscsi/erl1.js';
import {
  ConnectionRecovery,
  detachedState,
  rearmWrite,
  reassignedDataIn,
  type DetachedTask,
  type RecoveryTimers,
} from '../../../src/iscsi/erl2.js';
import { encodeNopIn, encodeScsiResponse } from '../../../src/iscsi/pdu.js';
import { BHS_LENGTH, RESERVED_TAG } from '../../../src/iscsi/spec.js';
import { IscsiTask } from '../../../src/iscsi/task.js';

/** Timers fired by hand. */
function manualTimers(): RecoveryTimers & { fire(): void; pending: number; delays: number[] } {
  const live = new Map<number, () => void>();
  let next = 0;
  const t = {
    delays: [] as number[],
    set(run: () => void, ms: number) {
      t.delays.push(ms);
      live.set(++next, run);
      return next;
    },
    clear(handle: unknown) {
      live.delete(handle as number);
    },
    fire() {
      const runs = [...live.values()];
      live.clear();
      for (const r of runs) r();
    },
    get pending() {
      return live.size;
    },
  };
  return t;
}

function writeTask(itt: number, length: number): IscsiTask {
  const cmd = new ScsiCommand(
    {
      cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, length / 512, 0]),
      lun: Buffer.alloc(8),
      tag: itt,
      attribute: TaskAttribute.Simple,
      direction: DataDirection.Write,
      expectedReadLength: 0,
      expectedWriteLength: length,
    },
    () => undefined,
  );
  return new IscsiTask(itt, cmd, false);
}

function entry(itt: number, task: IscsiTask | null = null): DetachedTask {
  return { itt, cid: 0, task, sent: task ? null : { read: null, response: null }, bytes: 0 };
}

function plan(length: number, mxdsl: number, burst: number): DataInPlan {
  return {
    itt: 7,
    lun: Buffer.alloc(8),
    data: Buffer.alloc(length),
    length,
    maxXmitDataSegmentLength: mxdsl,
    maxBurstLength: burst,
    pduCount: dataInPduCount(length, mxdsl, burst),
    collapse: true,
    status: 0,
    overflow: false,
    underflow: false,
    residualCount: 0,
    statSn: 5,
  };
}

test('rfc7143 13.15 / 13.16: detached tasks are kept Time2Wait + Time2Retain, then handed over as expired', () => {
  const timers = manualTimers();
  const expired: DetachedTask[][] = [];
  const r = new ConnectionRecovery(3000, (e) => expired.push(e), timers);
  assert.equal(r.pending, false);
  r.detach(1, [entry(0x10), entry(0x11)]);
  assert.deepEqual(timers.delays, [3000]);
  assert.equal(r.pending, true);
  assert.equal(r.hasFailed(1), true);
  assert.equal(r.hasFailed(2), false);
  assert.equal(r.has(0x10), true);
  assert.equal(r.take(0x10)?.itt, 0x10, 'TASK REASSIGN takes it');
  assert.equal(r.has(0x10), false);
  assert.equal(r.take(0x10), undefined, 'only once');
  timers.fire();
  assert.deepEqual(
    expired.map((e) => e.map((x) => x.itt)),
    [[0x11]],
    'what was not reassigned expires',
  );
  assert.equal(r.pending, false);
  assert.equal(r.size, 0);
});

test('rfc7143 7.1.4: a connection that fails with no task still keeps the session for the retention time', () => {
  const timers = manualTimers();
  let calls = 0;
  const r = new ConnectionRecovery(0, () => calls++, timers);
  r.detach(3, []);
  assert.equal(r.pending, true);
  timers.fire();
  assert.equal(calls, 1);
  assert.equal(r.pending, false);
});

test('rfc7143 11.2.1.8: a detached ITT is unique in the session; clear() stops every timer and returns what is left', () => {
  const timers = manualTimers();
  const r = new ConnectionRecovery(1000, () => assert.fail('no expiry after clear'), timers);
  r.detach(1, [entry(0x20)]);
  r.detach(2, [entry(0x20), entry(0x21)]);
  assert.equal(r.size, 2, 'the later detach of ITT 0x20 replaces the earlier one');
  assert.equal(r.get(0x20)?.itt, 0x20);
  const left = r.clear();
  assert.deepEqual(left.map((e) => e.itt).sort(), [0x20, 0x21]);
  assert.equal(timers.pending, 0);
  assert.equal(r.pending, false);
  timers.fire();
});

test('rfc7143 11.5.1: the state TASK REASSIGN finds a detached task in', () => {
  const task = writeTask(1, 4096);
  assert.equal(detachedState(entry(1, task)), 'waiting-data');
  task.submitted = true;
  assert.equal(detachedState(entry(1, task)), 'running');
  task.done = true;
  assert.equal(detachedState(entry(1, task)), 'completed');
  assert.equal(detachedState(entry(2)), 'status-sent');
});

test('rfc7143 11.5.1 ExpDataSN: a reassigned READ resends from ExpDataSN when the cut is unchanged, 0 means all', () => {
  const p = plan(32_768, 8192, 262_144);
  assert.equal(p.pduCount, 4);
  const limits = { maxXmitDataSegmentLength: 8192, maxBurstLength: 262_144 };
  assert.equal(reassignedDataIn(p, limits, 0).from, 0);
  assert.equal(reassignedDataIn(p, limits, 2).from, 2);
  assert.equal(reassignedDataIn(p, limits, 9).from, 0, 'beyond what was sent: ignored');
  const all = reassignedDataIn(p, limits, 4);
  assert.equal(all.from, 4, 'every Data-In acknowledged: none again');
  assert.equal(all.plan.collapse, false, 'the status then goes in a SCSI Response');
  assert.equal(p.collapse, true, 'the original plan is untouched');
});

test('rfc7143 11.5.1: a READ reassigned to a connection with another MaxRecvDataSegmentLength is cut again and sent whole', () => {
  const p = plan(32_768, 8192, 262_144);
  const r = reassignedDataIn(p, { maxXmitDataSegmentLength: 4096, maxBurstLength: 262_144 }, 2);
  assert.equal(r.from, 0, 'DataSNs name other bytes now: everything again');
  assert.equal(r.plan.pduCount, 8);
  assert.equal(r.plan.maxXmitDataSegmentLength, 4096);
  assert.equal(r.plan.collapse, true);
});

test('rfc7143 7.2.2: a reassigned write asks again for everything beyond its contiguous data, with a new TTT', () => {
  const task = writeTask(9, 16_384);
  task.recovery = new WriteRecovery();
  task.received = 4096;
  task.nextR2tOffset = 8192;
  task.r2tsInFlight = 1;
  task.r2tSn = 3;
  task.ttt = 0x55;
  task.unsolicitedDone = false;
  task.recovery.open(0x55, 0, 8192, false);
  task.recovery.addHole({ offset: 4096, length: 1024 });
  task.recovery.parked.push({ offset: 5120, data: Buffer.alloc(1024) });
  rearmWrite(task);
  assert.equal(task.nextR2tOffset, 4096);
  assert.equal(task.r2tsInFlight, 0);
  assert.equal(task.ttt, RESERVED_TAG, 'the old connection TTT is void');
  assert.equal(task.r2tSn, 3, 'R2TSN goes on');
  assert.equal(task.unsolicitedDone, true);
  assert.equal(task.recovery.idle, true);
  assert.equal(task.recovery.parked.length, 0, 'parked data is asked for again');
});

test('rfc7143 7.1.4: a failed connection hands over its unacknowledged SCSI statuses (with READ data), not other responses', () => {
  let held = 0;
  const r = new Retention({ maxBytes: 1 << 20, maxEntries: 64 }, 10, {
    hold: (b) => (held += b),
    release: (b) => (held -= b),
  });
  const nop = encodeNopIn(Buffer.alloc(BHS_LENGTH), {
    itt: 1,
    ttt: RESERVED_TAG,
    statSN: 10,
    expCmdSN: 1,
    maxCmdSN: 2,
  });
  r.addResponse(10, nop, null);
  const p = plan(8192, 8192, 262_144);
  p.statSn = 11;
  const read = r.addRead(p, 11, () => undefined);
  r.addResponse(11, null, null, read);
  const scsi = encodeScsiResponse(Buffer.alloc(BHS_LENGTH), {
    itt: 0x99,
    status: 0,
    statSN: 12,
    expCmdSN: 1,
    maxCmdSN: 2,
  });
  r.addResponse(12, scsi, null);
  const heldBefore = held;
  const taken = r.takeUnacknowledgedStatus();
  assert.deepEqual(
    taken.map((t) => [t.itt, t.statSn, t.read !== null, t.response !== null]),
    [
      [7, 11, true, false],
      [0x99, 12, false, true],
    ],
  );
  assert.equal(r.responseCount, 1, 'the NOP-In stays');
  assert.equal(r.readCount, 0);
  assert.equal(held, heldBefore, 'the bytes stay counted until the taker releases them');
  assert.equal(
    taken.reduce((n, t) => n + t.bytes, 0) + r.bytes,
    heldBefore,
    'what was taken plus what is left is what was held',
  );
});

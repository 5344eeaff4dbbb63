/**
 * Error recovery level 2 bookkeeping (erl2.ts, and what erl1.ts gives it): detached tasks and
 * their retention timers, the Data-In a reassigned READ sends again, a reassigned write's R2T
 * state, and the unacknowledged statuses a failed connection hands over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataDirection, ScsiCommand, ScsiStatus, TaskAttribute } from '../../../src/scsi/command.js';
import { read10Cdb } from '../../../src/initiator/cdb.js';
import { dataInPduCount, sendCommandResult, type DataInPlan } from '../../../src/iscsi/data-in.js';
import { readCommandRecord, Retention, WriteRecovery } from '../../../src/iscsi/erl1.js';
import {
  acknowledgedCid,
  ConnectionRecovery,
  detachedState,
  rearmWrite,
  reassignedDataIn,
  rereadFrom,
  rereadTask,
  type DetachedTask,
  type RecoveryTimers,
} from '../../../src/iscsi/erl2.js';
import {
  DataInView,
  encodeLogoutRequest,
  encodeNopIn,
  encodeNopOut,
  encodeScsiResponse,
  ScsiResponseView,
} from '../../../src/iscsi/pdu.js';
import { BHS_LENGTH, LogoutReason, RESERVED_TAG } from '../../../src/iscsi/spec.js';
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
  return { itt, cid: 0, task, sent: task ? null : { statSn: itt, read: null, response: null }, bytes: 0 };
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

test('rfc7143 7.2.2: a reassigned write asks for the bytes it lacks, keeps data parked beyond a hole, with a new TTT', () => {
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
  const parked = Buffer.alloc(1024, 7);
  task.recovery.parked.push({ offset: 5120, data: parked });
  rearmWrite(task, 3, 262_144);
  assert.equal(task.nextR2tOffset, 8192, 'what was never solicited is solicited as usual');
  assert.equal(task.r2tsInFlight, 0);
  assert.equal(task.ttt, RESERVED_TAG, 'the old connection TTT is void');
  assert.equal(task.unsolicitedDone, true);
  assert.deepEqual(
    task.recovery.holes,
    [
      { offset: 4096, length: 1024 },
      { offset: 6144, length: 2048 },
    ],
    'the hole and the rest of the sequence under way',
  );
  assert.equal(task.recovery.seq, null);
  assert.deepEqual(task.recovery.parked, [{ offset: 5120, data: parked }], 'data beyond the hole is kept');
});

test('rfc7143 7.2.2 / 11.5.6: a reassigned write numbers its R2Ts from ExpDataSN; 0 and invalid values leave the acknowledged number', () => {
  const task = writeTask(10, 65_536);
  task.recovery = new WriteRecovery();
  task.nextR2tOffset = 16_384;
  task.r2tSn = 4;
  rearmWrite(task, 2, 8192);
  assert.equal(task.r2tSn, 2, 'R2Ts 2 and 3 never reached the initiator: numbered again');
  assert.deepEqual(
    task.recovery.holes,
    [
      { offset: 0, length: 8192 },
      { offset: 8192, length: 8192 },
    ],
    'cut at MaxBurstLength, one R2T each',
  );
  task.r2tSn = 5;
  rearmWrite(task, 0, 8192);
  assert.equal(task.r2tSn, 2, '0: the acknowledged number is unchanged');
  task.r2tSn = 5;
  rearmWrite(task, 6, 8192);
  assert.equal(task.r2tSn, 2, 'beyond the R2Ts sent: ignored');
  task.r2tSn = 5;
  rearmWrite(task, 1, 8192);
  assert.equal(task.r2tSn, 2, 'below the acknowledged number: ignored');
  task.r2tSn = 5;
  rearmWrite(task, 5, 8192);
  assert.equal(task.r2tSn, 5, 'all acknowledged');
  const fresh = writeTask(11, 8192);
  fresh.recovery = new WriteRecovery();
  fresh.r2tSn = 3;
  rearmWrite(fresh, 0, 8192);
  assert.equal(fresh.r2tSn, 0, 'nothing acknowledged yet: from R2TSN 0');
});

test('rfc7143 7.2.2: a reassigned READ waiting for its turn asks for nothing', () => {
  const cmd = new ScsiCommand(
    {
      cdb: Buffer.from(read10Cdb(0, 8)),
      lun: Buffer.alloc(8),
      tag: 12,
      attribute: TaskAttribute.Simple,
      direction: DataDirection.Read,
      expectedReadLength: 4096,
      expectedWriteLength: 0,
    },
    () => undefined,
  );
  const task = new IscsiTask(12, cmd, false);
  rearmWrite(task, 0, 8192);
  assert.equal(task.nextR2tOffset, 0);
  assert.equal(task.writeLength, 0);
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

/** A READ(10) of `length` bytes (a `cdb` view of a larger buffer, as received). */
function readCommand(itt: number, length: number, cdb = read10Cdb(0, length / 512)): ScsiCommand {
  const received = Buffer.alloc(64, 0xee);
  Buffer.from(cdb).copy(received, 32);
  return new ScsiCommand(
    {
      cdb: received.subarray(32, 32 + cdb.length),
      lun: received.subarray(8, 16),
      tag: itt,
      attribute: TaskAttribute.Ordered,
      direction: DataDirection.Read,
      expectedReadLength: length,
      expectedWriteLength: 0,
    },
    () => undefined,
  );
}

test('rfc7143 7.2.2: a READ evicted by the bounds keeps a copy of its command (never its data); other Data-In commands keep none', () => {
  let held = 0;
  let released = 0;
  const r = new Retention({ maxBytes: 16 * 1024, maxEntries: 64 }, 10, {
    hold: (b) => (held += b),
    release: (b) => (held -= b),
  });
  const cmd = readCommand(7, 32_768);
  const p = plan(32_768, 8192, 262_144);
  p.statSn = 10;
  const read = r.addRead(p, 10, () => released++, cmd, 41);
  r.addResponse(10, null, null, read);
  assert.equal(read.plan, null, 'larger than the byte bound: evicted at once');
  assert.equal(released, 1, 'its buffer went back');
  assert.equal(read.cmd, null);
  const rec = read.reread!;
  assert.deepEqual(rec.cdb, Buffer.from(read10Cdb(0, 64)));
  assert.notEqual(rec.cdb.buffer, cmd.cdb.buffer, 'a copy, not a view of the receive buffer');
  assert.equal(rec.attribute, TaskAttribute.Ordered);
  assert.equal(rec.expectedReadLength, 32_768);
  assert.equal(rec.cmdSn, 41);
  assert.deepEqual([rec.maxXmitDataSegmentLength, rec.maxBurstLength, rec.pduCount], [8192, 262_144, 4]);

  const inquiry = readCommand(8, 32_768, Buffer.from([0x12, 0, 0, 0x80, 0, 0]));
  const p2 = plan(32_768, 8192, 262_144);
  p2.itt = 8;
  const other = r.addRead(p2, 11, null, inquiry, 42);
  r.addResponse(11, null, null, other);
  assert.equal(other.plan, null);
  assert.equal(other.reread, null, 'INQUIRY is not run twice');

  const taken = r.takeUnacknowledgedStatus();
  assert.deepEqual(
    taken.map((t) => [t.itt, t.statSn, t.read?.plan ?? null, t.read?.reread !== null, t.response]),
    [[7, 10, null, true, null]],
    'the READ goes as a record to run again; the INQUIRY stays',
  );
  assert.equal(r.readCount, 1);
  assert.equal(held, r.bytes + taken[0]!.bytes);
});

test('rfc7143 7.2.2: a READ acknowledged by ExpStatSN keeps no record (nothing is copied on the fast path)', () => {
  const r = new Retention({ maxBytes: 1 << 20, maxEntries: 64 }, 10, { hold: () => {}, release: () => {} });
  const read = r.addRead(plan(8192, 8192, 262_144), 10, null, readCommand(7, 8192), 1);
  r.acknowledge(11, 11);
  assert.equal(read.reread, null);
  assert.equal(read.cmd, null);
  assert.equal(r.readCount, 0);
});

test('rfc7143 7.2.2: a kept READ whose SCSI Response (with sense) the bounds dropped goes as a record; one whose status rides on its Data-In goes whole', () => {
  const r = new Retention({ maxBytes: 1 << 20, maxEntries: 2 }, 10, { hold: () => {}, release: () => {} });
  const sense = plan(8192, 8192, 262_144);
  sense.itt = 1;
  sense.collapse = false;
  r.addRead(sense, 10, null, readCommand(1, 8192), 1);
  r.addResponse(
    10,
    encodeScsiResponse(Buffer.alloc(BHS_LENGTH), { itt: 1, status: 2, statSN: 10, expCmdSN: 1, maxCmdSN: 2 }),
    null,
  );
  const good = plan(8192, 8192, 262_144);
  good.itt = 2;
  good.statSn = 11;
  const goodRead = r.addRead(good, 11, null, readCommand(2, 8192), 2);
  r.addResponse(11, null, null, goodRead);
  // Two more numbered responses push both READ responses out (maxEntries 2).
  for (const sn of [12, 13])
    r.addResponse(
      sn,
      encodeNopIn(Buffer.alloc(BHS_LENGTH), {
        itt: 9,
        ttt: RESERVED_TAG,
        statSN: sn,
        expCmdSN: 1,
        maxCmdSN: 2,
      }),
      null,
    );
  assert.equal(r.readCount, 2);
  const taken = r.takeUnacknowledgedStatus();
  assert.deepEqual(
    taken.map((t) => [t.itt, t.statSn, t.read?.plan !== null, t.read?.reread !== null]),
    [
      [1, 10, false, true],
      [2, 11, true, false],
    ],
  );
});

test('rfc7143 11.5.6: a READ run again sends its Data-In from ExpDataSN only when this connection cuts them as the old one did', () => {
  const rec = readCommandRecord(readCommand(7, 32_768), 5, plan(32_768, 8192, 262_144))!;
  const same = { maxXmitDataSegmentLength: 8192, maxBurstLength: 262_144 };
  assert.equal(rereadFrom(rec, same, 0), 0);
  assert.equal(rereadFrom(rec, same, 3), 3);
  assert.equal(rereadFrom(rec, same, 4), 4, 'all acknowledged: the status alone');
  assert.equal(rereadFrom(rec, same, 5), 0, 'beyond what was sent: ignored');
  assert.equal(rereadFrom(rec, { ...same, maxXmitDataSegmentLength: 4096 }, 3), 0, 'another cut: all');
  const task = rereadTask(0x70, rec, () => undefined, 1 << 20);
  assert.equal(task.itt, 0x70);
  assert.equal(task.immediate, true, 'frees no CmdSN slot when it finishes');
  assert.equal(task.cmdSn, 5);
  assert.equal(task.readBytes, 32_768);
  assert.equal(task.cmd.fabricData, task);
  assert.equal(task.cmd.direction, DataDirection.Read);
  assert.deepEqual(task.cmd.cdb, Buffer.from(read10Cdb(0, 64)));
});

test('rfc7143 11.5.6: sendCommandResult from DataSN resumeAt; all acknowledged: the status in a SCSI Response with ExpDataSN', () => {
  const run = (resumeAt: number) => {
    const cmd = readCommand(7, 32_768);
    cmd.dataIn = Buffer.alloc(32_768, 3);
    cmd.dataInLength = 32_768;
    cmd.status = ScsiStatus.Good;
    const sent: Buffer[] = [];
    let statSn = 20;
    const counts = sendCommandResult(
      new IscsiTask(7, cmd, false),
      { maxXmitDataSegmentLength: 8192, maxBurstLength: 262_144 },
      { takeStatSn: () => statSn++, expCmdSn: 1, maxCmdSn: 2 },
      (bhs) => sent.push(Buffer.from(bhs)),
      { expDataSn: 0, resumeAt },
    );
    return { counts, sent };
  };
  const part = run(2);
  assert.deepEqual(
    part.sent.map((b) => new DataInView(b).dataSN),
    [2, 3],
  );
  assert.equal(new DataInView(part.sent[1]!).statusPresent, true);
  assert.equal(part.counts.plan!.pduCount, 4, 'the plan still covers every Data-In');
  const none = run(4);
  assert.equal(none.sent.length, 1);
  const resp = new ScsiResponseView(none.sent[0]!);
  assert.equal(resp.opcode, 0x21);
  assert.equal(resp.expDataSN, 4);
  assert.equal(none.counts.plan!.collapse, false);
});

test('rfc7143 11.14: a Logout for recovery naming a failed connection releases the statuses its ExpStatSN acknowledges, nothing else', () => {
  const timers = manualTimers();
  const r = new ConnectionRecovery(1000, () => undefined, timers);
  const waiting = writeTask(0x31, 4096);
  const status = (itt: number, statSn: number): DetachedTask => ({
    itt,
    cid: 1,
    task: null,
    sent: { statSn, read: null, response: null },
    bytes: 0,
  });
  r.detach(1, [status(0x30, 100), { ...entry(0x31, waiting), cid: 1 }, status(0x32, 101)], 102);
  r.detach(2, [{ ...status(0x40, 100), cid: 2 }], 101);
  assert.deepEqual(r.acknowledge(1, 103), [], 'beyond what the connection sent: ignored');
  assert.deepEqual(
    r.acknowledge(1, 101).map((e) => e.itt),
    [0x30],
  );
  assert.equal(r.has(0x30), false);
  assert.equal(r.has(0x31), true, 'a task not answered yet stays');
  assert.equal(r.has(0x32), true, 'StatSN 101 is not acknowledged by 101');
  assert.equal(r.has(0x40), true, 'another connection is not concerned');
  assert.deepEqual(r.acknowledge(3, 200), [], 'no such failed connection');
});

test('rfc7143 11.14: a Logout ExpStatSN acknowledges the statuses of the connection its CID names; any other PDU those of its own', () => {
  const logout = (reasonCode: number, cid: number) =>
    encodeLogoutRequest(Buffer.alloc(BHS_LENGTH), { itt: 1, reasonCode, cid, cmdSN: 1, expStatSN: 5 });
  assert.equal(acknowledgedCid(logout(LogoutReason.RemoveConnectionForRecovery, 3), 1), 3);
  assert.equal(acknowledgedCid(logout(LogoutReason.CloseConnection, 3), 1), 3);
  assert.equal(acknowledgedCid(logout(LogoutReason.CloseSession, 3), 1), 1);
  assert.equal(acknowledgedCid(logout(LogoutReason.RemoveConnectionForRecovery, 1), 1), 1);
  const nop = encodeNopOut(Buffer.alloc(BHS_LENGTH), { itt: 1, ttt: RESERVED_TAG, cmdSN: 1, expStatSN: 5 });
  assert.equal(acknowledgedCid(nop, 1), 1);
});

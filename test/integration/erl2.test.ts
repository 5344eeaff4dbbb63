/**
 * Error recovery level 2 (RFC 7143 7.1.4 connection recovery, 7.2.2 allegiance reassignment,
 * 11.5.1 TASK REASSIGN, 11.14/11.15 Logout for recovery, 13.15/13.16) against a real tgtd whose
 * target offers ErrorRecoveryLevel=2 and MaxConnections=4, with hand-built PDUs: the tasks of a
 * dropped connection are taken over by a new connection of the same session, and forgotten
 * once DefaultTime2Wait + DefaultTime2Retain have passed; ERL 0 and 1 are unchanged.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeLun, type Session } from '../../src/initiator/index.js';
import { read10Cdb, write10Cdb } from '../../src/initiator/cdb.js';
import {
  bhsOpcode,
  DataInView,
  encodeDataOut,
  encodeLogoutRequest,
  encodeTaskMgmtRequest,
  LogoutResponseView,
  R2TView,
  ScsiResponseView,
  TaskMgmtResponseView,
  type Pdu,
} from '../../src/iscsi/pdu.js';
import {
  BHS_LENGTH,
  LoginStatus,
  LogoutReason,
  LogoutResponse,
  Opcode,
  TaskAttr,
  TmfFunction,
  TmfResponse,
} from '../../src/iscsi/spec.js';
import type { TgtDaemon } from '../helpers/daemon.js';
import { RawRig } from '../helpers/raw-rig.js';
import {
  BLOCK,
  clearUnitAttention,
  dropConnection,
  expectLoginStatus,
  GOOD,
  IQN,
  login,
  loginReady,
  nextPdu,
  opName,
  pattern,
  receiveUntil,
  sendRawCommand,
  sendRawDataOut,
  untilStatus,
  taskReassign,
} from './util.js';

const TARGET = `${IQN}:erl2`;
const LUN = 1;

describe('error recovery level 2', () => {
  const rig = new RawRig(TARGET, LUN, 0x3000);
  const itt = (): number => rig.itt();
  /** A fresh region of the LU for each write. */
  const region = (blocks: number): number => rig.region(blocks);
  const open = rig.open;
  let d: TgtDaemon;

  before(async () => {
    // DefaultTime2Wait is the larger of both offers (13.15): 0 lets tests reassign at once.
    await rig.start([
      ['ErrorRecoveryLevel', '2'],
      ['MaxConnections', '4'],
      ['DefaultTime2Wait', '0'],
    ]);
    d = rig.d;
  });

  after(() => rig.stop());

  interface Options {
    erl?: number;
    /** DefaultTime2Retain proposed (the smaller offer wins, 13.16). */
    retain?: number;
    /** MaxBurstLength proposed (the smaller offer wins): the length of each R2T. */
    burst?: number;
  }

  /** A new session (leading connection, CID 0) in raw mode, unit attention cleared. */
  async function session(o: Options = {}): Promise<Session> {
    const s = await loginReady(d, TARGET, LUN, {
      initiatorName: rig.initiatorName(`${IQN}:erl2`),
      cid: 0,
      proposals: {
        errorRecoveryLevel: o.erl ?? 2,
        maxConnections: 4,
        defaultTime2Wait: 0,
        defaultTime2Retain: o.retain ?? 20,
        initialR2T: true,
        immediateData: false,
        maxRecvDataSegmentLength: 8192,
        ...(o.burst ? { maxBurstLength: o.burst } : {}),
      },
    });
    open.push(s);
    assert.equal(s.params.errorRecoveryLevel, o.erl ?? 2, 'negotiated ErrorRecoveryLevel');
    s.setRawMode(true);
    return s;
  }

  /** Another connection of `s`'s session (same ISID and TSIH), CID `cid`, in raw mode. */
  async function addConnection(s: Session, cid: number, cmdSN = s.cmdSN): Promise<Session> {
    const c = await login(d, TARGET, {
      initiatorName: s.options.initiatorName!,
      isid: s.isid,
      tsih: s.tsih,
      cid,
      initialCmdSN: cmdSN,
      proposals: s.options.proposals!,
    });
    open.push(c);
    assert.equal(c.tsih, s.tsih, 'joined the session');
    c.setRawMode(true);
    return c;
  }

  /** Send TASK REASSIGN for `ref` on `s`; returns the response code. */
  function reassign(s: Session, ref: number, expDataSN = 0): Promise<number> {
    return taskReassign(s, { itt: itt(), lun: LUN, ref, expDataSN });
  }

  /** Write `data` at `at` through the normal command path of `s`. */
  async function writeNormally(s: Session, at: number, data: Buffer): Promise<void> {
    s.setRawMode(false);
    assert.equal((await s.write10(LUN, at, data, BLOCK)).status, GOOD, 'write');
    s.setRawMode(true);
  }

  /** Read back through the normal command path of `s`. */
  async function readBack(s: Session, at: number, blocks: number): Promise<Buffer> {
    s.setRawMode(false);
    const r = await s.read10(LUN, at, blocks, BLOCK);
    assert.equal(r.status, GOOD, 'read back');
    s.setRawMode(true);
    return r.data;
  }

  /** One Data-Out PDU carrying data[offset, offset + length). */
  function dataOut(
    s: Session,
    o: {
      itt: number;
      ttt: number;
      dataSN: number;
      data: Buffer;
      offset: number;
      length: number;
      final: boolean;
    },
  ): void {
    const bhs = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
      itt: o.itt,
      lun: encodeLun(LUN),
      ttt: o.ttt,
      final: o.final,
      expStatSN: s.expStatSN,
      dataSN: o.dataSN,
      bufferOffset: o.offset,
    });
    s.sendPdu(bhs, o.data.subarray(o.offset, o.offset + o.length));
  }

  /** The next R2T of `tag` on `s`. */
  async function r2tOf(s: Session, tag: number): Promise<R2TView> {
    return new R2TView((await receiveUntil(s, Opcode.R2T, tag)).pop()!.bhs);
  }

  /** Send a Logout for recovery naming `cid` on `s` with `expStatSN`; returns the response code. */
  async function logoutForRecovery(s: Session, cid: number, expStatSN: number): Promise<number> {
    const tag = itt();
    s.sendPdu(
      encodeLogoutRequest(Buffer.alloc(BHS_LENGTH), {
        itt: tag,
        reasonCode: LogoutReason.RemoveConnectionForRecovery,
        cid,
        cmdSN: s.cmdSN,
        expStatSN,
        immediate: true,
      }),
    );
    const p = (await receiveUntil(s, Opcode.LogoutResponse, tag)).pop()!;
    return new LogoutResponseView(p.bhs).response;
  }

  /** The Data-In of `pdus` concatenated in offset order. */
  function dataOf(pdus: Pdu[]): Buffer {
    const parts = pdus
      .filter((p) => bhsOpcode(p.bhs) === Opcode.DataIn)
      .map((p) => ({ off: new DataInView(p.bhs).bufferOffset, data: p.data }))
      .sort((a, b) => a.off - b.off);
    return Buffer.concat(parts.map((p) => p.data));
  }

  test('rfc7143 7.2.2 / 11.5.1: a READ whose status was not acknowledged is reassigned to a new connection and its Data-In and status come again there', async () => {
    const s = await session();
    const at = region(64);
    const data = pattern(64 * BLOCK, 21);
    await writeNormally(s, at, data);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: read10Cdb(at, 64), read: true, edtl: 64 * BLOCK });
    const first = await untilStatus(s, tag);
    assert.ok(dataOf(first).equals(data), 'the first delivery');
    // Nothing acknowledges the status (no PDU carries its ExpStatSN) before the drop.
    await dropConnection(s);
    // The session outlives its only connection (Time2Retain): a new connection joins it.
    const c = await addConnection(s, 1);
    assert.equal(await reassign(c, tag), TmfResponse.FunctionComplete);
    const again = await untilStatus(c, tag);
    assert.ok(dataOf(again).equals(data), 'the same data on the new connection');
    const last = new DataInView(again[again.length - 1]!.bhs);
    assert.equal(last.statusPresent, true);
    assert.equal(last.status, GOOD);
    assert.equal(last.statSN, (c.expStatSN - 1) >>> 0, 'the status takes the new connection StatSN');
    // This TMF's ExpStatSN acknowledges the status: the task is over, nothing is left to reassign.
    assert.equal(await reassign(c, tag), TmfResponse.TaskDoesNotExist);
  });

  test('rfc7143 11.5.1 ExpDataSN: a reassigned READ sends its Data-In from ExpDataSN on', async () => {
    const s = await session();
    const at = region(64);
    const data = pattern(64 * BLOCK, 22);
    await writeNormally(s, at, data);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: read10Cdb(at, 64), read: true, edtl: 64 * BLOCK });
    const first = await untilStatus(s, tag);
    assert.equal(first.length, 4, '32 KiB in 8 KiB Data-In');
    await dropConnection(s);
    const c = await addConnection(s, 1);
    assert.equal(await reassign(c, tag, 2), TmfResponse.FunctionComplete);
    const again = await untilStatus(c, tag);
    assert.deepEqual(
      again.map((p) => new DataInView(p.bhs).dataSN),
      [2, 3],
      'DataSN 2 and 3 only',
    );
    assert.ok(again[0]!.data.equals(data.subarray(2 * 8192, 3 * 8192)));
  });

  test('rfc7143 7.2.2 / 11.5.1: a write waiting for Data-Out on a dropped connection completes on the new one with a new R2T', async () => {
    const s = await session();
    const at = region(16);
    const data = pattern(16 * BLOCK, 23);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(at, 16), write: true, edtl: 16 * BLOCK });
    const r2t = (await receiveUntil(s, Opcode.R2T, tag)).pop()!;
    const v = new R2TView(r2t.bhs);
    assert.equal(v.desiredDataTransferLength, 8192);
    // Half of the data, then the connection dies.
    sendRawDataOut(s, { itt: tag, lun: LUN, ttt: v.ttt, data, from: 0, to: 4096, segment: 4096 });
    await new Promise((r) => setTimeout(r, 50));
    await dropConnection(s);
    const c = await addConnection(s, 1);
    assert.equal(await reassign(c, tag), TmfResponse.FunctionComplete);
    const again = (await receiveUntil(c, Opcode.R2T, tag)).pop()!;
    const r = new R2TView(again.bhs);
    assert.equal(r.bufferOffset, 4096, 'asks for what is missing');
    assert.equal(r.desiredDataTransferLength, 4096);
    assert.equal(r.r2tSN, 0, 'ExpDataSN 0 acknowledges no R2T: numbered from 0 again');
    sendRawDataOut(c, { itt: tag, lun: LUN, ttt: r.ttt, data, from: 4096, to: 8192, segment: 4096 });
    const status = (await receiveUntil(c, Opcode.ScsiResponse, tag)).pop()!;
    assert.equal(new ScsiResponseView(status.bhs).status, GOOD);
    assert.ok((await readBack(c, at, 16)).equals(data), 'the data written');
  });

  test('rfc7143 7.2.2 / 11.5.6: a reassigned write numbers its R2Ts from ExpDataSN and asks only for the data that did not arrive', async () => {
    const s = await session({ burst: 8192 });
    assert.equal(s.params.maxBurstLength, 8192);
    const at = region(48);
    const data = pattern(48 * BLOCK, 26);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(at, 48), write: true, edtl: 48 * BLOCK });
    const r0 = await r2tOf(s, tag);
    assert.deepEqual([r0.r2tSN, r0.bufferOffset, r0.desiredDataTransferLength], [0, 0, 8192]);
    dataOut(s, { itt: tag, ttt: r0.ttt, dataSN: 0, data, offset: 0, length: 8192, final: true });
    const r1 = await r2tOf(s, tag);
    assert.deepEqual([r1.r2tSN, r1.bufferOffset], [1, 8192]);
    // Half of the second burst, then the connection dies.
    dataOut(s, { itt: tag, ttt: r1.ttt, dataSN: 0, data, offset: 8192, length: 4096, final: false });
    await new Promise((r) => setTimeout(r, 50));
    await dropConnection(s);
    const c = await addConnection(s, 1);
    // The initiator received R2T 0 and 1: it expects R2TSN 2 next.
    assert.equal(await reassign(c, tag, 2), TmfResponse.FunctionComplete);
    const r2 = await r2tOf(c, tag);
    assert.deepEqual(
      [r2.r2tSN, r2.bufferOffset, r2.desiredDataTransferLength],
      [2, 12_288, 4096],
      'R2TSN 2, for the rest of the burst under way only',
    );
    dataOut(c, { itt: tag, ttt: r2.ttt, dataSN: 0, data, offset: 12_288, length: 4096, final: true });
    const r3 = await r2tOf(c, tag);
    assert.deepEqual([r3.r2tSN, r3.bufferOffset, r3.desiredDataTransferLength], [3, 16_384, 8192]);
    dataOut(c, { itt: tag, ttt: r3.ttt, dataSN: 0, data, offset: 16_384, length: 8192, final: true });
    const status = new ScsiResponseView((await receiveUntil(c, Opcode.ScsiResponse, tag)).pop()!.bhs);
    assert.equal(status.status, GOOD);
    assert.equal(status.expDataSN, 4, '11.4.8: R2Ts numbered 0-3');
    assert.ok((await readBack(c, at, 48)).equals(data), 'the data written');
  });

  test('rfc7143 7.2.2 / 7.9: a reassigned write keeps the data received beyond a lost Data-Out and asks for the hole and the rest', async () => {
    const s = await session({ burst: 16_384 });
    const at = region(32);
    const data = pattern(32 * BLOCK, 27);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(at, 32), write: true, edtl: 32 * BLOCK });
    const r0 = await r2tOf(s, tag);
    assert.equal(r0.desiredDataTransferLength, 16_384);
    dataOut(s, { itt: tag, ttt: r0.ttt, dataSN: 0, data, offset: 0, length: 4096, final: false });
    // DataSN 1 is lost: DataSN 2 shows the gap, its data waits beyond the hole.
    dataOut(s, { itt: tag, ttt: r0.ttt, dataSN: 2, data, offset: 8192, length: 4096, final: false });
    await new Promise((r) => setTimeout(r, 50));
    await dropConnection(s);
    const c = await addConnection(s, 1);
    assert.equal(await reassign(c, tag, 1), TmfResponse.FunctionComplete);
    const hole = await r2tOf(c, tag);
    assert.deepEqual([hole.r2tSN, hole.bufferOffset, hole.desiredDataTransferLength], [1, 4096, 4096]);
    dataOut(c, { itt: tag, ttt: hole.ttt, dataSN: 0, data, offset: 4096, length: 4096, final: true });
    const rest = await r2tOf(c, tag);
    assert.deepEqual(
      [rest.r2tSN, rest.bufferOffset, rest.desiredDataTransferLength],
      [2, 12_288, 4096],
      'the bytes received beyond the hole are not asked for again',
    );
    dataOut(c, { itt: tag, ttt: rest.ttt, dataSN: 0, data, offset: 12_288, length: 4096, final: true });
    const status = (await receiveUntil(c, Opcode.ScsiResponse, tag)).pop()!;
    assert.equal(new ScsiResponseView(status.bhs).status, GOOD);
    assert.ok((await readBack(c, at, 32)).equals(data), 'the data written, the kept part included');
  });

  test('sam5 7.7 / rfc7143 11.5.1: LOGICAL UNIT RESET aborts a detached write waiting for Data-Out; it cannot be reassigned after', async () => {
    const s = await session();
    const at = region(16);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(at, 16), write: true, edtl: 16 * BLOCK });
    await receiveUntil(s, Opcode.R2T, tag);
    await dropConnection(s);
    const c = await addConnection(s, 1);
    const reset = itt();
    c.sendPdu(
      encodeTaskMgmtRequest(Buffer.alloc(BHS_LENGTH), {
        itt: reset,
        lun: encodeLun(LUN),
        function: TmfFunction.LogicalUnitReset,
        cmdSN: c.cmdSN,
        expStatSN: c.expStatSN,
        immediate: true,
      }),
    );
    const p = (await receiveUntil(c, Opcode.TaskMgmtResponse, reset)).pop()!;
    assert.equal(new TaskMgmtResponseView(p.bhs).response, TmfResponse.FunctionComplete);
    assert.equal(await reassign(c, tag), TmfResponse.TaskDoesNotExist, 'the reset aborted it');
  });

  test('rfc7144 4.1 QUERY TASK: a detached write waiting for Data-Out still exists until it is reassigned', async () => {
    const s = await session();
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(region(16), 16), write: true, edtl: 16 * BLOCK });
    await receiveUntil(s, Opcode.R2T, tag);
    await dropConnection(s);
    const c = await addConnection(s, 1);
    const query = itt();
    c.sendPdu(
      encodeTaskMgmtRequest(Buffer.alloc(BHS_LENGTH), {
        itt: query,
        lun: encodeLun(LUN),
        function: TmfFunction.QueryTask,
        referencedTaskTag: tag,
        cmdSN: c.cmdSN,
        expStatSN: c.expStatSN,
        immediate: true,
      }),
    );
    const p = (await receiveUntil(c, Opcode.TaskMgmtResponse, query)).pop()!;
    assert.equal(new TaskMgmtResponseView(p.bhs).response, TmfResponse.FunctionSucceeded);
  });

  test('rfc7143 11.5.1: TASK REASSIGN of a task of a live connection -> 3 task still allegiant; of no task -> 1', async () => {
    const s = await session();
    const c = await addConnection(s, 1);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(region(8), 8), write: true, edtl: 8 * BLOCK });
    await receiveUntil(s, Opcode.R2T, tag);
    c.cmdSN = s.cmdSN;
    assert.equal(await reassign(c, tag), TmfResponse.TaskStillAllegiant);
    assert.equal(await reassign(c, 0x7abcdef), TmfResponse.TaskDoesNotExist);
  });

  test('rfc7143 13.16 / 11.14.5 c: a task not reassigned within Time2Wait + Time2Retain is gone; the session ends with no connection left', async () => {
    const s = await session({ retain: 1 });
    assert.equal(s.params.defaultTime2Retain, 1);
    assert.equal(s.params.defaultTime2Wait, 0);
    const c = await addConnection(s, 1);
    const tag = itt();
    sendRawCommand(c, { itt: tag, lun: LUN, cdb: write10Cdb(region(8), 8), write: true, edtl: 8 * BLOCK });
    await receiveUntil(c, Opcode.R2T, tag);
    await dropConnection(c);
    await new Promise((r) => setTimeout(r, 1500));
    s.cmdSN = c.cmdSN;
    assert.equal(await reassign(s, tag), TmfResponse.TaskDoesNotExist, 'after Time2Retain');
    // The last connection goes: after Time2Retain the session is gone (11.13.5 0x020a).
    await dropConnection(s);
    await new Promise((r) => setTimeout(r, 1500));
    await expectLoginStatus(
      addConnection(s, 2, c.cmdSN),
      LoginStatus.SessionDoesNotExist,
      'login with the TSIH of the expired session',
    );
  });

  test('rfc7143 11.14.5 c / sam5 8.6: a write that never got its data and expired with Time2Retain no longer holds back an ORDERED command of the live session', async () => {
    // A LU of its own: detached tasks other tests leave behind are older and would rightly
    // hold an ORDERED command back on LUN 1 until their Time2Retain.
    const lun = 2;
    await d.addLu(1, { lun, bstype: 'memory', path: '1M' });
    const s = await session({ retain: 1 });
    s.setRawMode(false);
    await clearUnitAttention(s, lun);
    s.setRawMode(true);
    const c = await addConnection(s, 1, s.cmdSN);
    const tag = itt();
    sendRawCommand(c, { itt: tag, lun, cdb: write10Cdb(0, 8), write: true, edtl: 8 * BLOCK });
    await receiveUntil(c, Opcode.R2T, tag);
    await dropConnection(c);
    await new Promise((r) => setTimeout(r, 1500));
    s.cmdSN = c.cmdSN;
    const read = itt();
    sendRawCommand(s, {
      itt: read,
      lun,
      cdb: read10Cdb(0, 8),
      read: true,
      edtl: 8 * BLOCK,
      attr: TaskAttr.Ordered,
    });
    const status = (await untilStatus(s, read)).pop()!;
    const ok =
      bhsOpcode(status.bhs) === Opcode.ScsiResponse
        ? new ScsiResponseView(status.bhs).status === GOOD
        : new DataInView(status.bhs).status === GOOD;
    assert.ok(ok, 'the ORDERED READ ran once the expired write was gone');
  });

  test('rfc7143 11.14.1 reason 2 / 11.15: Logout "remove the connection for recovery" answers Time2Wait and Time2Retain; its tasks are reassignable', async () => {
    const s = await session({ retain: 7 });
    const at = region(8);
    const data = pattern(8 * BLOCK, 24);
    await writeNormally(s, at, data);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: read10Cdb(at, 8), read: true, edtl: 8 * BLOCK });
    const statSn = new DataInView((await untilStatus(s, tag)).pop()!.bhs).statSN;
    const logoutTag = itt();
    s.sendPdu(
      encodeLogoutRequest(Buffer.alloc(BHS_LENGTH), {
        itt: logoutTag,
        reasonCode: LogoutReason.RemoveConnectionForRecovery,
        cid: 0,
        cmdSN: s.cmdSN,
        // The READ's status stays unacknowledged.
        expStatSN: statSn,
        immediate: true,
      }),
    );
    const p = (await receiveUntil(s, Opcode.LogoutResponse, logoutTag)).pop()!;
    const v = new LogoutResponseView(p.bhs);
    assert.equal(v.response, LogoutResponse.Success);
    assert.equal(v.time2Wait, 0);
    assert.equal(v.time2Retain, 7);
    await s.connection.waitClosed(5000);
    const c = await addConnection(s, 1);
    assert.equal(await reassign(c, tag), TmfResponse.FunctionComplete);
    assert.ok(dataOf(await untilStatus(c, tag)).equals(data));
  });

  for (const state of ['failed', 'live'] as const) {
    test(`rfc7143 11.14: the ExpStatSN of a Logout for recovery naming a ${state} connection releases the statuses it acknowledges; the others stay reassignable`, async () => {
      const s = await session();
      const c = await addConnection(s, 1);
      const at = region(16);
      const data = pattern(16 * BLOCK, 28);
      await writeNormally(s, at, data);
      const a = itt();
      const b = itt();
      // Both READs go out before either status is received: neither is acknowledged.
      sendRawCommand(s, { itt: a, lun: LUN, cdb: read10Cdb(at, 8), read: true, edtl: 8 * BLOCK });
      sendRawCommand(s, { itt: b, lun: LUN, cdb: read10Cdb(at + 8, 8), read: true, edtl: 8 * BLOCK });
      const statA = new DataInView((await untilStatus(s, a)).pop()!.bhs).statSN;
      const statB = new DataInView((await untilStatus(s, b)).pop()!.bhs).statSN;
      assert.equal(statB, (statA + 1) >>> 0);
      if (state === 'failed') await dropConnection(s);
      c.cmdSN = s.cmdSN;
      // CID 0's ExpStatSN acknowledges A's status, not B's.
      assert.equal(await logoutForRecovery(c, 0, statB), LogoutResponse.Success);
      if (state === 'live') await s.connection.waitClosed(5000);
      assert.equal(await reassign(c, a), TmfResponse.TaskDoesNotExist, 'A was acknowledged');
      assert.equal(await reassign(c, b), TmfResponse.FunctionComplete, 'B was not');
      assert.ok(dataOf(await untilStatus(c, b)).equals(data.subarray(8 * BLOCK)));
    });
  }

  test('rfc7143 11.15.1: Logout for recovery of a CID the session does not have -> 1 CID not found', async () => {
    const s = await session();
    const logoutTag = itt();
    s.sendPdu(
      encodeLogoutRequest(Buffer.alloc(BHS_LENGTH), {
        itt: logoutTag,
        reasonCode: LogoutReason.RemoveConnectionForRecovery,
        cid: 9,
        cmdSN: s.cmdSN,
        expStatSN: s.expStatSN,
        immediate: true,
      }),
    );
    const p = (await receiveUntil(s, Opcode.LogoutResponse, logoutTag)).pop()!;
    assert.equal(new LogoutResponseView(p.bhs).response, LogoutResponse.CidNotFound);
    const after = await nextPdu(s, 200);
    assert.equal(after, undefined, `the connection goes on: ${opName(after)}`);
  });

  test('rfc7143 6.3.4: connection reinstatement (same CID) makes the old connection tasks reassignable', async () => {
    const s = await session();
    const at = region(8);
    const data = pattern(8 * BLOCK, 25);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(at, 8), write: true, edtl: 8 * BLOCK });
    await receiveUntil(s, Opcode.R2T, tag);
    // The old connection is still up as far as the target knows; the same CID replaces it.
    const c = await addConnection(s, 0);
    await s.connection.waitClosed(5000);
    assert.equal(await reassign(c, tag), TmfResponse.FunctionComplete);
    const r = new R2TView((await receiveUntil(c, Opcode.R2T, tag)).pop()!.bhs);
    assert.equal(r.bufferOffset, 0);
    sendRawDataOut(c, { itt: tag, lun: LUN, ttt: r.ttt, data, from: 0, to: data.length, segment: 8192 });
    const status = (await receiveUntil(c, Opcode.ScsiResponse, tag)).pop()!;
    assert.equal(new ScsiResponseView(status.bhs).status, GOOD);
    assert.ok((await readBack(c, at, 8)).equals(data));
  });

  for (const erl of [0, 1]) {
    test(`rfc7143 11.5.1 / 7.1.4: at ERL ${erl} TASK REASSIGN -> 4 and a dropped last connection ends the session`, async () => {
      const s = await session({ erl });
      assert.equal(await reassign(s, 0x1), TmfResponse.TaskAllegianceReassignmentNotSupported);
      await dropConnection(s);
      await expectLoginStatus(
        addConnection(s, 1),
        LoginStatus.SessionDoesNotExist,
        'login with the TSIH of the dropped session',
      );
    });
  }
});

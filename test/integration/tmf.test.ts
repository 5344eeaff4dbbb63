/**
 * Task management at every stage of a command (issue 5 item 1, RFC 7143 11.5 / 11.6, SAM-5 7)
 * against a real tgtd, with hand-built PDUs so the order of everything the target sends is
 * seen: commands queued in the CmdSN window, waiting for Data-Out, in the core, and while their
 * Data-In is being sent. The rule checked throughout: no PDU of an aborted command follows the
 * TMF response, and a command whose Data-In started always ends with its status first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeLun, type Session } from '../../src/initiator/index.js';
import { read10Cdb, write10Cdb } from '../../src/initiator/cdb.js';
import {
  bhsItt,
  bhsOpcode,
  DataInView,
  encodeTaskMgmtRequest,
  NopInView,
  R2TView,
  ScsiResponseView,
  TaskMgmtResponseView,
  type Pdu,
} from '../../src/iscsi/pdu.js';
import { BHS_LENGTH, Opcode, TmfFunction, TmfResponse } from '../../src/iscsi/spec.js';
import { TgtDaemon } from '../helpers/daemon.js';
import {
  BLOCK,
  CHECK_CONDITION,
  closeSession,
  GOOD,
  IQN,
  loginReady,
  nextPdu,
  opName,
  pattern,
  receiveUntil,
  sendRawCommand,
  sendRawDataOut,
  sendRawNop,
} from './util.js';

const TARGET = `${IQN}:tmf`;
const LUN = 1;
const OTHER_LUN = 2;

/** Send a TMF request by hand; returns the CmdSN it carried. */
function sendRawTmf(
  s: Session,
  o: { itt: number; fn: number; lun?: number; refTag?: number; refCmdSN?: number; immediate?: boolean },
): number {
  const immediate = o.immediate ?? true;
  const cmdSN = immediate ? s.cmdSN : s.takeCmdSN();
  const bhs = encodeTaskMgmtRequest(Buffer.alloc(BHS_LENGTH), {
    itt: o.itt,
    lun: encodeLun(o.lun ?? LUN),
    function: o.fn,
    referencedTaskTag: o.refTag ?? 0xffffffff,
    refCmdSN: o.refCmdSN ?? cmdSN,
    cmdSN,
    expStatSN: s.expStatSN,
    immediate,
  });
  s.sendPdu(bhs);
  return cmdSN;
}

/** Receive until the TMF response of `itt`; returns its response code and the PDUs before it. */
async function tmfResult(s: Session, itt: number): Promise<{ response: number; before: Pdu[] }> {
  const pdus = await receiveUntil(s, Opcode.TaskMgmtResponse, itt, 10_000);
  const last = pdus.pop()!;
  return { response: new TaskMgmtResponseView(last.bhs).response, before: pdus };
}

/** Nothing more arrives for these ITTs (within `ms`); other PDUs are returned. */
async function assertSilentFor(
  s: Session,
  itts: ReadonlySet<number>,
  what: string,
  ms = 400,
): Promise<Pdu[]> {
  const seen: Pdu[] = [];
  for (;;) {
    const p = await nextPdu(s, ms);
    if (!p) return seen;
    assert.ok(!itts.has(bhsItt(p.bhs)), `${what}: ${opName(p)} after the TMF response`);
    seen.push(p);
  }
}

/** Ping with a NOP-Out in CmdSN order and check it is answered (the window moves). */
async function assertWindowMoves(s: Session, itt: number, what: string): Promise<void> {
  const cmdSN = sendRawNop(s, itt);
  const pdus = await receiveUntil(s, Opcode.NopIn, itt, 5000);
  const v = new NopInView(pdus[pdus.length - 1]!.bhs);
  assert.equal(v.expCmdSN, (cmdSN + 1) >>> 0, `${what}: ExpCmdSN after the ping`);
}

describe('task management at every stage of a command', () => {
  let d: TgtDaemon;
  let s: Session;
  let observer: Session;
  let nextItt = 0x1000;
  const itt = (): number => nextItt++;

  before(async () => {
    d = await TgtDaemon.start();
    await d.addTarget({
      tid: 1,
      name: TARGET,
      luns: [
        { lun: LUN, bstype: 'memory', path: '64M' },
        { lun: OTHER_LUN, bstype: 'memory', path: '16M' },
      ],
    });
  });

  after(async () => {
    try {
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  /** A fresh raw-mode session `s` (and a normal observer session) for each test. */
  async function fresh(): Promise<void> {
    await closeSession(s);
    await closeSession(observer);
    s = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:tmf-a`, proposals: { initialR2T: true } });
    s.setRawMode(true);
    observer = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:tmf-observer` });
  }

  test('rfc7143 11.5.1: every function aborts a command queued in the CmdSN window; it never answers', async () => {
    for (const fn of [
      TmfFunction.AbortTask,
      TmfFunction.AbortTaskSet,
      TmfFunction.ClearTaskSet,
      TmfFunction.LogicalUnitReset,
      TmfFunction.TargetWarmReset,
    ]) {
      await fresh();
      const gap = s.takeCmdSN();
      const held = itt();
      const heldSN = sendRawCommand(s, {
        itt: held,
        lun: LUN,
        cdb: read10Cdb(0, 1),
        read: true,
        edtl: BLOCK,
      });
      const tmf = itt();
      sendRawTmf(s, { itt: tmf, fn, refTag: held, refCmdSN: heldSN });
      const { response, before: early } = await tmfResult(s, tmf);
      assert.equal(response, TmfResponse.FunctionComplete, `function ${fn}`);
      assert.ok(!early.some((p) => bhsItt(p.bhs) === held), `function ${fn}: the held command answered`);
      sendRawNop(s, itt(), { cmdSN: gap });
      await assertSilentFor(s, new Set([held]), `function ${fn}`);
      await assertWindowMoves(s, itt(), `function ${fn}`);
    }
  });

  test('rfc7143 11.5.1: a write waiting for Data-Out is aborted; its late Data-Out is dropped silently, nothing written', async () => {
    for (const fn of [
      TmfFunction.AbortTask,
      TmfFunction.AbortTaskSet,
      TmfFunction.ClearTaskSet,
      TmfFunction.LogicalUnitReset,
      TmfFunction.TargetWarmReset,
    ]) {
      await fresh();
      const w = itt();
      const lba = 5000 + fn;
      const cmdSN = sendRawCommand(s, {
        itt: w,
        lun: LUN,
        cdb: write10Cdb(lba, 4),
        write: true,
        edtl: 4 * BLOCK,
      });
      const [r2tPdu] = await receiveUntil(s, Opcode.R2T, w, 5000);
      const ttt = new R2TView(r2tPdu!.bhs).ttt;
      const tmf = itt();
      sendRawTmf(s, { itt: tmf, fn, refTag: w, refCmdSN: cmdSN });
      const { response } = await tmfResult(s, tmf);
      assert.equal(response, TmfResponse.FunctionComplete, `function ${fn}`);
      sendRawDataOut(s, {
        itt: w,
        lun: LUN,
        ttt,
        data: pattern(4 * BLOCK, fn),
        from: 0,
        to: 4 * BLOCK,
        segment: BLOCK,
      });
      const stray = await assertSilentFor(s, new Set([w]), `function ${fn}`);
      assert.deepEqual(stray.map(opName), [], `function ${fn}: late Data-Out answered`);
      await assertWindowMoves(s, itt(), `function ${fn}`);
      // Nothing reached the medium.
      const r = await observer.read10(LUN, lba, 4, BLOCK);
      if (r.status === CHECK_CONDITION) {
        assert.equal(r.sense?.key, 0x06, 'reset unit attention');
        const again = await observer.read10(LUN, lba, 4, BLOCK);
        assert.ok(
          again.data.equals(Buffer.alloc(4 * BLOCK)),
          `function ${fn}: aborted write reached the medium`,
        );
      } else {
        assert.ok(r.data.equals(Buffer.alloc(4 * BLOCK)), `function ${fn}: aborted write reached the medium`);
      }
    }
  });

  test("sam5 7.3-7.7: TARGET WARM RESET and LOGICAL UNIT RESET also abort another session's write waiting for Data-Out", async () => {
    for (const fn of [TmfFunction.LogicalUnitReset, TmfFunction.TargetWarmReset]) {
      await fresh();
      observer.setRawMode(true);
      const w = itt();
      sendRawCommand(observer, { itt: w, lun: LUN, cdb: write10Cdb(7000, 1), write: true, edtl: BLOCK });
      const [r2tPdu] = await receiveUntil(observer, Opcode.R2T, w, 5000);
      const tmf = itt();
      sendRawTmf(s, { itt: tmf, fn });
      assert.equal((await tmfResult(s, tmf)).response, TmfResponse.FunctionComplete);
      const ttt = new R2TView(r2tPdu!.bhs).ttt;
      sendRawDataOut(observer, {
        itt: w,
        lun: LUN,
        ttt,
        data: pattern(BLOCK, 7),
        from: 0,
        to: BLOCK,
        segment: BLOCK,
      });
      await assertSilentFor(observer, new Set([w]), `function ${fn}: other session`);
      await assertWindowMoves(observer, itt(), `function ${fn}: other session`);
      observer.setRawMode(false);
      const r = await observer.testUnitReady(LUN);
      assert.equal(r.status, CHECK_CONDITION);
      assert.equal(r.sense?.key, 0x06, 'the other session sees the reset unit attention');
      assert.equal(r.sense?.asc, 0x29);
    }
  });

  test('rfc7143 11.5.1 / sam5 7: commands in the core or sending Data-In: none answers after the TMF response', async () => {
    const size = 1024 * 1024;
    for (const fn of [
      TmfFunction.AbortTaskSet,
      TmfFunction.ClearTaskSet,
      TmfFunction.LogicalUnitReset,
      TmfFunction.TargetWarmReset,
      TmfFunction.AbortTask,
    ]) {
      for (const lead of [0, 1, 3]) {
        await fresh();
        const itts: number[] = [];
        const cmdSNs: number[] = [];
        for (let i = 0; i < 16; i++) {
          const t = itt();
          itts.push(t);
          const cdb = read10Cdb((i * size) / BLOCK, size / BLOCK);
          cmdSNs.push(sendRawCommand(s, { itt: t, lun: LUN, cdb, read: true, edtl: size }));
        }
        // Let some of them start (or finish) first.
        if (lead > 0) await new Promise((r) => setTimeout(r, lead));
        const tmf = itt();
        const victim = itts.length - 1;
        sendRawTmf(s, { itt: tmf, fn, refTag: itts[victim], refCmdSN: cmdSNs[victim] });
        const { response, before: seen } = await tmfResult(s, tmf);
        assert.ok(
          response === TmfResponse.FunctionComplete ||
            (fn === TmfFunction.AbortTask && response === TmfResponse.TaskDoesNotExist),
          `function ${fn}: response ${response}`,
        );
        // Every command with Data-In before the TMF response also got its status before it.
        const dataIn = new Set<number>();
        const status = new Set<number>();
        for (const p of seen) {
          const t = bhsItt(p.bhs);
          if (bhsOpcode(p.bhs) === Opcode.DataIn) {
            dataIn.add(t);
            if (new DataInView(p.bhs).statusPresent) status.add(t);
          } else if (bhsOpcode(p.bhs) === Opcode.ScsiResponse) {
            status.add(t);
            assert.equal(new ScsiResponseView(p.bhs).status, GOOD);
          }
        }
        for (const t of dataIn)
          assert.ok(status.has(t), `function ${fn}: ITT 0x${t.toString(16)} Data-In without status`);
        // Commands aborted get nothing afterwards; for ABORT TASK, the others still complete.
        if (fn === TmfFunction.AbortTask) {
          const answeredLater = await assertSilentFor(s, new Set([itts[victim]!]), 'ABORT TASK', 2000);
          for (const p of answeredLater) {
            const op = bhsOpcode(p.bhs);
            if (op === Opcode.ScsiResponse || (op === Opcode.DataIn && new DataInView(p.bhs).statusPresent))
              status.add(bhsItt(p.bhs));
          }
          for (const t of itts.slice(0, victim)) {
            assert.ok(status.has(t), `ABORT TASK: unrelated ITT 0x${t.toString(16)} never completed`);
          }
        } else {
          await assertSilentFor(s, new Set(itts), `function ${fn}`);
        }
        await assertWindowMoves(s, itt(), `function ${fn}`);
      }
    }
  });

  test('rfc7143 11.5.1 b/c: ABORT TASK of a command not received yet, by RefCmdSN', async () => {
    await fresh();
    // b) RefCmdSN in the window and before the TMF's CmdSN: Function Complete, the command is dropped.
    const future = s.takeCmdSN();
    const t = itt();
    const tmf = itt();
    sendRawTmf(s, { itt: tmf, fn: TmfFunction.AbortTask, refTag: t, refCmdSN: future });
    assert.equal((await tmfResult(s, tmf)).response, TmfResponse.FunctionComplete);
    sendRawCommand(s, { itt: t, lun: LUN, cdb: read10Cdb(0, 1), read: true, edtl: BLOCK, cmdSN: future });
    await assertSilentFor(s, new Set([t]), 'command aborted before it arrived');
    await assertWindowMoves(s, itt(), 'after the consumed CmdSN');
    // c) RefCmdSN already used (below ExpCmdSN) or not before the TMF's CmdSN: task does not exist.
    for (const refCmdSN of [(s.cmdSN - 5) >>> 0, s.cmdSN, (s.cmdSN + 3) >>> 0, (s.cmdSN + 100000) >>> 0]) {
      const m = itt();
      sendRawTmf(s, { itt: m, fn: TmfFunction.AbortTask, refTag: 0x7abc, refCmdSN });
      assert.equal((await tmfResult(s, m)).response, TmfResponse.TaskDoesNotExist, `RefCmdSN ${refCmdSN}`);
    }
    await assertWindowMoves(s, itt(), 'window untouched by refused aborts');
  });

  test('rfc7143 11.5.1 / rfc7144 4.1: QUERY TASK, QUERY TASK SET, I_T NEXUS RESET, QUERY ASYNC EVENT, CLEAR ACA -> not supported', async () => {
    await fresh();
    for (const fn of [9, 10, 11, 12, TmfFunction.ClearAca, 0x55]) {
      const m = itt();
      sendRawTmf(s, { itt: m, fn, refTag: 0x1 });
      assert.equal((await tmfResult(s, m)).response, TmfResponse.NotSupported, `function ${fn}`);
    }
    const m = itt();
    sendRawTmf(s, { itt: m, fn: TmfFunction.TaskReassign, refTag: 0x1 });
    assert.equal((await tmfResult(s, m)).response, TmfResponse.TaskAllegianceReassignmentNotSupported);
    const lunless = itt();
    sendRawTmf(s, { itt: lunless, fn: TmfFunction.LogicalUnitReset, lun: 9 });
    assert.equal((await tmfResult(s, lunless)).response, TmfResponse.LunDoesNotExist);
    await assertWindowMoves(s, itt(), 'session usable');
  });

  test('rfc7143 11.5.1: TARGET COLD RESET answers, then closes every connection of the target', async () => {
    await fresh();
    const m = itt();
    sendRawTmf(s, { itt: m, fn: TmfFunction.TargetColdReset });
    assert.equal((await tmfResult(s, m)).response, TmfResponse.FunctionComplete);
    const closed = async (x: Session): Promise<boolean> => {
      for (let i = 0; i < 50 && !x.connection.closed; i++) await new Promise((r) => setTimeout(r, 100));
      return x.connection.closed;
    };
    assert.ok(await closed(s), 'the requesting connection stays open');
    assert.ok(await closed(observer), 'another session of the target stays open');
    s.destroy();
    observer.destroy();
    const again = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:after-cold-reset` });
    assert.equal((await again.read10(LUN, 0, 1, BLOCK)).status, GOOD);
    await closeSession(again);
  });
});

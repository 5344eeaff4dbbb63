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
  clearUnitAttention,
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

/**
 * Receive until the TMF response of `itt`; returns its response code, its RFC 7144 4.1
 * ADDITIONAL RESPONSE INFORMATION (bytes 8-10) and the PDUs before it.
 */
async function tmfResult(
  s: Session,
  itt: number,
): Promise<{ response: number; info: number; before: Pdu[] }> {
  const pdus = await receiveUntil(s, Opcode.TaskMgmtResponse, itt, 10_000);
  const last = pdus.pop()!;
  return {
    response: new TaskMgmtResponseView(last.bhs).response,
    info: last.bhs.readUIntBE(8, 3),
    before: pdus,
  };
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
    // Files, not RAM disks: with workers (the default on two CPUs) the two sessions of each case
    // then run in tgtd and in its worker, so task management also crosses processes.
    await d.addTarget({
      tid: 1,
      name: TARGET,
      luns: [
        { lun: LUN, path: await d.sparseFile('tmf.img', 64 << 20) },
        { lun: OTHER_LUN, path: await d.sparseFile('tmf-other.img', 16 << 20) },
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

  test('rfc7143 11.5.1: CLEAR ACA and undefined function codes -> not supported; TASK REASSIGN -> 4', async () => {
    await fresh();
    for (const fn of [TmfFunction.ClearAca, 13, 0x55]) {
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
  /** Send a WRITE(10) of `blocks` blocks and wait for its first R2T; returns its TTT. */
  async function writeWaitingForData(x: Session, w: number, lba: number, blocks = 1): Promise<number> {
    sendRawCommand(x, { itt: w, lun: LUN, cdb: write10Cdb(lba, blocks), write: true, edtl: blocks * BLOCK });
    const [r2tPdu] = await receiveUntil(x, Opcode.R2T, w, 5000);
    return new R2TView(r2tPdu!.bhs).ttt;
  }

  /** Send a TMF and return its response code and additional response information. */
  async function tmf(
    x: Session,
    o: { fn: number; lun?: number; refTag?: number },
  ): Promise<{ response: number; info: number }> {
    const m = itt();
    sendRawTmf(x, { itt: m, ...o });
    const { response, info } = await tmfResult(x, m);
    return { response, info };
  }

  /** MODE SELECT(6) of the control mode page with TAS (SPC-4 7.5.8 byte 5 bit 6) set or cleared. */
  async function setTas(x: Session, on: boolean): Promise<void> {
    const sensed = await x.modeSense6(LUN, { page: 0x0a });
    assert.equal(sensed.status, GOOD);
    const list = Buffer.from(sensed.data);
    list[0] = 0; // MODE DATA LENGTH is reserved in MODE SELECT
    const tas = 4 + list[3]! + 5;
    list[tas] = on ? list[tas]! | 0x40 : list[tas]! & ~0x40;
    const cdb = Buffer.from([0x15, 0x10, 0, 0, list.length, 0]);
    assert.equal((await x.command({ lun: LUN, cdb, dataOut: list })).status, GOOD, 'MODE SELECT TAS');
  }

  test('rfc7144 4.1 / sam5 7.x QUERY TASK and QUERY TASK SET: a write waiting for Data-Out exists (7); once answered it does not (0)', async () => {
    await fresh();
    const w = itt();
    const ttt = await writeWaitingForData(s, w, 9000, 2);
    const succeeded = TmfResponse.FunctionSucceeded;
    assert.equal((await tmf(s, { fn: TmfFunction.QueryTask, refTag: w })).response, succeeded);
    assert.equal((await tmf(s, { fn: TmfFunction.QueryTaskSet })).response, succeeded);
    assert.equal(
      (await tmf(s, { fn: TmfFunction.QueryTask, refTag: w + 1000 })).response,
      TmfResponse.FunctionComplete,
    );
    assert.equal(
      (await tmf(s, { fn: TmfFunction.QueryTask, refTag: w, lun: OTHER_LUN })).response,
      0,
      'other LU',
    );
    assert.equal((await tmf(s, { fn: TmfFunction.QueryTaskSet, lun: OTHER_LUN })).response, 0, 'other LU');
    assert.equal(
      (await tmf(s, { fn: TmfFunction.QueryTask, refTag: w, lun: 9 })).response,
      TmfResponse.LunDoesNotExist,
    );
    // Another session's task set does not count.
    observer.setRawMode(true);
    assert.equal(
      (await tmf(observer, { fn: TmfFunction.QueryTaskSet })).response,
      TmfResponse.FunctionComplete,
    );
    observer.setRawMode(false);
    // The query did not disturb the write: it completes, and then no longer exists.
    sendRawDataOut(s, {
      itt: w,
      lun: LUN,
      ttt,
      data: pattern(2 * BLOCK, 9),
      from: 0,
      to: 2 * BLOCK,
      segment: BLOCK,
    });
    const done = await receiveUntil(s, Opcode.ScsiResponse, w, 5000);
    assert.equal(new ScsiResponseView(done[done.length - 1]!.bhs).status, GOOD);
    assert.equal(
      (await tmf(s, { fn: TmfFunction.QueryTask, refTag: w })).response,
      TmfResponse.FunctionComplete,
    );
    assert.equal((await tmf(s, { fn: TmfFunction.QueryTaskSet })).response, TmfResponse.FunctionComplete);
    assert.ok((await observer.read10(LUN, 9000, 2, BLOCK)).data.equals(pattern(2 * BLOCK, 9)));
  });

  test('rfc7144 4.1 / sam5 7.x QUERY ASYNCHRONOUS EVENT: the pending UA in bytes 8-10 (function succeeded), not cleared', async () => {
    await fresh();
    // The observer's LOGICAL UNIT RESET leaves BUS DEVICE RESET FUNCTION OCCURRED (29/03) for `s`.
    assert.equal(await observer.taskManagement(TmfFunction.LogicalUnitReset, { lun: LUN }), 0);
    for (let i = 0; i < 2; i++) {
      const r = await tmf(s, { fn: TmfFunction.QueryAsyncEvent });
      assert.equal(r.response, TmfResponse.FunctionSucceeded, `query ${i}`);
      // UADE DEPTH 01b (one pending), sense key UNIT ATTENTION; ASC 29h, ASCQ 03h.
      assert.equal(r.info, 0x162903, `query ${i}: 0x${r.info.toString(16)}`);
    }
    // OTHER_LUN still has the POWER ON, RESET the session started with.
    assert.equal((await tmf(s, { fn: TmfFunction.QueryAsyncEvent, lun: OTHER_LUN })).info, 0x162900);
    assert.equal(
      (await tmf(s, { fn: TmfFunction.QueryAsyncEvent, lun: 9 })).response,
      TmfResponse.LunDoesNotExist,
    );
    s.setRawMode(false);
    const r = await s.testUnitReady(LUN);
    assert.equal(r.status, CHECK_CONDITION, 'the query left the unit attention pending');
    assert.deepEqual([r.sense?.key, r.sense?.asc, r.sense?.ascq], [0x06, 0x29, 0x03]);
    s.setRawMode(true);
    assert.deepEqual(await tmf(s, { fn: TmfFunction.QueryAsyncEvent }), {
      response: TmfResponse.FunctionComplete,
      info: 0,
    });
  });

  test('sam5 7.x I_T NEXUS RESET: a write waiting for Data-Out is aborted silently; the session stays, with I_T NEXUS LOSS OCCURRED (29/07) on every LU', async () => {
    await fresh();
    const w = itt();
    const ttt = await writeWaitingForData(s, w, 9100);
    const m = itt();
    sendRawTmf(s, { itt: m, fn: TmfFunction.ItNexusReset });
    const { response, before: early } = await tmfResult(s, m);
    assert.equal(response, TmfResponse.FunctionComplete);
    assert.ok(!early.some((p) => bhsItt(p.bhs) === w), 'the aborted write answered');
    sendRawDataOut(s, { itt: w, lun: LUN, ttt, data: pattern(BLOCK, 3), from: 0, to: BLOCK, segment: BLOCK });
    assert.deepEqual((await assertSilentFor(s, new Set([w]), 'I_T NEXUS RESET')).map(opName), []);
    await assertWindowMoves(s, itt(), 'I_T NEXUS RESET');
    assert.ok(
      (await observer.read10(LUN, 9100, 1, BLOCK)).data.equals(Buffer.alloc(BLOCK)),
      'nothing written',
    );
    s.setRawMode(false);
    // SAM-5 6.3.4: I_T NEXUS LOSS OCCURRED (29/07).
    // (a LUN this session never used still has its POWER ON (29/00) ahead of it)
    for (const lun of [LUN, OTHER_LUN]) {
      const seen: string[] = [];
      for (let r = await s.testUnitReady(lun); r.status === CHECK_CONDITION; r = await s.testUnitReady(lun))
        seen.push(`${r.sense?.key}/${r.sense?.asc.toString(16)}/${r.sense?.ascq}`);
      assert.ok(seen.includes('6/29/7') && seen.length <= 2, `LUN ${lun}: ${seen.join(' ')}`);
    }
    assert.equal((await s.testUnitReady(LUN)).status, GOOD, 'the session goes on');
    assert.equal((await observer.testUnitReady(LUN)).status, GOOD, 'other sessions are not reset');
  });

  test("sam5 5.6 TAS=1: LOGICAL UNIT RESET answers the other session's waiting commands TASK ABORTED; the issuer's stay silent", async () => {
    await fresh();
    await setTas(observer, true);
    try {
      observer.setRawMode(true);
      const theirWrite = itt();
      const theirTtt = await writeWaitingForData(observer, theirWrite, 9200);
      const gap = observer.takeCmdSN();
      const theirRead = itt();
      sendRawCommand(observer, { itt: theirRead, lun: LUN, cdb: read10Cdb(0, 1), read: true, edtl: BLOCK });
      const mine = itt();
      await writeWaitingForData(s, mine, 9201);
      const m = itt();
      sendRawTmf(s, { itt: m, fn: TmfFunction.LogicalUnitReset });
      assert.equal((await tmfResult(s, m)).response, TmfResponse.FunctionComplete);
      await assertSilentFor(s, new Set([mine]), 'the issuer');
      // The other session: TASK ABORTED (40h) for the write waiting for Data-Out and the read in the window.
      const statuses = new Map<number, number>();
      while (statuses.size < 2) {
        const p = await nextPdu(observer, 5000);
        assert.ok(p, 'TASK ABORTED responses for the other session');
        assert.equal(bhsOpcode(p.bhs), Opcode.ScsiResponse, opName(p));
        statuses.set(bhsItt(p.bhs), new ScsiResponseView(p.bhs).status);
      }
      assert.deepEqual([statuses.get(theirWrite), statuses.get(theirRead)], [0x40, 0x40]);
      // Late Data-Out is still dropped silently; the gap fills and the window moves.
      sendRawDataOut(observer, {
        itt: theirWrite,
        lun: LUN,
        ttt: theirTtt,
        data: pattern(BLOCK, 4),
        from: 0,
        to: BLOCK,
        segment: BLOCK,
      });
      sendRawNop(observer, itt(), { cmdSN: gap });
      await assertSilentFor(observer, new Set([theirWrite, theirRead]), 'the other session');
      await assertWindowMoves(observer, itt(), 'the other session');
      observer.setRawMode(false);
      await clearUnitAttention(observer, LUN);
      assert.ok(
        (await observer.read10(LUN, 9200, 1, BLOCK)).data.equals(Buffer.alloc(BLOCK)),
        'nothing written',
      );
    } finally {
      observer.setRawMode(false);
      await clearUnitAttention(observer, LUN);
      await setTas(observer, false);
    }
  });
});

/**
 * Task attributes against commands still waiting for their Data-Out (SAM-5 8.5/8.6, RFC 7143
 * 3.2.2.1), with hand-built PDUs on a real tgtd: a command joins its LU's task set in CmdSN
 * order when it arrives, not when its data is in, so an ORDERED command never overtakes an older
 * SIMPLE write whose Data-Out the initiator holds back, a SIMPLE command never overtakes an older
 * ORDERED write, across sessions too; task management ends such a write cleanly.
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
  R2TView,
  ScsiResponseView,
  TaskMgmtResponseView,
  type Pdu,
} from '../../src/iscsi/pdu.js';
import { BHS_LENGTH, Opcode, TaskAttr, TmfFunction, TmfResponse } from '../../src/iscsi/spec.js';
import { RawRig } from '../helpers/raw-rig.js';
import {
  BLOCK,
  GOOD,
  IQN,
  loginReady,
  nextPdu,
  opName,
  pattern,
  sendRawCommand,
  sendRawDataOut,
} from './util.js';

const TARGET = `${IQN}:ordering`;
const LUN = 1;
const BLOCKS = 8;
const LENGTH = BLOCKS * BLOCK;

/** Send a SCSI Command PDU with task attribute `attr` (and all its write data as immediate data). */
function command(
  s: Session,
  o: { itt: number; attr: TaskAttr; cdb: Buffer; read?: boolean; write?: boolean; data?: Buffer },
): void {
  sendRawCommand(s, { ...o, lun: LUN, edtl: LENGTH });
}

/** The next PDU, which must have opcode `op` and ITT `itt`. */
async function expectPdu(s: Session, op: Opcode, itt: number, what: string): Promise<Pdu> {
  const p = await nextPdu(s, 5000);
  assert.ok(p, `${what}: nothing received`);
  assert.equal(bhsOpcode(p.bhs), op, `${what}: got ${opName(p)}`);
  assert.equal(bhsItt(p.bhs), itt, `${what}: got ${opName(p)}`);
  return p;
}

/** Nothing arrives within `ms`. */
async function expectSilence(s: Session, ms: number, what: string): Promise<void> {
  const p = await nextPdu(s, ms);
  assert.equal(p, undefined, `${what}: unexpected ${opName(p)}`);
}

/** A READ's Data-In up to its status (S bit); returns the data. */
async function readData(s: Session, itt: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (;;) {
    const p = await expectPdu(s, Opcode.DataIn, itt, what);
    parts.push(p.data);
    const v = new DataInView(p.bhs);
    if (v.statusPresent) {
      assert.equal(v.status, GOOD, `${what}: status`);
      return Buffer.concat(parts);
    }
  }
}

/** Send a task management request (immediate) and return its response code. */
async function taskManagement(s: Session, itt: number, fn: TmfFunction, refTag?: number): Promise<number> {
  s.sendPdu(
    encodeTaskMgmtRequest(Buffer.alloc(BHS_LENGTH), {
      itt,
      lun: encodeLun(LUN),
      function: fn,
      referencedTaskTag: refTag,
      cmdSN: s.cmdSN,
      expStatSN: s.expStatSN,
      immediate: true,
    }),
  );
  const p = await expectPdu(s, Opcode.TaskMgmtResponse, itt, 'TMF response');
  return new TaskMgmtResponseView(p.bhs).response;
}

describe('task attributes against commands waiting for Data-Out', () => {
  const rig = new RawRig(TARGET, LUN, 0x7000);

  // Every test sends the data it owes well within the 2 s Data-Out timeout but the last one.
  before(() => rig.start([], ['--iscsi', 'dataout_timeout=2']));
  after(() => rig.stop());

  /** A session that sends no write data before an R2T asks for it, in raw mode. */
  async function session(immediateData = false): Promise<Session> {
    const s = await loginReady(rig.d, TARGET, LUN, {
      initiatorName: rig.initiatorName(`${IQN}:ordering`),
      proposals: { initialR2T: true, immediateData, maxRecvDataSegmentLength: 8192 },
    });
    rig.open.push(s);
    s.setRawMode(true);
    return s;
  }

  /** A WRITE(10) of LENGTH at `at` with `attr`: returns its ITT and the TTT of its R2T. */
  async function writeAwaitingData(
    s: Session,
    at: number,
    attr: TaskAttr,
  ): Promise<{ itt: number; ttt: number }> {
    const itt = rig.itt();
    command(s, { itt, attr, cdb: write10Cdb(at, BLOCKS), write: true });
    const r2t = await expectPdu(s, Opcode.R2T, itt, 'R2T of the write');
    return { itt, ttt: new R2TView(r2t.bhs).ttt };
  }

  function sendData(s: Session, w: { itt: number; ttt: number }, data: Buffer): void {
    sendRawDataOut(s, { itt: w.itt, lun: LUN, ttt: w.ttt, data, from: 0, to: LENGTH, segment: 4096 });
  }

  test('sam5 8.6 / rfc7143 3.2.2.1: an ORDERED READ waits for an older SIMPLE WRITE still waiting for its Data-Out and returns its data', async () => {
    const s = await session();
    const at = rig.region(BLOCKS);
    const data = pattern(LENGTH, 1);
    const write = await writeAwaitingData(s, at, TaskAttr.Simple);
    const read = rig.itt();
    command(s, { itt: read, attr: TaskAttr.Ordered, cdb: read10Cdb(at, BLOCKS), read: true });
    await expectSilence(s, 300, 'the ORDERED READ before the WRITE has its data');
    sendData(s, write, data);
    const response = await expectPdu(s, Opcode.ScsiResponse, write.itt, 'the WRITE completes first');
    assert.equal(new ScsiResponseView(response.bhs).status, GOOD);
    assert.ok((await readData(s, read, 'the ORDERED READ')).equals(data), 'the READ returns the WRITE data');
  });

  test('sam5 8.6: a SIMPLE READ after an ORDERED WRITE still waiting for its Data-Out starts only once the WRITE completed', async () => {
    const s = await session();
    const at = rig.region(BLOCKS);
    const data = pattern(LENGTH, 2);
    const write = await writeAwaitingData(s, at, TaskAttr.Ordered);
    const read = rig.itt();
    command(s, { itt: read, attr: TaskAttr.Simple, cdb: read10Cdb(at, BLOCKS), read: true });
    await expectSilence(s, 300, 'the SIMPLE READ before the ORDERED WRITE has its data');
    sendData(s, write, data);
    await expectPdu(s, Opcode.ScsiResponse, write.itt, 'the ORDERED WRITE completes first');
    assert.ok((await readData(s, read, 'the SIMPLE READ')).equals(data));
  });

  test('sam5 8.6: SIMPLE commands do not wait for an older SIMPLE WRITE still waiting for its Data-Out', async () => {
    const s = await session();
    const write = await writeAwaitingData(s, rig.region(BLOCKS), TaskAttr.Simple);
    const read = rig.itt();
    command(s, { itt: read, attr: TaskAttr.Simple, cdb: read10Cdb(rig.region(BLOCKS), BLOCKS), read: true });
    await readData(s, read, 'the SIMPLE READ runs at once');
    sendData(s, write, pattern(LENGTH, 3));
    await expectPdu(s, Opcode.ScsiResponse, write.itt, 'the WRITE');
  });

  test("sam5 8.6: the task set is per LU across sessions: another session's ORDERED READ waits for the SIMPLE WRITE", async () => {
    const writer = await session();
    const reader = await session();
    const at = rig.region(BLOCKS);
    const data = pattern(LENGTH, 4);
    const write = await writeAwaitingData(writer, at, TaskAttr.Simple);
    const read = rig.itt();
    command(reader, { itt: read, attr: TaskAttr.Ordered, cdb: read10Cdb(at, BLOCKS), read: true });
    await expectSilence(reader, 300, "the other session's ORDERED READ before the WRITE has its data");
    sendData(writer, write, data);
    await expectPdu(writer, Opcode.ScsiResponse, write.itt, 'the WRITE');
    assert.ok((await readData(reader, read, 'the ORDERED READ')).equals(data));
  });

  test('sam5 7.2: ABORT TASK of a SIMPLE WRITE waiting for its Data-Out lets the ORDERED READ run; its late Data-Out is dropped', async () => {
    const s = await session();
    const at = rig.region(BLOCKS);
    const write = await writeAwaitingData(s, at, TaskAttr.Simple);
    const read = rig.itt();
    command(s, { itt: read, attr: TaskAttr.Ordered, cdb: read10Cdb(at, BLOCKS), read: true });
    await expectSilence(s, 200, 'the ORDERED READ waits');
    const tmf = rig.itt();
    s.sendPdu(
      encodeTaskMgmtRequest(Buffer.alloc(BHS_LENGTH), {
        itt: tmf,
        lun: encodeLun(LUN),
        function: TmfFunction.AbortTask,
        referencedTaskTag: write.itt,
        cmdSN: s.cmdSN,
        expStatSN: s.expStatSN,
        immediate: true,
      }),
    );
    // The TMF response and the READ's Data-In, in either order.
    const pdus: Pdu[] = [];
    let readDone = false;
    let tmfDone = false;
    while (!readDone || !tmfDone) {
      const p = await nextPdu(s, 3000);
      if (!p) break;
      pdus.push(p);
      if (bhsOpcode(p.bhs) === Opcode.TaskMgmtResponse) tmfDone = true;
      if (bhsOpcode(p.bhs) === Opcode.DataIn && new DataInView(p.bhs).statusPresent) readDone = true;
    }
    const response = pdus.find((p) => bhsOpcode(p.bhs) === Opcode.TaskMgmtResponse);
    assert.ok(response, `TMF response among ${pdus.map(opName).join(', ')}`);
    assert.equal(new TaskMgmtResponseView(response.bhs).response, TmfResponse.FunctionComplete);
    assert.ok(
      pdus.some((p) => bhsItt(p.bhs) === read && bhsOpcode(p.bhs) === Opcode.DataIn),
      'the ORDERED READ ran',
    );
    assert.ok(!pdus.some((p) => bhsItt(p.bhs) === write.itt), 'no answer for the aborted WRITE');
    sendData(s, write, pattern(LENGTH, 5));
    await expectSilence(s, 300, 'late Data-Out of the aborted WRITE (no Reject)');
  });

  test("rfc7144 4.1 / sam5 7.7: QUERY TASK finds a WRITE waiting for its Data-Out; another session's LOGICAL UNIT RESET ends it and the ORDERED READ behind it silently", async () => {
    const s = await session();
    const other = await session();
    const at = rig.region(BLOCKS);
    const write = await writeAwaitingData(s, at, TaskAttr.Simple);
    const read = rig.itt();
    command(s, { itt: read, attr: TaskAttr.Ordered, cdb: read10Cdb(at, BLOCKS), read: true });
    await expectSilence(s, 200, 'the ORDERED READ waits');
    assert.equal(
      await taskManagement(s, rig.itt(), TmfFunction.QueryTask, write.itt),
      TmfResponse.FunctionSucceeded,
    );
    assert.equal(
      await taskManagement(other, rig.itt(), TmfFunction.LogicalUnitReset),
      TmfResponse.FunctionComplete,
    );
    // TAS=0: the commands of the other I_T nexus end without a response (SAM-5 5.6).
    sendData(s, write, pattern(LENGTH, 6));
    await expectSilence(s, 300, 'no answer for the WRITE or the READ, late Data-Out dropped (no Reject)');
    // SAM-5 7.x: a task no longer in the task set is answered FUNCTION COMPLETE.
    assert.equal(
      await taskManagement(s, rig.itt(), TmfFunction.QueryTask, write.itt),
      TmfResponse.FunctionComplete,
    );
  });

  test('sam5 6.3.4: I_T nexus loss ends a WRITE waiting for its Data-Out and never runs the ORDERED WRITE queued behind it', async () => {
    const s = await session(true);
    const at = rig.region(BLOCKS);
    await writeAwaitingData(s, rig.region(BLOCKS), TaskAttr.Simple);
    // All its data as immediate data: complete at once, it waits for the older write.
    command(s, {
      itt: rig.itt(),
      attr: TaskAttr.Ordered,
      cdb: write10Cdb(at, BLOCKS),
      write: true,
      data: pattern(LENGTH, 7),
    });
    await expectSilence(s, 200, 'the ORDERED WRITE waits');
    s.destroy();
    await new Promise((r) => setTimeout(r, 300));
    const check = await session();
    check.setRawMode(false);
    const r = await check.read10(LUN, at, BLOCKS, BLOCK);
    assert.equal(r.status, GOOD);
    assert.ok(r.data.equals(Buffer.alloc(LENGTH)), 'the ORDERED WRITE of the lost nexus ran');
  });

  test('tgt-ts dataout_timeout (as LIO): a client that never sends the Data-Out it owes is disconnected, and the ORDERED READ it held back in another session then runs', async () => {
    const writer = await session();
    const reader = await session();
    const at = rig.region(BLOCKS);
    await writeAwaitingData(writer, at, TaskAttr.Simple);
    const read = rig.itt();
    command(reader, { itt: read, attr: TaskAttr.Ordered, cdb: read10Cdb(at, BLOCKS), read: true });
    await expectSilence(reader, 1000, 'the ORDERED READ waits while the WRITE is owed its data');
    const data = await readData(reader, read, 'the ORDERED READ once the Data-Out timeout closed the writer');
    assert.ok(data.equals(Buffer.alloc(LENGTH)), 'the WRITE that never got its data did not land');
    for (let i = 0; i < 50 && writer.state !== 'closed'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(writer.state, 'closed', 'the target closed the connection that owed Data-Out');
  });
});

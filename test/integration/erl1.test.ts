/**
 * Error recovery level 1 (RFC 7143 7, 11.16, 13.20) against a real tgtd whose target offers
 * ErrorRecoveryLevel=1, with hand-built PDUs: Data, Status and R2T SNACK answered from what the
 * target keeps until ExpStatSN acknowledges it; Data-Out lost to a data digest error or a DataSN
 * gap requested again with a recovery R2T for exactly the lost bytes; a command whose immediate
 * data fails its digest retried whole; and the same errors at ERL 0 handled as before.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeLun, type Session } from '../../src/initiator/index.js';
import { read10Cdb, testUnitReadyCdb, write10Cdb } from '../../src/initiator/cdb.js';
import {
  bhsOpcode,
  DataInView,
  encodeDataOut,
  encodeScsiCommand,
  encodeSnackRequest,
  encodeTaskMgmtRequest,
  R2TView,
  RejectView,
  ScsiResponseView,
  TaskMgmtResponseView,
  type Pdu,
} from '../../src/iscsi/pdu.js';
import { encodePduToBuffer } from '../../src/iscsi/pdu-writer.js';
import {
  BHS_LENGTH,
  Opcode,
  RejectReason,
  RESERVED_TAG,
  SnackType,
  TaskAttr,
  TmfFunction,
  TmfResponse,
} from '../../src/iscsi/spec.js';
import type { TgtDaemon } from '../helpers/daemon.js';
import { RawRig } from '../helpers/raw-rig.js';
import { parseSense } from '../../src/scsi/sense.js';
import {
  BLOCK,
  CHECK_CONDITION,
  GOOD,
  IQN,
  loginReady,
  nextPdu,
  opName,
  pattern,
  receiveUntil,
  sendRawCommand,
  untilStatus,
} from './util.js';

const TARGET = `${IQN}:erl1`;
const LUN = 1;

interface Proposals {
  erl: number;
  dataDigest?: boolean;
  headerDigest?: boolean;
  /** Default true: all write data is solicited with R2Ts. */
  initialR2T?: boolean;
  immediateData?: boolean;
}

/** Send a SNACK Request by hand (RFC 7143 11.16). */
function sendSnack(
  s: Session,
  o: { type: number; itt: number; begRun: number; runLength: number; expStatSN: number; ttt?: number },
): Buffer {
  const bhs = encodeSnackRequest(Buffer.alloc(BHS_LENGTH), {
    type: o.type,
    itt: o.itt,
    lun: encodeLun(LUN),
    ttt: o.ttt ?? RESERVED_TAG,
    expStatSN: o.expStatSN,
    begRun: o.begRun,
    runLength: o.runLength,
  });
  s.sendPdu(bhs);
  return bhs;
}

/** A Data-Out header for `data[offset, offset + length)`. */
function dataOutHeader(
  s: Session,
  o: { itt: number; ttt: number; dataSN: number; offset: number; final: boolean },
): Buffer {
  return encodeDataOut(Buffer.alloc(BHS_LENGTH), {
    itt: o.itt,
    lun: encodeLun(LUN),
    ttt: o.ttt,
    final: o.final,
    expStatSN: s.expStatSN,
    dataSN: o.dataSN,
    bufferOffset: o.offset,
  });
}

/** Send one PDU whose data digest is wrong (the digest's last byte flipped); returns its header. */
function sendWithBadDataDigest(s: Session, bhs: Buffer, data: Buffer): Buffer {
  const wire = encodePduToBuffer(bhs, null, data, {
    headerDigest: s.params.headerDigest,
    dataDigest: true,
  });
  wire[wire.length - 1]! ^= 0xff;
  s.sendBytes(wire);
  return wire.subarray(0, BHS_LENGTH);
}

/** The next PDU, which must have opcode `op`. */
async function expectPdu(s: Session, op: Opcode, what: string): Promise<Pdu> {
  const p = await nextPdu(s, 5000);
  assert.ok(p, `${what}: nothing received`);
  assert.equal(bhsOpcode(p.bhs), op, `${what}: got ${opName(p)}`);
  return p;
}

/** The next PDU is a Reject with `reason` of a PDU whose header starts like `rejected`. */
async function expectReject(
  s: Session,
  reason: RejectReason,
  rejected: Buffer,
  what: string,
): Promise<RejectView> {
  const p = await expectPdu(s, Opcode.Reject, what);
  const v = new RejectView(p.bhs);
  assert.equal(v.reason, reason, `${what}: Reject reason 0x${v.reason.toString(16)}`);
  assert.ok(p.data.subarray(0, 20).equals(rejected.subarray(0, 20)), `${what}: the rejected header`);
  return v;
}

/** Nothing arrives within `ms`. */
async function expectSilence(s: Session, ms: number, what: string): Promise<void> {
  const p = await nextPdu(s, ms);
  assert.equal(p, undefined, `${what}: unexpected ${opName(p)}`);
}

/** The target closes the connection within `ms` (PDUs before the close are returned). */
async function expectClosed(s: Session, ms: number, what: string): Promise<Pdu[]> {
  const seen: Pdu[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const p = await nextPdu(s, Math.max(1, deadline - Date.now()));
      if (!p) assert.fail(`${what}: connection still open after ${ms} ms`);
      seen.push(p);
    } catch (e) {
      assert.equal((e as { code?: string }).code, 'TGT_ERR_INI_CONNECTION_CLOSED', `${what}: ${String(e)}`);
      return seen;
    }
  }
}

/** Header equal to `original` except ExpCmdSN/MaxCmdSN (bytes 28-35), which carry current values. */
function assertReplica(resent: Buffer, original: Buffer, what: string): void {
  assert.ok(resent.subarray(0, 28).equals(original.subarray(0, 28)), `${what}: bytes 0-27`);
  assert.ok(resent.subarray(36, 48).equals(original.subarray(36, 48)), `${what}: bytes 36-47`);
}

describe('error recovery level 1', () => {
  const rig = new RawRig(TARGET, LUN, 0x2000);
  const itt = (): number => rig.itt();
  /** A fresh region of the LU for each write. */
  const region = (blocks: number): number => rig.region(blocks);
  const open = rig.open;
  let d: TgtDaemon;

  before(async () => {
    await rig.start([
      ['ErrorRecoveryLevel', '1'],
      ['DataDigest', 'CRC32C,None'],
      ['HeaderDigest', 'CRC32C,None'],
      ['InitialR2T', 'No'],
    ]);
    d = rig.d;
  });

  after(() => rig.stop());

  /** Log in with the given ERL and digests, clear the unit attention, switch to raw mode. */
  async function session(p: Proposals): Promise<Session> {
    const s = await loginReady(d, TARGET, LUN, {
      initiatorName: rig.initiatorName(`${IQN}:erl1`),
      proposals: {
        errorRecoveryLevel: p.erl,
        dataDigest: p.dataDigest ? 'CRC32C' : 'None',
        headerDigest: p.headerDigest ? 'CRC32C' : 'None',
        initialR2T: p.initialR2T ?? true,
        immediateData: p.immediateData ?? true,
        maxRecvDataSegmentLength: 8192,
      },
    });
    open.push(s);
    assert.equal(s.params.errorRecoveryLevel, p.erl, 'negotiated ErrorRecoveryLevel');
    assert.equal(s.params.dataDigest, p.dataDigest ?? false, 'negotiated DataDigest');
    s.setRawMode(true);
    return s;
  }

  /** Read `blocks` at `at` through the normal (non-raw) command path. */
  async function readBack(s: Session, at: number, blocks: number): Promise<Buffer> {
    s.setRawMode(false);
    const r = await s.read10(LUN, at, blocks, BLOCK);
    assert.equal(r.status, GOOD, 'read back');
    return r.data;
  }

  /** Write `data` at `at` through the normal command path. */
  async function writeNormally(s: Session, at: number, data: Buffer): Promise<void> {
    s.setRawMode(false);
    assert.equal((await s.write10(LUN, at, data, BLOCK)).status, GOOD, 'write');
    s.setRawMode(true);
  }

  /** A raw READ(10) of `blocks` at `at`: its PDUs up to the status, not acknowledged yet. */
  async function rawRead(s: Session, tag: number, at: number, blocks: number): Promise<Pdu[]> {
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: read10Cdb(at, blocks), read: true, edtl: blocks * BLOCK });
    return untilStatus(s, tag);
  }

  test('rfc7143 11.16.1: Data SNACK resends the requested Data-In PDUs byte-identical (DataSN, offsets, data)', async () => {
    const s = await session({ erl: 1 });
    const at = region(128);
    const data = pattern(128 * BLOCK, 11);
    await writeNormally(s, at, data);
    const tag = itt();
    const first = await rawRead(s, tag, at, 128);
    assert.equal(first.length, 8, '64 KiB in 8 KiB Data-In PDUs');
    for (const p of first) assert.equal(new DataInView(p.bhs).acknowledge, false, 'A bit never set');
    const status = new DataInView(first[7]!.bhs);
    assert.ok(status.statusPresent);
    // ExpStatSN = the read's own StatSN: its status is not acknowledged, so the data is kept.
    sendSnack(s, { type: SnackType.DataR2T, itt: tag, begRun: 2, runLength: 3, expStatSN: status.statSN });
    for (let sn = 2; sn < 5; sn++) {
      const p = await expectPdu(s, Opcode.DataIn, `resent DataSN ${sn}`);
      const v = new DataInView(p.bhs);
      assert.equal(v.dataSN, sn);
      assert.equal(v.bufferOffset, sn * 8192);
      assertReplica(p.bhs, first[sn]!.bhs, `DataSN ${sn}`);
      assert.ok(p.data.equals(first[sn]!.data), `DataSN ${sn}: same data`);
      assert.ok(p.data.equals(data.subarray(sn * 8192, (sn + 1) * 8192)), `DataSN ${sn}: the data written`);
    }
    // RunLength 0: BegRun and everything after it, the status-bearing Data-In included.
    sendSnack(s, { type: SnackType.DataR2T, itt: tag, begRun: 6, runLength: 0, expStatSN: status.statSN });
    for (let sn = 6; sn < 8; sn++) {
      const p = await expectPdu(s, Opcode.DataIn, `resent DataSN ${sn}`);
      assertReplica(p.bhs, first[sn]!.bhs, `DataSN ${sn}`);
      assert.ok(p.data.equals(first[sn]!.data));
    }
    await expectSilence(s, 200, 'after the run');
  });

  test('rfc7143 11.16.1: Status SNACK resends a status carried by the last Data-In, and a SCSI Response', async () => {
    const s = await session({ erl: 1 });
    const at = region(16);
    await writeNormally(s, at, pattern(16 * BLOCK, 12));
    const readTag = itt();
    const read = await rawRead(s, readTag, at, 16);
    const last = read[read.length - 1]!;
    const readStatSn = new DataInView(last.bhs).statSN;
    const turTag = itt();
    // Its ExpStatSN must not acknowledge the read's status, or the target lets it go.
    s.expStatSN = readStatSn;
    sendRawCommand(s, { itt: turTag, lun: LUN, cdb: testUnitReadyCdb(), edtl: 0 });
    const tur = (await receiveUntil(s, Opcode.ScsiResponse, turTag)).pop()!;
    const turStatSn = new ScsiResponseView(tur.bhs).statSN;
    assert.equal(turStatSn, (readStatSn + 1) >>> 0);
    sendSnack(s, {
      type: SnackType.Status,
      itt: RESERVED_TAG,
      begRun: readStatSn,
      runLength: 2,
      expStatSN: readStatSn,
    });
    const again = await expectPdu(s, Opcode.DataIn, 'the read status again');
    assertReplica(again.bhs, last.bhs, 'status-bearing Data-In');
    assert.ok(again.data.equals(last.data));
    const response = await expectPdu(s, Opcode.ScsiResponse, 'the TEST UNIT READY status again');
    assertReplica(response.bhs, tur.bhs, 'SCSI Response');
    await expectSilence(s, 200, 'after the run');
  });

  test('rfc7143 3.2.2.2 / 11.16.1: once ExpStatSN passes a status its data is released; SNACKs for it are protocol errors', async () => {
    const s = await session({ erl: 1 });
    const at = region(16);
    await writeNormally(s, at, pattern(16 * BLOCK, 13));
    const tag = itt();
    const read = await rawRead(s, tag, at, 16);
    const statSn = new DataInView(read[read.length - 1]!.bhs).statSN;
    // Still kept while not acknowledged:
    sendSnack(s, { type: SnackType.DataR2T, itt: tag, begRun: 0, runLength: 1, expStatSN: statSn });
    await expectPdu(s, Opcode.DataIn, 'kept before the acknowledgement');
    // This SNACK's ExpStatSN acknowledges the status: the Data-In is gone.
    const bhs = sendSnack(s, {
      type: SnackType.DataR2T,
      itt: tag,
      begRun: 0,
      runLength: 1,
      expStatSN: statSn + 1,
    });
    await expectReject(s, RejectReason.ProtocolError, bhs, 'Data SNACK after the acknowledgement');
    const status = sendSnack(s, {
      type: SnackType.Status,
      itt: RESERVED_TAG,
      begRun: statSn,
      runLength: 1,
      expStatSN: statSn + 1,
    });
    await expectReject(s, RejectReason.ProtocolError, status, 'Status SNACK for an acknowledged status');
  });

  test('rfc7143 11.16.1 / 11.17.3: a Data SNACK beyond the Data-In sent is a protocol error carrying the next DataSN', async () => {
    const s = await session({ erl: 1 });
    const tag = itt();
    const read = await rawRead(s, tag, region(16), 16);
    const statSn = new DataInView(read[read.length - 1]!.bhs).statSN;
    const bhs = sendSnack(s, {
      type: SnackType.DataR2T,
      itt: tag,
      begRun: 1,
      runLength: 5,
      expStatSN: statSn,
    });
    const v = await expectReject(s, RejectReason.ProtocolError, bhs, 'run beyond DataSN 0');
    assert.equal(v.dataSN, 1, 'next DataSN the target would send');
    const ack = sendSnack(s, {
      type: SnackType.DataAck,
      itt: tag,
      ttt: 0x1234,
      begRun: 1,
      runLength: 0,
      expStatSN: statSn,
    });
    await expectReject(s, RejectReason.InvalidDataAck, ack, 'DataACK: no Data-In asked for one');
  });

  test('rfc7143 11.16.3: R-Data SNACK resends all Data-In, then the status in a SCSI Response with the SNACK Tag', async () => {
    const s = await session({ erl: 1 });
    const at = region(32);
    const data = pattern(32 * BLOCK, 21);
    await writeNormally(s, at, data);
    const tag = itt();
    const first = await rawRead(s, tag, at, 32);
    assert.equal(first.length, 2);
    const statSn = new DataInView(first[1]!.bhs).statSN;
    sendSnack(s, { type: SnackType.RData, itt: tag, ttt: 0xabc, begRun: 0, runLength: 0, expStatSN: statSn });
    for (let sn = 0; sn < 2; sn++) {
      const p = await expectPdu(s, Opcode.DataIn, `DataSN ${sn} again`);
      const v = new DataInView(p.bhs);
      assert.equal(v.dataSN, sn);
      assert.equal(v.statusPresent, false, 'the status now comes in a SCSI Response');
      assert.ok(p.data.equals(first[sn]!.data));
    }
    const r = await expectPdu(s, Opcode.ScsiResponse, 'the status');
    const v = new ScsiResponseView(r.bhs);
    assert.equal(v.status, GOOD);
    assert.equal(v.statSN, statSn, 'same StatSN');
    assert.equal(v.snackTag, 0xabc);
    assert.equal(v.expDataSN, 2);
    // A Status SNACK now returns that SCSI Response.
    sendSnack(s, {
      type: SnackType.Status,
      itt: RESERVED_TAG,
      begRun: statSn,
      runLength: 1,
      expStatSN: statSn,
    });
    assertReplica((await expectPdu(s, Opcode.ScsiResponse, 'status again')).bhs, r.bhs, 'SCSI Response');
  });

  test('rfc7143 11.16.1: R2T SNACK resends the outstanding R2T (same R2TSN, TTT, offset, length)', async () => {
    const s = await session({ erl: 1 });
    const at = region(16);
    const data = pattern(16 * BLOCK, 14);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(at, 16), write: true, edtl: data.length });
    const r2tPdu = await expectPdu(s, Opcode.R2T, 'the R2T');
    const r2t = new R2TView(r2tPdu.bhs);
    assert.equal(r2t.r2tSN, 0);
    sendSnack(s, { type: SnackType.DataR2T, itt: tag, begRun: 0, runLength: 1, expStatSN: s.expStatSN });
    const again = await expectPdu(s, Opcode.R2T, 'the R2T again');
    assertReplica(again.bhs, r2tPdu.bhs, 'R2T');
    const beyond = sendSnack(s, {
      type: SnackType.DataR2T,
      itt: tag,
      begRun: 1,
      runLength: 1,
      expStatSN: s.expStatSN,
    });
    const v = await expectReject(s, RejectReason.ProtocolError, beyond, 'R2TSN 1 never sent');
    assert.equal(v.dataSN, 1, 'next R2TSN');
    for (let i = 0; i < 2; i++) {
      const bhs = dataOutHeader(s, { itt: tag, ttt: r2t.ttt, dataSN: i, offset: i * 4096, final: i === 1 });
      s.sendPdu(bhs, data.subarray(i * 4096, (i + 1) * 4096));
    }
    const done = await expectPdu(s, Opcode.ScsiResponse, 'write status');
    assert.equal(new ScsiResponseView(done.bhs).status, GOOD);
    assert.ok((await readBack(s, at, 16)).equals(data));
  });

  test('rfc7143 7.8: a Data-Out with a data digest error is rejected and a recovery R2T asks for exactly its range', async () => {
    const s = await session({ erl: 1, dataDigest: true });
    const at = region(32);
    const data = pattern(32 * BLOCK, 15);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(at, 32), write: true, edtl: data.length });
    const r2t = new R2TView((await expectPdu(s, Opcode.R2T, 'the R2T')).bhs);
    assert.equal(r2t.desiredDataTransferLength, data.length);
    let corrupted: Buffer | null = null;
    for (let i = 0; i < 4; i++) {
      const bhs = dataOutHeader(s, { itt: tag, ttt: r2t.ttt, dataSN: i, offset: i * 4096, final: i === 3 });
      const piece = data.subarray(i * 4096, (i + 1) * 4096);
      if (i === 1) {
        corrupted = sendWithBadDataDigest(s, bhs, piece);
      } else s.sendPdu(bhs, piece);
    }
    await expectReject(s, RejectReason.DataDigestError, corrupted!, 'data digest error');
    const recovery = new R2TView((await expectPdu(s, Opcode.R2T, 'the recovery R2T')).bhs);
    assert.equal(recovery.r2tSN, 1, 'next unused R2TSN');
    assert.equal(recovery.bufferOffset, 4096);
    assert.equal(recovery.desiredDataTransferLength, 4096);
    assert.equal(recovery.ttt, r2t.ttt);
    s.sendPdu(
      dataOutHeader(s, { itt: tag, ttt: recovery.ttt, dataSN: 0, offset: 4096, final: true }),
      data.subarray(4096, 8192),
    );
    const done = await expectPdu(s, Opcode.ScsiResponse, 'write status');
    assert.equal(new ScsiResponseView(done.bhs).status, GOOD);
    assert.ok((await readBack(s, at, 32)).equals(data), 'reads back as written');
  });

  test('rfc7143 7.9: a DataSN gap is answered with a recovery R2T for the missing bytes', async () => {
    const s = await session({ erl: 1 });
    const at = region(32);
    const data = pattern(32 * BLOCK, 16);
    const tag = itt();
    sendRawCommand(s, { itt: tag, lun: LUN, cdb: write10Cdb(at, 32), write: true, edtl: data.length });
    const r2t = new R2TView((await expectPdu(s, Opcode.R2T, 'the R2T')).bhs);
    for (const i of [0, 3]) {
      // DataSN 1 and 2 (bytes 4096..12287) never sent.
      const bhs = dataOutHeader(s, { itt: tag, ttt: r2t.ttt, dataSN: i, offset: i * 4096, final: i === 3 });
      s.sendPdu(bhs, data.subarray(i * 4096, (i + 1) * 4096));
    }
    const recovery = new R2TView((await expectPdu(s, Opcode.R2T, 'the recovery R2T')).bhs);
    assert.equal(recovery.bufferOffset, 4096);
    assert.equal(recovery.desiredDataTransferLength, 8192);
    for (let i = 0; i < 2; i++) {
      const off = 4096 + i * 4096;
      const bhs = dataOutHeader(s, { itt: tag, ttt: recovery.ttt, dataSN: i, offset: off, final: i === 1 });
      s.sendPdu(bhs, data.subarray(off, off + 4096));
    }
    const done = await expectPdu(s, Opcode.ScsiResponse, 'write status');
    assert.equal(new ScsiResponseView(done.bhs).status, GOOD);
    assert.ok((await readBack(s, at, 32)).equals(data), 'reads back as written');
  });

  test('rfc7143 7.8: unsolicited Data-Out lost to its data digest is requested with a recovery R2T', async () => {
    const s = await session({ erl: 1, dataDigest: true, initialR2T: false, immediateData: false });
    const at = region(32);
    const data = pattern(32 * BLOCK, 17);
    const tag = itt();
    sendRawCommand(s, {
      itt: tag,
      lun: LUN,
      cdb: write10Cdb(at, 32),
      write: true,
      edtl: data.length,
      final: false,
    });
    let corrupted: Buffer | null = null;
    for (let i = 0; i < 4; i++) {
      const bhs = dataOutHeader(s, {
        itt: tag,
        ttt: RESERVED_TAG,
        dataSN: i,
        offset: i * 4096,
        final: i === 3,
      });
      const piece = data.subarray(i * 4096, (i + 1) * 4096);
      if (i === 2) {
        corrupted = sendWithBadDataDigest(s, bhs, piece);
      } else s.sendPdu(bhs, piece);
    }
    await expectReject(s, RejectReason.DataDigestError, corrupted!, 'data digest error');
    const recovery = new R2TView((await expectPdu(s, Opcode.R2T, 'the recovery R2T')).bhs);
    assert.equal(recovery.r2tSN, 0, 'the first R2T of the command');
    assert.equal(recovery.bufferOffset, 8192);
    assert.equal(recovery.desiredDataTransferLength, 4096);
    s.sendPdu(
      dataOutHeader(s, { itt: tag, ttt: recovery.ttt, dataSN: 0, offset: 8192, final: true }),
      data.subarray(8192, 12_288),
    );
    const done = await expectPdu(s, Opcode.ScsiResponse, 'write status');
    assert.equal(new ScsiResponseView(done.bhs).status, GOOD);
    assert.ok((await readBack(s, at, 32)).equals(data), 'reads back as written');
  });

  test('rfc7143 7.8: a command whose immediate data fails its digest is discarded whole; the retried command completes', async () => {
    const s = await session({ erl: 1, dataDigest: true, initialR2T: false, immediateData: true });
    const at = region(16);
    const data = pattern(16 * BLOCK, 18);
    const tag = itt();
    const cmdSN = s.takeCmdSN();
    const command = (): Buffer =>
      encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
        itt: tag,
        lun: encodeLun(LUN),
        cmdSN,
        expStatSN: s.expStatSN,
        final: false,
        write: true,
        attr: TaskAttr.Simple,
        edtl: data.length,
        cdb: write10Cdb(at, 16),
      });
    const unsolicited = (): boolean =>
      s.sendPdu(
        dataOutHeader(s, { itt: tag, ttt: RESERVED_TAG, dataSN: 0, offset: 4096, final: true }),
        data.subarray(4096),
      );
    const first = sendWithBadDataDigest(s, command(), data.subarray(0, 4096));
    unsolicited();
    await expectReject(s, RejectReason.DataDigestError, first, 'the command PDU');
    await expectSilence(s, 300, 'its unsolicited Data-Out is dropped silently');
    // RFC 7143 7.2.1: the initiator retries the command (same ITT and CmdSN) with its data.
    s.sendPdu(command(), data.subarray(0, 4096));
    unsolicited();
    const done = await expectPdu(s, Opcode.ScsiResponse, 'write status');
    assert.equal(new ScsiResponseView(done.bhs).status, GOOD);
    assert.ok((await readBack(s, at, 16)).equals(data), 'reads back as written');
  });

  test('rfc7143 7.8 / 11.4.7.2: at ERL 0 a corrupted Data-Out is rejected and its write ends with 0B/47/05', async () => {
    const s = await session({ erl: 0, dataDigest: true });
    const data = pattern(32 * BLOCK, 19);
    const tag = itt();
    sendRawCommand(s, {
      itt: tag,
      lun: LUN,
      cdb: write10Cdb(region(32), 32),
      write: true,
      edtl: data.length,
    });
    const r2t = new R2TView((await expectPdu(s, Opcode.R2T, 'the R2T')).bhs);
    const bad = sendWithBadDataDigest(
      s,
      dataOutHeader(s, { itt: tag, ttt: r2t.ttt, dataSN: 0, offset: 0, final: false }),
      data.subarray(0, 4096),
    );
    await expectReject(s, RejectReason.DataDigestError, bad, 'data digest error');
    // No recovery R2T at ERL 0: the write ends with PROTOCOL SERVICE CRC ERROR at once...
    const done = await expectPdu(s, Opcode.ScsiResponse, 'the write status');
    const v = new ScsiResponseView(done.bhs);
    assert.equal(v.itt, tag);
    assert.equal(v.status, CHECK_CONDITION);
    // RFC 7143 11.4.7.1: the data segment is SenseLength (2 bytes) then the sense data
    const sense = parseSense(done.data.subarray(2, 2 + done.data.readUInt16BE(0)));
    assert.deepEqual([sense.key, sense.asc, sense.ascq], [0x0b, 0x47, 0x05]);
    // ...the rest of its Data-Out is dropped silently, and the session goes on.
    const next = dataOutHeader(s, { itt: tag, ttt: r2t.ttt, dataSN: 1, offset: 4096, final: true });
    s.sendPdu(next, data.subarray(4096, 8192));
    await expectSilence(s, 300, 'late Data-Out of the failed write');
    s.setRawMode(false);
    assert.equal((await s.testUnitReady(LUN)).status, GOOD);
  });

  test('rfc7143 7.9: at ERL 0 a DataSN out of sequence still closes the connection', async () => {
    const s = await session({ erl: 0 });
    const data = pattern(16 * BLOCK, 20);
    const tag = itt();
    sendRawCommand(s, {
      itt: tag,
      lun: LUN,
      cdb: write10Cdb(region(16), 16),
      write: true,
      edtl: data.length,
    });
    const r2t = new R2TView((await expectPdu(s, Opcode.R2T, 'the R2T')).bhs);
    const wrong = dataOutHeader(s, { itt: tag, ttt: r2t.ttt, dataSN: 1, offset: 0, final: true });
    s.sendPdu(wrong, data);
    await expectReject(s, RejectReason.ProtocolError, wrong, 'DataSN 1 first');
    assert.deepEqual(await expectClosed(s, 5000, 'ERL 0 sequence error'), [], 'then the connection closes');
  });

  test('rfc7143 11.16: at ERL 0 SNACK is still rejected ("SNACK reject")', async () => {
    const s = await session({ erl: 0 });
    const bhs = sendSnack(s, {
      type: SnackType.Status,
      itt: RESERVED_TAG,
      begRun: 0,
      runLength: 0,
      expStatSN: s.expStatSN,
    });
    await expectReject(s, RejectReason.SnackReject, bhs, 'SNACK at ERL 0');
  });

  test('rfc7143 7.8: a header digest error closes the connection at ERL 1 too (PDU boundaries cannot be trusted)', async () => {
    const s = await session({ erl: 1, headerDigest: true });
    const bhs = encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
      itt: itt(),
      lun: encodeLun(LUN),
      cmdSN: s.takeCmdSN(),
      expStatSN: s.expStatSN,
      attr: TaskAttr.Simple,
      edtl: 0,
      cdb: testUnitReadyCdb(),
    });
    const wire = encodePduToBuffer(bhs, null, null, { headerDigest: true, dataDigest: false });
    wire[BHS_LENGTH]! ^= 0xff;
    s.sendBytes(wire);
    assert.deepEqual(await expectClosed(s, 5000, 'header digest error'), [], 'closed without an answer');
  });

  test('rfc7143 11.5.1: TASK REASSIGN is still "allegiance reassignment not supported" at ERL 1 (no ERL 2)', async () => {
    const s = await session({ erl: 1 });
    const tag = itt();
    s.sendPdu(
      encodeTaskMgmtRequest(Buffer.alloc(BHS_LENGTH), {
        itt: tag,
        lun: encodeLun(LUN),
        function: TmfFunction.TaskReassign,
        referencedTaskTag: 0x1,
        cmdSN: s.cmdSN,
        expStatSN: s.expStatSN,
        immediate: true,
      }),
    );
    const p = (await receiveUntil(s, Opcode.TaskMgmtResponse, tag)).pop()!;
    assert.equal(
      new TaskMgmtResponseView(p.bhs).response,
      TmfResponse.TaskAllegianceReassignmentNotSupported,
    );
  });
});

// BHS views and encoders (RFC 7143 section 11): decode(encode(fields)) round trips for every
// encoder, fixed byte offsets from the RFC, and encode(decode(bhs)) == bhs on real traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readTcpConnections } from '../../../helpers/pcap.js';
import { PduFramer } from '../../../../src/iscsi/framer.js';
import {
  AhsType,
  AsyncEvent,
  BHS_LENGTH,
  LoginStage,
  LoginStatus,
  LogoutReason,
  LogoutResponse,
  Opcode,
  RESERVED_TAG,
  RejectReason,
  SnackType,
  TaskAttr,
  TmfFunction,
  TmfResponse,
} from '../../../../src/iscsi/spec.js';
import * as pdu from '../../../../src/iscsi/pdu.js';

const LUN = Buffer.from([0x00, 0x01, 0, 0, 0, 0, 0, 0]);
const ISID = Buffer.from([0x00, 0x02, 0x3d, 0x00, 0x00, 0x01]);
const target = { statSN: 0x10203040, expCmdSN: 0x7fffffff, maxCmdSN: 0xfffffffe };
const initiator = { cmdSN: 0xfffffff0, expStatSN: 0x01020304 };

/** A pooled header buffer full of junk, so encoders must clear reserved bytes themselves. */
function dirtyHeader(): Buffer {
  return Buffer.alloc(BHS_LENGTH, 0xa5);
}

/** Every getter of a view, as a plain object (Buffers as hex). */
function viewFields(view: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (
    let proto = Object.getPrototypeOf(view);
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto)
  ) {
    for (const [name, desc] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
      if (!desc.get || name in out) continue;
      const value = (view as Record<string, unknown>)[name];
      out[name] = Buffer.isBuffer(value) ? value.toString('hex') : value;
    }
  }
  return out;
}

test('rfc7143 11.2: BHS_LENGTH is 48', () => {
  assert.equal(BHS_LENGTH, 48);
});

test('rfc7143 11.2.1.2: opcode values', () => {
  assert.equal(Opcode.NopOut, 0x00);
  assert.equal(Opcode.ScsiCommand, 0x01);
  assert.equal(Opcode.LoginRequest, 0x03);
  assert.equal(Opcode.SnackRequest, 0x10);
  assert.equal(Opcode.NopIn, 0x20);
  assert.equal(Opcode.DataIn, 0x25);
  assert.equal(Opcode.R2T, 0x31);
  assert.equal(Opcode.AsyncMessage, 0x32);
  assert.equal(Opcode.Reject, 0x3f);
  assert.equal(pdu.opcodeName(0x25), 'DataIn');
  assert.equal(pdu.opcodeName(0x1a), 'Unknown(0x1a)');
});

test('rfc7143 11.2.1: common fields read in place at their offsets', () => {
  const bhs = Buffer.alloc(48);
  bhs[0] = 0x40 | Opcode.ScsiCommand;
  bhs[1] = 0x80;
  bhs[4] = 3; // TotalAHSLength in words
  bhs.writeUIntBE(0x123456, 5, 3);
  LUN.copy(bhs, 8);
  bhs.writeUInt32BE(0xdeadbeef, 16);
  assert.equal(pdu.bhsOpcode(bhs), Opcode.ScsiCommand);
  assert.equal(pdu.bhsImmediate(bhs), true);
  assert.equal(pdu.bhsFinal(bhs), true);
  assert.equal(pdu.bhsTotalAhsLength(bhs), 12);
  assert.equal(pdu.bhsDataSegmentLength(bhs), 0x123456);
  assert.equal(pdu.bhsItt(bhs), 0xdeadbeef);
  // The LUN is a view: no copy.
  const lun = pdu.bhsLun(bhs);
  assert.equal(lun.buffer, bhs.buffer);
  assert.equal(lun.byteOffset, bhs.byteOffset + 8);
  assert.equal(lun.length, 8);
  pdu.setDataSegmentLength(bhs, 0xfffffe);
  assert.deepEqual([...bhs.subarray(5, 8)], [0xff, 0xff, 0xfe]);
  pdu.setTotalAhsLength(bhs, 1020);
  assert.equal(bhs[4], 255);
  const view = new pdu.BhsView(Buffer.alloc(48));
  assert.equal(view.wrap(bhs).itt, 0xdeadbeef, 'wrap re-points a reused view');
});

test('rfc7143 11.2.3: padding to 4 bytes', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 8191].map((n) => [pdu.paddedLength(n), pdu.padLength(n)]),
    [
      [0, 0],
      [4, 3],
      [4, 2],
      [4, 1],
      [4, 0],
      [8, 3],
      [8192, 1],
    ],
  );
});

interface Case {
  name: string;
  encode: (bhs: Buffer) => Buffer;
  view: new (bhs: Buffer) => object;
  expect: Record<string, unknown>;
  /** Raw bytes the RFC puts at fixed offsets: [offset, hex]. */
  bytes: [number, string][];
}

const cases: Case[] = [
  {
    name: '11.19 NOP-In',
    encode: (b) => pdu.encodeNopIn(b, { itt: RESERVED_TAG, lun: LUN, ttt: 7, ...target }),
    view: pdu.NopInView,
    expect: {
      opcode: Opcode.NopIn,
      final: true,
      lun: LUN.toString('hex'),
      itt: RESERVED_TAG,
      ttt: 7,
      ...target,
    },
    bytes: [
      [0, '20800000'],
      [20, '00000007'],
      [24, '10203040'],
      [36, '000000000000000000000000'],
    ],
  },
  {
    name: '11.4 SCSI Response',
    encode: (b) =>
      pdu.encodeScsiResponse(b, {
        itt: 9,
        status: 0x02,
        underflow: true,
        bidiOverflow: true,
        residualCount: 512,
        bidiReadResidualCount: 3,
        expDataSN: 4,
        snackTag: 5,
        dataSegmentLength: 20,
        ...target,
      }),
    view: pdu.ScsiResponseView,
    expect: {
      opcode: Opcode.ScsiResponse,
      final: true,
      underflow: true,
      overflow: false,
      bidiOverflow: true,
      bidiUnderflow: false,
      response: 0,
      status: 2,
      residualCount: 512,
      bidiReadResidualCount: 3,
      expDataSN: 4,
      snackTag: 5,
      dataSegmentLength: 20,
      ...target,
    },
    bytes: [
      [0, '21920002'],
      [4, '00000014'],
      [8, '0000000000000000'],
      [36, '00000004'],
      [44, '00000200'],
    ],
  },
  {
    name: '11.6 Task Management Function Response',
    encode: (b) =>
      pdu.encodeTaskMgmtResponse(b, { itt: 11, response: TmfResponse.TaskDoesNotExist, ...target }),
    view: pdu.TaskMgmtResponseView,
    expect: { opcode: Opcode.TaskMgmtResponse, itt: 11, response: 1, ...target },
    bytes: [[0, '22800100']],
  },
  {
    name: '11.13 Login Response',
    encode: (b) =>
      pdu.encodeLoginResponse(b, {
        itt: 0x01020304,
        transit: true,
        csg: LoginStage.LoginOperationalNegotiation,
        nsg: LoginStage.FullFeaturePhase,
        isid: ISID,
        tsih: 0x0203,
        status: LoginStatus.AuthenticationFailure,
        ...target,
      }),
    view: pdu.LoginResponseView,
    expect: {
      opcode: Opcode.LoginResponse,
      transit: true,
      continue: false,
      csg: 1,
      nsg: 3,
      versionMax: 0,
      versionActive: 0,
      isid: ISID.toString('hex'),
      tsih: 0x0203,
      statusClass: 2,
      statusDetail: 1,
      status: LoginStatus.AuthenticationFailure,
      ...target,
    },
    bytes: [
      [0, '23870000'],
      [8, '00023d0000010203'],
      [36, '0201'],
    ],
  },
  {
    name: '11.11 Text Response',
    encode: (b) =>
      pdu.encodeTextResponse(b, { itt: 3, final: false, continue: true, ttt: 0x55, lun: LUN, ...target }),
    view: pdu.TextResponseView,
    expect: { opcode: Opcode.TextResponse, final: false, continue: true, ttt: 0x55, itt: 3, ...target },
    bytes: [[0, '24400000']],
  },
  {
    name: '11.7 SCSI Data-In with status (phase collapse)',
    encode: (b) =>
      pdu.encodeDataIn(b, {
        itt: 0x100,
        lun: LUN,
        final: true,
        statusPresent: true,
        status: 0,
        underflow: true,
        statSN: target.statSN,
        expCmdSN: target.expCmdSN,
        maxCmdSN: target.maxCmdSN,
        dataSN: 6,
        bufferOffset: 0x30000,
        residualCount: 24,
      }),
    view: pdu.DataInView,
    expect: {
      opcode: Opcode.DataIn,
      final: true,
      acknowledge: false,
      statusPresent: true,
      overflow: false,
      underflow: true,
      status: 0,
      ttt: RESERVED_TAG,
      dataSN: 6,
      bufferOffset: 0x30000,
      residualCount: 24,
      ...target,
    },
    bytes: [
      [0, '25830000'],
      [20, 'ffffffff'],
      [36, '000000060003000000000018'],
    ],
  },
  {
    name: '11.15 Logout Response',
    encode: (b) =>
      pdu.encodeLogoutResponse(b, {
        itt: 12,
        response: LogoutResponse.CidNotFound,
        time2Wait: 2,
        time2Retain: 20,
        ...target,
      }),
    view: pdu.LogoutResponseView,
    expect: { opcode: Opcode.LogoutResponse, itt: 12, response: 1, time2Wait: 2, time2Retain: 20, ...target },
    bytes: [
      [0, '26800100'],
      [40, '00020014'],
    ],
  },
  {
    name: '11.8.2 R2T',
    encode: (b) =>
      pdu.encodeR2T(b, {
        itt: 13,
        lun: LUN,
        ttt: 0x77,
        r2tSN: 2,
        bufferOffset: 65536,
        desiredDataTransferLength: 8192,
        ...target,
      }),
    view: pdu.R2TView,
    expect: {
      opcode: Opcode.R2T,
      final: true,
      itt: 13,
      ttt: 0x77,
      r2tSN: 2,
      bufferOffset: 65536,
      desiredDataTransferLength: 8192,
      lun: LUN.toString('hex'),
      ...target,
    },
    bytes: [
      [0, '31800000'],
      [36, '000000020001000000002000'],
    ],
  },
  {
    name: '11.9 Asynchronous Message',
    encode: (b) =>
      pdu.encodeAsyncMessage(b, {
        lun: LUN,
        asyncEvent: AsyncEvent.LogoutRequest,
        parameter3: 5,
        parameter1: 1,
        parameter2: 2,
        ...target,
      }),
    view: pdu.AsyncMessageView,
    expect: {
      opcode: Opcode.AsyncMessage,
      itt: RESERVED_TAG,
      asyncEvent: 1,
      asyncVCode: 0,
      parameter1: 1,
      parameter2: 2,
      parameter3: 5,
      ...target,
    },
    bytes: [
      [16, 'ffffffff'],
      [36, '0100000100020005'],
    ],
  },
  {
    name: '11.17 Reject',
    encode: (b) =>
      pdu.encodeReject(b, { reason: RejectReason.ProtocolError, dataSegmentLength: 48, ...target }),
    view: pdu.RejectView,
    expect: {
      opcode: Opcode.Reject,
      itt: RESERVED_TAG,
      reason: 4,
      dataSN: 0,
      dataSegmentLength: 48,
      ...target,
    },
    bytes: [
      [0, '3f800400'],
      [8, '0000000000000000ffffffff'],
    ],
  },
  {
    name: '11.18 NOP-Out',
    encode: (b) =>
      pdu.encodeNopOut(b, { immediate: true, itt: 21, ttt: RESERVED_TAG, lun: 1n << 48n, ...initiator }),
    view: pdu.NopOutView,
    expect: { opcode: Opcode.NopOut, immediate: true, final: true, itt: 21, ttt: RESERVED_TAG, ...initiator },
    bytes: [
      [0, '40800000'],
      [8, '0001000000000000'],
    ],
  },
  {
    name: '11.3 SCSI Command',
    encode: (b) =>
      pdu.encodeScsiCommand(b, {
        itt: 22,
        lun: LUN,
        write: true,
        final: false,
        attr: TaskAttr.Ordered,
        edtl: 0x100000,
        cdb: Buffer.from('2a000000100000000800', 'hex'),
        ...initiator,
      }),
    view: pdu.ScsiCommandView,
    expect: {
      opcode: Opcode.ScsiCommand,
      immediate: false,
      final: false,
      read: false,
      write: true,
      attr: 2,
      edtl: 0x100000,
      cdb: '2a000000100000000800000000000000',
      ...initiator,
    },
    bytes: [
      [0, '01220000'],
      [20, '00100000'],
      [32, '2a000000100000000800000000000000'],
    ],
  },
  {
    name: '11.5 Task Management Function Request',
    encode: (b) =>
      pdu.encodeTaskMgmtRequest(b, {
        immediate: true,
        itt: 23,
        lun: LUN,
        function: TmfFunction.AbortTask,
        referencedTaskTag: 22,
        refCmdSN: 99,
        expDataSN: 3,
        ...initiator,
      }),
    view: pdu.TaskMgmtRequestView,
    expect: {
      opcode: Opcode.TaskMgmtRequest,
      immediate: true,
      final: true,
      function: 1,
      referencedTaskTag: 22,
      refCmdSN: 99,
      expDataSN: 3,
      ...initiator,
    },
    bytes: [
      [0, '42810000'],
      [32, '0000006300000003'],
    ],
  },
  {
    name: '11.12 Login Request',
    encode: (b) =>
      pdu.encodeLoginRequest(b, {
        itt: 0,
        continue: true,
        csg: LoginStage.SecurityNegotiation,
        nsg: LoginStage.LoginOperationalNegotiation,
        isid: ISID,
        tsih: 0,
        cid: 0x1234,
        ...initiator,
      }),
    view: pdu.LoginRequestView,
    expect: {
      opcode: Opcode.LoginRequest,
      immediate: true,
      transit: false,
      continue: true,
      csg: 0,
      nsg: 1,
      versionMax: 0,
      versionMin: 0,
      isid: ISID.toString('hex'),
      tsih: 0,
      cid: 0x1234,
      ...initiator,
    },
    bytes: [
      [0, '43410000'],
      [20, '12340000'],
    ],
  },
  {
    name: '11.10 Text Request',
    encode: (b) => pdu.encodeTextRequest(b, { itt: 24, final: true, ttt: RESERVED_TAG, ...initiator }),
    view: pdu.TextRequestView,
    expect: { opcode: Opcode.TextRequest, final: true, continue: false, ttt: RESERVED_TAG, ...initiator },
    bytes: [[0, '04800000']],
  },
  {
    name: '11.8 SCSI Data-Out',
    encode: (b) =>
      pdu.encodeDataOut(b, {
        itt: 25,
        lun: LUN,
        final: true,
        ttt: 0x88,
        expStatSN: 17,
        dataSN: 1,
        bufferOffset: 8192,
      }),
    view: pdu.DataOutView,
    expect: {
      opcode: Opcode.DataOut,
      final: true,
      itt: 25,
      ttt: 0x88,
      expStatSN: 17,
      dataSN: 1,
      bufferOffset: 8192,
    },
    bytes: [
      [0, '05800000'],
      [24, '0000000000000011'],
      [36, '0000000100002000'],
    ],
  },
  {
    name: '11.14 Logout Request',
    encode: (b) =>
      pdu.encodeLogoutRequest(b, {
        immediate: true,
        itt: 26,
        reasonCode: LogoutReason.CloseConnection,
        cid: 2,
        ...initiator,
      }),
    view: pdu.LogoutRequestView,
    expect: { opcode: Opcode.LogoutRequest, immediate: true, reasonCode: 1, cid: 2, ...initiator },
    bytes: [[0, '46810000']],
  },
  {
    name: '11.16 SNACK Request',
    encode: (b) =>
      pdu.encodeSnackRequest(b, { itt: 27, type: SnackType.Status, expStatSN: 5, begRun: 3, runLength: 0 }),
    view: pdu.SnackRequestView,
    expect: {
      opcode: Opcode.SnackRequest,
      type: 1,
      ttt: RESERVED_TAG,
      expStatSN: 5,
      begRun: 3,
      runLength: 0,
    },
    bytes: [[0, '10810000']],
  },
];

for (const c of cases) {
  test(`rfc7143 ${c.name}: encode into a pooled header, decode in place`, () => {
    const bhs = c.encode(dirtyHeader());
    const fields = viewFields(new c.view(bhs));
    for (const [name, value] of Object.entries(c.expect)) assert.deepEqual(fields[name], value, name);
    for (const [offset, hex] of c.bytes) {
      assert.equal(bhs.subarray(offset, offset + hex.length / 2).toString('hex'), hex, `bytes at ${offset}`);
    }
    // Nothing of the junk survives: every byte is either a field or a cleared reserved byte.
    assert.equal(bhs.indexOf(0xa5), -1);
  });
}

test('rfc7143 11.3: encoders reject a header buffer shorter than 48 bytes', () => {
  assert.throws(() => pdu.encodeNopIn(Buffer.alloc(47), { itt: 0, ttt: 0, ...target }), RangeError);
});

const FIXTURES = process.env.TGT_FIXTURES ?? '/work/shared/fixtures';
const fixtureFiles = ['linux-kernel-initiator.pcap', 'libiscsi-discovery-and-inquiry.pcap'];
const haveFixtures = fixtureFiles.every((f) => existsSync(join(FIXTURES, f)));

/** Rebuild a header from its decoded fields with the matching encoder (null: opcode not in fixtures). */
function reencodeHeader(bhs: Buffer): Buffer | null {
  const out = Buffer.alloc(48, 0xff);
  const common = { itt: pdu.bhsItt(bhs), dataSegmentLength: pdu.bhsDataSegmentLength(bhs) };
  const withLun = { ...common, lun: pdu.bhsLun(bhs) };
  const seq = (v: { statSN: number; expCmdSN: number; maxCmdSN: number }) => ({
    statSN: v.statSN,
    expCmdSN: v.expCmdSN,
    maxCmdSN: v.maxCmdSN,
  });
  switch (pdu.bhsOpcode(bhs)) {
    case Opcode.LoginRequest: {
      const v = new pdu.LoginRequestView(bhs);
      return pdu.encodeLoginRequest(out, {
        ...common,
        transit: v.transit,
        continue: v.continue,
        csg: v.csg,
        nsg: v.nsg,
        versionMax: v.versionMax,
        versionMin: v.versionMin,
        isid: v.isid,
        tsih: v.tsih,
        cid: v.cid,
        cmdSN: v.cmdSN,
        expStatSN: v.expStatSN,
      });
    }
    case Opcode.LoginResponse: {
      const v = new pdu.LoginResponseView(bhs);
      return pdu.encodeLoginResponse(out, {
        ...common,
        transit: v.transit,
        continue: v.continue,
        csg: v.csg,
        nsg: v.nsg,
        versionMax: v.versionMax,
        versionActive: v.versionActive,
        isid: v.isid,
        tsih: v.tsih,
        status: v.status,
        ...seq(v),
      });
    }
    case Opcode.TextRequest: {
      const v = new pdu.TextRequestView(bhs);
      return pdu.encodeTextRequest(out, {
        ...withLun,
        immediate: v.immediate,
        final: v.final,
        continue: v.continue,
        ttt: v.ttt,
        cmdSN: v.cmdSN,
        expStatSN: v.expStatSN,
      });
    }
    case Opcode.TextResponse: {
      const v = new pdu.TextResponseView(bhs);
      return pdu.encodeTextResponse(out, {
        ...withLun,
        final: v.final,
        continue: v.continue,
        ttt: v.ttt,
        ...seq(v),
      });
    }
    case Opcode.ScsiCommand: {
      const v = new pdu.ScsiCommandView(bhs);
      return pdu.encodeScsiCommand(out, {
        ...withLun,
        immediate: v.immediate,
        final: v.final,
        read: v.read,
        write: v.write,
        attr: v.attr,
        edtl: v.edtl,
        cdb: v.cdb,
        cmdSN: v.cmdSN,
        expStatSN: v.expStatSN,
      });
    }
    case Opcode.ScsiResponse: {
      const v = new pdu.ScsiResponseView(bhs);
      return pdu.encodeScsiResponse(out, {
        ...common,
        response: v.response,
        status: v.status,
        overflow: v.overflow,
        underflow: v.underflow,
        bidiOverflow: v.bidiOverflow,
        bidiUnderflow: v.bidiUnderflow,
        snackTag: v.snackTag,
        expDataSN: v.expDataSN,
        bidiReadResidualCount: v.bidiReadResidualCount,
        residualCount: v.residualCount,
        ...seq(v),
      });
    }
    case Opcode.DataOut: {
      const v = new pdu.DataOutView(bhs);
      return pdu.encodeDataOut(out, {
        ...withLun,
        final: v.final,
        ttt: v.ttt,
        expStatSN: v.expStatSN,
        dataSN: v.dataSN,
        bufferOffset: v.bufferOffset,
      });
    }
    case Opcode.DataIn: {
      const v = new pdu.DataInView(bhs);
      return pdu.encodeDataIn(out, {
        ...withLun,
        final: v.final,
        acknowledge: v.acknowledge,
        statusPresent: v.statusPresent,
        status: v.status,
        overflow: v.overflow,
        underflow: v.underflow,
        ttt: v.ttt,
        dataSN: v.dataSN,
        bufferOffset: v.bufferOffset,
        residualCount: v.residualCount,
        ...seq(v),
      });
    }
    case Opcode.R2T: {
      const v = new pdu.R2TView(bhs);
      return pdu.encodeR2T(out, {
        ...withLun,
        ttt: v.ttt,
        r2tSN: v.r2tSN,
        bufferOffset: v.bufferOffset,
        desiredDataTransferLength: v.desiredDataTransferLength,
        ...seq(v),
      });
    }
    case Opcode.LogoutRequest: {
      const v = new pdu.LogoutRequestView(bhs);
      return pdu.encodeLogoutRequest(out, {
        ...common,
        immediate: v.immediate,
        reasonCode: v.reasonCode,
        cid: v.cid,
        cmdSN: v.cmdSN,
        expStatSN: v.expStatSN,
      });
    }
    case Opcode.LogoutResponse: {
      const v = new pdu.LogoutResponseView(bhs);
      return pdu.encodeLogoutResponse(out, {
        ...common,
        response: v.response,
        time2Wait: v.time2Wait,
        time2Retain: v.time2Retain,
        ...seq(v),
      });
    }
    default:
      return null;
  }
}

test(
  'rfc7143 11: re-encoding decoded fixture headers reproduces the captured bytes',
  { skip: !haveFixtures },
  () => {
    const seen = new Set<number>();
    for (const file of fixtureFiles) {
      for (const conn of readTcpConnections(join(FIXTURES, file))) {
        for (const bytes of [conn.clientToServer.bytes, conn.serverToClient.bytes]) {
          const framer = new PduFramer(
            (p) => {
              const again = reencodeHeader(p.bhs);
              if (!again) return;
              seen.add(pdu.bhsOpcode(p.bhs));
              assert.equal(
                again.toString('hex'),
                p.bhs.toString('hex'),
                pdu.opcodeName(pdu.bhsOpcode(p.bhs)),
              );
            },
            (err) => assert.fail(err),
            { maxDataSegmentLength: 1 << 20 },
          );
          framer.push(bytes);
        }
      }
    }
    assert.deepEqual([...seen].sort((a, b) => a - b).map(pdu.opcodeName), [
      'ScsiCommand',
      'LoginRequest',
      'TextRequest',
      'DataOut',
      'LogoutRequest',
      'ScsiResponse',
      'LoginResponse',
      'TextResponse',
      'DataIn',
      'LogoutResponse',
      'R2T',
    ]);
  },
);

test('rfc7143 11.2.2.3: a 32-byte CDB travels as 16 BHS bytes plus an extended-CDB AHS', () => {
  const cdb = Buffer.from(Array.from({ length: 32 }, (_, i) => i + 1));
  const ahs = pdu.encodeExtendedCdbAhs(cdb)!;
  // AHSLength = 17 (16 extra CDB bytes + the reserved byte), type 1, padded to 20 bytes.
  assert.equal(ahs.length, 20);
  assert.equal(ahs.subarray(0, 4).toString('hex'), '00110100');
  assert.equal(pdu.ahsWellFormed(ahs), true);
  const bhs = pdu.encodeScsiCommand(Buffer.alloc(48), { itt: 1, edtl: 0, cdb, ...initiator });
  assert.deepEqual(pdu.scsiCommandCdb(bhs, ahs), cdb);
  assert.equal(pdu.encodeExtendedCdbAhs(cdb.subarray(0, 16)), null);
  // Without an AHS the CDB is a view of the header, not a copy.
  const plain = pdu.scsiCommandCdb(bhs, null);
  assert.equal(plain.buffer, bhs.buffer);
  assert.equal(plain.length, 16);
});

test('rfc7143 11.2.2.3: ownCdb and ownLun are copies that outlive a reused header (16- and 32-byte CDBs)', () => {
  const header = Buffer.alloc(48);
  const lun = Buffer.from([0, 3, 0, 0, 0, 0, 0, 0]);
  for (const length of [10, 16, 32]) {
    const cdb = Buffer.from(Array.from({ length }, (_, i) => 0xa0 + i));
    pdu.encodeScsiCommand(header, { itt: 1, edtl: 0, cdb, lun, ...initiator });
    const ahs = pdu.encodeExtendedCdbAhs(cdb);
    const own = pdu.ownCdb(header, ahs);
    const ownLun = pdu.ownLun(header);
    header.fill(0xee); // the framer reads the next PDU's header into the same buffer
    const expected = Buffer.alloc(Math.max(16, length));
    cdb.copy(expected);
    assert.deepEqual(own, expected, `${length}-byte CDB intact`);
    assert.deepEqual(ownLun, lun);
  }
});

test('rfc7143 11.2.2.4: bidirectional read length AHS, found after another AHS', () => {
  const cdb = Buffer.alloc(20, 7);
  const ahs = Buffer.concat([pdu.encodeExtendedCdbAhs(cdb)!, pdu.encodeBidiReadLengthAhs(0x12345)]);
  assert.equal(pdu.ahsWellFormed(ahs), true);
  assert.equal(pdu.bidiReadLength(ahs), 0x12345);
  assert.equal(pdu.findAhs(ahs, AhsType.ExtendedCdb)!.length, 5);
  assert.equal(pdu.bidiReadLength(null), null);
  assert.equal(pdu.bidiReadLength(pdu.encodeExtendedCdbAhs(cdb)), null);
});

test('rfc7143 11.2.2: malformed AHS chains are detected, not trusted', () => {
  const bad = Buffer.from('00ff0100' + '00'.repeat(4), 'hex'); // AHSLength 255 in an 8-byte AHS
  assert.equal(pdu.ahsWellFormed(bad), false);
  assert.equal(pdu.findAhs(bad, AhsType.ExtendedCdb), null);
  assert.equal(pdu.ahsWellFormed(Buffer.from('000502', 'hex')), false);
  assert.equal(pdu.ahsWellFormed(null), true);
  const bhs = pdu.encodeScsiCommand(Buffer.alloc(48), {
    itt: 1,
    edtl: 0,
    cdb: Buffer.alloc(16, 1),
    ...initiator,
  });
  assert.equal(pdu.scsiCommandCdb(bhs, bad).length, 16);
});

test('rfc7143 11.4.7.2: sense data in a SCSI Response data segment', () => {
  const sense = Buffer.from('700005000000000a00000000240000000000', 'hex');
  const prefix = pdu.senseLengthPrefix(sense.length);
  assert.equal(prefix.toString('hex'), '0012');
  assert.equal(pdu.senseLengthPrefix(sense.length), prefix, 'shared prefix buffers');
  assert.equal(pdu.senseLengthPrefix(0x1234).toString('hex'), '1234');
  const data = Buffer.concat([prefix, sense]);
  assert.deepEqual(pdu.senseFromData(data), sense);
  assert.equal(pdu.senseFromData(data.subarray(0, 10)), null, 'truncated');
  assert.equal(pdu.senseFromData(Buffer.alloc(1)), null);
  assert.equal(pdu.senseFromData(Buffer.alloc(2)), null);
});

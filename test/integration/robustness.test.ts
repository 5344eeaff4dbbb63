/**
 * Robustness of a real tgtd against malformed input (RFC 7143 7.x, 11.2, 11.17): each bad PDU
 * is answered with a Reject or the connection is closed; the daemon never crashes, and another
 * session that is already logged in keeps working.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { encodeLun, type Session } from '../../src/initiator/index.js';
import {
  bhsOpcode,
  encodeDataOut,
  encodeLoginRequest,
  encodeNopOut,
  encodeScsiCommand,
  RejectView,
} from '../../src/iscsi/pdu.js';
import { dataDigest, headerDigest, writeDigest } from '../../src/iscsi/digest.js';
import { BHS_LENGTH, LoginStage, Opcode, RejectReason, RESERVED_TAG } from '../../src/iscsi/spec.js';
import { read10Cdb, write10Cdb } from '../../src/initiator/cdb.js';
import { TgtDaemon } from '../helpers/daemon.js';
import {
  BLOCK,
  closeSession,
  GOOD,
  IQN,
  login,
  loginReady,
  nextPdu,
  opName,
  pattern,
  receiveUntil,
  sendRawNop,
} from './util.js';

const TARGET = `${IQN}:robustness`;
const DIGEST_TARGET = `${IQN}:robustness-digests`;
const LUN = 1;
/** tgt's default target MaxRecvDataSegmentLength. */
const TARGET_MRDSL = 8192;

type Outcome = 'reject' | 'closed';

/**
 * Wait for the target's reaction to a malformed PDU: a Reject (whose data segment carries the
 * rejected header, RFC 7143 11.17.1) with one of `reasons`, or the connection closing.
 */
async function expectRejectOrClose(
  s: Session,
  what: string,
  reasons: readonly number[],
  sentBhs?: Buffer,
): Promise<Outcome> {
  let pdu;
  try {
    pdu = await nextPdu(s, 3000);
  } catch (e) {
    assert.equal((e as { code?: string }).code, 'TGT_ERR_INI_CONNECTION_CLOSED', `${what}: ${String(e)}`);
    return 'closed';
  }
  assert.ok(pdu, `${what}: neither a Reject nor a closed connection within 3 s`);
  assert.equal(bhsOpcode(pdu.bhs), Opcode.Reject, `${what}: expected a Reject, got ${opName(pdu)}`);
  const reason = new RejectView(pdu.bhs).reason;
  assert.ok(
    reasons.includes(reason),
    `${what}: Reject reason 0x${reason.toString(16)}, expected one of ${reasons}`,
  );
  assert.ok(pdu.data.length >= BHS_LENGTH, `${what}: the Reject carries the rejected header`);
  if (sentBhs) {
    assert.ok(
      pdu.data.subarray(1, BHS_LENGTH).equals(sentBhs.subarray(1, BHS_LENGTH)),
      `${what}: rejected header`,
    );
  }
  // After a Reject the connection stays usable (or the target closes it, which is also allowed).
  if (!s.connection.closed) {
    try {
      sendRawNop(s, 0x7ffffff0, { immediate: true });
      await receiveUntil(s, Opcode.NopIn, 0x7ffffff0, 3000);
    } catch (e) {
      assert.equal(
        (e as { code?: string }).code,
        'TGT_ERR_INI_CONNECTION_CLOSED',
        `${what}: after the Reject the connection neither answers a NOP nor closes: ${String(e)}`,
      );
    }
  }
  return 'reject';
}

/** Wait until a plain socket is closed by the peer. */
function socketClosed(sock: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (sock.destroyed || sock.readableEnded) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    sock.once('close', done);
    sock.once('end', done);
    sock.on('error', () => {});
    sock.resume();
  });
}

function rawSocket(d: TgtDaemon): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: d.host, port: d.port }, () => resolve(sock));
    sock.once('error', reject);
  });
}

describe('robustness against malformed input', () => {
  let d: TgtDaemon;
  let witness: Session;
  let witnessLba = 0;

  before(async () => {
    d = await TgtDaemon.start();
    await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: LUN, bstype: 'memory', path: '16M' }] });
    await d.addTarget({ tid: 2, name: DIGEST_TARGET, luns: [{ lun: LUN, bstype: 'memory', path: '16M' }] });
    await d.updateTarget(2, 'HeaderDigest', 'CRC32C');
    await d.updateTarget(2, 'DataDigest', 'CRC32C');
    witness = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:witness` });
    assert.equal((await witness.write10(LUN, 0, pattern(64 * BLOCK, 1), BLOCK)).status, GOOD);
  });

  after(async () => {
    try {
      await closeSession(witness);
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  /** The daemon is alive and the witness session still reads what it wrote. */
  async function assertOthersUnaffected(what: string): Promise<void> {
    assert.ok(d.alive, `${what}: tgtd died:\n${d.output}`);
    assert.equal(witness.state, 'full-feature', `${what}: the witness session was dropped`);
    const lba = witnessLba++ % 64;
    const r = await witness.read10(LUN, lba, 1, BLOCK);
    assert.equal(r.status, GOOD, `${what}: witness READ status ${r.status}`);
    assert.ok(
      r.data.equals(pattern(64 * BLOCK, 1).subarray(lba * BLOCK, (lba + 1) * BLOCK)),
      `${what}: witness data`,
    );
    assert.doesNotMatch(
      d.output,
      /uncaught exception|unhandled rejection|internal error/,
      `${what}: tgtd logged`,
    );
  }

  /** Log in a fresh attacker session in raw mode, run `attack`, then check the witness. */
  async function attack(
    t: TestContext,
    what: string,
    fn: (s: Session) => Promise<Outcome | void>,
    options: Parameters<typeof login>[2] & { target?: string } = {},
  ): Promise<void> {
    const s = await login(d, options.target ?? TARGET, { initiatorName: `${IQN}:attacker`, ...options });
    s.setRawMode(true);
    try {
      const outcome = await fn(s);
      if (outcome) t.diagnostic(`${what}: ${outcome}`);
    } finally {
      s.destroy();
    }
    await assertOthersUnaffected(what);
  }

  function nopBhs(s: Session, itt: number): Buffer {
    return encodeNopOut(Buffer.alloc(BHS_LENGTH), {
      itt,
      ttt: RESERVED_TAG,
      cmdSN: s.cmdSN,
      expStatSN: s.expStatSN,
      immediate: true,
    });
  }

  test('rfc7143 11.17 / 11.2.1.2: an unknown opcode -> Reject (command not supported) or close', async (t) => {
    for (const op of [0x0f, 0x1e, 0x1f]) {
      await attack(t, `opcode 0x${op.toString(16)}`, async (s) => {
        const bhs = nopBhs(s, 0x10);
        bhs[0] = 0x40 | op;
        s.sendPdu(bhs);
        return expectRejectOrClose(
          s,
          `opcode 0x${op.toString(16)}`,
          [RejectReason.CommandNotSupported, RejectReason.ProtocolError],
          bhs,
        );
      });
    }
  });

  test('rfc7143 11.2.1.2: a target-only opcode sent by the initiator -> Reject (protocol error) or close', async (t) => {
    for (const op of [Opcode.ScsiResponse, Opcode.DataIn, Opcode.R2T, Opcode.Reject]) {
      await attack(t, `target opcode 0x${op.toString(16)}`, async (s) => {
        const bhs = nopBhs(s, 0x11);
        bhs[0] = op;
        s.sendPdu(bhs);
        return expectRejectOrClose(
          s,
          `target opcode ${Opcode[op]}`,
          [RejectReason.ProtocolError, RejectReason.CommandNotSupported],
          bhs,
        );
      });
    }
  });

  test('rfc7143 13.12: DataSegmentLength beyond the target MaxRecvDataSegmentLength -> Reject or close', async (t) => {
    await attack(t, 'NOP-Out with 2 x MRDSL of data', async (s) => {
      s.sendPdu(nopBhs(s, 0x12), pattern(2 * TARGET_MRDSL, 2));
      return expectRejectOrClose(s, 'oversized NOP-Out', [
        RejectReason.ProtocolError,
        RejectReason.InvalidPduField,
      ]);
    });
    await attack(t, 'header claiming 16 MiB of data that never comes', async (s) => {
      const bhs = nopBhs(s, 0x13);
      bhs.writeUIntBE(0xffffff, 5, 3);
      s.sendBytes(bhs);
      return expectRejectOrClose(s, 'DataSegmentLength 0xffffff', [
        RejectReason.ProtocolError,
        RejectReason.InvalidPduField,
      ]);
    });
  });

  test('rfc7143 11.2.2: a malformed AHS (length beyond TotalAHSLength) -> Reject or close', async (t) => {
    await attack(t, 'AHSLength larger than TotalAHSLength', async (s) => {
      const bhs = encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
        itt: 0x14,
        lun: encodeLun(LUN),
        cmdSN: s.cmdSN,
        expStatSN: s.expStatSN,
        read: true,
        edtl: BLOCK,
        cdb: read10Cdb(0, 1),
      });
      const ahs = Buffer.from([0x01, 0x00, 0x01, 0x00]); // AHSLength 256, type 1, in 4 bytes
      bhs[4] = ahs.length / 4;
      s.sendBytes(Buffer.concat([bhs, ahs]));
      return expectRejectOrClose(s, 'bad AHS', [RejectReason.ProtocolError, RejectReason.InvalidPduField]);
    });
    await attack(t, 'TotalAHSLength 255 words of 0xee (AHSLength 0xeeee)', async (s) => {
      const bhs = encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
        itt: 0x15,
        lun: encodeLun(LUN),
        cmdSN: s.cmdSN,
        expStatSN: s.expStatSN,
        read: true,
        edtl: BLOCK,
        cdb: read10Cdb(0, 1),
      });
      bhs[4] = 255;
      s.sendBytes(Buffer.concat([bhs, Buffer.alloc(255 * 4, 0xee)]));
      return expectRejectOrClose(s, 'garbage AHS', [
        RejectReason.ProtocolError,
        RejectReason.InvalidPduField,
      ]);
    });
  });

  test('rfc7143 11.7 / 11.17: Data-Out for an unknown ITT -> Reject or close', async (t) => {
    await attack(t, 'Data-Out for ITT 0xdead', async (s) => {
      const bhs = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
        itt: 0xdead,
        lun: encodeLun(LUN),
        ttt: RESERVED_TAG,
        final: true,
        expStatSN: s.expStatSN,
        dataSN: 0,
        bufferOffset: 0,
      });
      s.sendPdu(bhs, pattern(BLOCK, 3));
      return expectRejectOrClose(
        s,
        'unknown-ITT Data-Out',
        [RejectReason.InvalidPduField, RejectReason.ProtocolError],
        bhs,
      );
    });
    await attack(t, 'Data-Out with an unknown TTT', async (s) => {
      const bhs = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
        itt: 0xbeef,
        lun: encodeLun(LUN),
        ttt: 0x1234,
        final: true,
        expStatSN: s.expStatSN,
        dataSN: 0,
        bufferOffset: 0,
      });
      s.sendPdu(bhs, pattern(BLOCK, 4));
      return expectRejectOrClose(
        s,
        'unknown-TTT Data-Out',
        [RejectReason.InvalidPduField, RejectReason.ProtocolError],
        bhs,
      );
    });
  });

  test('rfc7143 13.13 / 11.7: Data-Out the target did not ask for -> Reject or close', async (t) => {
    await attack(t, 'SCSI Command with F=0 (unsolicited data to follow) while InitialR2T=Yes', async (s) => {
      assert.equal(s.params.initialR2T, true);
      const itt = 0x30;
      const bhs = encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
        itt,
        lun: encodeLun(LUN),
        cmdSN: s.takeCmdSN(),
        expStatSN: s.expStatSN,
        write: true,
        final: false,
        edtl: 16 * BLOCK,
        cdb: write10Cdb(400, 16),
      });
      s.sendPdu(bhs);
      return expectRejectOrClose(
        s,
        'F=0 with InitialR2T=Yes',
        [RejectReason.ProtocolError, RejectReason.InvalidPduField],
        bhs,
      );
    });
    await attack(t, 'Data-Out beyond the R2T', async (s) => {
      const itt = 0x31;
      s.sendPdu(
        encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
          itt,
          lun: encodeLun(LUN),
          cmdSN: s.takeCmdSN(),
          expStatSN: s.expStatSN,
          write: true,
          edtl: 8 * BLOCK,
          cdb: write10Cdb(400, 8),
        }),
      );
      const r2tPdu = await s.receivePdu(3000);
      assert.equal(bhsOpcode(r2tPdu.bhs), Opcode.R2T, `got ${opName(r2tPdu)}`);
      const ttt = r2tPdu.bhs.readUInt32BE(20);
      const bhs = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
        itt,
        lun: encodeLun(LUN),
        ttt,
        final: true,
        expStatSN: s.expStatSN,
        dataSN: 0,
        bufferOffset: 64 * BLOCK,
      });
      s.sendPdu(bhs, pattern(BLOCK, 6));
      return expectRejectOrClose(s, 'Data-Out at offset 32 KiB of a 4 KiB write', [
        RejectReason.ProtocolError,
        RejectReason.InvalidPduField,
      ]);
    });
  });

  test('rfc7143 7.8: a header digest error closes the connection; a data digest error -> Reject 0x02', async (t) => {
    const digests = { target: DIGEST_TARGET, proposals: { headerDigest: 'CRC32C', dataDigest: 'CRC32C' } };
    await attack(
      t,
      'bad header digest',
      async (s) => {
        assert.equal(s.params.headerDigest, true);
        const bhs = nopBhs(s, 0x40);
        const digest = Buffer.alloc(4);
        writeDigest(digest, 0, (headerDigest(bhs, null) ^ 0x5a5a5a5a) >>> 0);
        s.sendBytes(Buffer.concat([bhs, digest]));
        const outcome = await expectRejectOrClose(s, 'bad header digest', []);
        assert.equal(outcome, 'closed');
        return outcome;
      },
      digests,
    );
    await attack(
      t,
      'bad data digest',
      async (s) => {
        assert.equal(s.params.dataDigest, true);
        const data = pattern(64, 7);
        const bhs = nopBhs(s, 0x41);
        bhs.writeUIntBE(data.length, 5, 3);
        const hd = Buffer.alloc(4);
        writeDigest(hd, 0, headerDigest(bhs, null));
        const dd = Buffer.alloc(4);
        writeDigest(dd, 0, (dataDigest(data) ^ 1) >>> 0);
        s.sendBytes(Buffer.concat([bhs, hd, data, dd]));
        const outcome = await expectRejectOrClose(s, 'bad data digest', [RejectReason.DataDigestError]);
        assert.equal(
          outcome,
          'reject',
          'RFC 7143 7.8: a payload digest error MUST be answered with a Reject',
        );
        return outcome;
      },
      digests,
    );
  });

  test('rfc7143 11.12: a Login Request in full feature phase -> Reject or close', async (t) => {
    await attack(t, 'Login Request in FFP', async (s) => {
      const bhs = encodeLoginRequest(Buffer.alloc(BHS_LENGTH), {
        itt: 0x16,
        transit: true,
        csg: LoginStage.LoginOperationalNegotiation,
        nsg: LoginStage.FullFeaturePhase,
        isid: s.isid,
        tsih: s.tsih,
        cid: 0,
        cmdSN: s.cmdSN,
        expStatSN: s.expStatSN,
      });
      s.sendPdu(bhs, Buffer.from(`InitiatorName=${IQN}:attacker\0SessionType=Normal\0`));
      return expectRejectOrClose(s, 'Login in FFP', [RejectReason.ProtocolError], bhs);
    });
  });

  test('rfc7143 7.x: garbage bytes in full feature phase -> Reject or close', async (t) => {
    await attack(t, '4 KiB of 0xa5', async (s) => {
      // As a BHS: target opcode 0x25, TotalAHSLength 660 bytes, DataSegmentLength 0xa5a5a5.
      s.sendBytes(Buffer.alloc(4096, 0xa5));
      return expectRejectOrClose(s, 'garbage', [
        RejectReason.ProtocolError,
        RejectReason.CommandNotSupported,
      ]);
    });
    await attack(t, '48 zero bytes then a NOP', async (s) => {
      // An all-zero BHS is a well-framed NOP-Out with ITT 0 (a ping wanting an answer, CmdSN 0).
      s.sendBytes(Buffer.alloc(BHS_LENGTH));
      const pdu = await nextPdu(s, 2000).catch(() => undefined);
      if (pdu) assert.ok([Opcode.NopIn, Opcode.Reject].includes(bhsOpcode(pdu.bhs)), `got ${opName(pdu)}`);
    });
  });

  test('rfc7143 11.12: garbage before login -> the connection is closed', async () => {
    for (const [what, bytes] of [
      ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.padEnd(256, ' '))],
      [
        'a SCSI Command before login',
        encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
          itt: 1,
          cmdSN: 1,
          expStatSN: 0,
          read: true,
          edtl: BLOCK,
          cdb: read10Cdb(0, 1),
        }),
      ],
      ['64 KiB of 0xff', Buffer.alloc(65536, 0xff)],
    ] as const) {
      const sock = await rawSocket(d);
      sock.on('error', () => {});
      sock.write(bytes);
      assert.ok(await socketClosed(sock, 3000), `${what}: connection still open after 3 s`);
      sock.destroy();
      await assertOthersUnaffected(what);
    }
  });

  test('rfc7143 7.x: connections closing in the middle of a PDU are cleaned up', async (t) => {
    // Before login: half a Login Request header.
    const sock = await rawSocket(d);
    const login = encodeLoginRequest(Buffer.alloc(BHS_LENGTH), {
      itt: 1,
      transit: true,
      csg: LoginStage.SecurityNegotiation,
      nsg: LoginStage.LoginOperationalNegotiation,
      isid: Buffer.from([0x80, 1, 2, 3, 4, 5]),
      tsih: 0,
      cid: 0,
      cmdSN: 1,
      expStatSN: 0,
    });
    sock.end(login.subarray(0, 20));
    await socketClosed(sock, 3000);
    sock.destroy();
    await assertOthersUnaffected('half a login header');

    // In full feature phase: half a BHS.
    await attack(t, 'half a BHS then close', async (s) => {
      s.sendBytes(nopBhs(s, 0x17).subarray(0, 30));
      await new Promise((r) => setTimeout(r, 50));
    });

    // A write whose immediate data is cut off, then a second one waiting for an R2T answer.
    await attack(t, 'write with half its data segment, then close', async (s) => {
      const bhs = encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
        itt: 0x18,
        lun: encodeLun(LUN),
        cmdSN: s.takeCmdSN(),
        expStatSN: s.expStatSN,
        write: true,
        edtl: 8 * BLOCK,
        cdb: write10Cdb(200, 8),
      });
      bhs.writeUIntBE(8 * BLOCK, 5, 3);
      s.sendBytes(Buffer.concat([bhs, pattern(1000, 5)]));
      await new Promise((r) => setTimeout(r, 50));
    });
    await attack(t, 'write waiting for Data-Out, then close', async (s) => {
      const bhs = encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
        itt: 0x19,
        lun: encodeLun(LUN),
        cmdSN: s.takeCmdSN(),
        expStatSN: s.expStatSN,
        write: true,
        edtl: 64 * 1024,
        cdb: write10Cdb(300, 128),
      });
      s.sendPdu(bhs);
      const pdu = await s.receivePdu(3000);
      assert.equal(bhsOpcode(pdu.bhs), Opcode.R2T, `got ${opName(pdu)}`);
    });
  });
});

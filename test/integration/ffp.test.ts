/**
 * Full feature phase against a real tgtd (RFC 7143 3.2.4, 4.2.2, 11.3-11.9, 11.14, 11.18;
 * SBC-3 READ/WRITE; tgt-behaviour.md §4.5, §4.7, §4.13-§4.15).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { read10Cdb, read16Cdb, type Session, write10Cdb, write16Cdb } from '../../src/initiator/index.js';
import { parseReadCapacity16, parseReportLuns } from '../../src/initiator/cdb.js';
import {
  bhsOpcode,
  DataInView,
  NopInView,
  R2TView,
  ScsiResponseView,
  type Pdu,
} from '../../src/iscsi/pdu.js';
import { Opcode, TmfFunction, TmfResponse } from '../../src/iscsi/spec.js';
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

const DEFAULTS = `${IQN}:ffp-defaults`;
const UNSOLICITED = `${IQN}:ffp-unsolicited`;
const MULTI_R2T = `${IQN}:ffp-multi-r2t`;
const PINGING = `${IQN}:ffp-nop-ping`;
const LUN = 1;
/** tgt's default target MaxRecvDataSegmentLength: the most data we may put in one PDU. */
const TARGET_MRDSL = 8192;

describe('full feature phase', () => {
  let d: TgtDaemon;

  before(async () => {
    d = await TgtDaemon.start();
    const luns = [{ lun: LUN, bstype: 'memory', path: '64M' }];
    await d.addTarget({ tid: 1, name: DEFAULTS, luns });
    await d.addTarget({ tid: 2, name: UNSOLICITED, luns });
    await d.updateTarget(2, 'InitialR2T', 'No');
    await d.addTarget({ tid: 3, name: MULTI_R2T, luns });
    await d.updateTarget(3, 'MaxOutstandingR2T', '4');
    await d.addTarget({ tid: 4, name: PINGING, luns });
    await d.updateTarget(4, 'nop_interval', '1');
    await d.updateTarget(4, 'nop_count', '2');
  });

  after(async () => {
    try {
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  /** Run `fn` on a fresh session (UA cleared) and log out afterwards. */
  async function withSession(
    target: string,
    options: Parameters<typeof loginReady>[3],
    fn: (s: Session) => Promise<void>,
  ): Promise<void> {
    const s = await loginReady(d, target, LUN, options);
    try {
      await fn(s);
    } finally {
      await closeSession(s);
    }
  }

  async function readBack(s: Session, lba: number, length: number): Promise<Buffer> {
    const r = await s.read10(LUN, lba, length / BLOCK, BLOCK);
    assert.equal(r.status, GOOD, `read back: status ${r.status}`);
    return r.data;
  }

  test('rfc7143 11.3.4 / 13.14: a write carried entirely as immediate data completes without R2T', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      assert.equal(s.params.immediateData, true);
      assert.equal(s.params.initialR2T, true, 'tgt default InitialR2T=Yes');
      const data = pattern(4096, 11);
      s.setRawMode(true);
      sendRawCommand(s, { itt: 0x100, lun: LUN, cdb: write10Cdb(16, 8), write: true, edtl: 4096, data });
      const first = await s.receivePdu(5000);
      assert.equal(bhsOpcode(first.bhs), Opcode.ScsiResponse, `got ${opName(first)}`);
      assert.equal(new ScsiResponseView(first.bhs).status, GOOD);
      s.setRawMode(false);
      assert.ok((await readBack(s, 16, 4096)).equals(data));
    });
  });

  test('rfc7143 13.13: with InitialR2T=Yes the rest after immediate data is solicited by R2T', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      const data = pattern(3 * TARGET_MRDSL, 12);
      s.setRawMode(true);
      const itt = 0x101;
      sendRawCommand(s, {
        itt,
        lun: LUN,
        cdb: write10Cdb(64, data.length / BLOCK),
        write: true,
        edtl: data.length,
        data: data.subarray(0, TARGET_MRDSL),
      });
      const pdu = await s.receivePdu(5000);
      assert.equal(bhsOpcode(pdu.bhs), Opcode.R2T, `got ${opName(pdu)}`);
      const r2t = new R2TView(pdu.bhs);
      assert.equal(r2t.itt, itt);
      assert.equal(r2t.r2tSN, 0);
      assert.equal(r2t.bufferOffset, TARGET_MRDSL, 'R2T starts after the immediate data');
      assert.equal(r2t.desiredDataTransferLength, data.length - TARGET_MRDSL);
      sendRawDataOut(s, {
        itt,
        lun: LUN,
        ttt: r2t.ttt,
        data,
        from: TARGET_MRDSL,
        to: data.length,
        segment: TARGET_MRDSL,
      });
      const done = await s.receivePdu(5000);
      assert.equal(bhsOpcode(done.bhs), Opcode.ScsiResponse, `got ${opName(done)}`);
      assert.equal(new ScsiResponseView(done.bhs).status, GOOD);
      s.setRawMode(false);
      assert.ok((await readBack(s, 64, data.length)).equals(data));
    });
  });

  test('rfc7143 13.11 / 13.14: InitialR2T=No: unsolicited Data-Out up to FirstBurstLength, then R2T', async () => {
    await withSession(UNSOLICITED, { proposals: { initialR2T: false } }, async (s) => {
      assert.equal(s.params.initialR2T, false);
      const firstBurst = s.params.firstBurstLength;
      assert.equal(firstBurst, 65536, 'tgt default FirstBurstLength');
      const data = pattern(firstBurst + 4 * TARGET_MRDSL, 13);
      const itt = 0x102;
      s.setRawMode(true);
      sendRawCommand(s, {
        itt,
        lun: LUN,
        cdb: write10Cdb(256, data.length / BLOCK),
        write: true,
        edtl: data.length,
        final: false,
        data: data.subarray(0, TARGET_MRDSL),
      });
      sendRawDataOut(s, {
        itt,
        lun: LUN,
        ttt: 0xffffffff,
        data,
        from: TARGET_MRDSL,
        to: firstBurst,
        segment: TARGET_MRDSL,
      });
      const pdu = await s.receivePdu(5000);
      assert.equal(bhsOpcode(pdu.bhs), Opcode.R2T, `got ${opName(pdu)}`);
      const r2t = new R2TView(pdu.bhs);
      assert.equal(r2t.bufferOffset, firstBurst, 'the R2T asks only for what was not sent unsolicited');
      assert.equal(r2t.desiredDataTransferLength, data.length - firstBurst);
      sendRawDataOut(s, {
        itt,
        lun: LUN,
        ttt: r2t.ttt,
        data,
        from: firstBurst,
        to: data.length,
        segment: TARGET_MRDSL,
      });
      const done = await s.receivePdu(5000);
      assert.equal(bhsOpcode(done.bhs), Opcode.ScsiResponse, `got ${opName(done)}`);
      assert.equal(new ScsiResponseView(done.bhs).status, GOOD);
      s.setRawMode(false);
      assert.ok((await readBack(s, 256, data.length)).equals(data));

      // The same through the initiator's own data path (immediate + unsolicited + R2T).
      const big = pattern(1024 * 1024, 14);
      assert.equal((await s.write10(LUN, 4096, big, BLOCK)).status, GOOD);
      assert.ok((await readBack(s, 4096, big.length)).equals(big));
    });
  });

  test('rfc7143 3.2.4.1 / 13.17: R2Ts cut at MaxBurstLength, at most MaxOutstandingR2T at once', async () => {
    const maxBurst = 16384;
    const maxR2T = 4;
    await withSession(
      MULTI_R2T,
      { proposals: { immediateData: false, maxBurstLength: maxBurst, maxOutstandingR2T: maxR2T } },
      async (s) => {
        assert.equal(s.params.maxBurstLength, maxBurst);
        assert.equal(s.params.maxOutstandingR2T, maxR2T);
        const data = pattern(8 * maxBurst, 15);
        const itt = 0x103;
        s.setRawMode(true);
        sendRawCommand(s, {
          itt,
          lun: LUN,
          cdb: write10Cdb(512, data.length / BLOCK),
          write: true,
          edtl: data.length,
        });
        const outstanding: R2TView[] = [];
        let nextOffset = 0;
        let nextSN = 0;
        let maxSeen = 0;
        let response: Pdu | undefined;
        while (!response) {
          // Take every R2T the target is willing to send before answering the oldest one.
          for (;;) {
            const pdu = await nextPdu(s, outstanding.length === 0 ? 5000 : 300);
            if (!pdu) break;
            if (bhsOpcode(pdu.bhs) === Opcode.ScsiResponse) {
              response = pdu;
              break;
            }
            assert.equal(bhsOpcode(pdu.bhs), Opcode.R2T, `got ${opName(pdu)}`);
            const r2t = new R2TView(Buffer.from(pdu.bhs));
            assert.equal(r2t.r2tSN, nextSN++, 'R2TSN counts from 0');
            assert.equal(r2t.bufferOffset, nextOffset, 'R2Ts ask for the data in order');
            assert.ok(
              r2t.desiredDataTransferLength <= maxBurst,
              `R2T of ${r2t.desiredDataTransferLength} bytes`,
            );
            nextOffset += r2t.desiredDataTransferLength;
            outstanding.push(r2t);
            maxSeen = Math.max(maxSeen, outstanding.length);
            assert.ok(outstanding.length <= maxR2T, `${outstanding.length} R2Ts outstanding`);
          }
          if (response) break;
          const r2t = outstanding.shift();
          assert.ok(r2t, 'no R2T and no response');
          const from = r2t.bufferOffset;
          sendRawDataOut(s, {
            itt,
            lun: LUN,
            ttt: r2t.ttt,
            data,
            from,
            to: from + r2t.desiredDataTransferLength,
            segment: TARGET_MRDSL,
          });
        }
        assert.equal(nextOffset, data.length, 'the R2Ts covered the whole transfer');
        assert.equal(maxSeen, maxR2T, 'the target used the negotiated MaxOutstandingR2T');
        assert.equal(new ScsiResponseView(response.bhs).status, GOOD);
        s.setRawMode(false);
        assert.ok((await readBack(s, 512, data.length)).equals(data));
      },
    );
  });

  test('rfc7143 11.7 / 13.12: Data-In is cut at the initiator MaxRecvDataSegmentLength (512)', async () => {
    await withSession(DEFAULTS, { proposals: { maxRecvDataSegmentLength: 512 } }, async (s) => {
      const data = pattern(8192, 16);
      assert.equal((await s.write10(LUN, 1024, data, BLOCK)).status, GOOD);
      s.setRawMode(true);
      const itt = 0x104;
      sendRawCommand(s, { itt, lun: LUN, cdb: read10Cdb(1024, 16), read: true, edtl: data.length });
      const got = Buffer.alloc(data.length);
      let expectedSN = 0;
      let offset = 0;
      let status: number | undefined;
      while (status === undefined) {
        const pdu = await s.receivePdu(5000);
        const op = bhsOpcode(pdu.bhs);
        if (op === Opcode.ScsiResponse) {
          status = new ScsiResponseView(pdu.bhs).status;
          break;
        }
        assert.equal(op, Opcode.DataIn, `got ${opName(pdu)}`);
        const v = new DataInView(pdu.bhs);
        assert.ok(pdu.data.length <= 512, `Data-In of ${pdu.data.length} bytes`);
        assert.equal(v.dataSN, expectedSN++, 'DataSN counts from 0');
        assert.equal(v.bufferOffset, offset, 'Data-In in order');
        pdu.data.copy(got, offset);
        offset += pdu.data.length;
        if (v.statusPresent) status = v.status;
      }
      assert.equal(status, GOOD);
      assert.equal(offset, data.length);
      assert.equal(expectedSN, data.length / 512, 'one Data-In per 512 bytes');
      assert.ok(got.equals(data));
    });
  });

  test('rfc7143 11.7.1: a Data-In sequence (ended by the F bit) never exceeds MaxBurstLength', async () => {
    const maxBurst = 16384;
    await withSession(DEFAULTS, { proposals: { maxBurstLength: maxBurst } }, async (s) => {
      assert.equal(s.params.maxBurstLength, maxBurst);
      const length = 8 * maxBurst;
      const data = pattern(length, 22);
      assert.equal((await s.write10(LUN, 3000, data, BLOCK)).status, GOOD);
      s.setRawMode(true);
      sendRawCommand(s, {
        itt: 0x105,
        lun: LUN,
        cdb: read10Cdb(3000, length / BLOCK),
        read: true,
        edtl: length,
      });
      let inSequence = 0;
      let total = 0;
      let done = false;
      while (!done) {
        const pdu = await s.receivePdu(5000);
        if (bhsOpcode(pdu.bhs) === Opcode.ScsiResponse) break;
        assert.equal(bhsOpcode(pdu.bhs), Opcode.DataIn, `got ${opName(pdu)}`);
        const v = new DataInView(pdu.bhs);
        inSequence += pdu.data.length;
        total += pdu.data.length;
        assert.ok(
          inSequence <= maxBurst,
          `Data-In sequence of ${inSequence} bytes > MaxBurstLength ${maxBurst}`,
        );
        if (v.final) inSequence = 0;
        done = v.statusPresent;
      }
      assert.equal(total, length);
    });
  });

  test('tgt §4.10: NOP-In pings (nop_interval/nop_count): answered ones keep the connection, unanswered close it', async () => {
    const answering = await loginReady(d, PINGING, LUN, { initiatorName: `${IQN}:nop-answering` });
    const silent = await loginReady(d, PINGING, LUN, {
      initiatorName: `${IQN}:nop-silent`,
      answerNopIns: false,
    });
    try {
      // nop_count=2 pings every second: the silent connection is gone after about 3 s.
      await silent.connection.waitClosed(8000);
      assert.ok(answering.nopInsAnswered >= 2, `answered ${answering.nopInsAnswered} pings`);
      assert.equal(answering.state, 'full-feature', 'the answering session is still up');
      assert.equal((await answering.read10(LUN, 0, 1, BLOCK)).status, GOOD);
    } finally {
      silent.destroy();
      await closeSession(answering);
    }
  });

  test('spc4 / tgt §5.1: commands to a LUN that does not exist', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      const inquiry = await s.inquiry(5);
      assert.equal(inquiry.status, GOOD);
      assert.equal(inquiry.data[0], 0x7f, 'INQUIRY: peripheral qualifier 3, type 0x1f');
      const read = await s.read10(5, 0, 1, BLOCK);
      assert.equal(read.status, CHECK_CONDITION);
      assert.deepEqual(
        [read.sense?.key, read.sense?.asc, read.sense?.ascq],
        [0x05, 0x25, 0x00],
        'LOGICAL UNIT NOT SUPPORTED',
      );
      const luns = await s.reportLuns();
      assert.equal(luns.status, GOOD);
      assert.deepEqual(parseReportLuns(luns.data), [0n, 1n]);
    });
  });

  test('rfc7143 11.4.5: residual underflow and overflow on reads and writes', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      const data = pattern(16 * BLOCK, 17);
      assert.equal((await s.write10(LUN, 2048, data, BLOCK)).status, GOOD);

      // READ of 8 blocks with EDTL for 16: underflow, 8 blocks sent.
      const under = await s.command({ lun: LUN, cdb: read10Cdb(2048, 8), readLength: 16 * BLOCK });
      assert.equal(under.status, GOOD);
      assert.deepEqual(under.residual, { kind: 'underflow', count: 8 * BLOCK }, 'read underflow');
      assert.ok(under.data.equals(data.subarray(0, 8 * BLOCK)));

      // READ of 16 blocks with EDTL for 8: overflow, only EDTL bytes sent.
      const over = await s.command({ lun: LUN, cdb: read10Cdb(2048, 16), readLength: 8 * BLOCK });
      assert.equal(over.status, GOOD);
      assert.deepEqual(over.residual, { kind: 'overflow', count: 8 * BLOCK }, 'read overflow');
      assert.ok(over.data.equals(data.subarray(0, 8 * BLOCK)));

      // WRITE(10) of 4 blocks carrying 8 blocks of data: underflow, only 4 blocks written.
      const fresh = pattern(8 * BLOCK, 18);
      const wUnder = await s.command({ lun: LUN, cdb: write10Cdb(2048, 4), dataOut: fresh });
      assert.equal(wUnder.status, GOOD);
      assert.deepEqual(wUnder.residual, { kind: 'underflow', count: 4 * BLOCK }, 'write underflow');
      const after1 = await readBack(s, 2048, 16 * BLOCK);
      assert.ok(after1.subarray(0, 4 * BLOCK).equals(fresh.subarray(0, 4 * BLOCK)));
      assert.ok(after1.subarray(4 * BLOCK).equals(data.subarray(4 * BLOCK)), 'blocks past the CDB untouched');

      // WRITE(10) of 8 blocks carrying 4: overflow (architecture.md: whole blocks written, GOOD).
      const short = pattern(4 * BLOCK, 19);
      const wOver = await s.command({ lun: LUN, cdb: write10Cdb(2100, 8), dataOut: short });
      assert.equal(wOver.status, GOOD);
      assert.deepEqual(wOver.residual, { kind: 'overflow', count: 4 * BLOCK }, 'write overflow');
      assert.ok((await readBack(s, 2100, 4 * BLOCK)).equals(short));
    });
  });

  test('sbc3 READ/WRITE past the last LBA -> CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      const cap = parseReadCapacity16((await s.readCapacity16(LUN)).data);
      assert.ok(cap);
      assert.equal(cap.blockSize, BLOCK);
      assert.equal(cap.lastLba, BigInt(64 * 1024 * 1024) / BigInt(BLOCK) - 1n);
      const cases: [
        string,
        Promise<{ status: number; sense?: { key: number; asc: number; ascq: number } }>,
      ][] = [
        [
          'READ(16) at last LBA + 1',
          s.command({ lun: LUN, cdb: read16Cdb(cap.lastLba + 1n, 1), readLength: BLOCK }),
        ],
        [
          'READ(16) crossing the end',
          s.command({ lun: LUN, cdb: read16Cdb(cap.lastLba, 2), readLength: 2 * BLOCK }),
        ],
        ['READ(16) at 2^63', s.command({ lun: LUN, cdb: read16Cdb(1n << 63n, 1), readLength: BLOCK })],
        [
          'WRITE(16) at last LBA + 1',
          s.command({ lun: LUN, cdb: write16Cdb(cap.lastLba + 1n, 1), dataOut: pattern(BLOCK, 20) }),
        ],
      ];
      for (const [what, p] of cases) {
        const r = await p;
        assert.equal(r.status, CHECK_CONDITION, `${what}: status`);
        assert.equal(r.sense?.key, 0x05, `${what}: ILLEGAL REQUEST`);
        assert.equal(r.sense?.asc, 0x21, `${what}: ASC LBA OUT OF RANGE`);
        assert.equal(r.sense?.ascq, 0x00, `${what}: ASCQ`);
      }
      assert.equal((await s.read16(LUN, cap.lastLba, 1, BLOCK)).status, GOOD, 'the last LBA itself is fine');
    });
  });

  test('rfc7143 11.18 / 11.19: NOP-Out ping is echoed in a NOP-In with the same data', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      assert.deepEqual(await s.nop(), Buffer.alloc(0));
      const small = Buffer.from('ping from tgt-ts integration');
      assert.ok((await s.nop(small)).equals(small), 'immediate ping');
      assert.ok((await s.nop(small, false)).equals(small), 'non-immediate ping');
      const big = pattern(TARGET_MRDSL, 21);
      assert.ok((await s.nop(big)).equals(big), 'ping with MaxRecvDataSegmentLength bytes');
    });
  });

  test('rfc7143 11.14 / 11.15: Logout closes the session; the target drops the I_T nexus', async () => {
    const initiatorName = `${IQN}:logout-initiator`;
    const s = await loginReady(d, DEFAULTS, LUN, { initiatorName });
    const before = await d.adm('--mode', 'target', '--op', 'show');
    assert.match(before, new RegExp(`Initiator: ${initiatorName}`));
    const response = await s.logout();
    assert.equal(response, 0, 'Logout Response: connection or session closed successfully');
    assert.equal(s.connection.closed, true, 'the target closed the connection after the Logout Response');
    // The nexus goes away with the session.
    let show = '';
    for (let i = 0; i < 20; i++) {
      show = await d.adm('--mode', 'target', '--op', 'show');
      if (!show.includes(initiatorName)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(!show.includes(initiatorName), `nexus still listed:\n${show}`);
  });

  test('rfc7143 11.5.1 / tgt §4.13: ABORT TASK of an unknown task -> "task does not exist"', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      // RefCmdSN outside the CmdSN window: the target cannot have seen it (11.5.1 c).
      const response = await s.taskManagement(TmfFunction.AbortTask, {
        lun: LUN,
        referencedTaskTag: 0x7777,
        refCmdSN: (s.maxCmdSN + 1000) >>> 0,
      });
      assert.equal(response, TmfResponse.TaskDoesNotExist);
      assert.equal((await s.read10(LUN, 0, 1, BLOCK)).status, GOOD, 'the session carries on');
    });
  });

  test('rfc7143 11.5.1 / sam5 5.6: ABORT TASK of a command held back in the CmdSN window', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      s.setRawMode(true);
      const gap = s.takeCmdSN();
      const held = sendRawCommand(s, { itt: 0x201, lun: LUN, cdb: read10Cdb(0, 1), read: true, edtl: BLOCK });
      // The held command cannot run until CmdSN `gap` arrives: abort it.
      s.setRawMode(false);
      const response = await s.taskManagement(TmfFunction.AbortTask, {
        lun: LUN,
        referencedTaskTag: 0x201,
        refCmdSN: held,
      });
      assert.equal(response, TmfResponse.FunctionComplete);
      s.setRawMode(true);
      sendRawNop(s, 0x202, { cmdSN: gap });
      const pdus = await receiveUntil(s, Opcode.NopIn, 0x202, 5000);
      const stray = await nextPdu(s, 300);
      for (const p of [...pdus, ...(stray ? [stray] : [])]) {
        assert.notEqual(p.bhs.readUInt32BE(16), 0x201, `aborted task answered: ${opName(p)}`);
      }
      s.setRawMode(false);
      assert.equal((await s.read10(LUN, 0, 1, BLOCK)).status, GOOD, 'the window moved past both CmdSNs');
    });
  });

  test('rfc7143 11.5.1 / tgt §4.13: LOGICAL UNIT RESET completes and raises a reset unit attention', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      assert.equal(await s.lunReset(LUN), TmfResponse.FunctionComplete);
      const r = await s.testUnitReady(LUN);
      assert.equal(r.status, CHECK_CONDITION, 'first command after the reset');
      assert.equal(r.sense?.key, 0x06, 'UNIT ATTENTION');
      assert.equal(r.sense?.asc, 0x29, 'POWER ON, RESET, OR BUS DEVICE RESET OCCURRED');
      assert.equal((await s.testUnitReady(LUN)).status, GOOD);
    });
  });

  test('rfc7143 4.2.2.1: MaxCmdSN advances as commands complete', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      const exp0 = s.expCmdSN;
      const max0 = s.maxCmdSN;
      assert.ok(((max0 - exp0) | 0) >= 0, `window open after login: ExpCmdSN ${exp0}, MaxCmdSN ${max0}`);
      for (let i = 0; i < 20; i++) assert.equal((await s.testUnitReady(LUN)).status, GOOD);
      assert.equal((s.expCmdSN - exp0) | 0, 20, 'ExpCmdSN counted every command');
      assert.ok(((s.maxCmdSN - max0) | 0) >= 20, `MaxCmdSN ${max0} -> ${s.maxCmdSN}`);
    });
  });

  test('rfc7143 4.2.2.1: commands with a CmdSN outside the window are ignored', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      s.setRawMode(true);
      // Beyond MaxCmdSN, and already used (below ExpCmdSN): both must be dropped silently.
      sendRawNop(s, 0x301, { cmdSN: (s.maxCmdSN + 10) >>> 0 });
      sendRawCommand(s, {
        itt: 0x302,
        lun: LUN,
        cdb: read10Cdb(0, 1),
        read: true,
        edtl: BLOCK,
        cmdSN: (s.maxCmdSN + 20) >>> 0,
      });
      sendRawNop(s, 0x303, { cmdSN: (s.expCmdSN - 1) >>> 0 });
      const stray = await nextPdu(s, 500);
      assert.equal(stray, undefined, `answered a PDU outside the window: ${opName(stray)}`);
      const cmdSN = sendRawNop(s, 0x304);
      const pdus = await receiveUntil(s, Opcode.NopIn, 0x304, 5000);
      assert.equal(pdus.length, 1, `only the in-window ping is answered, got ${pdus.map(opName).join(', ')}`);
      const v = new NopInView(pdus[0]!.bhs);
      assert.equal(v.expCmdSN, (cmdSN + 1) >>> 0, 'ExpCmdSN moved past the in-window ping only');
      s.setRawMode(false);
      assert.equal((await s.read10(LUN, 0, 1, BLOCK)).status, GOOD);
    });
  });

  test('sam5 / rfc7143 3.2.2: 64 concurrent commands on one session all complete correctly', async () => {
    await withSession(DEFAULTS, {}, async (s) => {
      const n = 64;
      const blocks = 8;
      const base = 16384;
      const chunks = Array.from({ length: n }, (_, i) => pattern(blocks * BLOCK, 100 + i));
      const writes = await Promise.all(chunks.map((c, i) => s.write10(LUN, base + i * blocks, c, BLOCK)));
      assert.deepEqual(
        writes.map((r) => r.status),
        new Array(n).fill(GOOD),
      );
      const reads = await Promise.all(chunks.map((_, i) => s.read10(LUN, base + i * blocks, blocks, BLOCK)));
      reads.forEach((r, i) => {
        assert.equal(r.status, GOOD, `read ${i}`);
        assert.ok(r.data.equals(chunks[i]!), `data of command ${i}`);
      });
    });
  });
});

/**
 * Hostile input against a real tgtd (issue 5 item 6, docs/robustness.md): absurd transfer
 * lengths, Data-Out abuse (BufferOffset overflow, beyond the EDTL, duplicate ITTs), malformed
 * login text, wrong CHAP responses and hundreds of half-open connections. Each case is
 * answered as RFC 7143 says (Reject, login failure, CHECK CONDITION or closing that connection);
 * a witness session keeps reading its data throughout, and afterwards the idle daemon uses no
 * CPU (tgt spins forever after a Data-Out whose buffer offset overflows).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { encodeLun, type Session } from '../../src/initiator/index.js';
import { read16Cdb, write10Cdb, write16Cdb } from '../../src/initiator/cdb.js';
import { decodeSense } from '../../src/initiator/sense.js';
import { PduFramer } from '../../src/iscsi/framer.js';
import {
  bhsOpcode,
  encodeDataOut,
  encodeLoginRequest,
  LoginResponseView,
  R2TView,
  RejectView,
  ScsiResponseView,
  type IncomingPdu,
} from '../../src/iscsi/pdu.js';
import { BHS_LENGTH, LoginStage, Opcode, RejectReason } from '../../src/iscsi/spec.js';
import { encodeText, parseText, type TextPair } from '../../src/iscsi/text.js';
import { delay, TgtDaemon } from '../helpers/daemon.js';
import {
  BLOCK,
  CHECK_CONDITION,
  closeSession,
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
} from './util.js';

const TARGET = `${IQN}:hostile`;
const CHAP_TARGET = `${IQN}:hostile-chap`;
const LUN = 1;
const CHAP_USER = 'hostile-user';
const CHAP_SECRET = 'hostile-secret-1';

/** A plain TCP connection that frames the target's PDUs (for login-phase abuse). */
class RawConnection {
  private readonly pdus: IncomingPdu[] = [];
  private waiter: (() => void) | null = null;
  closed = false;

  private constructor(readonly sock: Socket) {
    const framer = new PduFramer(
      (pdu) => {
        this.pdus.push({ bhs: Buffer.from(pdu.bhs), ahs: null, data: Buffer.from(pdu.data) });
        this.waiter?.();
      },
      () => sock.destroy(),
      { maxDataSegmentLength: 1 << 24 },
    );
    sock.on('data', (chunk: Buffer) => framer.push(chunk));
    sock.on('error', () => {});
    sock.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  static open(d: TgtDaemon): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const sock = connect({ host: d.host, port: d.port }, () => resolve(new RawConnection(sock)));
      sock.once('error', reject);
    });
  }

  /** Send a Login Request with raw text bytes. */
  sendLogin(text: Buffer, o: { transit?: boolean; csg?: number; nsg?: number } = {}): void {
    const bhs = encodeLoginRequest(Buffer.alloc(BHS_LENGTH), {
      itt: 1,
      transit: o.transit ?? false,
      csg: o.csg ?? LoginStage.SecurityNegotiation,
      nsg: o.nsg ?? LoginStage.SecurityNegotiation,
      isid: Buffer.from([0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]),
      tsih: 0,
      cid: 0,
      cmdSN: 1,
      expStatSN: 0,
    });
    bhs.writeUIntBE(text.length, 5, 3);
    this.sock.write(Buffer.concat([bhs, text, Buffer.alloc((4 - (text.length % 4)) % 4)]));
  }

  /** The next PDU, or null when the connection closed first (rejects after `ms`). */
  async next(ms = 3000): Promise<IncomingPdu | null> {
    const deadline = Date.now() + ms;
    while (this.pdus.length === 0) {
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no PDU and no close');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    return this.pdus.shift()!;
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Login status (class << 8 | detail) of a Login Response. */
function loginStatus(pdu: IncomingPdu): number {
  const v = new LoginResponseView(pdu.bhs);
  return (v.statusClass << 8) | v.statusDetail;
}

/** utime + stime of a process in clock ticks (Linux /proc). */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

describe('hostile input', () => {
  let d: TgtDaemon;
  let witness: Session;
  let witnessLba = 0;
  const witnessData = pattern(64 * BLOCK, 9);

  before(async () => {
    d = await TgtDaemon.start();
    await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: LUN, bstype: 'memory', path: '16M' }] });
    await d.addTarget({ tid: 2, name: CHAP_TARGET, luns: [{ lun: LUN, bstype: 'memory', path: '1M' }] });
    await d.addAccount(CHAP_USER, CHAP_SECRET, 2);
    witness = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:witness` });
    assert.equal((await witness.write10(LUN, 0, witnessData, BLOCK)).status, GOOD);
  });

  after(async () => {
    try {
      await closeSession(witness);
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  /** The daemon lives, logged nothing bad, the witness reads its data and a new session works. */
  async function assertHealthy(what: string): Promise<void> {
    assert.ok(d.alive, `${what}: tgtd died:\n${d.output}`);
    const lba = witnessLba++ % 64;
    const r = await witness.read10(LUN, lba, 1, BLOCK);
    assert.equal(r.status, GOOD, `${what}: witness READ status ${r.status}`);
    assert.ok(r.data.equals(witnessData.subarray(lba * BLOCK, (lba + 1) * BLOCK)), `${what}: witness data`);
    const fresh = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:fresh` });
    await closeSession(fresh);
    assert.doesNotMatch(
      d.output,
      /uncaught exception|unhandled rejection|internal error/,
      `${what}: tgtd logged`,
    );
  }

  /** A raw-mode attacker session with the unit attention cleared. */
  async function attacker(): Promise<Session> {
    const s = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:attacker` });
    s.setRawMode(true);
    return s;
  }

  test('sbc4 6.6.4: READ(16) of 2^32-1 blocks -> CHECK CONDITION ILLEGAL REQUEST, no giant allocation (tgt dies)', async () => {
    const s = await attacker();
    try {
      for (const [itt, edtl] of [
        [0x100, 0xffffffff],
        [0x101, BLOCK],
        [0x102, 0],
      ] as const) {
        sendRawCommand(s, { itt, lun: LUN, cdb: read16Cdb(0, 0xffffffff), read: edtl > 0, edtl });
        const pdus = await receiveUntil(s, Opcode.ScsiResponse, itt, 5000);
        const response = pdus[pdus.length - 1]!;
        const v = new ScsiResponseView(response.bhs);
        assert.equal(v.status, CHECK_CONDITION, `EDTL ${edtl}`);
        const sense = decodeSense(response.data.subarray(2));
        assert.equal(sense?.key, 0x05, `EDTL ${edtl}: ILLEGAL REQUEST`);
        assert.ok(
          sense?.asc === 0x24 || sense?.asc === 0x21,
          `EDTL ${edtl}: ASC 0x${sense?.asc.toString(16)}`,
        );
        assert.ok(
          pdus.every((p) => bhsOpcode(p.bhs) !== Opcode.DataIn),
          `EDTL ${edtl}: Data-In sent: ${pdus.map(opName).join(', ')}`,
        );
      }
    } finally {
      s.destroy();
    }
    await assertHealthy('READ(16) 2^32-1 blocks');
  });

  test('sbc4 6.6.4 / rfc7143 11.8: WRITE(16) of 2^32-1 blocks, EDTL 2^32-1: bounded R2Ts, then CHECK CONDITION', async () => {
    const s = await attacker();
    try {
      const itt = 0x110;
      sendRawCommand(s, { itt, lun: LUN, cdb: write16Cdb(0, 0xffffffff), write: true, edtl: 0xffffffff });
      let solicited = 0;
      const chunk = Buffer.alloc(256 * 1024);
      for (;;) {
        const pdu = await s.receivePdu(10_000);
        const op = bhsOpcode(pdu.bhs);
        if (op === Opcode.ScsiResponse) {
          const v = new ScsiResponseView(pdu.bhs);
          assert.equal(v.status, CHECK_CONDITION);
          assert.equal(decodeSense(pdu.data.subarray(2))?.key, 0x05, 'ILLEGAL REQUEST');
          break;
        }
        assert.equal(op, Opcode.R2T, `unexpected ${opName({ bhs: pdu.bhs, ahs: null, data: pdu.data })}`);
        const r2t = new R2TView(pdu.bhs);
        solicited += r2t.desiredDataTransferLength;
        assert.ok(solicited <= 32 * 1024 * 1024, `solicited ${solicited} bytes`);
        let dataSN = 0;
        for (let off = 0; off < r2t.desiredDataTransferLength; off += 8192) {
          const len = Math.min(8192, r2t.desiredDataTransferLength - off);
          const bhs = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
            itt,
            lun: encodeLun(LUN),
            ttt: r2t.ttt,
            final: off + len === r2t.desiredDataTransferLength,
            expStatSN: s.expStatSN,
            dataSN: dataSN++,
            bufferOffset: r2t.bufferOffset + off,
          });
          s.sendPdu(bhs, chunk.subarray(0, len));
        }
      }
    } finally {
      s.destroy();
    }
    await assertHealthy('WRITE(16) 2^32-1 blocks');
  });

  test('rfc7143 11.7.6 / 11.17: Data-Out whose BufferOffset + length overflows 2^32 -> Reject (tgt spins at 100% CPU)', async () => {
    const s = await attacker();
    try {
      const itt = 0x120;
      sendRawCommand(s, { itt, lun: LUN, cdb: write10Cdb(1000, 8), write: true, edtl: 8 * BLOCK });
      const [r2tPdu] = await receiveUntil(s, Opcode.R2T, itt, 5000);
      const r2t = new R2TView(r2tPdu!.bhs);
      for (const offset of [0xfffffe00, 0xffffffff, 8 * BLOCK - 1]) {
        const bhs = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
          itt,
          lun: encodeLun(LUN),
          ttt: r2t.ttt,
          final: true,
          expStatSN: s.expStatSN,
          dataSN: 0,
          bufferOffset: offset,
        });
        s.sendPdu(bhs, pattern(1024, 3));
        const pdu = await nextPdu(s, 3000);
        if (!pdu) assert.fail(`offset 0x${offset.toString(16)}: no answer`);
        assert.equal(bhsOpcode(pdu.bhs), Opcode.Reject, `offset 0x${offset.toString(16)}: ${opName(pdu)}`);
        assert.equal(new RejectView(pdu.bhs).reason, RejectReason.ProtocolError);
      }
      // The command still completes with its real data.
      sendRawDataOut(s, {
        itt,
        lun: LUN,
        ttt: r2t.ttt,
        data: pattern(8 * BLOCK, 4),
        from: 0,
        to: 8 * BLOCK,
        segment: 4096,
      });
      const done = await receiveUntil(s, Opcode.ScsiResponse, itt, 5000);
      assert.equal(new ScsiResponseView(done[done.length - 1]!.bhs).status, GOOD);
    } finally {
      s.destroy();
    }
    await assertHealthy('BufferOffset overflow');
  });

  test('rfc7143 11.7 / 11.2.1.8: Data-Out beyond the EDTL and a duplicate ITT -> Reject', async () => {
    const s = await attacker();
    try {
      const itt = 0x130;
      sendRawCommand(s, { itt, lun: LUN, cdb: write10Cdb(100, 1), write: true, edtl: BLOCK });
      const [r2tPdu] = await receiveUntil(s, Opcode.R2T, itt, 5000);
      const r2t = new R2TView(r2tPdu!.bhs);
      // A second command with the same ITT while the first is outstanding.
      sendRawCommand(s, { itt, lun: LUN, cdb: write10Cdb(101, 1), write: true, edtl: BLOCK });
      let pdu = await nextPdu(s, 3000);
      assert.equal(bhsOpcode(pdu!.bhs), Opcode.Reject, `duplicate ITT: ${opName(pdu)}`);
      assert.equal(new RejectView(pdu!.bhs).reason, RejectReason.InvalidPduField);
      // Two blocks for a one-block EDTL.
      sendRawDataOut(s, {
        itt,
        lun: LUN,
        ttt: r2t.ttt,
        data: pattern(2 * BLOCK, 5),
        from: 0,
        to: 2 * BLOCK,
        segment: 2 * BLOCK,
      });
      pdu = await nextPdu(s, 3000);
      assert.equal(bhsOpcode(pdu!.bhs), Opcode.Reject, `beyond EDTL: ${opName(pdu)}`);
      sendRawDataOut(s, {
        itt,
        lun: LUN,
        ttt: r2t.ttt,
        data: pattern(BLOCK, 5),
        from: 0,
        to: BLOCK,
        segment: BLOCK,
      });
      const done = await receiveUntil(s, Opcode.ScsiResponse, itt, 5000);
      assert.equal(new ScsiResponseView(done[done.length - 1]!.bhs).status, GOOD);
    } finally {
      s.destroy();
    }
    await assertHealthy('Data-Out beyond EDTL / duplicate ITT');
  });

  test('rfc7143 6.1 / 11.13.5: malformed login text -> 0x0200 initiator error, connection closed', async () => {
    const base = `InitiatorName=${IQN}:bad-text\0TargetName=${TARGET}\0SessionType=Normal\0`;
    const cases: Array<[string, Buffer]> = [
      ['a 64-character key name', Buffer.from(`${base}${'K'.repeat(64)}=1\0`)],
      ['a repeated key', Buffer.from(`${base}AuthMethod=None\0AuthMethod=None\0`)],
      ['an invalid character in a key', Buffer.from(`${base}Auth Method=None\0`)],
      ['a key without =', Buffer.from(`${base}AuthMethod\0`)],
      ['no NUL after the last pair', Buffer.from(`${base}AuthMethod=None`)],
      ['a 256-byte value', Buffer.from(`${base}X-com.example.key=${'v'.repeat(256)}\0`)],
      ['invalid UTF-8', Buffer.concat([Buffer.from(base), Buffer.from([0x41, 0x3d, 0xff, 0xfe, 0])])],
    ];
    for (const [what, text] of cases) {
      const c = await RawConnection.open(d);
      try {
        c.sendLogin(text);
        const pdu = await c.next();
        assert.ok(pdu, `${what}: closed without a Login Response`);
        assert.equal(bhsOpcode(pdu.bhs), Opcode.LoginResponse, what);
        assert.equal(loginStatus(pdu).toString(16), '200', what);
        assert.equal(await c.next(), null, `${what}: connection not closed after the failure`);
      } finally {
        c.destroy();
      }
    }
    await assertHealthy('malformed login text');
  });

  /** Run a CHAP login up to the challenge; returns the connection. */
  async function chapChallenge(): Promise<RawConnection> {
    const c = await RawConnection.open(d);
    const keys: TextPair[] = [
      ['InitiatorName', `${IQN}:chap-attacker`],
      ['TargetName', CHAP_TARGET],
      ['SessionType', 'Normal'],
      ['AuthMethod', 'CHAP'],
    ];
    c.sendLogin(encodeText(keys));
    let pdu = await c.next();
    assert.equal(loginStatus(pdu!), 0);
    c.sendLogin(encodeText([['CHAP_A', '5']]));
    pdu = await c.next();
    assert.equal(loginStatus(pdu!), 0);
    const answer = new Map(parseText(pdu!.data));
    assert.ok(answer.has('CHAP_C') && answer.has('CHAP_I'), 'challenge sent');
    return c;
  }

  test('rfc7143 12.1.3 / 11.13.5: wrong or malformed CHAP responses -> authentication failure, nothing else', async () => {
    const cases: Array<[string, TextPair[], number[]]> = [
      [
        'a wrong 16-byte response',
        [
          ['CHAP_N', CHAP_USER],
          ['CHAP_R', `0x${'00'.repeat(16)}`],
        ],
        [0x0201],
      ],
      [
        'an unknown user',
        [
          ['CHAP_N', 'nobody'],
          ['CHAP_R', `0x${'11'.repeat(16)}`],
        ],
        [0x0201],
      ],
      [
        'a 1-byte response',
        [
          ['CHAP_N', CHAP_USER],
          ['CHAP_R', '0x00'],
        ],
        [0x0201, 0x0200],
      ],
      [
        'a non-hex response',
        [
          ['CHAP_N', CHAP_USER],
          ['CHAP_R', '0xzz'],
        ],
        [0x0201, 0x0200],
      ],
      ['no CHAP_R', [['CHAP_N', CHAP_USER]], [0x0201, 0x0200, 0x0207]],
      [
        'an empty response',
        [
          ['CHAP_N', CHAP_USER],
          ['CHAP_R', ''],
        ],
        [0x0201, 0x0200],
      ],
    ];
    for (const [what, pairs, statuses] of cases) {
      const c = await chapChallenge();
      try {
        c.sendLogin(encodeText(pairs), { transit: true, nsg: LoginStage.LoginOperationalNegotiation });
        const pdu = await c.next();
        assert.ok(pdu, `${what}: closed without a Login Response`);
        const status = loginStatus(pdu);
        assert.ok(statuses.includes(status), `${what}: status 0x${status.toString(16)}`);
        assert.equal(await c.next(), null, `${what}: connection not closed`);
      } finally {
        c.destroy();
      }
    }
    await assertHealthy('wrong CHAP');
  });

  test('robustness: 300 half-open connections do not stall an honest session; closing them frees everything', async () => {
    const socks: Socket[] = [];
    for (let i = 0; i < 300; i++) {
      const sock = connect({ host: d.host, port: d.port });
      sock.on('error', () => {});
      // Half a BHS: the target waits for the rest (until firstPduTimeoutMs).
      if (i % 2 === 0) sock.write(Buffer.alloc(24, 0x03));
      socks.push(sock);
    }
    await delay(200);
    const started = Date.now();
    await assertHealthy('300 half-open connections');
    assert.ok(Date.now() - started < 5000, 'the honest session was slowed down');
    for (const sock of socks) sock.destroy();
    await delay(200);
    const s = await login(d, TARGET, { initiatorName: `${IQN}:after-flood` });
    await closeSession(s);
  });

  test('robustness: after all of the above an idle tgtd uses no CPU (no busy loop)', async () => {
    await delay(500);
    const pid = d.proc.pid!;
    const before = await cpuTicks(pid);
    await delay(3000);
    const used = (await cpuTicks(pid)) - before;
    // A spinning daemon burns ~300 ticks in 3 s; timers and GC stay far below 20 (0.2 s).
    assert.ok(used < 20, `tgtd used ${used} clock ticks in 3 idle seconds`);
  });
});

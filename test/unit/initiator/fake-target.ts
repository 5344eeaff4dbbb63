/**
 * A tiny in-process iSCSI target for initiator unit tests, built on src/iscsi's codec. It logs
 * in anyone (AuthMethod=None), answers operational keys (echo, or the values in `answers`),
 * and serves a RAM disk through INQUIRY, TEST UNIT READY, READ(10), WRITE(10), with Data-In
 * split at the initiator's MRDSL, R2Ts of at most MaxBurstLength, NOP-In echo, Text
 * (SendTargets, continued via TTT), TMF and Logout. Everything it receives is recorded.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PduFramer } from '../../../src/iscsi/framer.js';
import { PduWriter } from '../../../src/iscsi/pdu-writer.js';
import {
  bhsOpcode,
  DataOutView,
  encodeDataIn,
  encodeLoginResponse,
  encodeLogoutResponse,
  encodeNopIn,
  encodeR2T,
  encodeScsiResponse,
  encodeTaskMgmtResponse,
  encodeTextResponse,
  LoginRequestView,
  ScsiCommandView,
  senseLengthPrefix,
  TaskMgmtRequestView,
  TextRequestView,
  NopOutView,
  type Pdu,
} from '../../../src/iscsi/pdu.js';
import { encodeText, parseText, type TextPair } from '../../../src/iscsi/text.js';
import { Opcode, RESERVED_TAG } from '../../../src/iscsi/spec.js';

export interface FakeTargetOptions {
  /** Replace the echo for these operational keys. */
  answers?: Record<string, string>;
  /** Keys the target declares/proposes itself in its operational answer. */
  targetKeys?: TextPair[];
  /** MaxCmdSN = ExpCmdSN + window - 1. */
  window?: number;
  /** Login status to fail with ((class << 8) | detail). */
  loginStatus?: number;
  /** Hold SCSI commands with these opcodes without answering (for TMF tests). */
  holdOpcodes?: number[];
  /** SendTargets answer: this many fake targets. */
  discoveryTargets?: number;
  diskBytes?: number;
}

export interface ReceivedPdu {
  opcode: number;
  bhs: Buffer;
  data: Buffer;
}

export class FakeTarget {
  readonly received: ReceivedPdu[] = [];
  readonly disk: Buffer;
  /** CmdSNs that arrived above the advertised MaxCmdSN. */
  readonly windowViolations: number[] = [];
  /** Negotiated with the last connection. */
  negotiated = new Map<string, string>();
  sockets: Socket[] = [];
  private server: Server;
  port = 0;
  private expCmdSN = 0;
  private statSN = 100;
  private held: { itt: number; lun: Buffer }[] = [];
  private conn: { socket: Socket; writer: PduWriter; framer: PduFramer } | undefined;
  private writes = new Map<
    number,
    { cmd: Buffer; buf: Buffer; got: number; lba: number; nextR2T: number; ttt: number }
  >();
  private nextTtt = 1;

  constructor(readonly options: FakeTargetOptions = {}) {
    this.disk = Buffer.alloc(options.diskBytes ?? 1024 * 1024);
    this.server = createServer((socket) => this.accept(socket));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get maxCmdSN(): number {
    // Held commands occupy the window until answered, so a small window really closes.
    return (this.expCmdSN + (this.options.window ?? 64) - 1 - this.held.length) >>> 0;
  }

  /** Send a target-initiated NOP-In ping (TTT given) on the current connection. */
  ping(ttt: number): void {
    const bhs = encodeNopIn(Buffer.alloc(48), {
      itt: RESERVED_TAG,
      ttt,
      statSN: this.statSN,
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
    });
    this.conn!.writer.send(bhs);
  }

  /** Widen the window by answering a held command (or just with a NOP-In update). */
  releaseHeld(): void {
    for (const h of this.held.splice(0)) this.respond(h.itt, 0);
  }

  private accept(socket: Socket): void {
    this.sockets.push(socket);
    const writer = new PduWriter(socket);
    const framer = new PduFramer(
      (pdu) => this.onPdu(pdu),
      () => socket.destroy(),
      { maxDataSegmentLength: 1 << 24 },
    );
    this.conn = { socket, writer, framer };
    socket.on('data', (c: Buffer) => framer.push(c));
    socket.on('error', () => undefined);
  }

  private seq() {
    return { statSN: this.statSN++, expCmdSN: this.expCmdSN, maxCmdSN: this.maxCmdSN };
  }

  private onPdu(pdu: Pdu): void {
    const op = bhsOpcode(pdu.bhs);
    this.received.push({ opcode: op, bhs: Buffer.from(pdu.bhs), data: Buffer.from(pdu.data) });
    const immediate = (pdu.bhs[0]! & 0x40) !== 0;
    if (op !== Opcode.DataOut && op !== Opcode.LoginRequest) {
      const cmdSN = pdu.bhs.readUInt32BE(24);
      if (!immediate) {
        if (((cmdSN - this.maxCmdSN) | 0) > 0) this.windowViolations.push(cmdSN);
        if (cmdSN === this.expCmdSN) this.expCmdSN = (this.expCmdSN + 1) >>> 0;
      }
    }
    switch (op) {
      case Opcode.LoginRequest:
        return this.onLogin(pdu);
      case Opcode.ScsiCommand:
        return this.onCommand(pdu);
      case Opcode.DataOut:
        return this.onDataOut(pdu);
      case Opcode.NopOut: {
        const v = new NopOutView(pdu.bhs);
        if (v.itt === RESERVED_TAG) return; // answer to our ping
        const bhs = encodeNopIn(Buffer.alloc(48), { itt: v.itt, ttt: RESERVED_TAG, ...this.seq() });
        this.conn!.writer.send(bhs, Buffer.from(pdu.data));
        return;
      }
      case Opcode.TextRequest:
        return this.onText(pdu);
      case Opcode.TaskMgmtRequest: {
        const v = new TaskMgmtRequestView(pdu.bhs);
        // Aborted tasks get no response (RFC 7143 4.2.3); drop them from the held list.
        this.held = this.held.filter((h) => h.itt !== v.referencedTaskTag && !h.lun.equals(v.lun));
        this.conn!.writer.send(
          encodeTaskMgmtResponse(Buffer.alloc(48), { itt: v.itt, response: 0, ...this.seq() }),
        );
        return;
      }
      case Opcode.LogoutRequest: {
        const bhs = encodeLogoutResponse(Buffer.alloc(48), {
          itt: pdu.bhs.readUInt32BE(16),
          response: 0,
          ...this.seq(),
        });
        this.conn!.writer.send(bhs);
        this.conn!.socket.end();
        return;
      }
    }
  }

  private onLogin(pdu: Pdu): void {
    const v = new LoginRequestView(pdu.bhs);
    this.expCmdSN = v.cmdSN;
    const pairs = parseText(pdu.data);
    const answer: TextPair[] = [];
    if (v.csg === 1) {
      for (const [k, value] of pairs) {
        if (k === 'InitiatorName' || k === 'TargetName' || k === 'SessionType') continue;
        if (k === 'MaxRecvDataSegmentLength') {
          this.negotiated.set('InitiatorMRDSL', value);
          continue;
        }
        const a = this.options.answers?.[k] ?? value.split(',')[0]!;
        this.negotiated.set(k, a);
        answer.push([k, a]);
      }
      answer.push(...(this.options.targetKeys ?? []));
    } else if (pairs.some(([k]) => k === 'AuthMethod')) {
      answer.push(['TargetPortalGroupTag', '1'], ['AuthMethod', 'None']);
    }
    const final = v.transit && v.nsg === 3;
    const bhs = encodeLoginResponse(Buffer.alloc(48), {
      itt: v.itt,
      transit: v.transit,
      csg: v.csg,
      nsg: v.transit ? v.nsg : 0,
      isid: v.isid,
      tsih: final ? 7 : 0,
      status: this.options.loginStatus ?? 0,
      statSN: this.statSN++,
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
    });
    this.conn!.writer.send(bhs, encodeText(answer));
    if (final) {
      const hd = this.negotiated.get('HeaderDigest') === 'CRC32C';
      const dd = this.negotiated.get('DataDigest') === 'CRC32C';
      this.conn!.framer.setDigests(hd, dd);
      this.conn!.writer.setDigests(hd, dd);
    }
  }

  private get mrdsl(): number {
    return Number(this.negotiated.get('InitiatorMRDSL') ?? 8192);
  }

  private respond(
    itt: number,
    status: number,
    sense?: Buffer,
    residual?: { under: boolean; count: number },
  ): void {
    const bhs = encodeScsiResponse(Buffer.alloc(48), {
      itt,
      status,
      underflow: residual?.under,
      overflow: residual ? !residual.under : undefined,
      residualCount: residual?.count,
      ...this.seq(),
    });
    this.conn!.writer.send(bhs, sense ? [senseLengthPrefix(sense.length), sense] : null);
  }

  /** Data-In cut at the initiator's MRDSL, status in the last PDU (phase collapse). */
  private sendData(itt: number, data: Buffer, edtl: number): void {
    const send = data.subarray(0, Math.min(data.length, edtl));
    const max = this.mrdsl;
    let dataSN = 0;
    for (let off = 0; off < send.length; off += max) {
      const end = Math.min(send.length, off + max);
      const last = end === send.length;
      const residual = edtl - send.length;
      const bhs = encodeDataIn(Buffer.alloc(48), {
        itt,
        final: last,
        statusPresent: last,
        status: 0,
        underflow: last && residual > 0,
        residualCount: last ? Math.max(0, residual) : 0,
        dataSN: dataSN++,
        bufferOffset: off,
        ...(last ? this.seq() : { expCmdSN: this.expCmdSN, maxCmdSN: this.maxCmdSN }),
      });
      this.conn!.writer.send(bhs, send.subarray(off, end));
    }
    if (send.length === 0)
      this.respond(itt, 0, undefined, edtl > 0 ? { under: true, count: edtl } : undefined);
  }

  private onCommand(pdu: Pdu): void {
    const v = new ScsiCommandView(pdu.bhs);
    const cdb = v.cdb;
    if (this.options.holdOpcodes?.includes(cdb[0]!)) {
      this.held.push({ itt: v.itt, lun: Buffer.from(v.lun) });
      return;
    }
    switch (cdb[0]) {
      case 0x00:
        return this.respond(v.itt, 0);
      case 0x12: {
        const inq = Buffer.alloc(36);
        inq.write('FAKE    fake-target     0001', 8, 'latin1');
        inq[4] = 31;
        return this.sendData(v.itt, inq.subarray(0, Math.min(36, cdb.readUInt16BE(3))), v.edtl);
      }
      case 0x28: {
        const lba = cdb.readUInt32BE(2);
        const blocks = cdb.readUInt16BE(7);
        return this.sendData(v.itt, this.disk.subarray(lba * 512, (lba + blocks) * 512), v.edtl);
      }
      case 0x2a: {
        const lba = cdb.readUInt32BE(2);
        const buf = Buffer.alloc(cdb.readUInt16BE(7) * 512);
        const w = { cmd: Buffer.from(pdu.bhs), buf, got: 0, lba, nextR2T: 0, ttt: 0 };
        if (pdu.data.length > 0) {
          pdu.data.copy(buf, 0);
          w.got = pdu.data.length;
        }
        this.writes.set(v.itt, w);
        // Unsolicited Data-Out follows unless F is set.
        const unsolicitedEnd = (pdu.bhs[1]! & 0x80) === 0 ? Math.min(buf.length, this.firstBurst) : w.got;
        w.nextR2T = unsolicitedEnd;
        if (w.got === unsolicitedEnd) this.nextWriteStep(v.itt);
        return;
      }
      default: {
        const sense = Buffer.alloc(18);
        sense[0] = 0x70;
        sense[2] = 0x05;
        sense[7] = 10;
        sense[12] = 0x20;
        return this.respond(v.itt, 2, sense);
      }
    }
  }

  private get firstBurst(): number {
    return Number(this.negotiated.get('FirstBurstLength') ?? 65536);
  }

  private onDataOut(pdu: Pdu): void {
    const v = new DataOutView(pdu.bhs);
    const w = this.writes.get(v.itt);
    if (!w) return;
    pdu.data.copy(w.buf, v.bufferOffset);
    w.got += pdu.data.length;
    if (v.final && w.got >= w.nextR2T) this.nextWriteStep(v.itt);
  }

  /** Issue the next R2T (one outstanding, at most MaxBurstLength), or finish the write. */
  private nextWriteStep(itt: number): void {
    const w = this.writes.get(itt)!;
    if (w.got >= w.buf.length) {
      w.buf.copy(this.disk, w.lba * 512);
      this.writes.delete(itt);
      return this.respond(itt, 0);
    }
    const maxBurst = Number(this.negotiated.get('MaxBurstLength') ?? 262144);
    const len = Math.min(maxBurst, w.buf.length - w.got);
    const bhs = encodeR2T(Buffer.alloc(48), {
      itt,
      ttt: this.nextTtt++,
      r2tSN: 0,
      bufferOffset: w.got,
      desiredDataTransferLength: len,
      statSN: this.statSN,
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
    });
    w.nextR2T = w.got + len;
    this.conn!.writer.send(bhs);
  }

  private textPending: Buffer | undefined;

  private onText(pdu: Pdu): void {
    const v = new TextRequestView(pdu.bhs);
    if (v.ttt === RESERVED_TAG) {
      const pairs: TextPair[] = [];
      for (let i = 0; i < (this.options.discoveryTargets ?? 1); i++) {
        pairs.push(
          ['TargetName', `iqn.2026-11.test:fake-${i}`],
          ['TargetAddress', `127.0.0.1:${this.port},1`],
        );
      }
      this.textPending = encodeText(pairs);
    }
    // Chunk at 1000 bytes so a long answer needs the C bit + TTT continuation (RFC 7143 11.11).
    const all = this.textPending ?? Buffer.alloc(0);
    const chunk = all.subarray(0, 1000);
    this.textPending = all.subarray(chunk.length);
    const more = this.textPending.length > 0;
    const bhs = encodeTextResponse(Buffer.alloc(48), {
      itt: v.itt,
      final: !more,
      continue: more,
      ttt: more ? 0x1234 : RESERVED_TAG,
      ...this.seq(),
    });
    this.conn!.writer.send(bhs, chunk);
  }
}

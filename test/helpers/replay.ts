/**
 * Replays the initiator side of a captured iSCSI connection (test/helpers/pcap.ts) against a live
 * target, PDU by PDU, and records what the target answers next to what the captured target (tgt)
 * answered. Only the fields that legitimately differ between two targets are rewritten:
 *
 *   - ExpStatSN of every request: ours (StatSN + 1 of our last status-bearing response);
 *   - TSIH of Login Requests: the capture carries tgt's TSIH, mapped to ours once we issued one;
 *   - Target Transfer Tag of solicited Data-Out: the TTT of our R2T for the same burst (the
 *     replay waits for that R2T, and checks it asks for the same offset and length as tgt's);
 *   - Target Transfer Tag of a NOP-Out answering a target NOP-In: the TTT of our ping;
 *   - optionally the text of Login Requests (CHAP_R depends on the target's challenge);
 * and digests are recomputed for every PDU sent. CmdSN, ITT, LUN, CDB and data stay as captured.
 *
 * Public API:
 *   splitCapture(conn: TcpConnection): CapturedSession
 *   replayCapture(captured: CapturedSession, options: ReplayOptions): Promise<ReplayResult>
 *   continueWrite(result: ReplayResult, itt: number, fill: (offset: number, length: number) => Buffer,
 *                 pduLength?: number): Promise<Pdu>   (finish a write the capture cut short)
 *   class ReplayLink { received: Pdu[]; expStatSN; fullFeature; loginResponseKeys;
 *                      send(pdu): Pdu; waitFor(match, what): Promise<Pdu>; ofOpcode(op); close() }
 *   class ReplayError extends Error
 *   interfaces CapturedSession, ReplayOptions, ReplayResult, TaskExchange, WriteProgress
 */
import { IscsiConnection } from '../../src/initiator/connection.js';
import { PduFramer } from '../../src/iscsi/framer.js';
import {
  bhsFinal,
  bhsItt,
  bhsOpcode,
  DataInView,
  DataOutView,
  encodeDataOut,
  LoginResponseView,
  R2TView,
  ScsiCommandView,
  type Pdu,
} from '../../src/iscsi/pdu.js';
import {
  BHS_LENGTH,
  LoginStage,
  MAX_DATA_SEGMENT_LENGTH,
  Opcode,
  RESERVED_TAG,
} from '../../src/iscsi/spec.js';
import { encodeText, parseTextAllowRepeats, type TextPair } from '../../src/iscsi/text.js';
import type { TcpConnection } from './pcap.js';

/** The replay could not go on: the target did not answer as a faithful replay needs. */
export class ReplayError extends Error {
  override readonly name = 'ReplayError';
}

/** One TCP connection of a capture, split into whole PDUs per direction. */
export interface CapturedSession {
  /** Initiator -> target PDUs, in order; a partial PDU at the end of the capture is left out. */
  requests: Pdu[];
  /** Target -> initiator PDUs, in order. */
  responses: Pdu[];
  /** Bytes of an incomplete trailing request PDU (the capture ended mid-PDU). */
  truncatedRequestBytes: number;
  /** CRC32C digests the captured session negotiated for full feature phase. */
  headerDigest: boolean;
  dataDigest: boolean;
  /** Keys of every Login Request / Response, in order (login text never continues here). */
  loginRequestKeys: TextPair[][];
  loginResponseKeys: TextPair[][];
}

function isFinalLoginResponse(bhs: Buffer): boolean {
  const v = new LoginResponseView(bhs);
  return v.status === 0 && v.transit && v.nsg === LoginStage.FullFeaturePhase;
}

/** The value a key finally got in a list of login responses (last one wins). */
function lastValue(keys: readonly TextPair[][], name: string): string | undefined {
  let value: string | undefined;
  for (const pairs of keys) for (const [k, v] of pairs) if (k === name) value = v;
  return value;
}

/** Frame the whole of one direction; `onPdu` may switch digests for the PDUs that follow. */
function frameAll(
  bytes: Buffer,
  onPdu: (pdu: Pdu, framer: PduFramer) => void,
): { pdus: Pdu[]; leftover: number } {
  const pdus: Pdu[] = [];
  const framer: PduFramer = new PduFramer(
    (pdu) => {
      pdus.push(pdu);
      onPdu(pdu, framer);
    },
    (err) => {
      throw new ReplayError(`capture does not frame: ${err.message}`);
    },
    { maxDataSegmentLength: MAX_DATA_SEGMENT_LENGTH },
  );
  framer.push(bytes);
  return { pdus, leftover: framer.bufferedBytes };
}

/**
 * Split one captured connection into PDUs. RFC 7143 13.1: digests start with the first PDU after
 * the final Login Response, so the target stream switches right after that response and the
 * initiator stream right after the Login Request it answered (the n-th request for the n-th
 * response: login is strictly request/response).
 */
export function splitCapture(conn: TcpConnection): CapturedSession {
  const loginResponseKeys: TextPair[][] = [];
  let finalLoginIndex = -1;
  let headerDigest = false;
  let dataDigest = false;
  const target = frameAll(conn.serverToClient.bytes, (pdu, framer) => {
    if (bhsOpcode(pdu.bhs) !== Opcode.LoginResponse) return;
    loginResponseKeys.push(parseTextAllowRepeats(pdu.data));
    if (!isFinalLoginResponse(pdu.bhs)) return;
    finalLoginIndex = loginResponseKeys.length - 1;
    headerDigest = lastValue(loginResponseKeys, 'HeaderDigest') === 'CRC32C';
    dataDigest = lastValue(loginResponseKeys, 'DataDigest') === 'CRC32C';
    framer.setDigests(headerDigest, dataDigest);
  });
  const loginRequestKeys: TextPair[][] = [];
  const initiator = frameAll(conn.clientToServer.bytes, (pdu, framer) => {
    if (bhsOpcode(pdu.bhs) !== Opcode.LoginRequest) return;
    loginRequestKeys.push(parseTextAllowRepeats(pdu.data));
    if (loginRequestKeys.length - 1 === finalLoginIndex) framer.setDigests(headerDigest, dataDigest);
  });
  return {
    requests: initiator.pdus,
    responses: target.pdus,
    truncatedRequestBytes: initiator.leftover,
    headerDigest,
    dataDigest,
    loginRequestKeys,
    loginResponseKeys,
  };
}

/** What one initiator task (by ITT) got from tgt in the capture and from us in the replay. */
export interface TaskExchange {
  /** The captured request that opened the task (SCSI Command, Text, NOP-Out, Logout, TMF). */
  request: Pdu;
  /** tgt's PDUs for this ITT in the capture (Data-In, R2T, responses). */
  tgt: Pdu[];
  /** Our PDUs for this ITT. */
  ours: Pdu[];
}

export interface ReplayOptions {
  host: string;
  port: number;
  /** Replace the text of a Login Request; gets the captured keys and our last Login Response's keys. */
  rewriteLogin?: (captured: TextPair[], ourLastResponse: TextPair[], index: number) => TextPair[];
  /** tgt TSIH -> our TSIH, shared between connections of one capture (filled in by the replay). */
  tsihMap?: Map<number, number>;
  /** Stop after this many requests (default: all complete PDUs of the capture). */
  requestLimit?: number;
  /** Per-wait timeout (default 10 s). */
  timeoutMs?: number;
}

export interface ReplayResult {
  link: ReplayLink;
  captured: CapturedSession;
  /** Login PDUs side by side: captured requests, tgt's responses, our responses (same order). */
  login: { requests: Pdu[]; tgt: Pdu[]; ours: Pdu[] };
  /** Every non-login task of the capture that was replayed, by ITT. */
  tasks: Map<number, TaskExchange>;
  /** How many captured requests were sent. */
  replayed: number;
  /** Which requests were sent, as sent (after rewrites). */
  sent: Pdu[];
  /** Writes that needed Data-Out, by ITT: how far the replay got. */
  writes: Map<number, WriteProgress>;
}

/** How much of a write's data was sent (immediate data + Data-Out). */
export interface WriteProgress {
  edtl: number;
  sent: number;
  /** Our R2Ts answered so far, and the DataSN of the last Data-Out sent. */
  r2tsUsed: number;
  lastDataSN: number;
}

/** Opcodes whose StatSN is consumed (the next response carries StatSN + 1): RFC 7143 4.2.2.2. */
function carriesStatus(bhs: Buffer): boolean {
  switch (bhsOpcode(bhs)) {
    case Opcode.ScsiResponse:
    case Opcode.TaskMgmtResponse:
    case Opcode.LoginResponse:
    case Opcode.TextResponse:
    case Opcode.LogoutResponse:
    case Opcode.Reject:
      return true;
    case Opcode.DataIn:
      return new DataInView(bhs).statusPresent;
    case Opcode.NopIn:
      return bhsItt(bhs) !== RESERVED_TAG;
    default:
      return false;
  }
}

/** True for the PDU that ends a task: its response, or a Data-In carrying status. */
function endsTask(bhs: Buffer): boolean {
  const op = bhsOpcode(bhs);
  if (op === Opcode.DataIn) return new DataInView(bhs).statusPresent;
  if (op === Opcode.TextResponse) return bhsFinal(bhs);
  return (
    op === Opcode.ScsiResponse ||
    op === Opcode.TaskMgmtResponse ||
    op === Opcode.LogoutResponse ||
    op === Opcode.NopIn ||
    op === Opcode.LoginResponse
  );
}

interface Waiter {
  match: (p: Pdu) => boolean;
  resolve: (p: Pdu) => void;
  fail: (why: string) => void;
}

/** The live side of a replay: one connection to our target, recording everything it receives. */
export class ReplayLink {
  /** Every PDU received, in order (copies). */
  readonly received: Pdu[] = [];
  /** Our StatSN + 1 of the last status-bearing response, once there is one. */
  expStatSN: number | undefined;
  /** Our final Login Response arrived. */
  fullFeature = false;
  /** Keys of every Login Response we got, in order. */
  readonly loginResponseKeys: TextPair[][] = [];
  private waiters: Waiter[] = [];
  private readonly taken = new Set<Pdu>();

  private constructor(
    readonly conn: IscsiConnection,
    private readonly timeoutMs: number,
    /** Our MaxRecvDataSegmentLength for full feature phase (what the captured initiator declared). */
    private readonly maxRecvDataSegmentLength: number,
  ) {
    conn.onPdu = (pdu) => this.onPdu(pdu);
    conn.onClose((reason) => {
      for (const w of this.waiters.splice(0))
        w.fail(`connection closed (${reason?.message ?? 'by the target'})`);
    });
  }

  /** Connect to the target's portal. */
  static async open(host: string, port: number, timeoutMs: number, maxRecv: number): Promise<ReplayLink> {
    const conn = await IscsiConnection.connect({ host, port });
    return new ReplayLink(conn, timeoutMs, maxRecv);
  }

  private onPdu(pdu: Pdu): void {
    this.received.push(pdu);
    if (carriesStatus(pdu.bhs)) this.expStatSN = (pdu.bhs.readUInt32BE(24) + 1) >>> 0;
    if (bhsOpcode(pdu.bhs) === Opcode.LoginResponse) {
      this.loginResponseKeys.push(parseTextAllowRepeats(pdu.data));
      if (isFinalLoginResponse(pdu.bhs)) {
        // RFC 7143 13.1: digests apply from the PDU after the final Login Response (both ways).
        this.fullFeature = true;
        this.conn.setDigests(
          lastValue(this.loginResponseKeys, 'HeaderDigest') === 'CRC32C',
          lastValue(this.loginResponseKeys, 'DataDigest') === 'CRC32C',
        );
        this.conn.setMaxRecvDataSegmentLength(this.maxRecvDataSegmentLength);
      }
    }
    for (const w of this.waiters) {
      if (!this.taken.has(pdu) && w.match(pdu)) {
        this.taken.add(pdu);
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(pdu);
      }
    }
  }

  /**
   * The first received PDU matching `match` that no earlier waitFor took; waits for it when it
   * has not arrived yet. Rejects with a ReplayError naming `what` after the timeout or on close.
   */
  waitFor(match: (p: Pdu) => boolean, what: string): Promise<Pdu> {
    const have = this.received.find((p) => !this.taken.has(p) && match(p));
    if (have) {
      this.taken.add(have);
      return Promise.resolve(have);
    }
    if (this.conn.closed) return Promise.reject(new ReplayError(`waiting for ${what}: connection closed`));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
        fail: (why) => {
          clearTimeout(timer);
          reject(new ReplayError(`waiting for ${what}: ${why}`));
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== waiter);
        waiter.fail(`nothing within ${this.timeoutMs} ms`);
      }, this.timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Send a request with our ExpStatSN filled in (the BHS is modified in place; pass a copy). */
  send(pdu: Pdu): Pdu {
    if (this.expStatSN !== undefined) pdu.bhs.writeUInt32BE(this.expStatSN, 28);
    this.conn.send(pdu.bhs, pdu.data.length ? pdu.data : null, pdu.ahs);
    return pdu;
  }

  /** Received PDUs of one opcode. */
  ofOpcode(op: Opcode): Pdu[] {
    return this.received.filter((p) => bhsOpcode(p.bhs) === op);
  }

  /** Close the connection (waits for the target's FIN, or destroys after 2 s). */
  close(): Promise<void> {
    return this.conn.close(2000);
  }
}

/** A captured R2T and which of tgt's R2Ts for its task it was (0-based). */
interface R2TRef {
  r2t: R2TView;
  ordinal: number;
}

/** Find tgt's R2T a captured Data-Out answers: same ITT and TTT, burst containing its offset. */
function capturedR2TFor(tgt: readonly Pdu[], dataOut: DataOutView): R2TRef {
  let ordinal = 0;
  for (const p of tgt) {
    if (bhsOpcode(p.bhs) !== Opcode.R2T) continue;
    const r2t = new R2TView(p.bhs);
    const end = r2t.bufferOffset + r2t.desiredDataTransferLength;
    if (r2t.ttt === dataOut.ttt && dataOut.bufferOffset >= r2t.bufferOffset && dataOut.bufferOffset < end) {
      return { r2t, ordinal };
    }
    ordinal++;
  }
  throw new ReplayError(
    `captured Data-Out ITT 0x${dataOut.itt.toString(16)} offset ${dataOut.bufferOffset} has no captured R2T`,
  );
}

/** Wait for our `ordinal`-th R2T of a task and check it asks for what tgt's asked. */
async function ourR2T(link: ReplayLink, itt: number, ordinal: number, like?: R2TView): Promise<R2TView> {
  const r2ts = link.received.filter((p) => bhsOpcode(p.bhs) === Opcode.R2T && bhsItt(p.bhs) === itt);
  const pdu =
    r2ts[ordinal] ??
    (await link.waitFor(
      (p) =>
        bhsOpcode(p.bhs) === Opcode.R2T &&
        bhsItt(p.bhs) === itt &&
        link.received.filter((q) => bhsOpcode(q.bhs) === Opcode.R2T && bhsItt(q.bhs) === itt).length ===
          ordinal + 1,
      `R2T #${ordinal} for ITT 0x${itt.toString(16)}`,
    ));
  const ours = new R2TView(pdu.bhs);
  if (
    like &&
    (ours.bufferOffset !== like.bufferOffset ||
      ours.desiredDataTransferLength !== like.desiredDataTransferLength)
  ) {
    throw new ReplayError(
      `R2T #${ordinal} for ITT 0x${itt.toString(16)}: ours asks offset ${ours.bufferOffset} length ` +
        `${ours.desiredDataTransferLength}, tgt's asked offset ${like.bufferOffset} length ${like.desiredDataTransferLength}; ` +
        `the captured Data-Out sequence cannot be replayed faithfully`,
    );
  }
  return ours;
}

/** Copy a captured PDU so rewrites never touch the capture. */
function clonePdu(p: Pdu): Pdu {
  return { bhs: Buffer.from(p.bhs), ahs: p.ahs ? Buffer.from(p.ahs) : null, data: p.data };
}

/** Replay a captured connection against our target; see the file header. */
export async function replayCapture(
  captured: CapturedSession,
  options: ReplayOptions,
): Promise<ReplayResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxRecv = Number(
    captured.loginRequestKeys.flat().find(([k]) => k === 'MaxRecvDataSegmentLength')?.[1] ?? 8192,
  );
  const link = await ReplayLink.open(options.host, options.port, timeoutMs, maxRecv);
  const tsihMap = options.tsihMap ?? new Map<number, number>();

  // tgt's PDUs per ITT (login PDUs are kept apart, in order).
  const tgtLogin: Pdu[] = [];
  const tgtByItt = new Map<number, Pdu[]>();
  for (const p of captured.responses) {
    if (bhsOpcode(p.bhs) === Opcode.LoginResponse) tgtLogin.push(p);
    else if (bhsItt(p.bhs) !== RESERVED_TAG) {
      const list = tgtByItt.get(bhsItt(p.bhs)) ?? [];
      list.push(p);
      tgtByItt.set(bhsItt(p.bhs), list);
    }
  }
  const result: ReplayResult = {
    link,
    captured,
    login: { requests: [], tgt: tgtLogin, ours: [] },
    tasks: new Map(),
    replayed: 0,
    sent: [],
    writes: new Map(),
  };
  const writes = result.writes;
  const limit = Math.min(options.requestLimit ?? Infinity, captured.requests.length);

  for (let i = 0; i < limit; i++) {
    const req = captured.requests[i]!;
    const pdu = clonePdu(req);
    const op = bhsOpcode(pdu.bhs);
    const itt = bhsItt(pdu.bhs);
    const task = (): TaskExchange => {
      let t = result.tasks.get(itt);
      if (!t) {
        t = { request: req, tgt: tgtByItt.get(itt) ?? [], ours: [] };
        result.tasks.set(itt, t);
      }
      return t;
    };
    const finish = async (what: string): Promise<void> => {
      await link.waitFor((p) => bhsItt(p.bhs) === itt && endsTask(p.bhs), what);
    };

    switch (op) {
      case Opcode.LoginRequest: {
        const index = result.login.requests.length;
        result.login.requests.push(req);
        const tsih = pdu.bhs.readUInt16BE(14);
        if (tsih !== 0) {
          const ours = tsihMap.get(tsih);
          if (ours === undefined)
            throw new ReplayError(`Login Request with tgt's TSIH 0x${tsih.toString(16)} we never mapped`);
          pdu.bhs.writeUInt16BE(ours, 14);
        }
        if (options.rewriteLogin) {
          const pairs = options.rewriteLogin(
            parseTextAllowRepeats(req.data),
            link.loginResponseKeys.at(-1) ?? [],
            index,
          );
          pdu.data = encodeText(pairs);
        }
        result.sent.push(link.send(pdu));
        const ours = await link.waitFor(
          (p) => bhsOpcode(p.bhs) === Opcode.LoginResponse,
          `Login Response #${index}`,
        );
        result.login.ours.push(ours);
        const tgt = tgtLogin[index];
        const ourView = new LoginResponseView(ours.bhs);
        if (tgt && isFinalLoginResponse(tgt.bhs) && ourView.status === 0) {
          tsihMap.set(new LoginResponseView(tgt.bhs).tsih, ourView.tsih);
        }
        result.replayed++;
        if (ourView.status !== 0) return result; // RFC 7143 11.13.5: the target closes the connection
        continue;
      }
      case Opcode.DataOut: {
        const dout = new DataOutView(pdu.bhs);
        const progress = writes.get(itt);
        if (dout.ttt !== RESERVED_TAG) {
          // Solicited: answer our R2T for the same burst (RFC 7143 11.8.3 TTT echo).
          const ref = capturedR2TFor(task().tgt, dout);
          const ours = await ourR2T(link, itt, ref.ordinal, ref.r2t);
          pdu.bhs.writeUInt32BE(ours.ttt, 20);
          if (progress) progress.r2tsUsed = Math.max(progress.r2tsUsed, ref.ordinal + 1);
        }
        result.sent.push(link.send(pdu));
        if (progress) {
          progress.sent += pdu.data.length;
          progress.lastDataSN = dout.dataSN;
          if (progress.sent >= progress.edtl) await finish(`response to write ITT 0x${itt.toString(16)}`);
        }
        break;
      }
      case Opcode.NopOut: {
        const ttt = pdu.bhs.readUInt32BE(20);
        if (ttt !== RESERVED_TAG) {
          // 11.18.2: a NOP-Out answering a ping echoes the ping's TTT; wait for our own ping.
          const ping = await link.waitFor(
            (p) => bhsOpcode(p.bhs) === Opcode.NopIn && bhsItt(p.bhs) === RESERVED_TAG,
            'a NOP-In ping to answer',
          );
          pdu.bhs.writeUInt32BE(ping.bhs.readUInt32BE(20), 20);
        }
        task();
        result.sent.push(link.send(pdu));
        if (itt !== RESERVED_TAG) await finish(`NOP-In for ITT 0x${itt.toString(16)}`);
        break;
      }
      case Opcode.ScsiCommand: {
        task();
        result.sent.push(link.send(pdu));
        const cmd = new ScsiCommandView(pdu.bhs);
        if (cmd.write && cmd.edtl > pdu.data.length) {
          // Completes after its last Data-Out (unsolicited or answering our R2Ts), not now.
          writes.set(itt, { edtl: cmd.edtl, sent: pdu.data.length, r2tsUsed: 0, lastDataSN: -1 });
        } else {
          await finish(`response to SCSI command ITT 0x${itt.toString(16)}`);
        }
        break;
      }
      case Opcode.TextRequest:
      case Opcode.LogoutRequest:
      case Opcode.TaskMgmtRequest: {
        task();
        result.sent.push(link.send(pdu));
        await finish(`response to ${Opcode[op]} ITT 0x${itt.toString(16)}`);
        break;
      }
      default:
        throw new ReplayError(`replay of ${Opcode[op] ?? op} PDUs is not implemented`);
    }
    result.replayed++;
  }
  // Give stray PDUs (a Reject, an async message) a moment to arrive before the caller looks.
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const p of link.received) {
    const t = result.tasks.get(bhsItt(p.bhs));
    if (t && bhsOpcode(p.bhs) !== Opcode.LoginResponse) t.ours.push(p);
  }
  return result;
}

/**
 * Finish a write the capture cut short: answer our remaining R2Ts with Data-Out PDUs of
 * `pduLength` bytes whose data `fill` makes up, then wait for the SCSI Response (returned).
 * This goes beyond the capture; it lets a test read back what the captured part stored.
 */
export async function continueWrite(
  result: ReplayResult,
  itt: number,
  fill: (offset: number, length: number) => Buffer,
  pduLength = 8192,
): Promise<Pdu> {
  const progress = result.writes.get(itt);
  if (!progress) throw new ReplayError(`no pending write with ITT 0x${itt.toString(16)}`);
  const link = result.link;
  // Data-Out in the burst we are in continues its DataSN; a new burst starts at 0 (11.7.5).
  let r2tIndex = Math.max(progress.r2tsUsed - 1, 0);
  let dataSN = progress.lastDataSN + 1;
  while (progress.sent < progress.edtl) {
    const r2t = await ourR2T(link, itt, r2tIndex);
    const end = r2t.bufferOffset + r2t.desiredDataTransferLength;
    if (progress.sent >= end) {
      r2tIndex++;
      dataSN = 0;
      continue;
    }
    const offset = progress.sent;
    const length = Math.min(pduLength, end - offset);
    const bhs = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
      final: offset + length === end,
      lun: result.tasks.get(itt)!.request.bhs.subarray(8, 16),
      itt,
      ttt: r2t.ttt,
      expStatSN: 0,
      dataSN: dataSN++,
      bufferOffset: offset,
    });
    link.send({ bhs, ahs: null, data: fill(offset, length) });
    progress.sent += length;
  }
  return link.waitFor(
    (p) => bhsItt(p.bhs) === itt && endsTask(p.bhs),
    `response to the completed write ITT 0x${itt.toString(16)}`,
  );
}

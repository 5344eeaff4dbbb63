/**
 * An iSCSI session over one connection (RFC 7143): login (security + operational stages),
 * full-feature phase (SCSI commands with the CmdSN window, immediate/unsolicited data, R2T,
 * Data-In), NOP, task management, Text (SendTargets) and logout. A raw mode hands every
 * received PDU to the caller for protocol tests, while still tracking sequence numbers.
 *
 *   connect -> login() -> command()/helpers ... -> logout()
 *                  |            \__ raw: sendPdu()/sendBytes() + receivePdu()
 *   Login Request/Response loop  (CSG 0 -> 1 -> 3)
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import {
  BHS_LENGTH,
  LoginStage,
  LogoutReason,
  Opcode,
  RESERVED_TAG,
  TaskAttr,
  TmfFunction,
  TmfResponse,
} from '../iscsi/spec.js';
import {
  bhsItt,
  bhsOpcode,
  DataInView,
  encodeBidiReadLengthAhs,
  encodeDataOut,
  encodeExtendedCdbAhs,
  encodeLoginRequest,
  encodeLogoutRequest,
  encodeNopOut,
  encodeScsiCommand,
  encodeTaskMgmtRequest,
  encodeTextRequest,
  LoginResponseView,
  LogoutResponseView,
  NopInView,
  R2TView,
  RejectView,
  ScsiResponseView,
  senseFromData,
  TaskMgmtResponseView,
  TextResponseView,
  type Pdu,
} from '../iscsi/pdu.js';
import type { DataSegment } from '../iscsi/pdu-writer.js';
import { encodeText, parseTextAllowRepeats, TextAccumulator, type TextPair } from '../iscsi/text.js';
import { InitiatorChap, type InitiatorChapOptions } from '../iscsi/chap.js';
import { IscsiConnection, type ConnectOptions } from './connection.js';
import { InitiatorError, LoginFailedError, RejectedError } from './errors.js';
import { LoginNegotiator, type LoginProposals, type NegotiatedParams } from './negotiation.js';
import { decodeSense, type Sense } from './sense.js';
import * as cdbs from './cdb.js';

/** How the initiator authenticates in the security stage. */
export type AuthOptions = { method: 'None' } | ({ method: 'CHAP' } & InitiatorChapOptions);

export interface SessionOptions extends ConnectOptions {
  /** Default "iqn.2026-11.org.tgt-ts:initiator". */
  initiatorName?: string;
  /** Required for Normal sessions. */
  targetName?: string;
  sessionType?: 'Normal' | 'Discovery';
  /** 6-byte ISID; default: random, type 0x80 ("random" format, RFC 7143 11.12.5). */
  isid?: Buffer;
  /** Non-zero to add a connection to / reinstate an existing session. */
  tsih?: number;
  cid?: number;
  auth?: AuthOptions;
  proposals?: Partial<LoginProposals>;
  /** Keys appended to the first security-stage request (tests: unknown or malformed keys). */
  extraSecurityKeys?: TextPair[];
  /** Keys appended to the first operational-stage request. */
  extraOperationalKeys?: TextPair[];
  /** Start in the operational stage (allowed only without authentication, RFC 7143 6.3). */
  skipSecurityStage?: boolean;
  /** Default timeout for login, commands and other requests (default 30 s). */
  timeoutMs?: number;
  /** Answer target NOP-In pings automatically (default true). */
  answerNopIns?: boolean;
  /** First CmdSN (default 1). */
  initialCmdSN?: number;
}

/** SCSI residual (RFC 7143 11.4.5). */
export interface Residual {
  kind: 'overflow' | 'underflow';
  count: number;
}

export interface ScsiResult {
  /** SCSI status (0 GOOD, 2 CHECK CONDITION, ...). */
  status: number;
  sense?: Sense;
  /** Data-In received (a view of the read buffer, as long as the data actually sent). */
  data: Buffer;
  residual?: Residual;
  /** Bidirectional read residual (o/u bits of the SCSI Response). */
  bidiResidual?: Residual;
  /** iSCSI Response byte (0 = command completed at target); non-zero only from a SCSI Response. */
  response: number;
  /** True when the status came in the last Data-In (phase collapse, 11.7.3). */
  statusInDataIn: boolean;
  itt: number;
}

export interface ScsiRequest {
  lun?: number | bigint | Buffer;
  cdb: Buffer;
  /** Data-Out payload (views are sent as they are, never copied). */
  dataOut?: Buffer | readonly Buffer[];
  /** Expected Data-In length (for bidi, the bidirectional read length). */
  readLength?: number;
  /** Where Data-In lands (default: a new buffer of readLength). */
  readInto?: Buffer;
  attr?: TaskAttr;
  immediate?: boolean;
  /** Override the Expected Data Transfer Length (tests of residual handling). */
  edtl?: number;
  timeoutMs?: number;
}

export interface DiscoveredTarget {
  name: string;
  /** TargetAddress values as sent ("127.0.0.1:3260,1"). */
  addresses: string[];
}

interface ScsiTask {
  kind: 'scsi';
  itt: number;
  cmdSN: number;
  lun: Buffer;
  readBuf: Buffer | null;
  received: number;
  nextDataSN: number;
  writeSegs: readonly Buffer[];
  writeLength: number;
  statusInDataIn: boolean;
  resolve: (r: ScsiResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

interface SimpleTask {
  kind: 'simple';
  itt: number;
  cmdSN: number;
  expect: Opcode;
  resolve: (pdu: Pdu) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

type Task = ScsiTask | SimpleTask;

/** RFC 1982 serial number arithmetic on 32 bits: a < b. */
export function serialLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

const DEFAULT_INITIATOR_NAME = 'iqn.2026-11.org.tgt-ts:initiator';
const MAX_LOGIN_ROUNDS = 32;

export class Session {
  readonly connection: IscsiConnection;
  readonly options: SessionOptions;
  readonly isid: Buffer;
  state: 'login' | 'full-feature' | 'logged-out' | 'closed' = 'login';
  tsih = 0;
  /** Next CmdSN to send. */
  cmdSN: number;
  expStatSN = 0;
  expCmdSN = 0;
  maxCmdSN = 0;
  /** Negotiated parameters (RFC defaults until login completes). */
  params: NegotiatedParams;
  /** Target NOP-In pings answered so far. */
  nopInsAnswered = 0;
  /** PDUs whose ITT matched nothing outstanding (outside raw mode). */
  unexpectedPdus = 0;
  /** Asynchronous Messages received (copies). */
  readonly asyncMessages: Pdu[] = [];

  private rawMode = false;
  private nextItt = 1;
  private readonly tasks = new Map<number, Task>();
  private windowWaiters: (() => void)[] = [];
  private readonly views = {
    dataIn: new DataInView(Buffer.alloc(BHS_LENGTH)),
    response: new ScsiResponseView(Buffer.alloc(BHS_LENGTH)),
    r2t: new R2TView(Buffer.alloc(BHS_LENGTH)),
    nopIn: new NopInView(Buffer.alloc(BHS_LENGTH)),
  };

  private constructor(connection: IscsiConnection, options: SessionOptions) {
    this.connection = connection;
    this.options = options;
    this.isid = options.isid ?? Buffer.concat([Buffer.from([0x80]), randomBytes(5)]);
    this.cmdSN = options.initialCmdSN ?? 1;
    this.params = new LoginNegotiator(options.proposals).result();
    connection.onClose((reason) => this.onClosed(reason));
  }

  /** Connect to the portal without logging in (for hand-driven login tests use `connection`). */
  static async connect(options: SessionOptions): Promise<Session> {
    return new Session(await IscsiConnection.connect(options), options);
  }

  /** Connect and log in; rejects with LoginFailedError, InitiatorError or a socket error. */
  static async login(options: SessionOptions): Promise<Session> {
    const session = await Session.connect(options);
    try {
      await session.login();
    } catch (err) {
      session.connection.destroy();
      throw err;
    }
    return session;
  }

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? 30_000;
  }

  // -------------------------------------------------------------------------------------------
  // Login (RFC 7143 6.3, 11.12, 11.13)

  /** Run the login phase to full feature phase. */
  async login(): Promise<NegotiatedParams> {
    if (this.state !== 'login') throw new InitiatorError('TGT_ERR_INI_STATE', `login in state ${this.state}`);
    const o = this.options;
    const discovery = o.sessionType === 'Discovery';
    if (!discovery && !o.targetName) throw new InitiatorError('TGT_ERR_INI_STATE', 'targetName is required');
    const negotiator = new LoginNegotiator(o.proposals, discovery);
    const auth = o.auth ?? { method: 'None' };
    const chap = auth.method === 'CHAP' ? new InitiatorChap(auth) : undefined;
    const itt = this.allocItt();

    const leading: TextPair[] = [['InitiatorName', o.initiatorName ?? DEFAULT_INITIATOR_NAME]];
    leading.push(['SessionType', discovery ? 'Discovery' : 'Normal']);
    if (!discovery) leading.push(['TargetName', o.targetName!]);

    let csg =
      o.skipSecurityStage && !chap ? LoginStage.LoginOperationalNegotiation : LoginStage.SecurityNegotiation;
    let keys: TextPair[];
    let transit: boolean;
    // Security stage progress: 'method' -> (CHAP) 'algorithm' -> 'response' -> 'verify'.
    let chapStep: 'method' | 'algorithm' | 'response' | 'verify' = 'method';
    if (csg === LoginStage.SecurityNegotiation) {
      keys = [...leading, ['AuthMethod', auth.method], ...(o.extraSecurityKeys ?? [])];
      transit = !chap; // with None we are ready to leave the security stage at once
    } else {
      keys = [...leading, ...negotiator.initialKeys(), ...(o.extraOperationalKeys ?? [])];
      transit = true;
    }
    let operationalSent = csg === LoginStage.LoginOperationalNegotiation;

    for (let round = 0; round < MAX_LOGIN_ROUNDS; round++) {
      const nsg =
        csg === LoginStage.SecurityNegotiation
          ? LoginStage.LoginOperationalNegotiation
          : LoginStage.FullFeaturePhase;
      const { view, pairs } = await this.loginExchange(itt, csg, nsg, transit, keys);
      const status = view.status;
      if (status !== 0) throw new LoginFailedError(status, pairs.find(([k]) => k === 'TargetAddress')?.[1]);
      if (view.csg !== csg) {
        throw new InitiatorError('TGT_ERR_INI_PROTOCOL', `Login Response CSG ${view.csg}, expected ${csg}`);
      }
      this.tsih = view.tsih;
      keys = [];
      if (csg === LoginStage.SecurityNegotiation) {
        negotiator.noteSecurityKeys(pairs);
        if (chap) {
          if (chapStep === 'method') {
            if (pairs.find(([k]) => k === 'AuthMethod')?.[1] !== 'CHAP') {
              throw new InitiatorError('TGT_ERR_INI_AUTH_FAILED', 'target did not accept AuthMethod=CHAP');
            }
            keys = chap.offer();
            chapStep = 'algorithm';
          } else if (chapStep === 'algorithm') {
            const answer = chap.respond(pairs);
            if (!answer)
              throw new InitiatorError('TGT_ERR_INI_AUTH_FAILED', 'bad CHAP challenge from target');
            keys = answer;
            chapStep = 'response';
            transit = true;
          } else if (chapStep === 'response' && pairs.some(([k]) => k === 'CHAP_N' || k === 'CHAP_R')) {
            // RFC 7143 12.1.3: mutual CHAP, the target proves it knows the outgoing secret.
            if (!chap.verifyTarget(pairs)) {
              throw new InitiatorError('TGT_ERR_INI_AUTH_FAILED', 'target failed mutual CHAP');
            }
            chapStep = 'verify';
          }
        }
        if (view.transit) {
          if (chap && chapStep !== 'verify' && !chap.verifyTarget([])) {
            throw new InitiatorError('TGT_ERR_INI_AUTH_FAILED', 'target skipped mutual CHAP authentication');
          }
          csg = view.nsg;
          if (csg === LoginStage.LoginOperationalNegotiation && !operationalSent) {
            keys = [...negotiator.initialKeys(), ...(o.extraOperationalKeys ?? [])];
            operationalSent = true;
          }
          transit = true;
        }
      } else {
        keys = negotiator.absorb(pairs);
        if (view.transit) csg = view.nsg;
        transit = true;
      }
      if (csg === LoginStage.FullFeaturePhase) {
        if (!view.transit) throw new InitiatorError('TGT_ERR_INI_PROTOCOL', 'FFP without transit');
        return this.enterFullFeature(negotiator.result());
      }
    }
    throw new InitiatorError('TGT_ERR_INI_NEGOTIATION', `login did not finish in ${MAX_LOGIN_ROUNDS} rounds`);
  }

  /** Send one Login Request and collect the complete response text (following C-bit continuations). */
  private async loginExchange(
    itt: number,
    csg: number,
    nsg: number,
    transit: boolean,
    keys: readonly TextPair[],
  ): Promise<{ view: LoginResponseView; pairs: TextPair[] }> {
    const text = new TextAccumulator();
    let data: Buffer = encodeText(keys);
    let t = transit;
    for (;;) {
      const bhs = encodeLoginRequest(Buffer.allocUnsafe(BHS_LENGTH), {
        itt,
        transit: t,
        csg,
        nsg: t ? nsg : 0,
        isid: this.isid,
        tsih: this.options.tsih ?? this.tsih,
        cid: this.options.cid ?? 0,
        cmdSN: this.cmdSN,
        expStatSN: this.expStatSN,
      });
      this.connection.send(bhs, data);
      const pdu = await this.connection.receive(this.timeoutMs);
      if (bhsOpcode(pdu.bhs) !== Opcode.LoginResponse) {
        throw new InitiatorError(
          'TGT_ERR_INI_PROTOCOL',
          `expected Login Response, got opcode 0x${bhsOpcode(pdu.bhs).toString(16)}`,
        );
      }
      const view = new LoginResponseView(pdu.bhs);
      if (view.itt !== itt) throw new InitiatorError('TGT_ERR_INI_PROTOCOL', 'Login Response ITT mismatch');
      this.noteStatSN(view.statSN);
      this.updateWindow(view.expCmdSN, view.maxCmdSN);
      if (!text.append(pdu.data)) throw new InitiatorError('TGT_ERR_INI_PROTOCOL', 'login text too long');
      // RFC 7143 11.13.3: C=1 -> ask for the rest with an empty request, T=0.
      if (view.continue && view.status === 0) {
        data = Buffer.alloc(0);
        t = false;
        continue;
      }
      return { view, pairs: parseTextAllowRepeats(text.take()) };
    }
  }

  private enterFullFeature(params: NegotiatedParams): NegotiatedParams {
    this.params = params;
    this.state = 'full-feature';
    // RFC 7143 13.1: digests apply from the first PDU after the final Login Response.
    this.connection.setDigests(params.headerDigest, params.dataDigest);
    this.connection.setMaxRecvDataSegmentLength(params.maxRecvDataSegmentLength);
    this.connection.onPdu = (pdu) => this.dispatch(pdu);
    // PDUs that arrived after the final Login Response but before onPdu was set.
    for (const pdu of this.connection.takeQueued()) this.dispatch(pdu);
    return params;
  }

  // -------------------------------------------------------------------------------------------
  // Raw mode (protocol tests)

  /**
   * In raw mode every received PDU goes to `receivePdu()` (copied) and nothing is answered
   * automatically; sequence numbers (StatSN, ExpCmdSN, MaxCmdSN) are still tracked.
   */
  setRawMode(on: boolean): void {
    this.rawMode = on;
  }

  /** The next PDU received in raw mode (or during login). */
  receivePdu(timeoutMs = this.timeoutMs): Promise<Pdu> {
    return this.connection.receive(timeoutMs);
  }

  /** Send a hand-built PDU; digests are added when negotiated. */
  sendPdu(bhs: Buffer, data: DataSegment = null, ahs: Buffer | null = null): boolean {
    return this.connection.send(bhs, data, ahs);
  }

  /** Send raw bytes (malformed framing, bad digests). */
  sendBytes(bytes: Buffer): boolean {
    return this.connection.sendBytes(bytes);
  }

  /** A fresh Initiator Task Tag (never 0xffffffff). */
  allocItt(): number {
    const itt = this.nextItt;
    this.nextItt = (this.nextItt + 1) >>> 0;
    if (this.nextItt === RESERVED_TAG) this.nextItt = 1;
    return itt;
  }

  /** Take the next CmdSN for a hand-built non-immediate request (advances the counter). */
  takeCmdSN(): number {
    const sn = this.cmdSN;
    this.cmdSN = (this.cmdSN + 1) >>> 0;
    return sn;
  }

  // -------------------------------------------------------------------------------------------
  // SCSI commands

  /** Send a SCSI command and wait for its status. */
  command(req: ScsiRequest): Promise<ScsiResult> {
    try {
      this.assertFullFeature();
    } catch (err) {
      return Promise.reject(err);
    }
    const lun = cdbs.encodeLun(req.lun ?? 0);
    const writeSegs: readonly Buffer[] =
      req.dataOut === undefined ? [] : Buffer.isBuffer(req.dataOut) ? [req.dataOut] : req.dataOut;
    let writeLength = 0;
    for (const s of writeSegs) writeLength += s.length;
    const readLength = req.readInto?.length ?? req.readLength ?? 0;
    const readBuf = req.readInto ?? (readLength > 0 ? Buffer.alloc(readLength) : null);
    const itt = this.allocItt();

    return new Promise<ScsiResult>((resolve, reject) => {
      const task: ScsiTask = {
        kind: 'scsi',
        itt,
        cmdSN: 0,
        lun,
        readBuf,
        received: 0,
        nextDataSN: 0,
        writeSegs,
        writeLength,
        statusInDataIn: false,
        resolve,
        reject,
        timer: undefined,
      };
      this.track(task, req.timeoutMs);
      this.acquireCmdSN(req.immediate ?? false).then(
        (cmdSN) => {
          task.cmdSN = cmdSN;
          this.sendCommand(task, req, readLength);
        },
        (err: Error) => this.fail(task, err),
      );
    });
  }

  private sendCommand(task: ScsiTask, req: ScsiRequest, readLength: number): void {
    const p = this.params;
    const { writeLength } = task;
    const bidi = writeLength > 0 && readLength > 0;
    // RFC 7143 13.13/13.14: immediate data up to FirstBurstLength (and our send limit), then
    // unsolicited Data-Out up to FirstBurstLength when InitialR2T=No.
    const immediateLength = p.immediateData
      ? Math.min(writeLength, p.firstBurstLength, p.maxXmitDataSegmentLength)
      : 0;
    const unsolicitedEnd = p.initialR2T ? immediateLength : Math.min(writeLength, p.firstBurstLength);
    let ahs: Buffer | null = encodeExtendedCdbAhs(req.cdb);
    if (bidi) {
      const bidiAhs = encodeBidiReadLengthAhs(readLength);
      ahs = ahs ? Buffer.concat([ahs, bidiAhs]) : bidiAhs;
    }
    const bhs = encodeScsiCommand(Buffer.allocUnsafe(BHS_LENGTH), {
      itt: task.itt,
      lun: task.lun,
      cmdSN: task.cmdSN,
      expStatSN: this.expStatSN,
      immediate: req.immediate,
      final: unsolicitedEnd === immediateLength,
      read: readLength > 0,
      write: writeLength > 0,
      attr: req.attr ?? TaskAttr.Simple,
      edtl: req.edtl ?? (writeLength > 0 ? writeLength : readLength),
      cdb: req.cdb,
    });
    this.connection.batch(() => {
      this.connection.send(bhs, immediateLength > 0 ? slice(task.writeSegs, 0, immediateLength) : null, ahs);
      if (unsolicitedEnd > immediateLength)
        this.sendDataOut(task, RESERVED_TAG, immediateLength, unsolicitedEnd);
    });
  }

  /** Data-Out PDUs for [from, to) of the write data, each within the target's MRDSL (11.8). */
  private sendDataOut(task: ScsiTask, ttt: number, from: number, to: number): void {
    const max = this.params.maxXmitDataSegmentLength;
    let dataSN = 0;
    for (let off = from; off < to; off += max) {
      const end = Math.min(to, off + max);
      const bhs = encodeDataOut(Buffer.allocUnsafe(BHS_LENGTH), {
        itt: task.itt,
        lun: task.lun,
        ttt,
        final: end === to,
        expStatSN: this.expStatSN,
        dataSN: dataSN++,
        bufferOffset: off,
      });
      this.connection.send(bhs, slice(task.writeSegs, off, end));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Other requests

  /** NOP-Out ping (11.18); resolves with the NOP-In's data. */
  async nop(data: Buffer = Buffer.alloc(0), immediate = true): Promise<Buffer> {
    this.assertFullFeature();
    const pdu = await this.request(Opcode.NopIn, immediate, (itt, cmdSN) => {
      const bhs = encodeNopOut(Buffer.allocUnsafe(BHS_LENGTH), {
        itt,
        ttt: RESERVED_TAG,
        cmdSN,
        expStatSN: this.expStatSN,
        immediate,
      });
      this.connection.send(bhs, data.length > 0 ? data : null);
    });
    return pdu.data;
  }

  /** Task management request (11.5); resolves with the TmfResponse code. */
  async taskManagement(
    fn: TmfFunction,
    opts: {
      lun?: number | bigint | Buffer;
      referencedTaskTag?: number;
      refCmdSN?: number;
      immediate?: boolean;
    } = {},
  ): Promise<TmfResponse> {
    this.assertFullFeature();
    const lun = cdbs.encodeLun(opts.lun ?? 0);
    const referenced =
      opts.referencedTaskTag !== undefined ? this.tasks.get(opts.referencedTaskTag) : undefined;
    const pdu = await this.request(Opcode.TaskMgmtResponse, opts.immediate ?? true, (itt, cmdSN) => {
      const bhs = encodeTaskMgmtRequest(Buffer.allocUnsafe(BHS_LENGTH), {
        itt,
        lun,
        function: fn,
        referencedTaskTag: opts.referencedTaskTag,
        // RFC 7143 11.5.3: RefCmdSN is the referenced task's CmdSN for ABORT TASK.
        refCmdSN: opts.refCmdSN ?? referenced?.cmdSN ?? cmdSN,
        cmdSN,
        expStatSN: this.expStatSN,
        immediate: opts.immediate ?? true,
      });
      this.connection.send(bhs);
    });
    const response = new TaskMgmtResponseView(pdu.bhs).response as TmfResponse;
    if (response === TmfResponse.FunctionComplete) this.dropAbortedTasks(fn, lun, opts.referencedTaskTag);
    return response;
  }

  /** ABORT TASK for a command sent by this session (by its ITT, see ScsiResult.itt / pendingItts()). */
  abortTask(itt: number, lun: number | bigint | Buffer = 0): Promise<TmfResponse> {
    return this.taskManagement(TmfFunction.AbortTask, { lun, referencedTaskTag: itt });
  }

  /** LOGICAL UNIT RESET. */
  lunReset(lun: number | bigint | Buffer): Promise<TmfResponse> {
    return this.taskManagement(TmfFunction.LogicalUnitReset, { lun });
  }

  /** ITTs of SCSI commands still waiting for status, oldest first. */
  pendingItts(): number[] {
    return [...this.tasks.values()].filter((t) => t.kind === 'scsi').map((t) => t.itt);
  }

  /** Text request/response exchange with continuation via TTT (11.10.4); returns all pairs. */
  async text(keys: readonly TextPair[]): Promise<TextPair[]> {
    this.assertFullFeature();
    const acc = new TextAccumulator(1024 * 1024);
    let ttt = RESERVED_TAG;
    let data: Buffer = encodeText(keys);
    const itt = this.allocItt();
    for (;;) {
      const pdu = await this.request(
        Opcode.TextResponse,
        false,
        (_itt, cmdSN) => {
          const bhs = encodeTextRequest(Buffer.allocUnsafe(BHS_LENGTH), {
            itt,
            final: true,
            ttt,
            cmdSN,
            expStatSN: this.expStatSN,
          });
          this.connection.send(bhs, data.length > 0 ? data : null);
        },
        itt,
      );
      const view = new TextResponseView(pdu.bhs);
      if (!acc.append(pdu.data)) throw new InitiatorError('TGT_ERR_INI_PROTOCOL', 'Text Response too long');
      if (!view.continue) break;
      // RFC 7143 11.11.4: continue with an empty request carrying the target's TTT.
      ttt = view.ttt;
      data = Buffer.alloc(0);
    }
    return parseTextAllowRepeats(acc.take());
  }

  /** SendTargets (RFC 7143 Appendix C) in a Discovery session (or a Normal one, where allowed). */
  async sendTargets(value = 'All'): Promise<DiscoveredTarget[]> {
    const pairs = await this.text([['SendTargets', value]]);
    const targets: DiscoveredTarget[] = [];
    for (const [key, v] of pairs) {
      if (key === 'TargetName') targets.push({ name: v, addresses: [] });
      else if (key === 'TargetAddress' && targets.length > 0) targets[targets.length - 1]!.addresses.push(v);
    }
    return targets;
  }

  /** Logout (11.14): waits for the response and for the target to close the connection. */
  async logout(reason: LogoutReason = LogoutReason.CloseSession): Promise<number> {
    this.assertFullFeature();
    const pdu = await this.request(Opcode.LogoutResponse, true, (itt, cmdSN) => {
      const bhs = encodeLogoutRequest(Buffer.allocUnsafe(BHS_LENGTH), {
        itt,
        reasonCode: reason,
        cid: this.options.cid ?? 0,
        cmdSN,
        expStatSN: this.expStatSN,
        immediate: true,
      });
      this.connection.send(bhs);
    });
    this.state = 'logged-out';
    await this.connection.close();
    return new LogoutResponseView(pdu.bhs).response;
  }

  /** Drop the connection without logging out. */
  destroy(): void {
    this.connection.destroy();
  }

  // -------------------------------------------------------------------------------------------
  // Convenience SCSI helpers (SPC-4 / SBC-3)

  /** INQUIRY (standard, or a VPD page with evpd). */
  inquiry(lun: number | bigint = 0, evpd = false, page = 0, allocationLength = 255): Promise<ScsiResult> {
    return this.command({
      lun,
      cdb: cdbs.inquiryCdb(evpd, page, allocationLength),
      readLength: allocationLength,
    });
  }

  /** REPORT LUNS (to LUN 0); parse with parseReportLuns(result.data). */
  reportLuns(allocationLength = 4096): Promise<ScsiResult> {
    return this.command({ lun: 0, cdb: cdbs.reportLunsCdb(allocationLength), readLength: allocationLength });
  }

  testUnitReady(lun: number | bigint = 0): Promise<ScsiResult> {
    return this.command({ lun, cdb: cdbs.testUnitReadyCdb() });
  }

  /** READ CAPACITY(10); parse with parseReadCapacity10(result.data). */
  readCapacity10(lun: number | bigint = 0): Promise<ScsiResult> {
    return this.command({ lun, cdb: cdbs.readCapacity10Cdb(), readLength: 8 });
  }

  /** READ CAPACITY(16); parse with parseReadCapacity16(result.data). */
  readCapacity16(lun: number | bigint = 0, allocationLength = 32): Promise<ScsiResult> {
    return this.command({ lun, cdb: cdbs.readCapacity16Cdb(allocationLength), readLength: allocationLength });
  }

  read10(lun: number | bigint, lba: number, blocks: number, blockSize: number, o: cdbs.RwOptions = {}) {
    return this.command({ lun, cdb: cdbs.read10Cdb(lba, blocks, o), readLength: blocks * blockSize });
  }

  read16(
    lun: number | bigint,
    lba: number | bigint,
    blocks: number,
    blockSize: number,
    o: cdbs.RwOptions = {},
  ) {
    return this.command({ lun, cdb: cdbs.read16Cdb(lba, blocks, o), readLength: blocks * blockSize });
  }

  /** WRITE(10) of `data` (its length / blockSize blocks, unless o.blocks says otherwise). */
  write10(
    lun: number | bigint,
    lba: number,
    data: Buffer | readonly Buffer[],
    blockSize: number,
    o: cdbs.RwOptions & { blocks?: number } = {},
  ): Promise<ScsiResult> {
    const blocks = o.blocks ?? Math.floor(totalLength(data) / blockSize);
    return this.command({ lun, cdb: cdbs.write10Cdb(lba, blocks, o), dataOut: data });
  }

  /** WRITE(16) of `data`. */
  write16(
    lun: number | bigint,
    lba: number | bigint,
    data: Buffer | readonly Buffer[],
    blockSize: number,
    o: cdbs.RwOptions & { blocks?: number } = {},
  ): Promise<ScsiResult> {
    const blocks = o.blocks ?? Math.floor(totalLength(data) / blockSize);
    return this.command({ lun, cdb: cdbs.write16Cdb(lba, blocks, o), dataOut: data });
  }

  /** SYNCHRONIZE CACHE(10) (whole medium by default). */
  synchronizeCache(lun: number | bigint = 0, lba = 0, blocks = 0, immed = false): Promise<ScsiResult> {
    return this.command({ lun, cdb: cdbs.synchronizeCache10Cdb(lba, blocks, immed) });
  }

  modeSense6(lun: number | bigint = 0, o: cdbs.ModeSenseOptions = {}): Promise<ScsiResult> {
    return this.command({ lun, cdb: cdbs.modeSense6Cdb(o), readLength: o.allocationLength ?? 255 });
  }

  modeSense10(lun: number | bigint = 0, o: cdbs.ModeSenseOptions = {}): Promise<ScsiResult> {
    return this.command({ lun, cdb: cdbs.modeSense10Cdb(o), readLength: o.allocationLength ?? 4096 });
  }

  requestSense(lun: number | bigint = 0, allocationLength = 252, descriptor = false): Promise<ScsiResult> {
    return this.command({
      lun,
      cdb: cdbs.requestSenseCdb(allocationLength, descriptor),
      readLength: allocationLength,
    });
  }

  // -------------------------------------------------------------------------------------------
  // Receive side

  private dispatch(pdu: Pdu): void {
    const op = bhsOpcode(pdu.bhs);
    this.trackSequence(op, pdu.bhs);
    if (this.rawMode) {
      this.connection.enqueue(pdu);
      return;
    }
    const itt = bhsItt(pdu.bhs);
    switch (op) {
      case Opcode.DataIn:
        return this.onDataIn(pdu);
      case Opcode.ScsiResponse:
        return this.onScsiResponse(pdu);
      case Opcode.R2T:
        return this.onR2T(pdu);
      case Opcode.NopIn:
        if (itt === RESERVED_TAG) return this.onTargetNopIn(pdu);
        return this.completeSimple(op, pdu);
      case Opcode.TaskMgmtResponse:
      case Opcode.TextResponse:
      case Opcode.LogoutResponse:
        return this.completeSimple(op, pdu);
      case Opcode.Reject:
        return this.onReject(pdu);
      case Opcode.AsyncMessage:
        this.asyncMessages.push(pdu);
        return;
      default:
        this.unexpectedPdus++;
        // ERL 0: an opcode a target may not send in FFP ends the connection (RFC 7143 7.1).
        this.connection.socket.destroy(
          new InitiatorError(
            'TGT_ERR_INI_PROTOCOL',
            `unexpected opcode 0x${op.toString(16)} in full feature phase`,
          ),
        );
    }
  }

  /** StatSN / ExpCmdSN / MaxCmdSN bookkeeping (RFC 7143 4.2.2.1, 11.2.1.x). */
  private trackSequence(op: number, bhs: Buffer): void {
    if (op === Opcode.DataIn) {
      this.updateWindow(bhs.readUInt32BE(28), bhs.readUInt32BE(32));
      if (bhs[1]! & 0x01) this.noteStatSN(bhs.readUInt32BE(24)); // S bit: StatSN valid
      return;
    }
    this.updateWindow(bhs.readUInt32BE(28), bhs.readUInt32BE(32));
    // R2T and target-initiated NOP-In carry the next StatSN without advancing it.
    if (op === Opcode.R2T || (op === Opcode.NopIn && bhsItt(bhs) === RESERVED_TAG)) return;
    this.noteStatSN(bhs.readUInt32BE(24));
  }

  private noteStatSN(statSN: number): void {
    const next = (statSN + 1) >>> 0;
    if (!serialLt(next, this.expStatSN)) this.expStatSN = next;
  }

  private updateWindow(expCmdSN: number, maxCmdSN: number): void {
    // RFC 7143 4.2.2.1: ignore both when MaxCmdSN < ExpCmdSN - 1.
    if (serialLt(maxCmdSN, (expCmdSN - 1) >>> 0)) return;
    if (this.state === 'login' || serialLt(this.expCmdSN, expCmdSN)) this.expCmdSN = expCmdSN;
    if (this.state === 'login' || serialLt(this.maxCmdSN, maxCmdSN)) this.maxCmdSN = maxCmdSN;
    if (this.windowWaiters.length > 0 && !serialLt(this.maxCmdSN, this.cmdSN)) {
      for (const wake of this.windowWaiters.splice(0)) wake();
    }
  }

  private scsiTask(itt: number): ScsiTask | undefined {
    const t = this.tasks.get(itt);
    if (t?.kind === 'scsi') return t;
    this.unexpectedPdus++;
    return undefined;
  }

  private onDataIn(pdu: Pdu): void {
    const v = this.views.dataIn.wrap(pdu.bhs);
    const task = this.scsiTask(v.itt);
    if (!task) return;
    // RFC 7143 11.7.5: DataSN counts the Data-In PDUs of a command from 0; ERL 0 cannot recover.
    if (v.dataSN !== task.nextDataSN) {
      return this.fail(task, protocolError(`Data-In DataSN ${v.dataSN}, expected ${task.nextDataSN}`));
    }
    task.nextDataSN++;
    const len = pdu.data.length;
    if (len > 0) {
      const off = v.bufferOffset;
      if (!task.readBuf || off + len > task.readBuf.length) {
        return this.fail(task, protocolError(`Data-In [${off}, ${off + len}) beyond the expected length`));
      }
      pdu.data.copy(task.readBuf, off);
      task.received = Math.max(task.received, off + len);
    }
    if (v.statusPresent) {
      task.statusInDataIn = true;
      this.finish(task, {
        status: v.status,
        residual: residual(v.overflow, v.underflow, v.residualCount),
        response: 0,
      });
    }
  }

  private onScsiResponse(pdu: Pdu): void {
    const v = this.views.response.wrap(pdu.bhs);
    const task = this.scsiTask(v.itt);
    if (!task) return;
    const senseBytes = senseFromData(pdu.data);
    this.finish(task, {
      status: v.status,
      sense: senseBytes ? decodeSense(Buffer.from(senseBytes)) : undefined,
      residual: residual(v.overflow, v.underflow, v.residualCount),
      bidiResidual: residual(v.bidiOverflow, v.bidiUnderflow, v.bidiReadResidualCount),
      response: v.response,
    });
  }

  private onR2T(pdu: Pdu): void {
    const v = this.views.r2t.wrap(pdu.bhs);
    const task = this.scsiTask(v.itt);
    if (!task) return;
    const from = v.bufferOffset;
    const to = from + v.desiredDataTransferLength;
    // RFC 7143 11.8.4: the R2T may not ask for more than MaxBurstLength nor beyond the data.
    if (to > task.writeLength || v.desiredDataTransferLength > this.params.maxBurstLength) {
      return this.fail(task, protocolError(`R2T for [${from}, ${to}) of ${task.writeLength} bytes`));
    }
    this.connection.batch(() => this.sendDataOut(task, v.ttt, from, to));
  }

  private onTargetNopIn(pdu: Pdu): void {
    const v = this.views.nopIn.wrap(pdu.bhs);
    if (v.ttt === RESERVED_TAG) return; // 11.19: an unsolicited update, no answer wanted
    if (this.options.answerNopIns === false) {
      this.connection.enqueue(pdu);
      return;
    }
    // RFC 7143 11.18.3: answer with an immediate NOP-Out carrying the target's TTT and LUN.
    const bhs = encodeNopOut(Buffer.allocUnsafe(BHS_LENGTH), {
      itt: RESERVED_TAG,
      ttt: v.ttt,
      lun: Buffer.from(v.lun),
      cmdSN: this.cmdSN,
      expStatSN: this.expStatSN,
      immediate: true,
    });
    this.connection.send(bhs);
    this.nopInsAnswered++;
  }

  private onReject(pdu: Pdu): void {
    const reason = new RejectView(pdu.bhs).reason;
    const header = Buffer.from(pdu.data.subarray(0, BHS_LENGTH));
    const task = header.length >= 20 ? this.tasks.get(header.readUInt32BE(16)) : undefined;
    if (task) this.fail(task, new RejectedError(reason, header));
    else {
      this.unexpectedPdus++;
      this.connection.enqueue(pdu);
    }
  }

  private completeSimple(op: Opcode, pdu: Pdu): void {
    const task = this.tasks.get(bhsItt(pdu.bhs));
    if (!task || task.kind !== 'simple' || task.expect !== op) {
      this.unexpectedPdus++;
      return;
    }
    this.untrack(task);
    task.resolve(pdu);
  }

  // -------------------------------------------------------------------------------------------
  // Task bookkeeping

  /** Send a non-SCSI request and wait for the response with the same ITT. */
  private request(
    expect: Opcode,
    immediate: boolean,
    send: (itt: number, cmdSN: number) => void,
    itt = this.allocItt(),
  ): Promise<Pdu> {
    return new Promise((resolve, reject) => {
      const task: SimpleTask = { kind: 'simple', itt, cmdSN: 0, expect, resolve, reject, timer: undefined };
      this.track(task);
      this.acquireCmdSN(immediate).then(
        (cmdSN) => {
          task.cmdSN = cmdSN;
          send(itt, cmdSN);
        },
        (err: Error) => this.fail(task, err),
      );
    });
  }

  /**
   * The CmdSN for the next request: immediate ones reuse the current CmdSN; others wait until
   * CmdSN <= MaxCmdSN (RFC 7143 4.2.2.1) and advance it.
   */
  private async acquireCmdSN(immediate: boolean): Promise<number> {
    if (immediate) return this.cmdSN;
    while (serialLt(this.maxCmdSN, this.cmdSN)) {
      if (this.state === 'closed') throw closedError();
      await new Promise<void>((resolve) => this.windowWaiters.push(resolve));
    }
    if (this.state === 'closed') throw closedError();
    return this.takeCmdSN();
  }

  private track(task: Task, timeoutMs = this.timeoutMs): void {
    if (this.tasks.has(task.itt)) throw new InitiatorError('TGT_ERR_INI_STATE', `ITT ${task.itt} in use`);
    this.tasks.set(task.itt, task);
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      task.timer = setTimeout(() => {
        this.fail(
          task,
          new InitiatorError(
            'TGT_ERR_INI_TIMEOUT',
            `ITT 0x${task.itt.toString(16)}: no response in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
    }
  }

  private untrack(task: Task): void {
    clearTimeout(task.timer);
    this.tasks.delete(task.itt);
  }

  private fail(task: Task, err: Error): void {
    if (this.tasks.get(task.itt) !== task) return;
    this.untrack(task);
    task.reject(err);
  }

  private finish(
    task: ScsiTask,
    r: Pick<ScsiResult, 'status' | 'residual' | 'response'> &
      Partial<Pick<ScsiResult, 'sense' | 'bidiResidual'>>,
  ): void {
    this.untrack(task);
    const result: ScsiResult = {
      status: r.status,
      data: task.readBuf ? task.readBuf.subarray(0, task.received) : Buffer.alloc(0),
      response: r.response,
      statusInDataIn: task.statusInDataIn,
      itt: task.itt,
    };
    if (r.sense) result.sense = r.sense;
    if (r.residual) result.residual = r.residual;
    if (r.bidiResidual) result.bidiResidual = r.bidiResidual;
    task.resolve(result);
  }

  /** After a TMF completed, commands it aborted will never get a response (RFC 7143 4.2.3.x). */
  private dropAbortedTasks(fn: TmfFunction, lun: Buffer, referenced: number | undefined): void {
    for (const task of [...this.tasks.values()]) {
      if (task.kind !== 'scsi') continue;
      const hit =
        fn === TmfFunction.AbortTask
          ? task.itt === referenced
          : fn === TmfFunction.TargetWarmReset || fn === TmfFunction.TargetColdReset || task.lun.equals(lun);
      if (hit && fn !== TmfFunction.ClearAca) {
        this.fail(
          task,
          new InitiatorError('TGT_ERR_INI_STATE', `command 0x${task.itt.toString(16)} aborted by TMF ${fn}`),
        );
      }
    }
  }

  private onClosed(reason: Error | null): void {
    if (this.state !== 'logged-out') this.state = 'closed';
    const err = closedError(reason);
    for (const task of [...this.tasks.values()]) this.fail(task, err);
    for (const wake of this.windowWaiters.splice(0)) wake();
  }

  private assertFullFeature(): void {
    if (this.state !== 'full-feature') {
      throw new InitiatorError(
        this.state === 'closed' ? 'TGT_ERR_INI_CONNECTION_CLOSED' : 'TGT_ERR_INI_STATE',
        `session is ${this.state}`,
      );
    }
  }
}

function residual(overflow: boolean, underflow: boolean, count: number): Residual | undefined {
  if (overflow) return { kind: 'overflow', count };
  if (underflow) return { kind: 'underflow', count };
  return undefined;
}

function protocolError(message: string): InitiatorError {
  return new InitiatorError('TGT_ERR_INI_PROTOCOL', message);
}

function closedError(reason?: Error | null): InitiatorError {
  return new InitiatorError(
    'TGT_ERR_INI_CONNECTION_CLOSED',
    `connection closed${reason ? `: ${reason.message}` : ''}`,
  );
}

function totalLength(data: Buffer | readonly Buffer[]): number {
  if (Buffer.isBuffer(data)) return data.length;
  let n = 0;
  for (const d of data) n += d.length;
  return n;
}

/** Views covering bytes [from, to) of the concatenation of `segs` (no copy). */
function slice(segs: readonly Buffer[], from: number, to: number): Buffer[] {
  const out: Buffer[] = [];
  let base = 0;
  for (const s of segs) {
    const end = base + s.length;
    if (end > from && base < to)
      out.push(s.subarray(Math.max(0, from - base), Math.min(s.length, to - base)));
    if (end >= to) break;
    base = end;
  }
  return out;
}

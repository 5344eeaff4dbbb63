/**
 * iSCSI PDU header codec (RFC 7143 section 11). Fields are read in place from the 48-byte
 * Basic Header Segment (BHS) and written in place into a caller-supplied header buffer;
 * nothing is copied into a "fat" PDU object.
 *
 * Public API:
 *   interface Pdu { bhs: Buffer; ahs: Buffer | null; data: Buffer };  type IncomingPdu = Pdu
 *
 *   Common fields (free functions, any opcode):
 *     bhsOpcode(bhs): number            bhsImmediate(bhs): boolean      bhsFinal(bhs): boolean
 *     bhsTotalAhsLength(bhs): number  (bytes, i.e. TotalAHSLength * 4)
 *     bhsDataSegmentLength(bhs): number  bhsLun(bhs): Buffer (8-byte view)  bhsItt(bhs): number
 *     setDataSegmentLength(bhs, n)      setTotalAhsLength(bhs, bytes)
 *     writeTargetSequence(bhs, statSN, expCmdSN, maxCmdSN)    (bytes 24/28/32 of every target PDU)
 *     writeInitiatorSequence(bhs, cmdSN, expStatSN)           (bytes 24/28 of initiator requests)
 *     opcodeName(op): string            paddedLength(n): number   padLength(n): number
 *
 *   Views (getters read the BHS at fixed offsets; `wrap(bhs)` re-points a view so it can be reused):
 *     BhsView (common fields), NopOutView, ScsiCommandView, TaskMgmtRequestView, LoginRequestView,
 *     TextRequestView, DataOutView, LogoutRequestView, SnackRequestView, NopInView, ScsiResponseView,
 *     TaskMgmtResponseView, LoginResponseView, TextResponseView, DataInView, LogoutResponseView,
 *     R2TView, AsyncMessageView, RejectView
 *
 *   Encoders: encodeXxx(bhs: Buffer, fields: XxxFields): Buffer   (zero the 48 bytes, then fill)
 *     target -> initiator: encodeNopIn, encodeScsiResponse, encodeTaskMgmtResponse, encodeLoginResponse,
 *       encodeTextResponse, encodeDataIn, encodeLogoutResponse, encodeR2T, encodeAsyncMessage, encodeReject
 *     initiator -> target: encodeNopOut, encodeScsiCommand, encodeTaskMgmtRequest, encodeLoginRequest,
 *       encodeTextRequest, encodeDataOut, encodeLogoutRequest, encodeSnackRequest
 *   DataSegmentLength and TotalAHSLength are written by the encoders only when given; PduWriter
 *   always sets them from the segments it actually sends.
 *
 *   AHS and data-segment helpers:
 *     findAhs(ahs, type): Buffer | null        (the AHS-specific bytes, from byte 3 of that AHS)
 *     ahsWellFormed(ahs): boolean
 *     scsiCommandCdb(bhs, ahs): Buffer          (16-byte BHS view, or BHS CDB + extended-CDB AHS)
 *     bidiReadLength(ahs): number | null
 *     encodeExtendedCdbAhs(cdb): Buffer | null  encodeBidiReadLengthAhs(length): Buffer
 *     senseLengthPrefix(n): Buffer (shared, read-only)    senseFromData(data): Buffer | null
 */
import { Buffer } from 'node:buffer';
import {
  AhsType,
  BHS_CDB_LENGTH,
  BHS_LENGTH,
  DataInFlags,
  FINAL_BIT,
  IMMEDIATE_BIT,
  LOGOUT_REASON_MASK,
  LoginFlags,
  Opcode,
  OPCODE_MASK,
  RESERVED_TAG,
  SNACK_TYPE_MASK,
  ScsiCommandFlags,
  ScsiResponseFlags,
  TMF_FUNCTION_MASK,
  TextFlags,
} from './spec.js';

/** A PDU as received or sent: header, optional AHS, and data segment (without padding or digests). */
export interface Pdu {
  bhs: Buffer;
  ahs: Buffer | null;
  data: Buffer;
}

/** A PDU handed out by the framer; `bhs`, `ahs` and `data` are views of received bytes where possible. */
export type IncomingPdu = Pdu;

// ---------------------------------------------------------------------------------------------
// Common fields (11.2.1)
// ---------------------------------------------------------------------------------------------

/** Opcode (byte 0, low six bits). */
export function bhsOpcode(bhs: Buffer): number {
  return bhs[0]! & OPCODE_MASK;
}

/** I bit: immediate delivery (byte 0, bit 6). */
export function bhsImmediate(bhs: Buffer): boolean {
  return (bhs[0]! & IMMEDIATE_BIT) !== 0;
}

/** F bit (byte 1, bit 7); the T (transit) bit in Login PDUs. */
export function bhsFinal(bhs: Buffer): boolean {
  return (bhs[1]! & FINAL_BIT) !== 0;
}

/** TotalAHSLength in bytes (the field counts 4-byte words). */
export function bhsTotalAhsLength(bhs: Buffer): number {
  return bhs[4]! * 4;
}

/** DataSegmentLength (bytes 5-7), without padding. */
export function bhsDataSegmentLength(bhs: Buffer): number {
  return (bhs[5]! << 16) | (bhs[6]! << 8) | bhs[7]!;
}

/** The 8-byte LUN field (bytes 8-15) as a view. */
export function bhsLun(bhs: Buffer): Buffer {
  return bhs.subarray(8, 16);
}

/** Initiator Task Tag (bytes 16-19). */
export function bhsItt(bhs: Buffer): number {
  return bhs.readUInt32BE(16);
}

/** Store DataSegmentLength (3 bytes, 11.2.1.5). */
export function setDataSegmentLength(bhs: Buffer, length: number): void {
  bhs[5] = (length >>> 16) & 0xff;
  bhs[6] = (length >>> 8) & 0xff;
  bhs[7] = length & 0xff;
}

/** Store TotalAHSLength given the AHS length in bytes (must be a multiple of 4, at most 1020). */
export function setTotalAhsLength(bhs: Buffer, bytes: number): void {
  bhs[4] = bytes >>> 2;
}

/** StatSN, ExpCmdSN, MaxCmdSN sit at bytes 24/28/32 in every target PDU; fill them at send time. */
export function writeTargetSequence(bhs: Buffer, statSN: number, expCmdSN: number, maxCmdSN: number): void {
  bhs.writeUInt32BE(statSN >>> 0, 24);
  bhs.writeUInt32BE(expCmdSN >>> 0, 28);
  bhs.writeUInt32BE(maxCmdSN >>> 0, 32);
}

/** CmdSN and ExpStatSN sit at bytes 24/28 in initiator requests (Data-Out: byte 24 is reserved). */
export function writeInitiatorSequence(bhs: Buffer, cmdSN: number, expStatSN: number): void {
  bhs.writeUInt32BE(cmdSN >>> 0, 24);
  bhs.writeUInt32BE(expStatSN >>> 0, 28);
}

/** Opcode name for logs ("ScsiCommand", "Unknown(0x1a)"). */
export function opcodeName(op: number): string {
  return Opcode[op] ?? `Unknown(0x${op.toString(16).padStart(2, '0')})`;
}

/** 11.2.3: segments are padded to a multiple of 4 bytes. */
export function paddedLength(n: number): number {
  return (n + 3) & ~3;
}

/** Number of pad bytes after a segment of n bytes. */
export function padLength(n: number): number {
  return -n & 3;
}

// ---------------------------------------------------------------------------------------------
// Views (decoding in place)
// ---------------------------------------------------------------------------------------------

/** Fields common to every BHS. Subclasses add the opcode-specific fields. */
export class BhsView {
  constructor(public bhs: Buffer) {}

  /** Re-point this view at another header (lets a connection reuse one view object). */
  wrap(bhs: Buffer): this {
    this.bhs = bhs;
    return this;
  }
  get opcode(): number {
    return bhsOpcode(this.bhs);
  }
  get immediate(): boolean {
    return bhsImmediate(this.bhs);
  }
  get final(): boolean {
    return bhsFinal(this.bhs);
  }
  /** TotalAHSLength in bytes. */
  get totalAhsLength(): number {
    return bhsTotalAhsLength(this.bhs);
  }
  get dataSegmentLength(): number {
    return bhsDataSegmentLength(this.bhs);
  }
  /** 8-byte LUN view (meaningful for opcodes that carry a LUN). */
  get lun(): Buffer {
    return bhsLun(this.bhs);
  }
  get itt(): number {
    return bhsItt(this.bhs);
  }
  protected u32(offset: number): number {
    return this.bhs.readUInt32BE(offset);
  }
}

/** Fields at 24/28/32 of target PDUs. */
class TargetView extends BhsView {
  get statSN(): number {
    return this.u32(24);
  }
  get expCmdSN(): number {
    return this.u32(28);
  }
  get maxCmdSN(): number {
    return this.u32(32);
  }
}

/** Fields at 24/28 of initiator requests. */
class InitiatorView extends BhsView {
  get cmdSN(): number {
    return this.u32(24);
  }
  get expStatSN(): number {
    return this.u32(28);
  }
}

/** 11.18 NOP-Out. */
export class NopOutView extends InitiatorView {
  get ttt(): number {
    return this.u32(20);
  }
}

/** 11.3 SCSI Command. */
export class ScsiCommandView extends InitiatorView {
  /** R: the command expects Data-In. */
  get read(): boolean {
    return (this.bhs[1]! & ScsiCommandFlags.Read) !== 0;
  }
  /** W: the command carries Data-Out. */
  get write(): boolean {
    return (this.bhs[1]! & ScsiCommandFlags.Write) !== 0;
  }
  /** ATTR: task attribute (TaskAttr). */
  get attr(): number {
    return this.bhs[1]! & ScsiCommandFlags.AttrMask;
  }
  /** Expected Data Transfer Length. */
  get edtl(): number {
    return this.u32(20);
  }
  /** The 16-byte CDB field as a view (see scsiCommandCdb for extended CDBs). */
  get cdb(): Buffer {
    return this.bhs.subarray(32, 48);
  }
}

/** 11.5 Task Management Function Request. */
export class TaskMgmtRequestView extends InitiatorView {
  /** Function code (TmfFunction). */
  get function(): number {
    return this.bhs[1]! & TMF_FUNCTION_MASK;
  }
  get referencedTaskTag(): number {
    return this.u32(20);
  }
  get refCmdSN(): number {
    return this.u32(32);
  }
  get expDataSN(): number {
    return this.u32(36);
  }
}

/** Login flag fields shared by request and response (11.12.1 / 11.13.1). */
const login = {
  transit: (bhs: Buffer): boolean => (bhs[1]! & LoginFlags.Transit) !== 0,
  continue: (bhs: Buffer): boolean => (bhs[1]! & LoginFlags.Continue) !== 0,
  csg: (bhs: Buffer): number => (bhs[1]! & LoginFlags.CsgMask) >>> LoginFlags.CsgShift,
  nsg: (bhs: Buffer): number => bhs[1]! & LoginFlags.NsgMask,
};

/** 11.12 Login Request. */
export class LoginRequestView extends InitiatorView {
  /** T: the initiator is ready to move to NSG. */
  get transit(): boolean {
    return login.transit(this.bhs);
  }
  /** C: the text is incomplete and continues in the next PDU. */
  get continue(): boolean {
    return login.continue(this.bhs);
  }
  get csg(): number {
    return login.csg(this.bhs);
  }
  get nsg(): number {
    return login.nsg(this.bhs);
  }
  get versionMax(): number {
    return this.bhs[2]!;
  }
  get versionMin(): number {
    return this.bhs[3]!;
  }
  /** 6-byte ISID view. */
  get isid(): Buffer {
    return this.bhs.subarray(8, 14);
  }
  get tsih(): number {
    return this.bhs.readUInt16BE(14);
  }
  get cid(): number {
    return this.bhs.readUInt16BE(20);
  }
}

/** 11.10 Text Request. */
export class TextRequestView extends InitiatorView {
  get continue(): boolean {
    return (this.bhs[1]! & TextFlags.Continue) !== 0;
  }
  get ttt(): number {
    return this.u32(20);
  }
}

/** 11.8 SCSI Data-Out. */
export class DataOutView extends BhsView {
  get ttt(): number {
    return this.u32(20);
  }
  get expStatSN(): number {
    return this.u32(28);
  }
  get dataSN(): number {
    return this.u32(36);
  }
  get bufferOffset(): number {
    return this.u32(40);
  }
}

/** 11.14 Logout Request. */
export class LogoutRequestView extends InitiatorView {
  /** Reason code (LogoutReason). */
  get reasonCode(): number {
    return this.bhs[1]! & LOGOUT_REASON_MASK;
  }
  get cid(): number {
    return this.bhs.readUInt16BE(20);
  }
}

/** 11.16 SNACK Request. */
export class SnackRequestView extends BhsView {
  /** SNACK type (SnackType). */
  get type(): number {
    return this.bhs[1]! & SNACK_TYPE_MASK;
  }
  /** Target Transfer Tag, or SNACK Tag for R-Data SNACK. */
  get ttt(): number {
    return this.u32(20);
  }
  get expStatSN(): number {
    return this.u32(28);
  }
  get begRun(): number {
    return this.u32(40);
  }
  get runLength(): number {
    return this.u32(44);
  }
}

/** 11.19 NOP-In. */
export class NopInView extends TargetView {
  get ttt(): number {
    return this.u32(20);
  }
}

/** 11.4 SCSI Response. */
export class ScsiResponseView extends TargetView {
  /** o: bidirectional read residual overflow. */
  get bidiOverflow(): boolean {
    return (this.bhs[1]! & ScsiResponseFlags.BidiOverflow) !== 0;
  }
  /** u: bidirectional read residual underflow. */
  get bidiUnderflow(): boolean {
    return (this.bhs[1]! & ScsiResponseFlags.BidiUnderflow) !== 0;
  }
  /** O: residual overflow. */
  get overflow(): boolean {
    return (this.bhs[1]! & ScsiResponseFlags.Overflow) !== 0;
  }
  /** U: residual underflow. */
  get underflow(): boolean {
    return (this.bhs[1]! & ScsiResponseFlags.Underflow) !== 0;
  }
  /** iSCSI service response (ScsiResponseCode). */
  get response(): number {
    return this.bhs[2]!;
  }
  /** SCSI status. */
  get status(): number {
    return this.bhs[3]!;
  }
  get snackTag(): number {
    return this.u32(20);
  }
  get expDataSN(): number {
    return this.u32(36);
  }
  get bidiReadResidualCount(): number {
    return this.u32(40);
  }
  get residualCount(): number {
    return this.u32(44);
  }
}

/** 11.6 Task Management Function Response. */
export class TaskMgmtResponseView extends TargetView {
  /** Response code (TmfResponse). */
  get response(): number {
    return this.bhs[2]!;
  }
}

/** 11.13 Login Response. */
export class LoginResponseView extends TargetView {
  get transit(): boolean {
    return login.transit(this.bhs);
  }
  get continue(): boolean {
    return login.continue(this.bhs);
  }
  get csg(): number {
    return login.csg(this.bhs);
  }
  get nsg(): number {
    return login.nsg(this.bhs);
  }
  get versionMax(): number {
    return this.bhs[2]!;
  }
  get versionActive(): number {
    return this.bhs[3]!;
  }
  get isid(): Buffer {
    return this.bhs.subarray(8, 14);
  }
  get tsih(): number {
    return this.bhs.readUInt16BE(14);
  }
  get statusClass(): number {
    return this.bhs[36]!;
  }
  get statusDetail(): number {
    return this.bhs[37]!;
  }
  /** (Status-Class << 8) | Status-Detail, comparable with LoginStatus values. */
  get status(): number {
    return this.bhs.readUInt16BE(36);
  }
}

/** 11.11 Text Response. */
export class TextResponseView extends TargetView {
  get continue(): boolean {
    return (this.bhs[1]! & TextFlags.Continue) !== 0;
  }
  get ttt(): number {
    return this.u32(20);
  }
}

/** 11.7 SCSI Data-In. */
export class DataInView extends TargetView {
  get acknowledge(): boolean {
    return (this.bhs[1]! & DataInFlags.Acknowledge) !== 0;
  }
  get overflow(): boolean {
    return (this.bhs[1]! & DataInFlags.Overflow) !== 0;
  }
  get underflow(): boolean {
    return (this.bhs[1]! & DataInFlags.Underflow) !== 0;
  }
  /** S: status is carried in this PDU (then F is set too). */
  get statusPresent(): boolean {
    return (this.bhs[1]! & DataInFlags.Status) !== 0;
  }
  /** SCSI status (valid only when statusPresent). */
  get status(): number {
    return this.bhs[3]!;
  }
  get ttt(): number {
    return this.u32(20);
  }
  get dataSN(): number {
    return this.u32(36);
  }
  get bufferOffset(): number {
    return this.u32(40);
  }
  get residualCount(): number {
    return this.u32(44);
  }
}

/** 11.15 Logout Response. */
export class LogoutResponseView extends TargetView {
  /** Response code (LogoutResponse). */
  get response(): number {
    return this.bhs[2]!;
  }
  get time2Wait(): number {
    return this.bhs.readUInt16BE(40);
  }
  get time2Retain(): number {
    return this.bhs.readUInt16BE(42);
  }
}

/** 11.8.2 Ready To Transfer. */
export class R2TView extends TargetView {
  get ttt(): number {
    return this.u32(20);
  }
  get r2tSN(): number {
    return this.u32(36);
  }
  get bufferOffset(): number {
    return this.u32(40);
  }
  get desiredDataTransferLength(): number {
    return this.u32(44);
  }
}

/** 11.9 Asynchronous Message. */
export class AsyncMessageView extends TargetView {
  /** AsyncEvent code. */
  get asyncEvent(): number {
    return this.bhs[36]!;
  }
  get asyncVCode(): number {
    return this.bhs[37]!;
  }
  get parameter1(): number {
    return this.bhs.readUInt16BE(38);
  }
  get parameter2(): number {
    return this.bhs.readUInt16BE(40);
  }
  get parameter3(): number {
    return this.bhs.readUInt16BE(42);
  }
}

/** 11.17 Reject. The data segment carries the rejected header. */
export class RejectView extends TargetView {
  /** Reason code (RejectReason). */
  get reason(): number {
    return this.bhs[2]!;
  }
  /** DataSN/R2TSN (for SNACK rejects). */
  get dataSN(): number {
    return this.u32(36);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoders (filling a caller-supplied header buffer)
// ---------------------------------------------------------------------------------------------

/** Fields every encoder accepts. */
interface CommonFields {
  itt: number;
  /** 8-byte LUN (copied), or a 64-bit value; omitted means zero. */
  lun?: Buffer | bigint;
  /** DataSegmentLength; PduWriter overwrites it with the real length. */
  dataSegmentLength?: number;
  /** TotalAHSLength in bytes; PduWriter overwrites it with the real length. */
  totalAhsLength?: number;
}

/** StatSN/ExpCmdSN/MaxCmdSN of target PDUs. */
export interface TargetSequenceFields {
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}

/** CmdSN/ExpStatSN of initiator requests. */
export interface InitiatorSequenceFields {
  cmdSN: number;
  expStatSN: number;
}

function begin(bhs: Buffer, byte0: number, byte1: number, f: CommonFields): void {
  if (bhs.length < BHS_LENGTH) throw new RangeError(`BHS buffer too short: ${bhs.length}`);
  // Loops, not fill() and copy(): both are calls into C++ that cost more than 48 stores (every
  // response and Data-In goes through here).
  for (let i = 2; i < BHS_LENGTH; i++) bhs[i] = 0;
  bhs[0] = byte0;
  bhs[1] = byte1;
  if (f.totalAhsLength !== undefined) setTotalAhsLength(bhs, f.totalAhsLength);
  if (f.dataSegmentLength !== undefined) setDataSegmentLength(bhs, f.dataSegmentLength);
  if (f.lun !== undefined) {
    if (typeof f.lun === 'bigint') bhs.writeBigUInt64BE(BigInt.asUintN(64, f.lun), 8);
    else {
      const lun = f.lun;
      for (let i = 0; i < 8; i++) bhs[8 + i] = lun[i] ?? 0;
    }
  }
  bhs.writeUInt32BE(f.itt >>> 0, 16);
}

function u32(bhs: Buffer, offset: number, value: number | undefined): void {
  if (value !== undefined) bhs.writeUInt32BE(value >>> 0, offset);
}

function flag(on: boolean | undefined, bit: number): number {
  return on ? bit : 0;
}

function byte0(op: Opcode, immediate: boolean | undefined): number {
  return op | (immediate ? IMMEDIATE_BIT : 0);
}

// --- target -> initiator ---

export interface NopInFields extends CommonFields, TargetSequenceFields {
  /** 0xffffffff when answering a NOP-Out; a real tag when the target pings (11.19.2). */
  ttt: number;
}

/** 11.19 NOP-In. */
export function encodeNopIn(bhs: Buffer, f: NopInFields): Buffer {
  begin(bhs, Opcode.NopIn, FINAL_BIT, f);
  u32(bhs, 20, f.ttt);
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  return bhs;
}

export interface ScsiResponseFields extends CommonFields, TargetSequenceFields {
  /** ScsiResponseCode; default CommandCompleted. */
  response?: number;
  status: number;
  overflow?: boolean;
  underflow?: boolean;
  bidiOverflow?: boolean;
  bidiUnderflow?: boolean;
  snackTag?: number;
  expDataSN?: number;
  bidiReadResidualCount?: number;
  residualCount?: number;
}

/** 11.4 SCSI Response. */
export function encodeScsiResponse(bhs: Buffer, f: ScsiResponseFields): Buffer {
  const flags =
    FINAL_BIT |
    flag(f.bidiOverflow, ScsiResponseFlags.BidiOverflow) |
    flag(f.bidiUnderflow, ScsiResponseFlags.BidiUnderflow) |
    flag(f.overflow, ScsiResponseFlags.Overflow) |
    flag(f.underflow, ScsiResponseFlags.Underflow);
  begin(bhs, Opcode.ScsiResponse, flags, f);
  for (let i = 8; i < 16; i++) bhs[i] = 0; // 11.4: bytes 8-15 are reserved (a loop: see begin)
  bhs[2] = f.response ?? 0;
  bhs[3] = f.status;
  u32(bhs, 20, f.snackTag);
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  u32(bhs, 36, f.expDataSN);
  u32(bhs, 40, f.bidiReadResidualCount);
  u32(bhs, 44, f.residualCount);
  return bhs;
}

export interface TaskMgmtResponseFields extends CommonFields, TargetSequenceFields {
  /** TmfResponse. */
  response: number;
}

/** 11.6 Task Management Function Response. */
export function encodeTaskMgmtResponse(bhs: Buffer, f: TaskMgmtResponseFields): Buffer {
  begin(bhs, Opcode.TaskMgmtResponse, FINAL_BIT, f);
  bhs.fill(0, 8, 16);
  bhs[2] = f.response;
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  return bhs;
}

export interface LoginResponseFields extends CommonFields, TargetSequenceFields {
  transit?: boolean;
  continue?: boolean;
  csg: number;
  nsg: number;
  versionMax?: number;
  versionActive?: number;
  /** 6-byte ISID (copied from the request). */
  isid: Buffer;
  tsih: number;
  /** (Status-Class << 8) | Status-Detail; see LoginStatus. */
  status: number;
}

/** 11.13 Login Response. */
export function encodeLoginResponse(bhs: Buffer, f: LoginResponseFields): Buffer {
  const flags = loginFlags(f.transit, f.continue, f.csg, f.nsg);
  begin(bhs, Opcode.LoginResponse, flags, f);
  bhs[2] = f.versionMax ?? 0;
  bhs[3] = f.versionActive ?? 0;
  f.isid.copy(bhs, 8, 0, 6);
  bhs.writeUInt16BE(f.tsih & 0xffff, 14);
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  bhs.writeUInt16BE(f.status & 0xffff, 36);
  return bhs;
}

function loginFlags(
  transit: boolean | undefined,
  cont: boolean | undefined,
  csg: number,
  nsg: number,
): number {
  return (
    flag(transit, LoginFlags.Transit) |
    flag(cont, LoginFlags.Continue) |
    ((csg << LoginFlags.CsgShift) & LoginFlags.CsgMask) |
    (nsg & LoginFlags.NsgMask)
  );
}

export interface TextResponseFields extends CommonFields, TargetSequenceFields {
  final?: boolean;
  continue?: boolean;
  ttt: number;
}

/** 11.11 Text Response. */
export function encodeTextResponse(bhs: Buffer, f: TextResponseFields): Buffer {
  begin(bhs, Opcode.TextResponse, flag(f.final, TextFlags.Final) | flag(f.continue, TextFlags.Continue), f);
  u32(bhs, 20, f.ttt);
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  return bhs;
}

export interface DataInFields extends CommonFields {
  final?: boolean;
  acknowledge?: boolean;
  /** S bit: carries status (11.7.3; F must be set too). */
  statusPresent?: boolean;
  status?: number;
  overflow?: boolean;
  underflow?: boolean;
  ttt?: number;
  /** Valid only with S; otherwise reserved. */
  statSN?: number;
  expCmdSN: number;
  maxCmdSN: number;
  dataSN: number;
  bufferOffset: number;
  residualCount?: number;
}

/** 11.7 SCSI Data-In. TTT defaults to 0xffffffff (no DataACK requested). */
export function encodeDataIn(bhs: Buffer, f: DataInFields): Buffer {
  const flags =
    flag(f.final, DataInFlags.Final) |
    flag(f.acknowledge, DataInFlags.Acknowledge) |
    flag(f.overflow, DataInFlags.Overflow) |
    flag(f.underflow, DataInFlags.Underflow) |
    flag(f.statusPresent, DataInFlags.Status);
  begin(bhs, Opcode.DataIn, flags, f);
  bhs[3] = f.status ?? 0;
  bhs.writeUInt32BE((f.ttt ?? RESERVED_TAG) >>> 0, 20);
  writeTargetSequence(bhs, f.statSN ?? 0, f.expCmdSN, f.maxCmdSN);
  u32(bhs, 36, f.dataSN);
  u32(bhs, 40, f.bufferOffset);
  u32(bhs, 44, f.residualCount);
  return bhs;
}

export interface LogoutResponseFields extends CommonFields, TargetSequenceFields {
  /** LogoutResponse. */
  response: number;
  time2Wait?: number;
  time2Retain?: number;
}

/** 11.15 Logout Response. */
export function encodeLogoutResponse(bhs: Buffer, f: LogoutResponseFields): Buffer {
  begin(bhs, Opcode.LogoutResponse, FINAL_BIT, f);
  bhs.fill(0, 8, 16);
  bhs[2] = f.response;
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  bhs.writeUInt16BE((f.time2Wait ?? 0) & 0xffff, 40);
  bhs.writeUInt16BE((f.time2Retain ?? 0) & 0xffff, 42);
  return bhs;
}

export interface R2TFields extends CommonFields, TargetSequenceFields {
  ttt: number;
  r2tSN: number;
  bufferOffset: number;
  desiredDataTransferLength: number;
}

/** 11.8.2 Ready To Transfer (StatSN carries the next StatSN without advancing it). */
export function encodeR2T(bhs: Buffer, f: R2TFields): Buffer {
  begin(bhs, Opcode.R2T, FINAL_BIT, f);
  u32(bhs, 20, f.ttt);
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  u32(bhs, 36, f.r2tSN);
  u32(bhs, 40, f.bufferOffset);
  u32(bhs, 44, f.desiredDataTransferLength);
  return bhs;
}

export interface AsyncMessageFields extends Omit<CommonFields, 'itt'>, TargetSequenceFields {
  /** AsyncEvent. */
  asyncEvent: number;
  asyncVCode?: number;
  parameter1?: number;
  parameter2?: number;
  parameter3?: number;
}

/** 11.9 Asynchronous Message (ITT is always 0xffffffff). */
export function encodeAsyncMessage(bhs: Buffer, f: AsyncMessageFields): Buffer {
  begin(bhs, Opcode.AsyncMessage, FINAL_BIT, { ...f, itt: RESERVED_TAG });
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  bhs[36] = f.asyncEvent;
  bhs[37] = f.asyncVCode ?? 0;
  bhs.writeUInt16BE((f.parameter1 ?? 0) & 0xffff, 38);
  bhs.writeUInt16BE((f.parameter2 ?? 0) & 0xffff, 40);
  bhs.writeUInt16BE((f.parameter3 ?? 0) & 0xffff, 42);
  return bhs;
}

export interface RejectFields extends TargetSequenceFields {
  /** RejectReason. */
  reason: number;
  /** DataSN/R2TSN for SNACK rejects. */
  dataSN?: number;
  dataSegmentLength?: number;
}

/** 11.17 Reject (ITT is always 0xffffffff; the data segment is the rejected header). */
export function encodeReject(bhs: Buffer, f: RejectFields): Buffer {
  begin(bhs, Opcode.Reject, FINAL_BIT, { itt: RESERVED_TAG, dataSegmentLength: f.dataSegmentLength });
  bhs[2] = f.reason;
  writeTargetSequence(bhs, f.statSN, f.expCmdSN, f.maxCmdSN);
  u32(bhs, 36, f.dataSN);
  return bhs;
}

// --- initiator -> target ---

export interface NopOutFields extends CommonFields, InitiatorSequenceFields {
  immediate?: boolean;
  /** 0xffffffff for an initiator ping; the NOP-In's TTT when answering one. */
  ttt: number;
}

/** 11.18 NOP-Out. */
export function encodeNopOut(bhs: Buffer, f: NopOutFields): Buffer {
  begin(bhs, byte0(Opcode.NopOut, f.immediate), FINAL_BIT, f);
  u32(bhs, 20, f.ttt);
  writeInitiatorSequence(bhs, f.cmdSN, f.expStatSN);
  return bhs;
}

export interface ScsiCommandFields extends CommonFields, InitiatorSequenceFields {
  immediate?: boolean;
  /** F: no unsolicited Data-Out follows (default true). */
  final?: boolean;
  read?: boolean;
  write?: boolean;
  /** TaskAttr; default Simple. */
  attr?: number;
  edtl: number;
  /** CDB; the first 16 bytes go in the BHS (longer CDBs need encodeExtendedCdbAhs too). */
  cdb: Buffer;
}

/** 11.3 SCSI Command. */
export function encodeScsiCommand(bhs: Buffer, f: ScsiCommandFields): Buffer {
  const flags =
    flag(f.final ?? true, ScsiCommandFlags.Final) |
    flag(f.read, ScsiCommandFlags.Read) |
    flag(f.write, ScsiCommandFlags.Write) |
    ((f.attr ?? 1) & ScsiCommandFlags.AttrMask);
  begin(bhs, byte0(Opcode.ScsiCommand, f.immediate), flags, f);
  u32(bhs, 20, f.edtl);
  writeInitiatorSequence(bhs, f.cmdSN, f.expStatSN);
  f.cdb.copy(bhs, 32, 0, Math.min(f.cdb.length, BHS_CDB_LENGTH));
  return bhs;
}

export interface TaskMgmtRequestFields extends CommonFields, InitiatorSequenceFields {
  immediate?: boolean;
  /** TmfFunction. */
  function: number;
  /** RTT; 0xffffffff when not ABORT TASK / TASK REASSIGN. */
  referencedTaskTag?: number;
  refCmdSN?: number;
  expDataSN?: number;
}

/** 11.5 Task Management Function Request. */
export function encodeTaskMgmtRequest(bhs: Buffer, f: TaskMgmtRequestFields): Buffer {
  begin(bhs, byte0(Opcode.TaskMgmtRequest, f.immediate), FINAL_BIT | (f.function & TMF_FUNCTION_MASK), f);
  bhs.writeUInt32BE((f.referencedTaskTag ?? RESERVED_TAG) >>> 0, 20);
  writeInitiatorSequence(bhs, f.cmdSN, f.expStatSN);
  u32(bhs, 32, f.refCmdSN);
  u32(bhs, 36, f.expDataSN);
  return bhs;
}

export interface LoginRequestFields extends CommonFields, InitiatorSequenceFields {
  transit?: boolean;
  continue?: boolean;
  csg: number;
  nsg: number;
  versionMax?: number;
  versionMin?: number;
  /** 6-byte ISID (copied). */
  isid: Buffer;
  tsih: number;
  cid: number;
}

/** 11.12 Login Request (the I bit is always set, 11.12.1). */
export function encodeLoginRequest(bhs: Buffer, f: LoginRequestFields): Buffer {
  begin(bhs, byte0(Opcode.LoginRequest, true), loginFlags(f.transit, f.continue, f.csg, f.nsg), f);
  bhs[2] = f.versionMax ?? 0;
  bhs[3] = f.versionMin ?? 0;
  f.isid.copy(bhs, 8, 0, 6);
  bhs.writeUInt16BE(f.tsih & 0xffff, 14);
  bhs.writeUInt16BE(f.cid & 0xffff, 20);
  writeInitiatorSequence(bhs, f.cmdSN, f.expStatSN);
  return bhs;
}

export interface TextRequestFields extends CommonFields, InitiatorSequenceFields {
  immediate?: boolean;
  final?: boolean;
  continue?: boolean;
  /** 0xffffffff to start a new exchange; the target's TTT when continuing one. */
  ttt: number;
}

/** 11.10 Text Request. */
export function encodeTextRequest(bhs: Buffer, f: TextRequestFields): Buffer {
  const flags = flag(f.final, TextFlags.Final) | flag(f.continue, TextFlags.Continue);
  begin(bhs, byte0(Opcode.TextRequest, f.immediate), flags, f);
  u32(bhs, 20, f.ttt);
  writeInitiatorSequence(bhs, f.cmdSN, f.expStatSN);
  return bhs;
}

export interface DataOutFields extends CommonFields {
  final?: boolean;
  /** The R2T's TTT, or 0xffffffff for unsolicited data. */
  ttt: number;
  expStatSN: number;
  dataSN: number;
  bufferOffset: number;
}

/** 11.8 SCSI Data-Out. */
export function encodeDataOut(bhs: Buffer, f: DataOutFields): Buffer {
  begin(bhs, Opcode.DataOut, flag(f.final, FINAL_BIT), f);
  u32(bhs, 20, f.ttt);
  u32(bhs, 28, f.expStatSN);
  u32(bhs, 36, f.dataSN);
  u32(bhs, 40, f.bufferOffset);
  return bhs;
}

export interface LogoutRequestFields extends CommonFields, InitiatorSequenceFields {
  immediate?: boolean;
  /** LogoutReason. */
  reasonCode: number;
  cid: number;
}

/** 11.14 Logout Request. */
export function encodeLogoutRequest(bhs: Buffer, f: LogoutRequestFields): Buffer {
  begin(bhs, byte0(Opcode.LogoutRequest, f.immediate), FINAL_BIT | (f.reasonCode & LOGOUT_REASON_MASK), f);
  bhs.writeUInt16BE(f.cid & 0xffff, 20);
  writeInitiatorSequence(bhs, f.cmdSN, f.expStatSN);
  return bhs;
}

export interface SnackRequestFields extends CommonFields {
  /** SnackType. */
  type: number;
  ttt?: number;
  expStatSN: number;
  begRun: number;
  runLength: number;
}

/** 11.16 SNACK Request. */
export function encodeSnackRequest(bhs: Buffer, f: SnackRequestFields): Buffer {
  begin(bhs, Opcode.SnackRequest, FINAL_BIT | (f.type & SNACK_TYPE_MASK), f);
  bhs.writeUInt32BE((f.ttt ?? RESERVED_TAG) >>> 0, 20);
  u32(bhs, 28, f.expStatSN);
  u32(bhs, 40, f.begRun);
  u32(bhs, 44, f.runLength);
  return bhs;
}

// ---------------------------------------------------------------------------------------------
// AHS (11.2.2) and data-segment helpers
// ---------------------------------------------------------------------------------------------

/**
 * The AHS-specific bytes (from byte 3, AHSLength long) of the first AHS of `type`, as a view;
 * null when absent or when the AHS chain is malformed before it.
 */
export function findAhs(ahs: Buffer | null, type: number): Buffer | null {
  if (!ahs) return null;
  let off = 0;
  while (off + 4 <= ahs.length) {
    const len = ahs.readUInt16BE(off);
    const end = off + 3 + len;
    if (end > ahs.length) return null;
    if (ahs[off + 2] === type) return ahs.subarray(off + 3, end);
    off += paddedLength(3 + len); // 11.2.2.1: each AHS is padded to 4 bytes
  }
  return null;
}

/** True when the AHS chain's lengths exactly cover the buffer (11.2.2). */
export function ahsWellFormed(ahs: Buffer | null): boolean {
  if (!ahs) return true;
  let off = 0;
  while (off < ahs.length) {
    if (off + 4 > ahs.length) return false;
    const next = off + paddedLength(3 + ahs.readUInt16BE(off));
    if (next > ahs.length) return false;
    off = next;
  }
  return true;
}

/**
 * 11.3.5 / 11.2.2.3: the full CDB of a SCSI Command: the 16-byte BHS field as a view, or (rare)
 * a new buffer of BHS CDB + extended-CDB AHS bytes.
 */
export function scsiCommandCdb(bhs: Buffer, ahs: Buffer | null): Buffer {
  const base = bhs.subarray(32, 48);
  const ext = findAhs(ahs, AhsType.ExtendedCdb);
  // The first byte of the AHS-specific field is reserved; the extra CDB bytes follow it.
  if (!ext || ext.length <= 1) return base;
  return Buffer.concat([base, ext.subarray(1)]);
}

/**
 * The CDB and LUN of a SCSI Command as buffers of their own (copies), for a receiver that does
 * not keep the header itself (the framer's transient headers).
 */
export function ownCdb(bhs: Buffer, ahs: Buffer | null): Buffer {
  if (findAhs(ahs, AhsType.ExtendedCdb)) return scsiCommandCdb(bhs, ahs); // concatenated: a copy
  return copyOut(bhs, 32, 16);
}

/** The LUN field (bytes 8-15) as a buffer of its own; see ownCdb. */
export function ownLun(bhs: Buffer): Buffer {
  return copyOut(bhs, 8, 8);
}

/** `length` bytes of `from` at `start` in a new buffer (a loop: Buffer#copy makes a view first). */
export function copyOut(from: Buffer, start: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = from[start + i]!;
  return out;
}

/** 11.2.2.4: Expected Bidirectional Read Data Length from the AHS, or null. */
export function bidiReadLength(ahs: Buffer | null): number | null {
  const v = findAhs(ahs, AhsType.BidiReadLength);
  return v && v.length >= 5 ? v.readUInt32BE(1) : null;
}

/** An extended-CDB AHS for the bytes of `cdb` past 16, or null for CDBs of up to 16 bytes. */
export function encodeExtendedCdbAhs(cdb: Buffer): Buffer | null {
  if (cdb.length <= BHS_CDB_LENGTH) return null;
  const extra = cdb.length - BHS_CDB_LENGTH;
  const ahs = Buffer.alloc(paddedLength(4 + extra));
  ahs.writeUInt16BE(extra + 1, 0); // AHSLength counts the reserved byte 3
  ahs[2] = AhsType.ExtendedCdb;
  cdb.copy(ahs, 4, BHS_CDB_LENGTH);
  return ahs;
}

/** A bidirectional-read-length AHS (8 bytes). */
export function encodeBidiReadLengthAhs(length: number): Buffer {
  const ahs = Buffer.alloc(8);
  ahs.writeUInt16BE(5, 0);
  ahs[2] = AhsType.BidiReadLength;
  ahs.writeUInt32BE(length >>> 0, 4);
  return ahs;
}

const senseLengthPrefixes: Buffer[] = [];

/**
 * 11.4.7.2: the 2-byte SenseLength that precedes sense data in a SCSI Response data segment.
 * Shared read-only buffers for lengths under 256 (never write into them).
 */
export function senseLengthPrefix(length: number): Buffer {
  if (length > 0xff) {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(length & 0xffff, 0);
    return b;
  }
  let b = senseLengthPrefixes[length];
  if (!b) {
    b = Buffer.from([0, length]);
    senseLengthPrefixes[length] = b;
  }
  return b;
}

/** 11.4.7: the sense data in a SCSI Response data segment as a view, or null when absent or truncated. */
export function senseFromData(data: Buffer): Buffer | null {
  if (data.length < 2) return null;
  const len = data.readUInt16BE(0);
  if (len === 0 || 2 + len > data.length) return null;
  return data.subarray(2, 2 + len);
}

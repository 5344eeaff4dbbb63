/**
 * RFC 7143 (iSCSI) wire constants: opcodes, flag bits, reason/status/response codes and
 * fixed field values. Section numbers in comments refer to RFC 7143.
 *
 * Public API:
 *   BHS_LENGTH, DIGEST_LENGTH, RESERVED_TAG, ISCSI_VERSION, MAX_DATA_SEGMENT_LENGTH, DEFAULT_LOGIN_MAX_DATA_SEGMENT_LENGTH
 *   enum Opcode, OPCODE_MASK, IMMEDIATE_BIT, FINAL_BIT, isInitiatorOpcode(op)
 *   ScsiCommandFlags, DataInFlags, ScsiResponseFlags, TextFlags, LoginFlags
 *   enum ScsiResponseCode, enum RejectReason, enum LoginStatusClass, LoginStatus (class<<8 | detail)
 *   enum LoginStage, enum TmfFunction, enum TmfResponse, enum LogoutReason, enum LogoutResponse,
 *   enum SnackType, enum AsyncEvent, enum AhsType, AHS_EXTENDED_CDB_MAX
 *   TaskAttr, TMF_FUNCTION_MASK, LOGOUT_REASON_MASK, SNACK_TYPE_MASK, MAX_TOTAL_AHS_LENGTH, BHS_CDB_LENGTH
 */

/** 11.2: every PDU starts with a 48-byte Basic Header Segment. */
export const BHS_LENGTH = 48;

/** 11.1 / 13.1: a CRC32C digest is 4 bytes. */
export const DIGEST_LENGTH = 4;

/** 11.2.1.8: the reserved Initiator/Target Task Tag value 0xffffffff. */
export const RESERVED_TAG = 0xffffffff;

/** 11.12.4 / 11.13.4: version 0x00 is the only iSCSI version defined. */
export const ISCSI_VERSION = 0x00;

/** 13.12: MaxRecvDataSegmentLength ranges over 512..2^24-1 (DataSegmentLength is 3 bytes). */
export const MAX_DATA_SEGMENT_LENGTH = 0xffffff;

/** 13.12: the default MaxRecvDataSegmentLength (8192) that applies during login. */
export const DEFAULT_LOGIN_MAX_DATA_SEGMENT_LENGTH = 8192;

/** 11.2.1.2: opcodes. Initiator opcodes are 0x00-0x1f, target opcodes 0x20-0x3f. */
export enum Opcode {
  NopOut = 0x00,
  ScsiCommand = 0x01,
  TaskMgmtRequest = 0x02,
  LoginRequest = 0x03,
  TextRequest = 0x04,
  DataOut = 0x05,
  LogoutRequest = 0x06,
  SnackRequest = 0x10,
  NopIn = 0x20,
  ScsiResponse = 0x21,
  TaskMgmtResponse = 0x22,
  LoginResponse = 0x23,
  TextResponse = 0x24,
  DataIn = 0x25,
  LogoutResponse = 0x26,
  R2T = 0x31,
  AsyncMessage = 0x32,
  Reject = 0x3f,
}

/** 11.2.1.2: the low six bits of byte 0 are the opcode. */
export const OPCODE_MASK = 0x3f;
/** 11.2.1.2: bit 6 of byte 0 marks an immediate request (initiator PDUs only). */
export const IMMEDIATE_BIT = 0x40;
/** 11.2.1: bit 7 of byte 1 is the F (final) bit in most PDUs (T, transit, in Login). */
export const FINAL_BIT = 0x80;

/** 11.2.1.2: true for opcodes an initiator may send (0x00-0x1f). */
export function isInitiatorOpcode(op: number): boolean {
  return op < 0x20;
}

/** 11.3: SCSI Command byte 1 flags. */
export const ScsiCommandFlags = {
  Final: 0x80,
  Read: 0x40,
  Write: 0x20,
  /** Task attribute (11.3.1.4): 0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA. */
  AttrMask: 0x07,
} as const;

/** 11.3.1.4: ATTR field values. */
export enum TaskAttr {
  Untagged = 0,
  Simple = 1,
  Ordered = 2,
  HeadOfQueue = 3,
  Aca = 4,
}

/** 11.7: SCSI Data-In byte 1 flags. */
export const DataInFlags = {
  Final: 0x80,
  /** A: acknowledge requested (ERL > 0 only). */
  Acknowledge: 0x40,
  /** O: residual overflow (valid only with S). */
  Overflow: 0x04,
  /** U: residual underflow (valid only with S). */
  Underflow: 0x02,
  /** S: the PDU carries SCSI status (phase collapse, 11.7.3). */
  Status: 0x01,
} as const;

/** 11.4: SCSI Response byte 1 flags (bit 7 is always 1). */
export const ScsiResponseFlags = {
  Final: 0x80,
  /** o: bidirectional read residual overflow. */
  BidiOverflow: 0x10,
  /** u: bidirectional read residual underflow. */
  BidiUnderflow: 0x08,
  /** O: residual overflow. */
  Overflow: 0x04,
  /** U: residual underflow. */
  Underflow: 0x02,
} as const;

/** 11.10 / 11.11: Text Request/Response byte 1 flags. */
export const TextFlags = {
  Final: 0x80,
  Continue: 0x40,
} as const;

/** 11.12 / 11.13: Login Request/Response byte 1 flags. */
export const LoginFlags = {
  Transit: 0x80,
  Continue: 0x40,
  /** CSG is bits 2-3, NSG bits 0-1. */
  CsgMask: 0x0c,
  CsgShift: 2,
  NsgMask: 0x03,
} as const;

/** 11.12.3: login stages (CSG/NSG values). */
export enum LoginStage {
  SecurityNegotiation = 0,
  LoginOperationalNegotiation = 1,
  FullFeaturePhase = 3,
}

/** 11.4.3: SCSI Response "Response" byte. */
export enum ScsiResponseCode {
  CommandCompleted = 0x00,
  TargetFailure = 0x01,
}

/** 11.17.1: Reject reason codes. */
export enum RejectReason {
  Reserved = 0x01,
  DataDigestError = 0x02,
  SnackReject = 0x03,
  ProtocolError = 0x04,
  CommandNotSupported = 0x05,
  ImmediateCommandReject = 0x06,
  TaskInProgress = 0x07,
  InvalidDataAck = 0x08,
  InvalidPduField = 0x09,
  LongOperationReject = 0x0a,
  /** Deprecated in RFC 7143 (was "Negotiation Reset"); MUST NOT be used. */
  NegotiationReset = 0x0b,
  WaitingForLogout = 0x0c,
}

/** 11.13.5: Login Response Status-Class. */
export enum LoginStatusClass {
  Success = 0x00,
  Redirection = 0x01,
  InitiatorError = 0x02,
  TargetError = 0x03,
}

/**
 * 11.13.5: Login Response status as (Status-Class << 8) | Status-Detail; split with
 * `status >> 8` and `status & 0xff`.
 */
export const LoginStatus = {
  Success: 0x0000,
  TargetMovedTemporarily: 0x0101,
  TargetMovedPermanently: 0x0102,
  InitiatorError: 0x0200,
  AuthenticationFailure: 0x0201,
  AuthorizationFailure: 0x0202,
  NotFound: 0x0203,
  TargetRemoved: 0x0204,
  UnsupportedVersion: 0x0205,
  TooManyConnections: 0x0206,
  MissingParameter: 0x0207,
  CannotIncludeInSession: 0x0208,
  SessionTypeNotSupported: 0x0209,
  SessionDoesNotExist: 0x020a,
  InvalidDuringLogin: 0x020b,
  TargetError: 0x0300,
  ServiceUnavailable: 0x0301,
  OutOfResources: 0x0302,
} as const;
export type LoginStatus = (typeof LoginStatus)[keyof typeof LoginStatus];

/**
 * 11.5.1 and RFC 7144 4.1: Task Management Function codes (byte 1, low 7 bits). The SCSI core
 * numbers its transport-neutral functions the same way, so the wire value is the core's enum.
 */
export { TmfFunction } from '../scsi/tmf.js';

/** 11.5.1: the function code occupies the low 7 bits of byte 1. */
export const TMF_FUNCTION_MASK = 0x7f;

/** 11.6.1: Task Management Function Response codes (7: RFC 7144 4.1). */
export enum TmfResponse {
  FunctionComplete = 0,
  TaskDoesNotExist = 1,
  LunDoesNotExist = 2,
  TaskStillAllegiant = 3,
  TaskAllegianceReassignmentNotSupported = 4,
  NotSupported = 5,
  AuthorizationFailed = 6,
  /** RFC 7144 4.1: SAM-5 FUNCTION SUCCEEDED (QUERY TASK, QUERY TASK SET, QUERY ASYNCHRONOUS EVENT). */
  FunctionSucceeded = 7,
  FunctionRejected = 255,
}

/** 11.14.1: Logout Request reason codes (byte 1, low 7 bits). */
export enum LogoutReason {
  CloseSession = 0,
  CloseConnection = 1,
  RemoveConnectionForRecovery = 2,
}

/** 11.14.1: the reason code occupies the low 7 bits of byte 1. */
export const LOGOUT_REASON_MASK = 0x7f;

/** 11.15.1: Logout Response codes. */
export enum LogoutResponse {
  Success = 0,
  CidNotFound = 1,
  RecoveryNotSupported = 2,
  CleanupFailed = 3,
}

/** 11.16.1: SNACK types (byte 1, low 4 bits). */
export enum SnackType {
  DataR2T = 0,
  Status = 1,
  DataAck = 2,
  RData = 3,
}

/** 11.16.1: the SNACK type occupies the low 4 bits of byte 1. */
export const SNACK_TYPE_MASK = 0x0f;

/** 11.9.1: AsyncEvent codes. */
export enum AsyncEvent {
  ScsiAsyncEvent = 0,
  LogoutRequest = 1,
  ConnectionDrop = 2,
  SessionDrop = 3,
  NegotiationRequest = 4,
  VendorSpecific = 255,
}

/** 11.2.2: AHS types. */
export enum AhsType {
  /** 11.2.2.3: CDB bytes beyond the first 16. */
  ExtendedCdb = 1,
  /** 11.2.2.4: Expected Bidirectional Read Data Length. */
  BidiReadLength = 2,
}

/** 11.2.2: TotalAHSLength is in 4-byte words (max 255 words). */
export const MAX_TOTAL_AHS_LENGTH = 255 * 4;

/** 11.3.5: length of the CDB field in the BHS; longer CDBs spill into an extended-CDB AHS. */
export const BHS_CDB_LENGTH = 16;

/**
 * Sense data: one enum of reasons, one table from reason to {key, asc, ascq} (LIO's
 * sense_detail_table), and one builder that writes fixed (0x70) or descriptor (0x72) format
 * (SPC-4 4.5). Handlers throw `SenseError(reason)`; only this module knows the bytes.
 */
import { Buffer } from 'node:buffer';

/** SPC-4 4.5.6 sense keys. */
export enum SenseKey {
  NoSense = 0x0,
  RecoveredError = 0x1,
  NotReady = 0x2,
  MediumError = 0x3,
  HardwareError = 0x4,
  IllegalRequest = 0x5,
  UnitAttention = 0x6,
  DataProtect = 0x7,
  BlankCheck = 0x8,
  CopyAborted = 0xa,
  AbortedCommand = 0xb,
  Miscompare = 0xe,
}

/** Why a command failed (or which unit attention is pending). */
export enum SenseReason {
  NoSense,
  InvalidOpcode,
  InvalidFieldInCdb,
  InvalidFieldInParameterList,
  InvalidFieldInInformationUnit,
  ParameterListLengthError,
  LbaOutOfRange,
  LuNotSupported,
  SavingParametersNotSupported,
  MediumRemovalPrevented,
  WriteProtected,
  MediumNotPresent,
  LuBecomingReady,
  UnrecoveredReadError,
  WriteError,
  Miscompare,
  InternalTargetFailure,
  PowerOnReset,
  BusDeviceReset,
  NotReadyToReadyChange,
  ModeParametersChanged,
  ReportedLunsDataChanged,
  CommandsClearedByAnotherInitiator,
  CapacityDataChanged,
  ReservationsPreempted,
  ReservationsReleased,
  RegistrationsPreempted,
  InvalidReleaseOfPersistentReservation,
  SpaceAllocationFailed,
  SanitizeInProgress,
  SanitizeFailed,
  CopyTargetDeviceNotReachable,
  UnreachableCopyTarget,
  TooManyTargetDescriptors,
  TooManySegmentDescriptors,
  UnsupportedTargetDescriptorType,
  UnsupportedSegmentDescriptorType,
  CopyAborted,
  ItNexusLoss,
  ProtocolServiceCrcError,
  CommandsClearedByDeviceServer,
}

export interface SenseCode {
  readonly key: SenseKey;
  readonly asc: number;
  readonly ascq: number;
}

/** The one table: reason -> sense key + additional sense code/qualifier (SPC-4 Annex D). */
const SENSE_TABLE: readonly SenseCode[] = (() => {
  const t: SenseCode[] = [];
  const set = (r: SenseReason, key: SenseKey, asc: number, ascq: number) => {
    t[r] = Object.freeze({ key, asc, ascq });
  };
  set(SenseReason.NoSense, SenseKey.NoSense, 0x00, 0x00); // NO ADDITIONAL SENSE INFORMATION
  set(SenseReason.InvalidOpcode, SenseKey.IllegalRequest, 0x20, 0x00); // INVALID COMMAND OPERATION CODE
  set(SenseReason.InvalidFieldInCdb, SenseKey.IllegalRequest, 0x24, 0x00); // INVALID FIELD IN CDB
  set(SenseReason.InvalidFieldInParameterList, SenseKey.IllegalRequest, 0x26, 0x00); // INVALID FIELD IN PARAMETER LIST
  set(SenseReason.InvalidFieldInInformationUnit, SenseKey.IllegalRequest, 0x0e, 0x03); // INVALID FIELD IN COMMAND INFORMATION UNIT
  set(SenseReason.ParameterListLengthError, SenseKey.IllegalRequest, 0x1a, 0x00); // PARAMETER LIST LENGTH ERROR
  set(SenseReason.LbaOutOfRange, SenseKey.IllegalRequest, 0x21, 0x00); // LOGICAL BLOCK ADDRESS OUT OF RANGE
  set(SenseReason.LuNotSupported, SenseKey.IllegalRequest, 0x25, 0x00); // LOGICAL UNIT NOT SUPPORTED
  set(SenseReason.SavingParametersNotSupported, SenseKey.IllegalRequest, 0x39, 0x00); // SAVING PARAMETERS NOT SUPPORTED
  set(SenseReason.MediumRemovalPrevented, SenseKey.IllegalRequest, 0x53, 0x02); // MEDIUM REMOVAL PREVENTED
  set(SenseReason.WriteProtected, SenseKey.DataProtect, 0x27, 0x00); // WRITE PROTECTED
  set(SenseReason.MediumNotPresent, SenseKey.NotReady, 0x3a, 0x00); // MEDIUM NOT PRESENT
  set(SenseReason.LuBecomingReady, SenseKey.NotReady, 0x04, 0x01); // LOGICAL UNIT IS IN PROCESS OF BECOMING READY
  set(SenseReason.UnrecoveredReadError, SenseKey.MediumError, 0x11, 0x00); // UNRECOVERED READ ERROR
  set(SenseReason.WriteError, SenseKey.MediumError, 0x0c, 0x00); // WRITE ERROR
  set(SenseReason.Miscompare, SenseKey.Miscompare, 0x1d, 0x00); // MISCOMPARE DURING VERIFY OPERATION
  set(SenseReason.InternalTargetFailure, SenseKey.HardwareError, 0x44, 0x00); // INTERNAL TARGET FAILURE
  set(SenseReason.PowerOnReset, SenseKey.UnitAttention, 0x29, 0x00); // POWER ON, RESET, OR BUS DEVICE RESET OCCURRED
  set(SenseReason.BusDeviceReset, SenseKey.UnitAttention, 0x29, 0x03); // BUS DEVICE RESET FUNCTION OCCURRED
  set(SenseReason.ItNexusLoss, SenseKey.UnitAttention, 0x29, 0x07); // I_T NEXUS LOSS OCCURRED
  set(SenseReason.ProtocolServiceCrcError, SenseKey.AbortedCommand, 0x47, 0x05); // PROTOCOL SERVICE CRC ERROR
  set(SenseReason.CommandsClearedByDeviceServer, SenseKey.UnitAttention, 0x2f, 0x02); // COMMANDS CLEARED BY DEVICE SERVER
  set(SenseReason.NotReadyToReadyChange, SenseKey.UnitAttention, 0x28, 0x00); // NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED
  set(SenseReason.ModeParametersChanged, SenseKey.UnitAttention, 0x2a, 0x01); // MODE PARAMETERS CHANGED
  set(SenseReason.ReportedLunsDataChanged, SenseKey.UnitAttention, 0x3f, 0x0e); // REPORTED LUNS DATA HAS CHANGED
  set(SenseReason.CommandsClearedByAnotherInitiator, SenseKey.UnitAttention, 0x2f, 0x00); // COMMANDS CLEARED BY ANOTHER INITIATOR
  set(SenseReason.CapacityDataChanged, SenseKey.UnitAttention, 0x2a, 0x09); // CAPACITY DATA HAS CHANGED
  set(SenseReason.ReservationsPreempted, SenseKey.UnitAttention, 0x2a, 0x03); // RESERVATIONS PREEMPTED
  set(SenseReason.ReservationsReleased, SenseKey.UnitAttention, 0x2a, 0x04); // RESERVATIONS RELEASED
  set(SenseReason.RegistrationsPreempted, SenseKey.UnitAttention, 0x2a, 0x05); // REGISTRATIONS PREEMPTED
  set(SenseReason.InvalidReleaseOfPersistentReservation, SenseKey.IllegalRequest, 0x26, 0x04); // INVALID RELEASE OF PERSISTENT RESERVATION
  set(SenseReason.SpaceAllocationFailed, SenseKey.DataProtect, 0x27, 0x07); // SPACE ALLOCATION FAILED WRITE PROTECT (SBC-4 4.7.3.6)
  set(SenseReason.SanitizeInProgress, SenseKey.NotReady, 0x04, 0x1b); // LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS
  set(SenseReason.SanitizeFailed, SenseKey.MediumError, 0x31, 0x03); // SANITIZE COMMAND FAILED
  set(SenseReason.CopyTargetDeviceNotReachable, SenseKey.CopyAborted, 0x0d, 0x02); // COPY TARGET DEVICE NOT REACHABLE
  set(SenseReason.UnreachableCopyTarget, SenseKey.CopyAborted, 0x08, 0x04); // UNREACHABLE COPY TARGET
  set(SenseReason.TooManyTargetDescriptors, SenseKey.IllegalRequest, 0x26, 0x06); // TOO MANY TARGET DESCRIPTORS
  set(SenseReason.TooManySegmentDescriptors, SenseKey.IllegalRequest, 0x26, 0x08); // TOO MANY SEGMENT DESCRIPTORS
  set(SenseReason.UnsupportedTargetDescriptorType, SenseKey.IllegalRequest, 0x26, 0x07); // UNSUPPORTED TARGET DESCRIPTOR TYPE CODE
  set(SenseReason.UnsupportedSegmentDescriptorType, SenseKey.IllegalRequest, 0x26, 0x09); // UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE
  set(SenseReason.CopyAborted, SenseKey.CopyAborted, 0x00, 0x00); // a copy segment failed (range or I/O)
  return Object.freeze(t);
})();

/** Sense key / ASC / ASCQ for a reason. */
export function senseCode(reason: SenseReason): SenseCode {
  return SENSE_TABLE[reason]!;
}

/** SPC-4 4.5.2.4.2 field pointer: which CDB (or parameter list) byte, and bit, is wrong. */
export interface FieldPointer {
  /** C/D: the field is in the CDB (true) or in the parameter data (false). */
  readonly cdb: boolean;
  readonly byte: number;
  /** Bit within the byte (BPV set), or undefined. */
  readonly bit?: number;
}

/** A command failure carrying its sense reason (and optional INFORMATION / field pointer). */
export class SenseError extends Error {
  readonly reason: SenseReason;
  /** SPC-4 4.5.2.1 INFORMATION (e.g. MISCOMPARE byte offset); undefined = not valid. */
  readonly information: number | undefined;
  /** SPC-4 4.5.2.4.2 sense key specific field pointer (ILLEGAL REQUEST), or undefined. */
  readonly field: FieldPointer | undefined;
  /** SPC-4 4.5.2.4.3 PROGRESS INDICATION (NOT READY), 0..65535 = fraction done x 65536. */
  readonly progress: number | undefined;

  constructor(reason: SenseReason, information?: number, field?: FieldPointer, progress?: number) {
    super(SenseReason[reason]);
    this.name = 'SenseError';
    this.reason = reason;
    this.information = information;
    this.field = field;
    this.progress = progress;
  }
}

/** INVALID FIELD IN CDB pointing at CDB byte `byte` (and `bit`). */
export function invalidCdbField(byte: number, bit?: number): SenseError {
  return new SenseError(SenseReason.InvalidFieldInCdb, undefined, { cdb: true, byte, bit });
}

/** SKSV, C/D, BPV and bit pointer byte of a field pointer. */
function fieldPointerFlags(f: FieldPointer): number {
  return 0x80 | (f.cdb ? 0x40 : 0) | (f.bit !== undefined ? 0x08 | (f.bit & 0x07) : 0);
}

/** Fixed-format sense length (SPC-4 4.5.3): 8 header bytes + 10 additional. */
export const FIXED_SENSE_LENGTH = 18;

/**
 * Build sense data for `reason`: descriptor format (0x72, SPC-4 4.5.2) when `descriptor`,
 * else fixed format (0x70, SPC-4 4.5.3). `information` sets the INFORMATION field (VALID bit
 * in fixed format, an information descriptor in descriptor format).
 */
export function buildSense(
  reason: SenseReason,
  descriptor: boolean,
  information?: number,
  field?: FieldPointer,
  progress?: number,
): Buffer {
  const { key, asc, ascq } = SENSE_TABLE[reason]!;
  const specific = field !== undefined || progress !== undefined;
  if (descriptor) {
    const withInfo = information !== undefined;
    const buf = Buffer.alloc(8 + (withInfo ? 12 : 0) + (specific ? 8 : 0));
    buf[0] = 0x72;
    buf[1] = key;
    buf[2] = asc;
    buf[3] = ascq;
    buf[7] = buf.length - 8; // additional sense length
    let off = 8;
    if (withInfo) {
      buf[off] = 0x00; // SPC-4 4.5.2.2 information descriptor
      buf[off + 1] = 0x0a;
      buf[off + 2] = 0x80; // VALID
      buf.writeBigUInt64BE(BigInt(information), off + 4);
      off += 12;
    }
    if (specific) {
      buf[off] = 0x02; // SPC-4 4.5.2.4 sense key specific descriptor
      buf[off + 1] = 0x06;
      writeSpecific(buf, off + 4, field, progress);
    }
    return buf;
  }
  const buf = Buffer.alloc(FIXED_SENSE_LENGTH);
  buf[0] = 0x70;
  buf[2] = key;
  buf[7] = FIXED_SENSE_LENGTH - 8;
  buf[12] = asc;
  buf[13] = ascq;
  if (information !== undefined) {
    buf[0] |= 0x80; // VALID
    // Fixed format carries 32 bits; larger values cannot be reported (VALID stays set with the low bits).
    buf.writeUInt32BE(information >>> 0, 3);
  }
  if (specific) writeSpecific(buf, 15, field, progress);
  return buf;
}

/** The 3 SENSE KEY SPECIFIC bytes: a field pointer, else a progress indication (SKSV set). */
function writeSpecific(buf: Buffer, off: number, field?: FieldPointer, progress?: number): void {
  if (field) {
    buf[off] = fieldPointerFlags(field);
    buf.writeUInt16BE(field.byte & 0xffff, off + 1);
  } else {
    buf[off] = 0x80;
    buf.writeUInt16BE(Math.max(0, Math.min(0xffff, Math.floor(progress ?? 0))), off + 1);
  }
}

/** Decode key/asc/ascq from fixed or descriptor sense (for tests and REQUEST SENSE conversions). */
export function parseSense(sense: Buffer): SenseCode & { information?: number } {
  const code = sense[0]! & 0x7f;
  if (code === 0x72 || code === 0x73) {
    const out: SenseCode & { information?: number } = {
      key: sense[1]! & 0x0f,
      asc: sense[2]!,
      ascq: sense[3]!,
    };
    let off = 8;
    const end = 8 + sense[7]!;
    while (off + 2 <= end && off + 2 <= sense.length) {
      if (sense[off] === 0x00 && off + 12 <= sense.length)
        out.information = Number(sense.readBigUInt64BE(off + 4));
      off += 2 + sense[off + 1]!;
    }
    return out;
  }
  const out: SenseCode & { information?: number } = {
    key: sense[2]! & 0x0f,
    asc: sense[12]!,
    ascq: sense[13]!,
  };
  if (sense[0]! & 0x80) out.information = sense.readUInt32BE(3);
  return out;
}

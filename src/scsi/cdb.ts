/**
 * CDB field decoding shared by every block command (SPDK's bdev_scsi_process_block): CDB
 * length by opcode group (SPC-4 4.2.5.1), and LBA / transfer length for the 6/10/12/16-byte
 * READ, WRITE, VERIFY, WRITE AND VERIFY, PRE-FETCH, SYNCHRONIZE CACHE and WRITE SAME forms.
 * Functions return plain numbers so the data path allocates nothing.
 */
import { Buffer } from 'node:buffer';

/** Opcodes the core refers to by name. */
export enum Op {
  TestUnitReady = 0x00,
  RequestSense = 0x03,
  FormatUnit = 0x04,
  Read6 = 0x08,
  Write6 = 0x0a,
  Inquiry = 0x12,
  ModeSelect6 = 0x15,
  Reserve6 = 0x16,
  Release6 = 0x17,
  ModeSense6 = 0x1a,
  StartStopUnit = 0x1b,
  SendDiagnostic = 0x1d,
  PreventAllow = 0x1e,
  ReadCapacity10 = 0x25,
  Read10 = 0x28,
  Write10 = 0x2a,
  WriteVerify10 = 0x2e,
  Verify10 = 0x2f,
  PreFetch10 = 0x34,
  ReadDefectData10 = 0x37,
  SyncCache10 = 0x35,
  WriteSame10 = 0x41,
  Unmap = 0x42,
  Sanitize = 0x48,
  ModeSelect10 = 0x55,
  Reserve10 = 0x56,
  Release10 = 0x57,
  ModeSense10 = 0x5a,
  PersistentReserveIn = 0x5e,
  PersistentReserveOut = 0x5f,
  ExtendedCopy = 0x83,
  ReceiveCopyResults = 0x84,
  Read16 = 0x88,
  CompareAndWrite = 0x89,
  Write16 = 0x8a,
  OrWrite16 = 0x8b,
  WriteVerify16 = 0x8e,
  Verify16 = 0x8f,
  PreFetch16 = 0x90,
  SyncCache16 = 0x91,
  WriteSame16 = 0x93,
  WriteAtomic16 = 0x9c,
  ServiceActionIn16 = 0x9e,
  ReportLuns = 0xa0,
  MaintenanceIn = 0xa3,
  Read12 = 0xa8,
  Write12 = 0xaa,
  WriteVerify12 = 0xae,
  Verify12 = 0xaf,
  ReadDefectData12 = 0xb7,
}

/** SERVICE ACTION IN(16) service actions. */
export const SA_READ_CAPACITY_16 = 0x10;
export const SA_GET_LBA_STATUS = 0x12;
/** MAINTENANCE IN service actions. */
export const SA_REPORT_TARGET_PORT_GROUPS = 0x0a;
export const SA_REPORT_SUPPORTED_OPCODES = 0x0c;
export const SA_REPORT_SUPPORTED_TMFS = 0x0d;

/**
 * CDB length from the opcode's group code (SPC-4 4.2.5.1): group 0 -> 6, 1/2 -> 10,
 * 4 -> 16, 5 -> 12; 3 (variable length / reserved) and 6/7 (vendor) -> 0 = unknown.
 */
export function cdbLength(opcode: number): number {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

/** The CONTROL byte (last CDB byte), or 0 when the length is unknown or the CDB is short. */
export function cdbControl(cdb: Buffer): number {
  const len = cdbLength(cdb[0]!);
  return len > 0 && cdb.length >= len ? cdb[len - 1]! : 0;
}

/**
 * Logical block address of a block command. 6-byte: 21 bits (SBC-4 5.15); 10/12: 32 bits at
 * byte 2; 16: 64 bits at byte 2 (values past 2^53 lose precision but stay far beyond any
 * capacity, so range checks still fail them).
 */
export function cdbLba(cdb: Buffer): number {
  switch (cdbLength(cdb[0]!)) {
    case 6:
      return ((cdb[1]! & 0x1f) << 16) | (cdb[2]! << 8) | cdb[3]!;
    case 10:
    case 12:
      return cdb.readUInt32BE(2);
    case 16:
      return cdb.readUInt32BE(2) * 0x1_0000_0000 + cdb.readUInt32BE(6);
    default:
      return 0;
  }
}

/**
 * Transfer length in blocks. READ(6)/WRITE(6): 0 means 256 blocks (SBC-4 5.15, 5.48).
 * 10-byte: bytes 7-8; 12-byte: bytes 6-9; 16-byte: bytes 10-13; COMPARE AND WRITE: byte 13.
 */
export function cdbTransferLength(cdb: Buffer): number {
  const op = cdb[0]!;
  switch (cdbLength(op)) {
    case 6: {
      const n = cdb[4]!;
      return n === 0 && (op === Op.Read6 || op === Op.Write6) ? 256 : n;
    }
    case 10:
      return cdb.readUInt16BE(7);
    case 12:
      return cdb.readUInt32BE(6);
    case 16:
      return op === Op.CompareAndWrite ? cdb[13]! : cdb.readUInt32BE(10);
    default:
      return 0;
  }
}

/** FUA bit (byte 1 bit 3) of 10/12/16-byte READ/WRITE forms; 6-byte forms have none. */
export function cdbFua(cdb: Buffer): boolean {
  return cdbLength(cdb[0]!) !== 6 && (cdb[1]! & 0x08) !== 0;
}

/** RDPROTECT / WRPROTECT / VRPROTECT (byte 1 bits 7-5) of 10/12/16-byte forms. */
export function cdbProtect(cdb: Buffer): number {
  return cdbLength(cdb[0]!) === 6 ? 0 : cdb[1]! >> 5;
}

/** Allocation length of a 6-byte (byte 4), 10-byte (bytes 7-8), 12-byte (6-9) or 16-byte (10-13) CDB. */
export function cdbAllocationLength(cdb: Buffer): number {
  switch (cdbLength(cdb[0]!)) {
    case 6:
      return cdb[4]!;
    case 10:
      return cdb.readUInt16BE(7);
    case 12:
      return cdb.readUInt32BE(6);
    case 16:
      return cdb.readUInt32BE(10);
    default:
      return 0;
  }
}

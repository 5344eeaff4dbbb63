/**
 * CDB builders and response parsers for the commands the convenience helpers send (SPC-4,
 * SBC-3). Pure functions, so tools can also build a CDB and send it with `Session.command`.
 */
import { Buffer } from 'node:buffer';

/** SAM-5 4.6: an 8-byte LUN field. Numbers below 256 use peripheral addressing, below 16384 flat. */
export function encodeLun(lun: number | bigint | Buffer): Buffer {
  if (Buffer.isBuffer(lun)) {
    if (lun.length !== 8) throw new RangeError('a LUN field is 8 bytes');
    return lun;
  }
  const field = Buffer.alloc(8);
  if (typeof lun === 'bigint') {
    if (lun < 0n || lun >= 16384n) {
      field.writeBigUInt64BE(BigInt.asUintN(64, lun));
      return field;
    }
    lun = Number(lun);
  }
  if (!Number.isInteger(lun) || lun < 0 || lun >= 16384) throw new RangeError(`LUN ${lun} out of range`);
  if (lun < 256) field[1] = lun;
  else field.writeUInt16BE(0x4000 | lun, 0);
  return field;
}

/** SAM-5 4.6: the LUN number of a single-level peripheral or flat LUN field; the raw 64 bits otherwise. */
export function decodeLun(field: Buffer): bigint {
  const method = field[0]! >> 6;
  if ((method === 0 || method === 1) && field.readUInt32BE(2) === 0 && field.readUInt16BE(6) === 0) {
    return BigInt(field.readUInt16BE(0) & 0x3fff);
  }
  return field.readBigUInt64BE(0);
}

/** SPC-4 6.6 INQUIRY. */
export function inquiryCdb(evpd = false, page = 0, allocationLength = 255): Buffer {
  const cdb = Buffer.alloc(6);
  cdb[0] = 0x12;
  cdb[1] = evpd ? 1 : 0;
  cdb[2] = page;
  cdb.writeUInt16BE(allocationLength, 3);
  return cdb;
}

/** SPC-4 6.33 REPORT LUNS (select report 0). */
export function reportLunsCdb(allocationLength = 4096, selectReport = 0): Buffer {
  const cdb = Buffer.alloc(12);
  cdb[0] = 0xa0;
  cdb[2] = selectReport;
  cdb.writeUInt32BE(allocationLength, 6);
  return cdb;
}

/** SPC-4 6.47 TEST UNIT READY. */
export function testUnitReadyCdb(): Buffer {
  return Buffer.alloc(6);
}

/** SPC-4 6.39 REQUEST SENSE (DESC bit asks for descriptor format). */
export function requestSenseCdb(allocationLength = 252, descriptor = false): Buffer {
  const cdb = Buffer.alloc(6);
  cdb[0] = 0x03;
  cdb[1] = descriptor ? 1 : 0;
  cdb[4] = allocationLength;
  return cdb;
}

export interface ModeSenseOptions {
  page?: number;
  subpage?: number;
  /** Page control: 0 current, 1 changeable, 2 default, 3 saved. */
  pageControl?: number;
  /** Disable block descriptors. */
  dbd?: boolean;
  allocationLength?: number;
  /** MODE SENSE(10) only: long LBA block descriptors accepted. */
  llbaa?: boolean;
}

/** SPC-4 6.11 MODE SENSE(6). Default: all pages (0x3f), current values. */
export function modeSense6Cdb(o: ModeSenseOptions = {}): Buffer {
  const cdb = Buffer.alloc(6);
  cdb[0] = 0x1a;
  cdb[1] = o.dbd ? 0x08 : 0;
  cdb[2] = ((o.pageControl ?? 0) << 6) | ((o.page ?? 0x3f) & 0x3f);
  cdb[3] = o.subpage ?? 0;
  cdb[4] = o.allocationLength ?? 255;
  return cdb;
}

/** SPC-4 6.12 MODE SENSE(10). */
export function modeSense10Cdb(o: ModeSenseOptions = {}): Buffer {
  const cdb = Buffer.alloc(10);
  cdb[0] = 0x5a;
  cdb[1] = (o.dbd ? 0x08 : 0) | (o.llbaa ? 0x10 : 0);
  cdb[2] = ((o.pageControl ?? 0) << 6) | ((o.page ?? 0x3f) & 0x3f);
  cdb[3] = o.subpage ?? 0;
  cdb.writeUInt16BE(o.allocationLength ?? 4096, 7);
  return cdb;
}

/** SBC-3 5.16 READ CAPACITY(10). */
export function readCapacity10Cdb(): Buffer {
  const cdb = Buffer.alloc(10);
  cdb[0] = 0x25;
  return cdb;
}

/** SBC-3 5.16 READ CAPACITY(16) (SERVICE ACTION IN(16), service action 0x10). */
export function readCapacity16Cdb(allocationLength = 32): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x9e;
  cdb[1] = 0x10;
  cdb.writeUInt32BE(allocationLength, 10);
  return cdb;
}

export interface RwOptions {
  /** Force unit access. */
  fua?: boolean;
  /** DPO bit. */
  dpo?: boolean;
  /** Group number (low 5 bits). */
  group?: number;
}

function rw10(opcode: number, lba: number | bigint, blocks: number, o: RwOptions): Buffer {
  const cdb = Buffer.alloc(10);
  cdb[0] = opcode;
  cdb[1] = (o.dpo ? 0x10 : 0) | (o.fua ? 0x08 : 0);
  cdb.writeUInt32BE(Number(lba) >>> 0, 2);
  cdb[6] = (o.group ?? 0) & 0x1f;
  cdb.writeUInt16BE(blocks & 0xffff, 7);
  return cdb;
}

function rw16(opcode: number, lba: number | bigint, blocks: number, o: RwOptions): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = opcode;
  cdb[1] = (o.dpo ? 0x10 : 0) | (o.fua ? 0x08 : 0);
  cdb.writeBigUInt64BE(BigInt.asUintN(64, BigInt(lba)), 2);
  cdb.writeUInt32BE(blocks >>> 0, 10);
  cdb[14] = (o.group ?? 0) & 0x1f;
  return cdb;
}

/** SBC-3 5.11 READ(10). */
export const read10Cdb = (lba: number | bigint, blocks: number, o: RwOptions = {}): Buffer =>
  rw10(0x28, lba, blocks, o);
/** SBC-3 5.13 READ(16). */
export const read16Cdb = (lba: number | bigint, blocks: number, o: RwOptions = {}): Buffer =>
  rw16(0x88, lba, blocks, o);
/** SBC-3 5.32 WRITE(10). */
export const write10Cdb = (lba: number | bigint, blocks: number, o: RwOptions = {}): Buffer =>
  rw10(0x2a, lba, blocks, o);
/** SBC-3 5.34 WRITE(16). */
export const write16Cdb = (lba: number | bigint, blocks: number, o: RwOptions = {}): Buffer =>
  rw16(0x8a, lba, blocks, o);

/** SBC-3 5.22 SYNCHRONIZE CACHE(10); blocks 0 means to the end of the medium. */
export function synchronizeCache10Cdb(lba: number | bigint = 0, blocks = 0, immed = false): Buffer {
  const cdb = Buffer.alloc(10);
  cdb[0] = 0x35;
  cdb[1] = immed ? 0x02 : 0;
  cdb.writeUInt32BE(Number(lba) >>> 0, 2);
  cdb.writeUInt16BE(blocks & 0xffff, 7);
  return cdb;
}

export interface ReadCapacity16Data {
  lastLba: bigint;
  blockSize: number;
  /** Logical blocks per physical block exponent. */
  physicalExponent: number;
  /** Logical block provisioning management enabled (thin provisioning). */
  lbpme: boolean;
  /** Unmapped blocks read as zeroes. */
  lbprz: boolean;
  lowestAlignedLba: number;
}

/** Decode READ CAPACITY(16) parameter data (SBC-3 5.16.2); undefined when shorter than 12 bytes. */
export function parseReadCapacity16(data: Buffer): ReadCapacity16Data | undefined {
  if (data.length < 12) return undefined;
  return {
    lastLba: data.readBigUInt64BE(0),
    blockSize: data.readUInt32BE(8),
    physicalExponent: (data[13] ?? 0) & 0x0f,
    lbpme: ((data[14] ?? 0) & 0x80) !== 0,
    lbprz: ((data[14] ?? 0) & 0x40) !== 0,
    lowestAlignedLba: data.length >= 16 ? data.readUInt16BE(14) & 0x3fff : 0,
  };
}

/** Decode READ CAPACITY(10) parameter data; undefined when shorter than 8 bytes. */
export function parseReadCapacity10(data: Buffer): { lastLba: number; blockSize: number } | undefined {
  if (data.length < 8) return undefined;
  return { lastLba: data.readUInt32BE(0), blockSize: data.readUInt32BE(4) };
}

/** Decode REPORT LUNS parameter data into LUN numbers (SPC-4 6.33.2). */
export function parseReportLuns(data: Buffer): bigint[] {
  if (data.length < 8) return [];
  const listLength = data.readUInt32BE(0);
  const luns: bigint[] = [];
  for (let off = 8; off + 8 <= Math.min(data.length, 8 + listLength); off += 8) {
    luns.push(decodeLun(data.subarray(off, off + 8)));
  }
  return luns;
}

export interface StandardInquiry {
  peripheralQualifier: number;
  peripheralDeviceType: number;
  removable: boolean;
  version: number;
  responseDataFormat: number;
  additionalLength: number;
  vendor: string;
  product: string;
  revision: string;
}

/** Decode standard INQUIRY data (SPC-4 6.6.2); undefined when shorter than 36 bytes. */
export function parseStandardInquiry(data: Buffer): StandardInquiry | undefined {
  if (data.length < 36) return undefined;
  return {
    peripheralQualifier: data[0]! >> 5,
    peripheralDeviceType: data[0]! & 0x1f,
    removable: (data[1]! & 0x80) !== 0,
    version: data[2]!,
    responseDataFormat: data[3]! & 0x0f,
    additionalLength: data[4]!,
    vendor: data.toString('latin1', 8, 16).trimEnd(),
    product: data.toString('latin1', 16, 32).trimEnd(),
    revision: data.toString('latin1', 32, 36).trimEnd(),
  };
}

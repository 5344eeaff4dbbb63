/**
 * SPC-4 commands shared by every device type: INQUIRY (standard data + VPD), REPORT LUNS,
 * TEST UNIT READY, REQUEST SENSE, MODE SENSE/SELECT(6/10), RESERVE/RELEASE(6/10) (SPC-2),
 * REPORT SUPPORTED OPERATION CODES and SEND DIAGNOSTIC.
 */
import { Buffer } from 'node:buffer';
import { ScsiStatus, type ScsiCommand } from '../command.js';
import { cdbLength, Op, SA_REPORT_TARGET_PORT_GROUPS } from '../cdb.js';
import { encodeLun } from '../lun-address.js';
import type { LogicalUnit } from '../lu.js';
import type { ModePage } from '../mode-pages.js';
import type { ItNexus } from '../nexus.js';
import { PrAccess } from '../pr.js';
import { buildSense, invalidCdbField, SenseError, SenseReason } from '../sense.js';
import { isServiceActionEntry, UaPolicy, type OpcodeEntry, type TableEntry } from './types.js';

/**
 * The one target port every LU of a target is reached through (for iSCSI the target's
 * portal group, TPGT 1): its RELATIVE TARGET PORT IDENTIFIER and its TARGET PORT GROUP (SPC-4
 * 5.15), as VPD 83h and REPORT TARGET PORT GROUPS report them.
 */
export const RELATIVE_TARGET_PORT = 1;
export const TARGET_PORT_GROUP = 1;

/**
 * VPD B0 MAXIMUM TRANSFER LENGTH in bytes: larger READ/WRITE commands are refused (SBC-4 6.6.4).
 * 16 MiB, so that a command can fill a whole burst of the largest MaxBurstLength (2^24 - 1,
 * RFC 7143 13.13); a larger one would only raise the memory one command can pin.
 */
export const MAX_TRANSFER_BYTES = 16 * 1024 * 1024;

/** Hand `data` to the initiator, truncated to the CDB's allocation length (SPC-4 4.2.5.6). */
export function replyData(cmd: ScsiCommand, data: Buffer, allocationLength: number): void {
  cmd.dataIn = data;
  cmd.dataInLength = Math.min(data.length, allocationLength);
}

/** Space-padded ASCII field. */
function putAscii(buf: Buffer, off: number, len: number, text: string): void {
  buf.fill(0x20, off, off + len);
  buf.write(text.slice(0, len), off, 'latin1');
}

/** Byte 0 of INQUIRY / VPD data: peripheral qualifier 000b + device type. */
function peripheral(lu: LogicalUnit): number {
  return lu.deviceType.code & 0x1f;
}

/** The device type answers REPORT TARGET PORT GROUPS, i.e. it reports implicit ALUA (alua.ts). */
function reportsTargetPortGroups(lu: LogicalUnit): boolean {
  const t = lu.deviceType.ops[Op.MaintenanceIn];
  return (
    t !== undefined && isServiceActionEntry(t) && t.serviceActions[SA_REPORT_TARGET_PORT_GROUPS] !== undefined
  );
}

/** Standard INQUIRY data (SPC-4 6.6.2), 66 bytes as tgt sends. */
function standardInquiry(lu: LogicalUnit): Buffer {
  const d = Buffer.alloc(66);
  d[0] = peripheral(lu);
  d[1] = lu.removable ? 0x80 : 0; // RMB
  d[2] = 0x05; // VERSION: SPC-3, as tgt claims
  d[3] = 0x12; // HISUP, RESPONSE DATA FORMAT 2
  d[4] = d.length - 5;
  d[5] =
    (reportsTargetPortGroups(lu) ? 0x10 : 0) | // TPGS 01b: implicit ALUA only (SPC-4 6.6.2)
    (lu.deviceType.ops[Op.ExtendedCopy] ? 0x08 : 0); // 3PC: EXTENDED COPY
  d[7] = 0x02; // CMDQUE
  putAscii(d, 8, 8, lu.identity.vendorId);
  putAscii(d, 16, 16, lu.identity.productId);
  putAscii(d, 32, 4, lu.identity.productRev);
  lu.deviceType.versionDescriptors.slice(0, 4).forEach((v, i) => d.writeUInt16BE(v, 58 + i * 2));
  return d;
}

/** VPD page 80h UNIT SERIAL NUMBER: 36 bytes, right aligned, space padded (as tgt). */
function vpdSerial(lu: LogicalUnit): Buffer {
  const sn = Buffer.from(lu.identity.scsiSn.slice(0, 36), 'latin1');
  const body = Buffer.alloc(36, 0x20);
  sn.copy(body, 36 - sn.length);
  return body;
}

/** SPC-4 7.6.3.1 designation descriptor. */
function designator(
  codeSet: number,
  piv: boolean,
  assoc: number,
  type: number,
  proto: number,
  value: Buffer,
): Buffer {
  const d = Buffer.alloc(4 + value.length);
  d[0] = (piv ? proto << 4 : 0) | codeSet;
  d[1] = (piv ? 0x80 : 0) | (assoc << 4) | type;
  d[3] = value.length;
  value.copy(d, 4);
  return d;
}

/** SPC-4 7.6.3.1 PROTOCOL IDENTIFIER for the fabric, or -1 when not known. */
function protocolId(lu: LogicalUnit): number {
  return lu.target.lld === 'iscsi' || lu.target.lld === 'iser' ? 0x5 : -1;
}

/**
 * VPD page 83h DEVICE IDENTIFICATION. The three LU designators are byte-for-byte tgt's (T10
 * vendor id = scsi_id, NAA-3 = tid<<32|lun, NAA-6 from the hex digits of scsi_id) so WWIDs
 * (multipath, /dev/disk/by-id) survive a switch from tgt. Added: relative target port (1), its
 * target port group (1) when the LU reports ALUA, and the target's SCSI name string, which tgt
 * omits.
 */
function vpdDeviceId(lu: LogicalUnit): Buffer {
  const parts = luDesignators(lu);
  const proto = protocolId(lu);
  const piv = proto >= 0;
  const rel = Buffer.alloc(4);
  rel.writeUInt16BE(RELATIVE_TARGET_PORT, 2);
  parts.push(designator(1, piv, 1, 4, proto, rel)); // relative target port identifier, target port
  if (reportsTargetPortGroups(lu)) {
    const group = Buffer.alloc(4);
    group.writeUInt16BE(TARGET_PORT_GROUP, 2);
    parts.push(designator(1, piv, 1, 5, proto, group)); // target port group (designator type 5h), target port
  }
  const name = Buffer.from(lu.target.name, 'utf8');
  const nameField = Buffer.alloc(Math.min(252, (name.length + 4) & ~3)); // NUL terminated, multiple of 4
  name.copy(nameField, 0, 0, nameField.length - 1);
  parts.push(designator(3, piv, 2, 8, proto, nameField)); // SCSI name string, target device
  return Buffer.concat(parts);
}

/**
 * The designation descriptors that name the LU itself in VPD 83h (association 0): T10 vendor ID,
 * NAA-3 and NAA-6, as tgt builds them. EXTENDED COPY target descriptors are matched against these.
 */
export function luDesignators(lu: LogicalUnit): Buffer[] {
  const t10 = Buffer.alloc(36);
  t10.write(lu.identity.scsiId.slice(0, 36), 0, 'latin1');
  const naa3 = Buffer.alloc(8);
  naa3.writeBigUInt64BE((BigInt(lu.target.tid) << 32n) | BigInt.asUintN(32, lu.lun));
  naa3[0] = (naa3[0]! & 0x0f) | 0x30;
  // tgt's conversion: each character's value as one hex digit (non-hex digits count as 0).
  let v = 0n;
  for (const ch of lu.identity.scsiId) {
    const digit = parseInt(ch, 16);
    v = ((v << 4n) | BigInt(Number.isNaN(digit) ? 0 : digit)) & ((1n << 128n) - 1n);
  }
  const naa6 = Buffer.alloc(16);
  naa6.writeBigUInt64BE(v >> 64n, 0);
  naa6.writeBigUInt64BE(v & 0xffff_ffff_ffff_ffffn, 8);
  naa6[0] = (naa6[0]! & 0x0f) | 0x60;
  return [
    designator(2, false, 0, 1, 0, t10),
    designator(1, false, 0, 3, 0, naa3),
    designator(1, false, 0, 3, 0, naa6),
  ];
}

/** VPD page B0h BLOCK LIMITS (SBC-4 6.6.4), page length 3Ch. */
function vpdBlockLimits(lu: LogicalUnit): Buffer {
  const b = Buffer.alloc(0x3c);
  b[1] = MAX_COMPARE_AND_WRITE_BLOCKS; // MAXIMUM COMPARE AND WRITE LENGTH
  b.writeUInt16BE(Math.min(0xffff, lu.optimalXferGran), 2);
  b.writeUInt32BE(Math.floor(MAX_TRANSFER_BYTES / lu.blockSize), 4); // MAXIMUM TRANSFER LENGTH
  b.writeUInt32BE(lu.optimalXferLen >>> 0, 8);
  if (lu.unmapSupported) {
    b.writeUInt32BE(0xffffffff, 16); // MAXIMUM UNMAP LBA COUNT
    b.writeUInt32BE(MAX_UNMAP_DESCRIPTORS, 20); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
    b.writeUInt32BE(lu.unmapGranularity, 24); // OPTIMAL UNMAP GRANULARITY
    b.writeUInt32BE(0x80000000, 28); // UGAVALID, UNMAP GRANULARITY ALIGNMENT 0
  }
  b.writeBigUInt64BE(BigInt(MAX_WRITE_SAME_BLOCKS), 32); // MAXIMUM WRITE SAME LENGTH
  if (lu.deviceType.ops[Op.WriteAtomic16]) {
    b.writeUInt32BE(lu.maxAtomicBlocks, 40); // MAXIMUM ATOMIC TRANSFER LENGTH
    // ATOMIC ALIGNMENT, ATOMIC TRANSFER LENGTH GRANULARITY: 0 (none); no atomic boundaries
  }
  return b;
}

/** COMPARE AND WRITE limit advertised in VPD B0 (blocks). */
export const MAX_COMPARE_AND_WRITE_BLOCKS = 128;
/**
 * MAXIMUM WRITE SAME LENGTH (VPD B0, blocks): bounds the work of one WRITE SAME, also when its
 * count is 0 ("to the end of the medium").
 */
export const MAX_WRITE_SAME_BLOCKS = 0xffff;
/** UNMAP descriptors accepted per command (VPD B0). */
export const MAX_UNMAP_DESCRIPTORS = 256;

/** VPD page B1h BLOCK DEVICE CHARACTERISTICS (SBC-4 6.6.2). */
function vpdBlockCharacteristics(lu: LogicalUnit): Buffer {
  const b = Buffer.alloc(0x3c);
  b.writeUInt16BE(lu.rotationRate & 0xffff, 0);
  // WABEREQ / WACEREQ 01b: a read after BLOCK / CRYPTO ERASE succeeds (it returns zeroes)
  if (lu.deviceType.ops[Op.Sanitize]) b[3] = 0x50;
  return b;
}

/** VPD page B2h LOGICAL BLOCK PROVISIONING (SBC-4 6.6.6). */
function vpdProvisioning(lu: LogicalUnit): Buffer {
  const b = Buffer.alloc(4);
  if (lu.unmapSupported) {
    b[1] = 0xe4; // LBPU, LBPWS, LBPWS10, LBPRZ (unmapped blocks read as zeroes)
    b[2] = 0x02; // PROVISIONING TYPE: thin
  }
  return b;
}

/** Body of VPD page `code`, or undefined when not supported. */
function vpdPage(lu: LogicalUnit, code: number): Buffer | undefined {
  if (!lu.deviceType.vpdPages.includes(code)) return undefined;
  switch (code) {
    case 0x00:
      return Buffer.from(lu.deviceType.vpdPages);
    case 0x80:
      return vpdSerial(lu);
    case 0x83:
      return vpdDeviceId(lu);
    case 0xb0:
      return vpdBlockLimits(lu);
    case 0xb1:
      return vpdBlockCharacteristics(lu);
    case 0xb2:
      return vpdProvisioning(lu);
    default:
      return undefined;
  }
}

/** INQUIRY (SPC-4 6.6). */
export function inquiryHandler(cmd: ScsiCommand, lu: LogicalUnit): void {
  const cdb = cmd.cdb;
  const evpd = (cdb[1]! & 0x01) !== 0;
  const page = cdb[2]!;
  const alloc = cdb.readUInt16BE(3);
  // CMDDT (obsolete) set, or a page code without EVPD -> INVALID FIELD IN CDB
  if ((cdb[1]! & 0x02) !== 0 || (!evpd && page !== 0)) throw new SenseError(SenseReason.InvalidFieldInCdb);
  if (!evpd) return replyData(cmd, standardInquiry(lu), alloc);
  const body = vpdPage(lu, page);
  if (!body) throw new SenseError(SenseReason.InvalidFieldInCdb);
  const d = Buffer.alloc(4 + body.length);
  d[0] = peripheral(lu);
  d[1] = page;
  d.writeUInt16BE(body.length, 2);
  body.copy(d, 4);
  replyData(cmd, d, alloc);
}

/** REPORT LUNS (SPC-4 6.33): peripheral addressing up to 255, flat above (tgt §5.2). */
export function reportLunsHandler(cmd: ScsiCommand, lu: LogicalUnit): void {
  const cdb = cmd.cdb;
  const select = cdb[2]!;
  const alloc = cdb.readUInt32BE(6);
  // SPC-4 6.33: allocation length below 16 -> INVALID FIELD IN CDB
  if (alloc < 16) throw new SenseError(SenseReason.InvalidFieldInCdb);
  if (select > 0x02) throw new SenseError(SenseReason.InvalidFieldInCdb);
  const luns = select === 0x01 ? [] : lu.target.luns; // 01h: well-known LUs only (we have none)
  const d = Buffer.alloc(8 + luns.length * 8);
  d.writeUInt32BE(luns.length * 8, 0);
  luns.forEach((l, i) => encodeLun(l.lun, d, 8 + i * 8));
  replyData(cmd, d, alloc);
}

/** TEST UNIT READY (SPC-4 6.47): the dispatcher already checked the medium. */
export function testUnitReadyHandler(): void {}

/**
 * REQUEST SENSE (SPC-4 6.39): the oldest pending unit attention (cleared, SAM-5 5.14), or the
 * NOT READY condition of a missing medium, or NO SENSE; always GOOD status.
 */
export function requestSenseHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): void {
  const cdb = cmd.cdb;
  const desc = (cdb[1]! & 0x01) !== 0;
  const info = nexus.luInfo(lu);
  let reason = SenseReason.NoSense;
  if (info.unitAttentions.length > 0) reason = info.unitAttentions.shift()!;
  else if (lu.sanitize !== null)
    return replyData(
      cmd,
      buildSense(SenseReason.SanitizeInProgress, desc, undefined, undefined, lu.sanitize.progress),
      cdb[4]!,
    );
  else if (lu.deviceType.code === 0x00 && (!lu.online || lu.store === null))
    reason = lu.removable ? SenseReason.MediumNotPresent : SenseReason.LuBecomingReady;
  replyData(cmd, buildSense(reason, desc), cdb[4]!);
}

/** Pages selected by PAGE CODE / SUBPAGE CODE (SPC-4 6.11, 3Fh = all), or undefined. */
function selectModePages(lu: LogicalUnit, page: number, subpage: number): readonly ModePage[] | undefined {
  const all = lu.modePages.list();
  let out: readonly ModePage[];
  if (page === 0x3f) {
    if (subpage === 0x00) out = all.filter((p) => p.subpage === 0);
    else if (subpage === 0xff) out = all;
    else return undefined;
  } else if (subpage === 0xff) {
    out = all.filter((p) => p.page === page);
  } else {
    const p = lu.modePages.get(page, subpage);
    out = p ? [p] : [];
  }
  return out.length > 0 ? out : undefined;
}

/** MODE SENSE(6) / MODE SENSE(10) (SPC-4 6.11 / 6.12). */
export function modeSenseHandler(cmd: ScsiCommand, lu: LogicalUnit): void {
  const cdb = cmd.cdb;
  const ten = cdb[0] === Op.ModeSense10;
  const dbd = (cdb[1]! & 0x08) !== 0;
  const llbaa = ten && (cdb[1]! & 0x10) !== 0;
  const pc = cdb[2]! >> 6;
  const page = cdb[2]! & 0x3f;
  const subpage = cdb[3]!;
  const alloc = ten ? cdb.readUInt16BE(7) : cdb[4]!;
  if (pc === 3) throw new SenseError(SenseReason.SavingParametersNotSupported);
  const pages = selectModePages(lu, page, subpage);
  if (!pages) throw new SenseError(SenseReason.InvalidFieldInCdb);

  const disk = lu.deviceType.code === 0x00;
  const descLen = dbd || !disk ? 0 : llbaa ? 16 : 8;
  const hdrLen = ten ? 8 : 4;
  let pagesLen = 0;
  for (const p of pages) pagesLen += p.current.length;
  const d = Buffer.alloc(hdrLen + descLen + pagesLen);
  // SBC-4 6.5.1 device-specific parameter: WP, DPOFUA
  const devSpecific = disk ? (lu.writeProtected ? 0x80 : 0) | 0x10 : 0;
  if (ten) {
    d.writeUInt16BE(d.length - 2, 0);
    d[3] = devSpecific;
    if (llbaa) d[4] = 0x01;
    d.writeUInt16BE(descLen, 6);
  } else {
    d[0] = Math.min(0xff, d.length - 1);
    d[2] = devSpecific;
    d[3] = descLen;
  }
  let off = hdrLen;
  if (descLen === 8) {
    d.writeUInt32BE(Math.min(lu.blocks, 0xffffffff), off);
    d.writeUIntBE(lu.blockSize, off + 5, 3);
  } else if (descLen === 16) {
    d.writeBigUInt64BE(BigInt(lu.blocks), off);
    d.writeUInt32BE(lu.blockSize, off + 12);
  }
  off += descLen;
  for (const p of pages) {
    const src = pc === 1 ? p.changeable : pc === 2 ? p.defaults : p.current;
    src.copy(d, off);
    // SPC-4 7.5.7: keep the page code/SPF header even in the changeable mask
    d[off] = p.current[0]!;
    d[off + 1] = p.current[1]!;
    if (p.subpage !== 0) d.writeUInt16BE(p.current.readUInt16BE(2), off + 2);
    off += src.length;
  }
  replyData(cmd, d, alloc);
}

/** MODE SELECT(6) / MODE SELECT(10) (SPC-4 6.9 / 6.10): only changeable bits may differ. */
export function modeSelectHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): void {
  const cdb = cmd.cdb;
  const ten = cdb[0] === Op.ModeSelect10;
  const pf = (cdb[1]! & 0x10) !== 0;
  const sp = (cdb[1]! & 0x01) !== 0;
  const listLen = ten ? cdb.readUInt16BE(7) : cdb[4]!;
  cmd.writeTransferLength = listLen;
  // We only know SPC page format and cannot save pages (tgt §5.2).
  if (!pf || sp) throw new SenseError(SenseReason.InvalidFieldInCdb);
  if (listLen === 0) return;
  if (cmd.dataOutLength < listLen) throw new SenseError(SenseReason.ParameterListLengthError);
  const data = cmd.gatherDataOut(listLen);
  const hdrLen = ten ? 8 : 4;
  if (data.length < hdrLen) throw new SenseError(SenseReason.ParameterListLengthError);
  const descLen = ten ? data.readUInt16BE(6) : data[3]!;
  let off = hdrLen;
  if (off + descLen > data.length) throw new SenseError(SenseReason.ParameterListLengthError);
  const longLba = ten && (data[4]! & 0x01) !== 0;
  const step = longLba ? 16 : 8;
  for (let d = off; d + step <= off + descLen; d += step) {
    const blockLen = longLba ? data.readUInt32BE(d + 12) : data.readUIntBE(d + 5, 3);
    if (blockLen !== 0 && blockLen !== lu.blockSize)
      throw new SenseError(SenseReason.InvalidFieldInParameterList);
  }
  off += descLen;

  const updates: { page: ModePage; bytes: Buffer }[] = [];
  while (off < data.length) {
    if (off + 2 > data.length) throw new SenseError(SenseReason.ParameterListLengthError);
    const spf = (data[off]! & 0x40) !== 0;
    const code = data[off]! & 0x3f;
    const sub = spf ? data[off + 1]! : 0;
    if (spf && off + 4 > data.length) throw new SenseError(SenseReason.ParameterListLengthError);
    const total = spf ? 4 + data.readUInt16BE(off + 2) : 2 + data[off + 1]!;
    if (off + total > data.length) throw new SenseError(SenseReason.ParameterListLengthError);
    const page = lu.modePages.get(code, sub);
    if (!page || page.current.length !== total) throw new SenseError(SenseReason.InvalidFieldInParameterList);
    const bytes = data.subarray(off, off + total);
    const hdr = spf ? 4 : 2;
    for (let i = hdr; i < total; i++) {
      if (((bytes[i]! ^ page.current[i]!) & ~page.changeable[i]! & 0xff) !== 0)
        throw new SenseError(SenseReason.InvalidFieldInParameterList);
    }
    // SPC-4 7.5.8: QERR 10b is reserved
    if (code === 0x0a && sub === 0 && ((bytes[3]! >> 1) & 0x03) === 0x02)
      throw new SenseError(SenseReason.InvalidFieldInParameterList);
    updates.push({ page, bytes });
    off += total;
  }
  let changed = false;
  for (const { page, bytes } of updates) {
    const hdr = page.subpage !== 0 ? 4 : 2;
    if (!bytes.subarray(hdr).equals(page.current.subarray(hdr))) {
      bytes.copy(page.current, hdr, hdr);
      changed = true;
    }
  }
  if (changed) modeParametersChanged(lu, nexus);
}

/** SPC-4 5.14: MODE PARAMETERS CHANGED to every other I_T nexus. */
export function modeParametersChanged(lu: LogicalUnit, except: ItNexus | null): void {
  for (const n of lu.target.nexuses.values())
    if (n !== except) n.luInfo(lu).addUnitAttention(SenseReason.ModeParametersChanged);
}

/**
 * SPC-3 5.6.3: next to persistent reservations RESERVE/RELEASE either do nothing (GOOD) or
 * conflict; returns true when the command is finished.
 */
function persistentReservationsDecide(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): boolean {
  const how = lu.pr.spc2Handling(nexus.initiatorPort);
  if (how === 'normal') return false;
  if (how === 'conflict') cmd.status = ScsiStatus.ReservationConflict;
  return true;
}

/** RESERVE(6) / RESERVE(10) (SPC-2 7.21/7.22): whole-LU reservation for this nexus. */
export function reserveHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): void {
  const cdb = cmd.cdb;
  // third-party (3RDPTY), LONGID and extents (obsolete) are not supported
  const bad = cdb[0] === Op.Reserve10 ? cdb[1]! & 0x12 : cdb[1]! & 0x1f;
  if (bad !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
  if (persistentReservationsDecide(cmd, lu, nexus)) return;
  if (lu.reservation !== null && lu.reservation !== nexus) {
    cmd.status = ScsiStatus.ReservationConflict;
    return;
  }
  lu.reservation = nexus;
}

/** RELEASE(6) / RELEASE(10): only the holder releases; anyone else gets a silent GOOD. */
export function releaseHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): void {
  const cdb = cmd.cdb;
  const bad = cdb[0] === Op.Release10 ? cdb[1]! & 0x12 : cdb[1]! & 0x1f;
  if (bad !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
  if (persistentReservationsDecide(cmd, lu, nexus)) return;
  if (lu.reservation === nexus) lu.reservation = null;
}

/** SEND DIAGNOSTIC (SPC-4 6.42): self-tests succeed at once; nothing else is supported. */
export function sendDiagnosticHandler(cmd: ScsiCommand): void {
  const cdb = cmd.cdb;
  const selfTestCode = cdb[1]! >> 5;
  const selfTest = (cdb[1]! & 0x04) !== 0;
  const paramLen = cdb.readUInt16BE(3);
  cmd.writeTransferLength = paramLen;
  if (selfTest) {
    if (selfTestCode !== 0 || paramLen !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
    return;
  }
  // background/foreground short/extended self-tests (1, 2, 5, 6) and abort (4) complete at once
  if (paramLen !== 0 || ![0, 1, 2, 4, 5, 6].includes(selfTestCode))
    throw new SenseError(SenseReason.InvalidFieldInCdb);
}

/** Every (opcode, service action, entry) in a device type's table, ascending. */
function listCommands(
  ops: readonly (TableEntry | undefined)[],
): { op: number; sa: number; hasSa: boolean; e: OpcodeEntry }[] {
  const out: { op: number; sa: number; hasSa: boolean; e: OpcodeEntry }[] = [];
  ops.forEach((t, op) => {
    if (!t) return;
    if (isServiceActionEntry(t))
      t.serviceActions.forEach((e, sa) => e && out.push({ op, sa, hasSa: true, e }));
    else out.push({ op, sa: 0, hasSa: false, e: t });
  });
  return out;
}

/** SPC-4 6.35.4 command timeouts descriptor (no timeouts reported). */
function timeoutsDescriptor(): Buffer {
  const t = Buffer.alloc(12);
  t.writeUInt16BE(0x0a, 0);
  return t;
}

/** REPORT SUPPORTED OPERATION CODES (SPC-4 6.35). */
export function reportSupportedOpcodesHandler(cmd: ScsiCommand, lu: LogicalUnit): void {
  const cdb = cmd.cdb;
  const rctd = (cdb[2]! & 0x80) !== 0;
  const options = cdb[2]! & 0x07;
  const reqOp = cdb[3]!;
  const reqSa = cdb.readUInt16BE(4);
  const alloc = cdb.readUInt32BE(6);
  const ops = lu.deviceType.ops;
  if (options === 0) {
    const cmds = listCommands(ops);
    const descLen = rctd ? 20 : 8;
    const d = Buffer.alloc(4 + cmds.length * descLen);
    d.writeUInt32BE(cmds.length * descLen, 0);
    cmds.forEach(({ op, sa, hasSa, e }, i) => {
      const o = 4 + i * descLen;
      d[o] = op;
      d.writeUInt16BE(sa, o + 2);
      d[o + 5] = (rctd ? 0x02 : 0) | (hasSa ? 0x01 : 0); // CTDP, SERVACTV
      d.writeUInt16BE(e.usage.length, o + 6);
      if (rctd) timeoutsDescriptor().copy(d, o + 8);
    });
    return replyData(cmd, d, alloc);
  }
  // SPC-4 6.35.1: a wrong REPORTING OPTIONS is reported with a field pointer (byte 2, bit 2), so
  // that initiators can tell it from an unsupported service action (field pointer 1).
  if (options > 3) throw invalidCdbField(2, 2);
  const t = ops[reqOp];
  let entry: OpcodeEntry | undefined;
  if (t && isServiceActionEntry(t)) {
    if (options === 1) throw invalidCdbField(2, 2); // has service actions
    entry = reqSa < 32 ? t.serviceActions[reqSa] : undefined;
  } else {
    if (options === 2) throw invalidCdbField(2, 2); // has no service actions
    entry = t;
  }
  if (!entry) {
    const d = Buffer.alloc(4);
    d[1] = 0x01; // SUPPORT: not supported
    return replyData(cmd, d, alloc);
  }
  const usage = Buffer.from(entry.usage);
  const d = Buffer.alloc(4 + usage.length + (rctd ? 12 : 0));
  d[1] = (rctd ? 0x80 : 0) | 0x03; // CTDP, SUPPORT: supported as in the standard
  d.writeUInt16BE(usage.length, 2);
  usage.copy(d, 4);
  if (rctd) timeoutsDescriptor().copy(d, 4 + usage.length);
  replyData(cmd, d, alloc);
}

/** A CDB usage mask: opcode, then the given bytes, CONTROL byte last (NACA/LINK never usable). */
export function usage(op: number, ...middle: number[]): readonly number[] {
  const len = cdbLength(op);
  const out = [op, ...middle];
  while (out.length < len - 1) out.push(0);
  out.length = len - 1;
  out.push(0x00);
  return Object.freeze(out);
}

/** Commands every device type shares (tgt's spc_* handlers), keyed by opcode. */
export const SPC_ENTRIES = {
  testUnitReady: {
    name: 'TEST UNIT READY',
    handler: testUnitReadyHandler,
    usage: usage(Op.TestUnitReady),
    needsMedia: true,
    pr: PrAccess.Allowed,
  },
  requestSense: {
    name: 'REQUEST SENSE',
    handler: requestSenseHandler,
    usage: usage(Op.RequestSense, 0x01, 0, 0, 0xff),
    reservationExempt: true,
    pr: PrAccess.Allowed,
    ua: UaPolicy.Handler,
    duringSanitize: true,
  },
  inquiry: {
    name: 'INQUIRY',
    handler: inquiryHandler,
    usage: usage(Op.Inquiry, 0x01, 0xff, 0xff, 0xff),
    reservationExempt: true,
    pr: PrAccess.Allowed,
    ua: UaPolicy.Ignore,
    duringSanitize: true,
  },
  reportLuns: {
    name: 'REPORT LUNS',
    handler: reportLunsHandler,
    usage: usage(Op.ReportLuns, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff),
    reservationExempt: true,
    pr: PrAccess.Allowed,
    ua: UaPolicy.ReportLuns,
    duringSanitize: true,
  },
  modeSense6: {
    name: 'MODE SENSE(6)',
    handler: modeSenseHandler,
    usage: usage(Op.ModeSense6, 0x08, 0xff, 0xff, 0xff),
  },
  modeSense10: {
    name: 'MODE SENSE(10)',
    handler: modeSenseHandler,
    usage: usage(Op.ModeSense10, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff),
  },
  modeSelect6: {
    name: 'MODE SELECT(6)',
    handler: modeSelectHandler,
    usage: usage(Op.ModeSelect6, 0x11, 0, 0, 0xff),
  },
  modeSelect10: {
    name: 'MODE SELECT(10)',
    handler: modeSelectHandler,
    usage: usage(Op.ModeSelect10, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff),
  },
  // SPC-3 5.6.3: persistent reservations are checked by the handlers themselves
  reserve6: { name: 'RESERVE(6)', handler: reserveHandler, usage: usage(Op.Reserve6), pr: PrAccess.Allowed },
  release6: {
    name: 'RELEASE(6)',
    handler: releaseHandler,
    usage: usage(Op.Release6),
    reservationExempt: true,
    pr: PrAccess.Allowed,
  },
  reserve10: {
    name: 'RESERVE(10)',
    handler: reserveHandler,
    usage: usage(Op.Reserve10),
    pr: PrAccess.Allowed,
  },
  release10: {
    name: 'RELEASE(10)',
    handler: releaseHandler,
    usage: usage(Op.Release10),
    reservationExempt: true,
    pr: PrAccess.Allowed,
  },
  sendDiagnostic: {
    name: 'SEND DIAGNOSTIC',
    handler: sendDiagnosticHandler,
    usage: usage(Op.SendDiagnostic, 0xe4, 0, 0xff, 0xff),
  },
  reportSupportedOpcodes: {
    name: 'REPORT SUPPORTED OPERATION CODES',
    handler: reportSupportedOpcodesHandler,
    usage: usage(Op.MaintenanceIn, 0x1f, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0),
    reservationExempt: true,
    pr: PrAccess.Allowed,
  },
} satisfies Record<string, OpcodeEntry>;

/**
 * EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18): the copy manager of every disk
 * LU. It copies between block devices of this daemon, named by identification descriptor target
 * descriptors (E4h) whose designator is one of an LU's VPD 83h designators (T10 vendor ID, NAA-3,
 * NAA-6), with block device to block device segment descriptors (02h). Data moves store to store
 * in bounded chunks (no Data-In/Data-Out), forwards or backwards so that overlapping ranges on one
 * LU copy like memmove. Results are held per I_T nexus and LU by list identifier for RECEIVE COPY
 * RESULTS (COPY STATUS, OPERATING PARAMETERS).
 *
 * The copy manager reads and writes on behalf of the I_T nexus that sent EXTENDED COPY: a source
 * or destination LU whose reservation (SPC-2, or persistent) would refuse that nexus a READ or a
 * WRITE ends the copy with COPY TARGET DEVICE NOT REACHABLE before any data moves. The copy goes
 * to the stores directly: it is not queued in the other LU's task set.
 */
import { Buffer } from 'node:buffer';
import type { ScsiCommand } from '../command.js';
import type { LogicalUnit } from '../lu.js';
import type { CopyResult, ItNexus } from '../nexus.js';
import { PrAccess } from '../pr.js';
import { invalidCdbField, SenseError, SenseReason } from '../sense.js';
import { writeFailure } from './block-io.js';
import { luDesignators, replyData } from './spc.js';

/** Limits reported by OPERATING PARAMETERS. */
export const XCOPY_MAX_TARGET_DESCRIPTORS = 8;
export const XCOPY_MAX_SEGMENT_DESCRIPTORS = 64;
export const XCOPY_MAX_DESCRIPTOR_LIST_LENGTH = 4096;
/** MAXIMUM SEGMENT LENGTH in bytes. */
export const XCOPY_MAX_SEGMENT_BYTES = 256 * 1024 * 1024;
/** Copy results held per I_T nexus and LU (the oldest is dropped first). */
const MAX_HELD_RESULTS = 16;
/** Bytes moved per read/write pair. */
const COPY_CHUNK_BYTES = 1024 * 1024;

const HEADER_BYTES = 16;
const TARGET_DESCRIPTOR_BYTES = 32;
/** Target descriptor type: identification descriptor (SPC-4 6.4.5.7). */
const TD_IDENTIFICATION = 0xe4;
/** Segment descriptor type: block device to block device (SPC-4 6.4.6.5). */
const SD_BLOCK_TO_BLOCK = 0x02;
const SD_BLOCK_TO_BLOCK_BYTES = 28;

/** RECEIVE COPY RESULTS service actions. */
export const SA_COPY_STATUS = 0x00;
export const SA_OPERATING_PARAMETERS = 0x03;

/** A resolved copy target: an LU of this daemon, or the null device (NUL bit). */
interface CopyTarget {
  lu: LogicalUnit | null;
  /** DISK BLOCK LENGTH the initiator gave. */
  blockSize: number;
}

interface Segment {
  src: number;
  dst: number;
  /** DC: the block count is in destination blocks. */
  dc: boolean;
  blocks: number;
  srcLba: number;
  dstLba: number;
}

/** Every LU of the daemon whose LU designators include `wanted` (code set, type, value). */
function findLu(from: LogicalUnit, wanted: Buffer): LogicalUnit | null {
  const matches = (lu: LogicalUnit) =>
    luDesignators(lu).some(
      (d) =>
        (d[0]! & 0x0f) === (wanted[0]! & 0x0f) &&
        (d[1]! & 0x3f) === (wanted[1]! & 0x3f) &&
        d.subarray(3).equals(wanted.subarray(3)),
    );
  // prefer the issuing target's own LUs (designators are only unique within a daemon by convention)
  for (const lu of from.target.luns) if (lu.deviceType.code === 0x00 && matches(lu)) return lu;
  for (const target of from.target.daemonTargets())
    if (target !== from.target)
      for (const lu of target.luns) if (lu.deviceType.code === 0x00 && matches(lu)) return lu;
  return null;
}

/** Decode one identification descriptor target descriptor (SPC-4 6.4.5.7). */
function parseTarget(from: LogicalUnit, d: Buffer): CopyTarget {
  if (d[0] !== TD_IDENTIFICATION) throw new SenseError(SenseReason.UnsupportedTargetDescriptorType);
  // LU ID TYPE other than 00b (LU number) is reserved in SPC-3, which we claim (libiscsi
  // ExtendedCopy.ValidTgtDescr expects INVALID FIELD IN CDB)
  if (d[1]! >> 6 !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
  const nul = (d[1]! & 0x20) !== 0;
  if ((d[1]! & 0x1f) !== 0x00) throw new SenseError(SenseReason.InvalidFieldInParameterList); // block devices only
  const blockSize = d.readUIntBE(29, 3);
  if (nul) return { lu: null, blockSize };
  const designatorLength = d[7]!;
  if (designatorLength > 20) throw new SenseError(SenseReason.InvalidFieldInParameterList);
  // association must be 0 (the LU itself)
  if ((d[5]! & 0x30) !== 0) throw new SenseError(SenseReason.UnreachableCopyTarget);
  const lu = findLu(from, d.subarray(4, 8 + designatorLength));
  if (!lu) throw new SenseError(SenseReason.UnreachableCopyTarget);
  if (blockSize !== lu.blockSize) throw new SenseError(SenseReason.InvalidFieldInParameterList);
  return { lu, blockSize };
}

/** Decode the segment descriptor list; only block device to block device descriptors. */
function parseSegments(list: Buffer): Segment[] {
  const out: Segment[] = [];
  for (let off = 0; off < list.length;) {
    if (off + 4 > list.length) throw new SenseError(SenseReason.ParameterListLengthError);
    const len = 4 + list.readUInt16BE(off + 2);
    if (list[off] !== SD_BLOCK_TO_BLOCK) throw new SenseError(SenseReason.UnsupportedSegmentDescriptorType);
    if (len !== SD_BLOCK_TO_BLOCK_BYTES) throw new SenseError(SenseReason.InvalidFieldInParameterList);
    if (off + len > list.length) throw new SenseError(SenseReason.ParameterListLengthError);
    const d = list.subarray(off, off + len);
    out.push({
      dc: (d[1]! & 0x02) !== 0,
      src: d.readUInt16BE(4),
      dst: d.readUInt16BE(6),
      blocks: d.readUInt16BE(10),
      srcLba: Number(d.readBigUInt64BE(12)),
      dstLba: Number(d.readBigUInt64BE(20)),
    });
    off += len;
  }
  return out;
}

/** Count the segment descriptors of a list by their length fields (before decoding them). */
function countSegments(list: Buffer): number {
  let n = 0;
  for (let off = 0; off + 4 <= list.length; off += 4 + list.readUInt16BE(off + 2)) n++;
  return n;
}

/**
 * Would `nexus` get RESERVATION CONFLICT for this access to `lu` (SPC-2 5.5.1, SPC-4 5.13.1)? A
 * nexus of another target never holds an SPC-2 reservation of `lu`; persistent reservations are
 * matched by initiator port.
 */
function reservationRefuses(lu: LogicalUnit, nexus: ItNexus, access: PrAccess): boolean {
  if (lu.reservation !== null && lu.reservation !== nexus) return true;
  return lu.pr.reservationType !== null && lu.pr.conflicts(nexus.initiatorPort, access);
}

/** Copy one segment store to store; returns the bytes copied. Errors: COPY ABORTED. */
async function copySegment(seg: Segment, targets: readonly CopyTarget[], nexus: ItNexus): Promise<number> {
  const src = targets[seg.src];
  const dst = targets[seg.dst];
  if (!src || !dst) throw new SenseError(SenseReason.UnreachableCopyTarget);
  if (!src.lu || !dst.lu) throw new SenseError(SenseReason.CopyTargetDeviceNotReachable); // null device
  const from = src.lu;
  const to = dst.lu;
  const bytes = seg.blocks * (seg.dc ? to.blockSize : from.blockSize);
  if (bytes % from.blockSize !== 0 || bytes % to.blockSize !== 0 || bytes > XCOPY_MAX_SEGMENT_BYTES)
    throw new SenseError(SenseReason.CopyAborted);
  if (bytes === 0) return 0;
  const inRange = (lu: LogicalUnit, lba: number, n: number) => lba <= lu.blocks && n <= lu.blocks - lba;
  if (!inRange(from, seg.srcLba, bytes / from.blockSize) || !inRange(to, seg.dstLba, bytes / to.blockSize))
    throw new SenseError(SenseReason.CopyAborted);
  if (!from.online || !to.online || !from.store || !to.store)
    throw new SenseError(SenseReason.CopyTargetDeviceNotReachable);
  if (to.writeProtected) throw new SenseError(SenseReason.WriteProtected);
  if (reservationRefuses(from, nexus, PrAccess.Read) || reservationRefuses(to, nexus, PrAccess.Write))
    throw new SenseError(SenseReason.CopyTargetDeviceNotReachable);
  const srcOff = seg.srcLba * from.blockSize;
  const dstOff = seg.dstLba * to.blockSize;
  // overlapping ranges of one store copy backwards when the destination is above the source
  const backwards = from.store === to.store && dstOff > srcOff && dstOff < srcOff + bytes;
  const chunk = Buffer.allocUnsafe(Math.min(bytes, COPY_CHUNK_BYTES));
  for (let done = 0; done < bytes;) {
    const n = Math.min(chunk.length, bytes - done);
    const at = backwards ? bytes - done - n : done;
    const view = chunk.subarray(0, n);
    try {
      await from.store.read(view, srcOff + at);
    } catch {
      throw new SenseError(SenseReason.CopyAborted);
    }
    try {
      await to.store.write([view], dstOff + at, false);
    } catch (err) {
      const e = writeFailure(err);
      throw e.reason === SenseReason.SpaceAllocationFailed ? e : new SenseError(SenseReason.CopyAborted);
    }
    done += n;
  }
  if (!to.writeCacheEnabled && to.store.capabilities.flush) await to.store.flush();
  return bytes;
}

/** Remember a result under its list identifier, dropping the oldest beyond the bound. */
function hold(results: Map<number, CopyResult>, listId: number, result: CopyResult): void {
  results.delete(listId);
  results.set(listId, result);
  while (results.size > MAX_HELD_RESULTS) results.delete(results.keys().next().value!);
}

/** EXTENDED COPY(LID1) (SPC-4 6.4). */
export async function extendedCopyHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): Promise<void> {
  const listLen = cmd.cdb.readUInt32BE(10);
  cmd.writeTransferLength = listLen;
  if (listLen === 0) return; // SPC-4 6.4.1: not an error, nothing to do
  if (listLen < HEADER_BYTES || cmd.dataOutLength < listLen)
    throw new SenseError(SenseReason.ParameterListLengthError);
  const data = cmd.gatherDataOut(listLen);
  const listId = data[0]!;
  const usage = (data[1]! >> 3) & 0x03;
  const tdLen = data.readUInt16BE(2);
  const sdLen = data.readUInt32BE(8);
  const inlineLen = data.readUInt32BE(12);
  if (HEADER_BYTES + tdLen + sdLen + inlineLen > listLen)
    throw new SenseError(SenseReason.ParameterListLengthError);
  if (tdLen + sdLen > XCOPY_MAX_DESCRIPTOR_LIST_LENGTH)
    throw new SenseError(SenseReason.ParameterListLengthError);
  if (tdLen % TARGET_DESCRIPTOR_BYTES !== 0) throw new SenseError(SenseReason.ParameterListLengthError);
  const tdCount = tdLen / TARGET_DESCRIPTOR_BYTES;
  const sdList = data.subarray(HEADER_BYTES + tdLen, HEADER_BYTES + tdLen + sdLen);
  if (tdCount > XCOPY_MAX_TARGET_DESCRIPTORS) throw new SenseError(SenseReason.TooManyTargetDescriptors);
  if (countSegments(sdList) > XCOPY_MAX_SEGMENT_DESCRIPTORS)
    throw new SenseError(SenseReason.TooManySegmentDescriptors);
  // LIST ID USAGE 00b/01b: the results are held under the list identifier, which must not name
  // a copy still in progress (SPC-4 6.4.3.2: OPERATION IN PROGRESS is reported as INVALID FIELD)
  const results = nexus.luInfo(lu).copyResults;
  const held = usage === 0 || usage === 1;
  if (held && results.get(listId)?.status === 0)
    throw new SenseError(SenseReason.InvalidFieldInParameterList);

  const targets: CopyTarget[] = [];
  for (let i = 0; i < tdCount; i++) {
    const off = HEADER_BYTES + i * TARGET_DESCRIPTOR_BYTES;
    targets.push(parseTarget(lu, data.subarray(off, off + TARGET_DESCRIPTOR_BYTES)));
  }
  const segments = parseSegments(sdList);
  const result: CopyResult = { status: 0, segmentsProcessed: 0, transferred: 0 };
  if (held) hold(results, listId, result);
  try {
    for (const seg of segments) {
      result.transferred += await copySegment(seg, targets, nexus);
      result.segmentsProcessed++;
    }
    result.status = 1;
  } catch (err) {
    result.status = 2;
    throw err;
  }
}

/** RECEIVE COPY RESULTS, COPY STATUS (SPC-4 6.18.3): an unknown list identifier is INVALID FIELD IN CDB. */
export function copyStatusHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): void {
  const cdb = cmd.cdb;
  const result = nexus.peekLuInfo(lu)?.copyResults.get(cdb[2]!);
  if (!result) throw invalidCdbField(2);
  const d = Buffer.alloc(12);
  d.writeUInt32BE(8, 0); // AVAILABLE DATA
  d[4] = result.status; // HDD 0: no held data
  d.writeUInt16BE(Math.min(0xffff, result.segmentsProcessed), 5);
  // TRANSFER COUNT in bytes, or in KiB when bytes do not fit
  const inKib = result.transferred > 0xffffffff;
  d[7] = inKib ? 0x01 : 0x00;
  d.writeUInt32BE(inKib ? Math.floor(result.transferred / 1024) : result.transferred, 8);
  replyData(cmd, d, cdb.readUInt32BE(10));
}

/** RECEIVE COPY RESULTS, OPERATING PARAMETERS (SPC-4 6.18.4): the copy manager's limits. */
export function operatingParametersHandler(cmd: ScsiCommand): void {
  const implemented = [SD_BLOCK_TO_BLOCK, TD_IDENTIFICATION];
  const d = Buffer.alloc(44 + implemented.length);
  d.writeUInt32BE(d.length - 4, 0); // AVAILABLE DATA
  d.writeUInt16BE(XCOPY_MAX_TARGET_DESCRIPTORS, 8);
  d.writeUInt16BE(XCOPY_MAX_SEGMENT_DESCRIPTORS, 10);
  d.writeUInt32BE(XCOPY_MAX_DESCRIPTOR_LIST_LENGTH, 12);
  d.writeUInt32BE(XCOPY_MAX_SEGMENT_BYTES, 16);
  // MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT, MAXIMUM STREAM DEVICE TRANSFER SIZE: 0
  d.writeUInt16BE(MAX_HELD_RESULTS, 34); // TOTAL CONCURRENT COPIES
  d[36] = MAX_HELD_RESULTS; // MAXIMUM CONCURRENT COPIES
  d[37] = 9; // DATA SEGMENT GRANULARITY: 2^9 bytes
  d[43] = implemented.length;
  implemented.forEach((code, i) => (d[44 + i] = code));
  replyData(cmd, d, cmd.cdb.readUInt32BE(10));
}

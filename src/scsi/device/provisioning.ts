/**
 * Logical block provisioning (SBC-4 4.7): UNMAP, WRITE SAME(10/16) (with and without the UNMAP
 * bit, NDOB) and GET LBA STATUS. An LU is thin provisioned when `thin_provisioning=1` and its
 * store can deallocate (LogicalUnit.unmapSupported); unmapped blocks read back as zeroes
 * (LBPRZ), and GET LBA STATUS reports the store's allocation map.
 */
import { Buffer } from 'node:buffer';
import type { ScsiCommand } from '../command.js';
import { cdbLba, cdbTransferLength, Op } from '../cdb.js';
import type { LogicalUnit } from '../lu.js';
import { SenseError, SenseReason } from '../sense.js';
import { checkRange, checkWritable, storeUnmap, storeWrite } from './block-io.js';
import { MAX_UNMAP_DESCRIPTORS, MAX_WRITE_SAME_BLOCKS, replyData } from './spc.js';

/** Bytes written per store call when emulating WRITE SAME (bounded memory). */
const WRITE_SAME_CHUNK_BYTES = 1024 * 1024;
/** LBA status descriptors returned at most by one GET LBA STATUS (bounds the walk). */
export const MAX_LBA_STATUS_DESCRIPTORS = 1024;

/**
 * WRITE SAME(10/16) (SBC-4 5.47/5.48). UNMAP needs thin provisioning and deallocates the range
 * (the UNMAP/ANCHOR table of SBC-4: UNMAP=1 ANCHOR=0 is an unmap operation, whatever the block
 * holds; tgt and LIO do the same, and libiscsi's WriteSame10.UnmapUntilEnd relies on it).
 * Without UNMAP the block is written over the range in bounded chunks. NUMBER OF LOGICAL
 * BLOCKS 0 means "to the end of the medium" (WSNZ = 0); a range (explicit or to the end) above
 * MAXIMUM WRITE SAME LENGTH is INVALID FIELD IN CDB, as LIO and libiscsi's ZeroBlocks tests read it.
 */
export async function writeSameHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const b1 = cdb[1]!;
  const ndob = cdb[0] === Op.WriteSame16 && (b1 & 0x01) !== 0;
  const unmap = (b1 & 0x08) !== 0;
  const bs = lu.blockSize;
  cmd.writeTransferLength = ndob ? 0 : bs;
  // WRPROTECT, ANCHOR, PBDATA/LBDATA (no protection information, no anchored state)
  if ((b1 & 0xe0) !== 0 || (b1 & 0x10) !== 0 || (b1 & 0x06) !== 0)
    throw new SenseError(SenseReason.InvalidFieldInCdb);
  // Without thin provisioning the UNMAP bit names a feature the LU does not have: answered like
  // UNMAP itself (INVALID COMMAND OPERATION CODE, as tgt does for UNMAP and LIO for both), so
  // initiators see it as unsupported, consistent with LBPWS/LBPWS10 = 0 in VPD B2h.
  if (unmap && !lu.unmapSupported) throw new SenseError(SenseReason.InvalidOpcode);
  if (ndob && !unmap) throw new SenseError(SenseReason.InvalidFieldInCdb);
  const lba = cdbLba(cdb);
  let blocks = cdbTransferLength(cdb);
  checkRange(lu, lba, blocks);
  if (blocks === 0) blocks = lu.blocks - lba;
  if (blocks > MAX_WRITE_SAME_BLOCKS) throw new SenseError(SenseReason.InvalidFieldInCdb);
  checkWritable(lu);
  // SBC-4 5.47: the Data-Out is exactly one logical block; any other expected length is refused
  // before anything is written (libiscsi WriteSame*.InvalidDataOutSize).
  if (!ndob && cmd.expectedWriteLength !== bs) throw new SenseError(SenseReason.InvalidFieldInCdb);
  if (!ndob && cmd.dataOutLength < bs) throw new SenseError(SenseReason.InvalidFieldInInformationUnit);
  if (blocks === 0) return;
  const block = ndob ? null : cmd.gatherDataOut(bs);
  const offset = lba * bs;
  if (unmap) return storeUnmap(lu, offset, blocks * bs);
  const perChunk = Math.max(1, Math.min(blocks, Math.floor(WRITE_SAME_CHUNK_BYTES / bs)));
  const chunk = Buffer.allocUnsafe(perChunk * bs);
  for (let i = 0; i < perChunk; i++) block!.copy(chunk, i * bs);
  const durable = !lu.writeCacheEnabled;
  for (let done = 0; done < blocks; done += perChunk) {
    const n = Math.min(perChunk, blocks - done);
    await storeWrite(lu, [chunk.subarray(0, n * bs)], offset + done * bs, durable);
  }
}

/** UNMAP (SBC-4 5.28): deallocate each block descriptor's range (thin-provisioned LUs only). */
export async function unmapHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const listLen = cdb.readUInt16BE(7);
  cmd.writeTransferLength = listLen;
  if (!lu.unmapSupported) throw new SenseError(SenseReason.InvalidOpcode); // tgt: INVALID OPCODE without TP
  if ((cdb[1]! & 0x01) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb); // ANCHOR
  if (listLen === 0) return;
  if (listLen < 8 || cmd.dataOutLength < listLen) throw new SenseError(SenseReason.ParameterListLengthError);
  checkWritable(lu);
  const data = cmd.gatherDataOut(listLen);
  const descLen = Math.min(data.readUInt16BE(2), listLen - 8);
  const count = Math.floor(descLen / 16);
  if (count > MAX_UNMAP_DESCRIPTORS) throw new SenseError(SenseReason.InvalidFieldInParameterList);
  const ranges: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const o = 8 + i * 16;
    const lba = data.readUInt32BE(o) * 0x1_0000_0000 + data.readUInt32BE(o + 4);
    const blocks = data.readUInt32BE(o + 8);
    checkRange(lu, lba, blocks);
    if (blocks > 0) ranges.push([lba, blocks]);
  }
  for (const [lba, blocks] of ranges) await storeUnmap(lu, lba * lu.blockSize, blocks * lu.blockSize);
}

/** One LBA status descriptor (SBC-4 5.7.2). */
export interface LbaStatus {
  lba: number;
  blocks: number;
  /** PROVISIONING STATUS 0h mapped, 1h deallocated. */
  deallocated: boolean;
}

/**
 * Provisioning status of the blocks from `lba` on, as at most `max` descriptors of alternating
 * state. A block is deallocated only when all of its bytes are; a fully provisioned LU (or a
 * store that keeps no map) is mapped throughout.
 */
export async function lbaStatus(lu: LogicalUnit, lba: number, max: number): Promise<LbaStatus[]> {
  const end = lu.blocks;
  const bs = lu.blockSize;
  const store = lu.store!;
  if (!lu.unmapSupported || !store.allocationAt)
    return [{ lba, blocks: Math.min(end - lba, 0xffffffff), deallocated: false }];
  const out: LbaStatus[] = [];
  for (let cur = lba; cur < end;) {
    const ext = await store.allocationAt(cur * bs, (end - cur) * bs);
    let deallocated = !ext.mapped;
    // a mapped byte makes its whole block mapped; a deallocated run covers only whole blocks
    let run = ext.mapped ? Math.ceil(ext.length / bs) : Math.floor(ext.length / bs);
    if (run === 0) {
      deallocated = false;
      run = 1;
    }
    run = Math.min(run, end - cur, 0xffffffff);
    const last = out.at(-1);
    if (last && last.deallocated === deallocated && last.blocks + run <= 0xffffffff) last.blocks += run;
    else if (out.length < max) out.push({ lba: cur, blocks: run, deallocated });
    else break;
    cur += run;
  }
  return out;
}

/** GET LBA STATUS (SBC-4 5.7): LBA status descriptors from the starting LBA. */
export async function getLbaStatusHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const lba = cdbLba(cdb);
  const alloc = cdb.readUInt32BE(10);
  if (lba >= lu.blocks) throw new SenseError(SenseReason.LbaOutOfRange);
  const fit = Math.floor((alloc - 8) / 16);
  const list = await lbaStatus(lu, lba, Math.max(1, Math.min(MAX_LBA_STATUS_DESCRIPTORS, fit)));
  const d = Buffer.alloc(8 + list.length * 16);
  d.writeUInt32BE(4 + list.length * 16, 0); // PARAMETER DATA LENGTH
  list.forEach((s, i) => {
    const o = 8 + i * 16;
    d.writeBigUInt64BE(BigInt(s.lba), o);
    d.writeUInt32BE(s.blocks, o + 8);
    d[o + 12] = s.deallocated ? 0x01 : 0x00;
  });
  replyData(cmd, d, alloc);
}

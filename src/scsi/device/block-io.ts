/**
 * What every block command handler shares (SBC-4 4.5, 4.12): range and write-protect checks,
 * store I/O with failures mapped to sense data, and segment views of Data-Out without copies.
 */
import { Buffer } from 'node:buffer';
import type { ScsiCommand } from '../command.js';
import type { LogicalUnit } from '../lu.js';
import { SenseError, SenseReason } from '../sense.js';
import { MAX_TRANSFER_BYTES } from './spc.js';
import { acquireBuffer, POOLED_MAX_BYTES, releaseBuffer } from '../buffer-pool.js';
import { runningCommands } from '../running.js';

/** SBC-4 4.5: any block past the last LBA -> LOGICAL BLOCK ADDRESS OUT OF RANGE. */
export function checkRange(lu: LogicalUnit, lba: number, blocks: number): void {
  const capacity = lu.blocks;
  if (lba > capacity || blocks > capacity - lba) throw new SenseError(SenseReason.LbaOutOfRange);
}

/** SBC-4 4.12: writes to a write-protected LU -> DATA PROTECT, WRITE PROTECTED. */
export function checkWritable(lu: LogicalUnit): void {
  if (lu.writeProtected) throw new SenseError(SenseReason.WriteProtected);
}

/**
 * Sense for a failed store write or unmap: out of space (ENOSPC, EDQUOT) is SPACE ALLOCATION
 * FAILED WRITE PROTECT (SBC-4 4.7.3.6), anything else MEDIUM ERROR, WRITE ERROR.
 */
export function writeFailure(err: unknown): SenseError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new SenseError(SenseReason.SpaceAllocationFailed);
  return new SenseError(SenseReason.WriteError);
}

/**
 * A Data-In buffer of `bytes` for `cmd` from the payload pool (buffer-pool.ts): the fabric
 * gives it back through cmd.releaseBuffers() once sent, which saves an ArrayBuffer allocation
 * and its garbage collection per READ. Contents are uninitialised.
 */
export function acquireDataIn(cmd: ScsiCommand, bytes: number): Buffer {
  if (bytes > 0 && bytes <= POOLED_MAX_BYTES) cmd.onRelease = releaseBuffer;
  return acquireBuffer(bytes);
}

/** No other command is running and the fabric received nothing behind `cmd` (BackingStore.read). */
function mayBlockFor(cmd: ScsiCommand): boolean {
  return !cmd.moreReceived && runningCommands() === 1;
}

/**
 * storeRead() done at once when the store can (BackingStore.readNow): true when `into` is
 * filled, false when the caller must use storeRead(). Failures map as in storeRead().
 */
export function storeReadNow(lu: LogicalUnit, into: Buffer, offset: number, cmd: ScsiCommand): boolean {
  const store = lu.store!;
  if (store.readNow === undefined) return false;
  try {
    return store.readNow(into, offset, mayBlockFor(cmd));
  } catch {
    throw new SenseError(SenseReason.UnrecoveredReadError);
  }
}

/**
 * Store read; any store failure becomes MEDIUM ERROR, UNRECOVERED READ ERROR. `cmd`: the READ
 * it is for: when no other command is running and its fabric has received nothing behind it,
 * the store may block on it (BackingStore.read mayBlock).
 */
export async function storeRead(
  lu: LogicalUnit,
  into: Buffer,
  offset: number,
  cmd?: ScsiCommand,
): Promise<void> {
  try {
    await lu.store!.read(into, offset, cmd !== undefined && mayBlockFor(cmd));
  } catch {
    throw new SenseError(SenseReason.UnrecoveredReadError);
  }
}

/**
 * storeWrite() done at once when it need not be durable and the store can (BackingStore.
 * writeNow): true when written, false when the caller must use storeWrite().
 */
export function storeWriteNow(
  lu: LogicalUnit,
  segments: readonly Buffer[],
  offset: number,
  durable: boolean,
): boolean {
  const store = lu.store!;
  if (durable || store.writeNow === undefined) return false;
  try {
    return store.writeNow(segments, offset);
  } catch (err) {
    throw writeFailure(err);
  }
}

/**
 * Store write; `durable` (FUA, or WCE=0) is met natively when the store has FUA, else by a
 * flush. Failures map through writeFailure().
 */
export async function storeWrite(
  lu: LogicalUnit,
  segments: readonly Buffer[],
  offset: number,
  durable: boolean,
): Promise<void> {
  const store = lu.store!;
  try {
    if (durable && store.capabilities.fua) {
      await store.write(segments, offset, true);
    } else {
      await store.write(segments, offset, false);
      if (durable && store.capabilities.flush) await store.flush();
    }
  } catch (err) {
    throw writeFailure(err);
  }
}

/** Store unmap of a byte range (the LU supports it); failures map through writeFailure(). */
export async function storeUnmap(lu: LogicalUnit, offset: number, length: number): Promise<void> {
  try {
    await lu.store!.unmap!(offset, length);
  } catch (err) {
    throw writeFailure(err);
  }
}

/** Views covering bytes [start, start + length) of a segment list (no payload copy). */
export function sliceSegments(segments: readonly Buffer[], start: number, length: number): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  const end = start + length;
  for (const seg of segments) {
    const segEnd = pos + seg.length;
    if (segEnd > start && pos < end)
      out.push(seg.subarray(Math.max(0, start - pos), Math.min(seg.length, end - pos)));
    pos = segEnd;
    if (pos >= end) break;
  }
  return out;
}

/** Offset of the first byte where `segments` (from `start`) differs from `data`, or -1. */
export function firstMismatch(segments: readonly Buffer[], start: number, data: Buffer): number {
  let off = 0;
  for (const seg of sliceSegments(segments, start, data.length)) {
    const other = data.subarray(off, off + seg.length);
    if (!seg.equals(other)) {
      for (let i = 0; i < seg.length; i++) if (seg[i] !== other[i]) return off + i;
    }
    off += seg.length;
  }
  return -1;
}

/** Whole-block byte count of a transfer, refused above MAXIMUM TRANSFER LENGTH (SBC-4 6.6.4). */
export function transferBytes(lu: LogicalUnit, blocks: number): number {
  const bytes = blocks * lu.blockSize;
  if (bytes > MAX_TRANSFER_BYTES) throw new SenseError(SenseReason.InvalidFieldInCdb);
  return bytes;
}

/**
 * Data-Out actually usable for a write of `bytes`. Fewer bytes than the CDB asked for
 * (iSCSI EDTL < SCSI transfer length) follow FCP-4 9.4.2 as libiscsi's test_write*_residuals
 * accepts: whole blocks received are written and GOOD returned (the fabric reports the
 * overflow residual); a partial block is refused with INVALID FIELD IN COMMAND INFORMATION UNIT
 * and nothing is written. Extra bytes beyond the transfer length are ignored.
 */
export function receivedLength(cmd: ScsiCommand, lu: LogicalUnit, bytes: number): number {
  if (cmd.dataOutLength >= bytes) return bytes;
  if (cmd.dataOutLength % lu.blockSize !== 0) throw new SenseError(SenseReason.InvalidFieldInInformationUnit);
  return cmd.dataOutLength;
}

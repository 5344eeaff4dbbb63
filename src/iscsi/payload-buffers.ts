/**
 * Which received data segments land in pooled buffers (scsi/buffer-pool.ts), and giving them
 * back. SCSI Command immediate data and Data-Out are payload a store writes from: the framer
 * copies them out of the shared receive buffer straight into a pooled buffer, and the
 * connection returns those once the store has consumed them (ScsiCommand.dataOutConsumed).
 * Everything else (login, text, NOP-Out ping data) is small and short-lived: plain buffers.
 */
import { Buffer } from 'node:buffer';
import { acquireBuffer, releaseBuffer } from '../scsi/buffer-pool.js';
import type { ScsiCommand } from '../scsi/command.js';
import { bhsOpcode } from './pdu.js';
import { Opcode } from './spec.js';
import { emptyArray } from '../scsi/arrays.js';

/**
 * Smallest data segment given a pooled buffer. The smallest class is 4 KiB: a segment under half
 * of it would hold more memory than it carries (an initiator sending a write as 1-byte Data-Out
 * PDUs would hold 4 KiB per byte until the write ends), so small ones get a buffer of their size.
 */
const POOLED_MIN_BYTES = 2048;

/** PduFramer's allocateData for target connections. */
export function allocatePduData(length: number, bhs: Buffer): Buffer {
  const op = bhsOpcode(bhs);
  if (length >= POOLED_MIN_BYTES && (op === Opcode.DataOut || op === Opcode.ScsiCommand)) {
    return acquireBuffer(length);
  }
  return Buffer.allocUnsafe(length);
}

/** Give a finished command's Data-Out buffers back; the command keeps no view of them. */
export function releaseDataOut(cmd: ScsiCommand): void {
  for (const segment of cmd.dataOut) releaseBuffer(segment);
  emptyArray(cmd.dataOut);
  cmd.dataOutConsumed = false;
}

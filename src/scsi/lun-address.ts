/**
 * SAM-5 4.7 LUN addressing: decoding the 8-byte LUN field of a command and encoding LUNs for
 * REPORT LUNS. Like tgt, single-level peripheral (00b) and flat (01b) addressing are accepted.
 */
import { Buffer } from 'node:buffer';

/** Value returned by decodeLun for a LUN field this target cannot address. */
export const INVALID_LUN = -1;

/** Decode the first level of an 8-byte LUN field: peripheral (0-255) or flat (0-16383). */
export function decodeLun(lun: Buffer): number {
  if (lun.length < 2) return INVALID_LUN;
  const b0 = lun[0]!;
  switch (b0 >> 6) {
    case 0: // peripheral device addressing; bus identifier must be 0 (no SCSI bus behind us)
      return (b0 & 0x3f) === 0 ? lun[1]! : INVALID_LUN;
    case 1: // flat space addressing
      return ((b0 & 0x3f) << 8) | lun[1]!;
    default:
      return INVALID_LUN;
  }
}

/** Write `lun` into 8 bytes at `buf[off]`: peripheral <= 255, flat <= 16383, else raw 64-bit. */
export function encodeLun(lun: bigint, buf: Buffer, off: number): void {
  buf.fill(0, off, off + 8);
  if (lun <= 0xffn) {
    buf[off + 1] = Number(lun);
  } else if (lun <= 0x3fffn) {
    buf[off] = 0x40 | Number(lun >> 8n);
    buf[off + 1] = Number(lun & 0xffn);
  } else {
    buf.writeBigUInt64BE(BigInt.asUintN(64, lun), off);
  }
}

/** An 8-byte LUN field for `lun` (tests and fabrics building commands). */
export function lunField(lun: number | bigint): Buffer {
  const buf = Buffer.alloc(8);
  encodeLun(BigInt(lun), buf, 0);
  return buf;
}

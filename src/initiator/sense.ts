/** Decoding the parts of SCSI responses an initiator cares about: sense data (SPC-4 4.5). */
import { Buffer } from 'node:buffer';

export interface Sense {
  /** Sense key (SPC-4 4.5.6). */
  key: number;
  asc: number;
  ascq: number;
  /** The sense bytes as received (without iSCSI's 2-byte SenseLength). */
  raw: Buffer;
  /** Fixed format VALID + INFORMATION, or a descriptor-format information descriptor. */
  information?: bigint;
}

/** Decode fixed (0x70/0x71) or descriptor (0x72/0x73) sense; undefined when too short to read. */
export function decodeSense(raw: Buffer): Sense | undefined {
  if (raw.length < 1) return undefined;
  const code = raw[0]! & 0x7f;
  if (code === 0x72 || code === 0x73) {
    if (raw.length < 4) return undefined;
    const sense: Sense = { key: raw[1]! & 0x0f, asc: raw[2]!, ascq: raw[3]!, raw };
    // Descriptors follow byte 8; type 0 is the information descriptor (SPC-4 4.5.2.2).
    const end = Math.min(raw.length, 8 + (raw[7] ?? 0));
    for (let off = 8; off + 2 <= end; off += 2 + raw[off + 1]!) {
      if (raw[off] === 0x00 && off + 12 <= end) sense.information = raw.readBigUInt64BE(off + 4);
    }
    return sense;
  }
  if (code === 0x70 || code === 0x71) {
    if (raw.length < 3) return undefined;
    const sense: Sense = { key: raw[2]! & 0x0f, asc: raw[12] ?? 0, ascq: raw[13] ?? 0, raw };
    if (raw[0]! & 0x80 && raw.length >= 7) sense.information = BigInt(raw.readUInt32BE(3));
    return sense;
  }
  return undefined;
}

/**
 * iSCSI CRC32C digests (RFC 7143 section 13.1, Appendix B.4) over @node-rs/crc32, which uses
 * the CPU's CRC32C instruction / SIMD. Digests are computed incrementally over several buffers
 * so headers, AHS and data-segment views are never concatenated.
 *
 * Public API:
 *   crc32cUpdate(crc: number, buf: Uint8Array): number      (crc of previous bytes + buf; start at 0)
 *   crc32cOf(bufs: readonly Uint8Array[]): number
 *   headerDigest(bhs: Buffer, ahs: Buffer | null): number      (BHS + AHS)
 *   dataDigest(data: Buffer | readonly Buffer[], length?: number): number   (data + zero padding to 4)
 *   writeDigest(out: Buffer, offset: number, digest: number): void   (wire order, see below)
 *   readDigest(buf: Buffer, offset: number): number
 *   ZERO_PAD: Buffer (4 zero bytes, shared, read-only)
 *
 * Wire byte order: the 32-bit CRC value is sent least significant byte first, which is what the
 * Linux initiator and tgt put on the wire (checked against the digest fixture in the tests), so
 * the four bytes are the CRC register as the standard reflected CRC32C leaves it.
 */
import { Buffer } from 'node:buffer';
import { crc32c } from '@node-rs/crc32';

/** Four zero bytes for segment padding (11.2.3). Shared: never write into it. */
export const ZERO_PAD: Buffer = Buffer.alloc(4);

/** CRC32C of the bytes already covered by `crc` followed by `buf` (use 0 to start). */
export function crc32cUpdate(crc: number, buf: Uint8Array): number {
  return buf.length === 0 ? crc : crc32c(buf, crc);
}

/** CRC32C of the concatenation of `bufs`, without concatenating them. */
export function crc32cOf(bufs: readonly Uint8Array[]): number {
  let crc = 0;
  for (const b of bufs) crc = crc32cUpdate(crc, b);
  return crc;
}

/** 13.1 HeaderDigest: CRC32C over the BHS and any AHS. */
export function headerDigest(bhs: Buffer, ahs: Buffer | null): number {
  const crc = crc32cUpdate(0, bhs);
  return ahs ? crc32cUpdate(crc, ahs) : crc;
}

/**
 * 13.1 DataDigest: CRC32C over the data segment and its zero padding. `length` limits how many
 * bytes of `data` count (default: all of it).
 */
export function dataDigest(data: Buffer | readonly Buffer[], length?: number): number {
  let crc = 0;
  let total = 0;
  const limit = length ?? Infinity;
  const parts: readonly Buffer[] = Buffer.isBuffer(data) ? [data] : data;
  for (const part of parts) {
    if (total >= limit) break;
    const take = Math.min(part.length, limit - total);
    crc = crc32cUpdate(crc, take === part.length ? part : part.subarray(0, take));
    total += take;
  }
  const pad = -total & 3;
  return pad ? crc32cUpdate(crc, ZERO_PAD.subarray(0, pad)) : crc;
}

/** Store a digest in wire order (least significant byte first). */
export function writeDigest(out: Buffer, offset: number, digest: number): void {
  out.writeUInt32LE(digest >>> 0, offset);
}

/** Read a digest in wire order. */
export function readDigest(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset);
}

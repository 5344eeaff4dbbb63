/**
 * Sending PDUs (RFC 7143 section 11.1): BHS, AHS, header digest, data segment views, padding
 * and data digest are written as separate buffers, never concatenated; a corked socket turns
 * them into one writev.
 *
 * Public API:
 *   interface PduSink { cork(): void; uncork(): void; write(chunk: Buffer): boolean }   (a net.Socket)
 *   interface DigestSettings { headerDigest: boolean; dataDigest: boolean }
 *   type DataSegment = Buffer | readonly Buffer[] | null
 *   pduBuffers(out: Buffer[], bhs, ahs, data, digests: DigestSettings): Buffer[]
 *       appends the wire pieces of one PDU to `out` (and returns it); sets DataSegmentLength and
 *       TotalAHSLength in `bhs` from what is actually sent
 *   encodePduToBuffer(bhs, ahs, data, digests): Buffer     (one contiguous copy; tests and tools)
 *   class PduWriter {
 *     constructor(sink: PduSink, digests?: Partial<DigestSettings>, direct?: DirectWritev | null)
 *     setDigests(header: boolean, data: boolean): void
 *     send(bhs: Buffer, data?: DataSegment, ahs?: Buffer | null): boolean
 *     cork(): void;  uncork(): boolean;  batch<T>(fn: () => T): T
 *     readonly needDrain: boolean
 *   }
 *
 * `send` returns the socket's write() verdict for this PDU (false = wait for 'drain'); between
 * cork() and uncork() several PDUs (all Data-In of a READ plus its SCSI Response) go out in one
 * batch, and uncork() returns false if any write in the batch asked to wait. The header buffer
 * and data views must not be modified until the socket has flushed them.
 *
 * With a `direct` writer (direct-write.ts) the pieces of a batch are kept here until uncork()
 * and handed to the kernel in one writev while the socket has nothing queued; what the kernel
 * does not take goes through the socket as above. `send` inside a batch then returns true and
 * the batch's verdict comes from uncork().
 */
import { Buffer } from 'node:buffer';
import { BHS_LENGTH, DIGEST_LENGTH, MAX_DATA_SEGMENT_LENGTH, MAX_TOTAL_AHS_LENGTH } from './spec.js';
import { setDataSegmentLength, setTotalAhsLength } from './pdu.js';
import { crc32cUpdate, headerDigest, writeDigest } from './digest.js';
import type { DirectWritev } from './direct-write.js';
import { emptyArray } from '../scsi/arrays.js';

/** What PduWriter writes to: a net.Socket or anything with the same three methods. */
export interface PduSink {
  cork(): void;
  uncork(): void;
  write(chunk: Buffer): boolean;
}

export interface DigestSettings {
  headerDigest: boolean;
  dataDigest: boolean;
}

/** A data segment: one buffer, several views sent back to back, or none. */
export type DataSegment = Buffer | readonly Buffer[] | null;

/** Shared zero padding (never written to, so safe to hand to many pending writes). */
const PADS: readonly Buffer[] = [Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(2), Buffer.alloc(3)];

const SLAB_SIZE = 4096;
let slab = Buffer.allocUnsafe(SLAB_SIZE);
let slabUsed = 0;

/**
 * A fresh 4-byte digest buffer carved from a shared slab. A digest cannot go in a reused
 * buffer because the socket keeps a reference until it flushes; carving keeps it to one
 * allocation per 1024 digests, and a used-up slab is freed once its writes are flushed.
 */
function digestBuffer(value: number): Buffer {
  if (slabUsed + DIGEST_LENGTH > SLAB_SIZE) {
    slab = Buffer.allocUnsafe(SLAB_SIZE);
    slabUsed = 0;
  }
  const b = slab.subarray(slabUsed, slabUsed + DIGEST_LENGTH);
  slabUsed += DIGEST_LENGTH;
  writeDigest(b, 0, value);
  return b;
}

function segmentLength(data: DataSegment): number {
  if (!data) return 0;
  if (Buffer.isBuffer(data)) return data.length;
  let n = 0;
  for (const d of data) n += d.length;
  return n;
}

/**
 * Append the wire pieces of one PDU to `out`: BHS, AHS, header digest, data views, padding,
 * data digest (RFC 7143 11.1). Writes DataSegmentLength and TotalAHSLength into `bhs`.
 */
export function pduBuffers(
  out: Buffer[],
  bhs: Buffer,
  ahs: Buffer | null,
  data: DataSegment,
  digests: DigestSettings,
): Buffer[] {
  const header = bhs.length === BHS_LENGTH ? bhs : bhs.subarray(0, BHS_LENGTH);
  const ahsLength = ahs ? ahs.length : 0;
  // 11.2.1.4: TotalAHSLength counts 4-byte words, at most 255 of them.
  if (ahsLength % 4 !== 0 || ahsLength > MAX_TOTAL_AHS_LENGTH) {
    throw new RangeError(`AHS length ${ahsLength} is not a multiple of 4 up to ${MAX_TOTAL_AHS_LENGTH}`);
  }
  const dataLength = segmentLength(data);
  if (dataLength > MAX_DATA_SEGMENT_LENGTH) throw new RangeError(`data segment too long: ${dataLength}`);
  setTotalAhsLength(header, ahsLength);
  setDataSegmentLength(header, dataLength);

  out.push(header);
  if (ahs && ahsLength > 0) out.push(ahs);
  if (digests.headerDigest) out.push(digestBuffer(headerDigest(header, ahsLength > 0 ? ahs : null)));
  if (dataLength === 0) return out; // no data, so no padding and no data digest (11.1)

  let crc = 0;
  if (Buffer.isBuffer(data)) {
    out.push(data);
    if (digests.dataDigest) crc = crc32cUpdate(crc, data);
  } else {
    for (const d of data!) {
      if (d.length === 0) continue;
      out.push(d);
      if (digests.dataDigest) crc = crc32cUpdate(crc, d);
    }
  }
  const pad = PADS[-dataLength & 3]!;
  if (pad.length > 0) {
    out.push(pad);
    if (digests.dataDigest) crc = crc32cUpdate(crc, pad);
  }
  if (digests.dataDigest) out.push(digestBuffer(crc));
  return out;
}

/** The whole PDU as one new buffer (copies; for tests, tools and the rare non-hot path). */
export function encodePduToBuffer(
  bhs: Buffer,
  ahs: Buffer | null,
  data: DataSegment,
  digests: DigestSettings = { headerDigest: false, dataDigest: false },
): Buffer {
  return Buffer.concat(pduBuffers([], bhs, ahs, data, digests));
}

/** Writes PDUs to a socket with digests, padding and batching; see the file header. */
export class PduWriter {
  private readonly digests: DigestSettings;
  private corkDepth = 0;
  private batchOk = true;
  private lastOk = true;
  /** Reused list of pieces for the PDU being written (with `direct`: of the whole batch). */
  private readonly pieces: Buffer[] = [];

  constructor(
    private readonly sink: PduSink,
    digests: Partial<DigestSettings> = {},
    private readonly direct: DirectWritev | null = null,
  ) {
    this.digests = { headerDigest: digests.headerDigest ?? false, dataDigest: digests.dataDigest ?? false };
  }

  /**
   * Turn digests on or off for PDUs sent from now on. RFC 7143 13.1: digests start after
   * login, with the first PDU following the final Login Response.
   */
  setDigests(header: boolean, data: boolean): void {
    this.digests.headerDigest = header;
    this.digests.dataDigest = data;
  }

  /**
   * Send one PDU. Sets DataSegmentLength/TotalAHSLength in `bhs`. Returns false when the socket
   * asked the caller to wait for 'drain'.
   */
  send(bhs: Buffer, data: DataSegment = null, ahs: Buffer | null = null): boolean {
    if (this.direct !== null) {
      if (this.corkDepth > 0) {
        pduBuffers(this.pieces, bhs, ahs, data, this.digests);
        return true;
      }
      this.cork();
      pduBuffers(this.pieces, bhs, ahs, data, this.digests);
      return this.uncork();
    }
    const pieces = pduBuffers(this.pieces, bhs, ahs, data, this.digests);
    const standalone = this.corkDepth === 0 && pieces.length > 1;
    if (standalone) this.sink.cork();
    let ok = true;
    try {
      for (const p of pieces) ok = this.sink.write(p) && ok;
    } finally {
      emptyArray(pieces);
      if (standalone) this.sink.uncork();
    }
    this.lastOk = ok;
    this.batchOk &&= ok;
    return ok;
  }

  /** Start a batch: PDUs sent until the matching uncork() leave in one writev. Nestable. */
  cork(): void {
    if (this.corkDepth++ === 0) {
      this.batchOk = true;
      if (this.direct === null) this.sink.cork();
    }
  }

  /** End a batch. Returns false if any write in it asked to wait for 'drain'. */
  uncork(): boolean {
    if (this.corkDepth === 0) return this.lastOk;
    if (--this.corkDepth === 0) {
      if (this.direct === null) this.sink.uncork();
      else this.flushDirect();
    }
    return this.batchOk;
  }

  /** Hand the batch to the kernel; what it does not take goes through the sink. */
  private flushDirect(): void {
    const pieces = this.pieces;
    if (pieces.length === 0) return;
    let taken = this.direct!(pieces);
    let i = 0;
    if (taken > 0) {
      while (i < pieces.length && taken >= pieces[i]!.length) taken -= pieces[i++]!.length;
    } else {
      taken = 0;
    }
    let ok = true;
    if (i < pieces.length) {
      this.sink.cork();
      try {
        ok = this.sink.write(taken > 0 ? pieces[i]!.subarray(taken) : pieces[i]!) && ok;
        for (i++; i < pieces.length; i++) ok = this.sink.write(pieces[i]!) && ok;
      } finally {
        this.sink.uncork();
      }
    }
    emptyArray(pieces);
    this.lastOk = ok;
    this.batchOk &&= ok;
  }

  /** Run `fn` inside cork()/uncork(). */
  batch<T>(fn: () => T): T {
    this.cork();
    try {
      return fn();
    } finally {
      this.uncork();
    }
  }

  /** True when the last write was refused: wait for the socket's 'drain' before sending more. */
  get needDrain(): boolean {
    return !this.lastOk;
  }
}

/**
 * Turns a TCP byte stream into iSCSI PDUs (RFC 7143 section 11.1):
 *
 *   BHS (48) -> AHS (TotalAHSLength*4) -> HEADER_DIGEST (4, if on) -> DATA (DSL + pad to 4)
 *            -> DATA_DIGEST (4, if on and DSL > 0) -> deliver -> BHS ...
 *
 * Received chunks are kept in a list; a field that lies inside one chunk is handed out as a
 * `subarray` view, and only a field that straddles chunks is copied.
 *
 * Public API:
 *   class PduFramer {
 *     constructor(onPdu: (pdu: IncomingPdu) => void, onError: (err: FramingError) => void,
 *                 options?: PduFramerOptions)
 *     push(chunk: Buffer): boolean      // false once paused or stopped: stop reading the socket
 *     setDigests(header: boolean, data: boolean): void
 *     setMaxDataSegmentLength(n: number): void
 *     pause(): void;  resume(): void;  stop(): void
 *     readonly paused: boolean; readonly stopped: boolean; readonly bufferedBytes: number
 *     readonly headerDigest: boolean; readonly dataDigest: boolean; readonly maxDataSegmentLength: number
 *   }
 *   interface PduFramerOptions { headerDigest?: boolean; dataDigest?: boolean; maxDataSegmentLength?: number }
 *   class FramingError extends Error { kind: FramingErrorKind; fatal: boolean; bhs: Buffer | null; code }
 *   type FramingErrorKind = 'header-digest' | 'data-digest' | 'too-long'
 *
 * Digest and length settings are latched when a PDU's BHS is complete, so a change made from
 * inside onPdu (e.g. digests turning on after the final Login Response) applies from the next
 * PDU on. Errors never throw out of push(): they go to onError. 'header-digest' and 'too-long'
 * are fatal (the PDU boundary can no longer be trusted or the peer broke the negotiated limit)
 * and stop the framer; 'data-digest' is not: the PDU is discarded, `err.bhs` holds its header
 * so the connection can answer with a Reject (RFC 7143 7.8 / 11.17.1), and framing continues
 * unless onError calls stop().
 *
 * Backpressure: pause() (typically from inside onPdu) stops delivery after the current PDU;
 * push() keeps buffering and returns false until resume(). Delivery is a loop, never
 * recursion: push() or resume() called from inside onPdu only queue work for the running loop.
 * push() does not bound what it buffers: stop reading the socket while it returns false.
 * An exception thrown by onPdu propagates out of push(); the framer is then already positioned
 * at the next PDU, which is delivered on the next push() or resume().
 */
import {
  BHS_LENGTH,
  DEFAULT_LOGIN_MAX_DATA_SEGMENT_LENGTH,
  DIGEST_LENGTH,
  MAX_DATA_SEGMENT_LENGTH,
} from './spec.js';
import { bhsDataSegmentLength, bhsTotalAhsLength, type IncomingPdu } from './pdu.js';
import { crc32cUpdate, headerDigest, readDigest } from './digest.js';

export type FramingErrorKind = 'header-digest' | 'data-digest' | 'too-long';

/** A framing failure: which check failed, whether the stream is lost, and the offending header. */
export class FramingError extends Error {
  override readonly name = 'FramingError';
  readonly code = 'ISCSI_ERR_FRAMING';
  constructor(
    readonly kind: FramingErrorKind,
    message: string,
    /** False only for 'data-digest': the stream is still framed and the PDU was dropped. */
    readonly fatal: boolean,
    /** Header of the PDU that failed (a view of received bytes). */
    readonly bhs: Buffer | null,
  ) {
    super(message);
  }
}

export interface PduFramerOptions {
  headerDigest?: boolean;
  dataDigest?: boolean;
  /** Largest DataSegmentLength accepted (our MaxRecvDataSegmentLength); default 8192 (login). */
  maxDataSegmentLength?: number;
}

const enum State {
  Bhs,
  Ahs,
  HeaderDigest,
  Data,
  DataDigest,
  Stopped,
}

const EMPTY = Buffer.alloc(0);

/** Reassembles PDUs from stream chunks; see the file header. */
export class PduFramer {
  private readonly chunks: Buffer[] = [];
  /** Index of the first unconsumed chunk and the offset into it. */
  private head = 0;
  private headOffset = 0;
  private available = 0;

  private state = State.Bhs;
  private running = false;
  private isPaused = false;

  private wantHeaderDigest: boolean;
  private wantDataDigest: boolean;
  private maxDsl: number;

  // The PDU being assembled, and the settings latched for it.
  private bhs: Buffer = EMPTY;
  private ahs: Buffer | null = null;
  private data: Buffer = EMPTY;
  /** Pad bytes of the current PDU, kept for the data digest. */
  private pad: Buffer = EMPTY;
  private ahsLength = 0;
  private dataLength = 0;
  private pduDataDigest = false;

  constructor(
    private readonly onPdu: (pdu: IncomingPdu) => void,
    private readonly onError: (err: FramingError) => void,
    options: PduFramerOptions = {},
  ) {
    this.wantHeaderDigest = options.headerDigest ?? false;
    this.wantDataDigest = options.dataDigest ?? false;
    this.maxDsl = options.maxDataSegmentLength ?? DEFAULT_LOGIN_MAX_DATA_SEGMENT_LENGTH;
  }

  /** Feed received bytes. Returns false when the caller should stop reading (paused or stopped). */
  push(chunk: Buffer): boolean {
    if (this.stopped) return false;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.available += chunk.length;
    }
    if (!this.running) this.run();
    return !this.isPaused && !this.stopped;
  }

  /** Turn CRC32C digests on or off; applies from the next PDU whose BHS is not yet complete. */
  setDigests(header: boolean, data: boolean): void {
    this.wantHeaderDigest = header;
    this.wantDataDigest = data;
  }

  /** Set the largest acceptable DataSegmentLength (RFC 7143 13.12 MaxRecvDataSegmentLength). */
  setMaxDataSegmentLength(n: number): void {
    this.maxDsl = Math.max(0, Math.min(n, MAX_DATA_SEGMENT_LENGTH));
  }

  /** Stop delivering PDUs after the current one; received bytes stay buffered. */
  pause(): void {
    this.isPaused = true;
  }

  /** Resume delivery of buffered PDUs. */
  resume(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    if (!this.running && !this.stopped) this.run();
  }

  /** Stop for good and drop buffered bytes. */
  stop(): void {
    this.state = State.Stopped;
    this.chunks.length = 0;
    this.head = 0;
    this.headOffset = 0;
    this.available = 0;
  }

  get paused(): boolean {
    return this.isPaused;
  }
  get stopped(): boolean {
    return this.state === State.Stopped;
  }
  /** Bytes received but not yet consumed. */
  get bufferedBytes(): number {
    return this.available;
  }
  get headerDigest(): boolean {
    return this.wantHeaderDigest;
  }
  get dataDigest(): boolean {
    return this.wantDataDigest;
  }
  get maxDataSegmentLength(): number {
    return this.maxDsl;
  }

  private run(): void {
    this.running = true;
    try {
      while (!this.isPaused && this.step()) {
        // each step consumes one field
      }
    } finally {
      this.running = false;
    }
  }

  /** Advance by one field. Returns false when more bytes are needed or the framer stopped. */
  private step(): boolean {
    switch (this.state) {
      case State.Bhs: {
        if (this.available < BHS_LENGTH) return false;
        const bhs = this.take(BHS_LENGTH);
        this.bhs = bhs;
        this.ahs = null;
        this.data = EMPTY;
        this.ahsLength = bhsTotalAhsLength(bhs);
        this.dataLength = bhsDataSegmentLength(bhs);
        this.pduDataDigest = this.wantDataDigest;
        // RFC 7143 13.12: "the initiator MUST NOT send ... a data segment larger than the target's
        // MaxRecvDataSegmentLength"; a larger one means we no longer agree on the stream.
        if (this.dataLength > this.maxDsl) {
          return this.fail(
            new FramingError(
              'too-long',
              `DataSegmentLength ${this.dataLength} exceeds MaxRecvDataSegmentLength ${this.maxDsl}`,
              true,
              bhs,
            ),
          );
        }
        this.state = this.ahsLength > 0 ? State.Ahs : this.afterAhs();
        return true;
      }
      case State.Ahs:
        if (this.available < this.ahsLength) return false;
        this.ahs = this.take(this.ahsLength);
        this.state = this.afterAhs();
        return true;
      case State.HeaderDigest: {
        if (this.available < DIGEST_LENGTH) return false;
        const received = readDigest(this.take(DIGEST_LENGTH), 0);
        const computed = headerDigest(this.bhs, this.ahs);
        if (received !== computed) {
          // RFC 7143 7.8: a header digest error makes the PDU boundaries unreliable.
          return this.fail(
            new FramingError(
              'header-digest',
              `header digest ${hex(received)} != ${hex(computed)}`,
              true,
              this.bhs,
            ),
          );
        }
        this.state = this.afterHeader();
        return true;
      }
      case State.Data: {
        if (this.dataLength === 0) return this.deliver(); // no data segment, so no data digest (11.1)
        const padded = (this.dataLength + 3) & ~3;
        if (this.available < padded) return false;
        if (this.pduDataDigest) {
          // The digest covers the padding too (RFC 7143 11.1), so keep the pad bytes' view.
          const both = this.take(padded);
          this.data = both.subarray(0, this.dataLength);
          this.pad = both.subarray(this.dataLength);
          this.state = State.DataDigest;
          return true;
        }
        this.data = this.take(this.dataLength);
        this.skip(padded - this.dataLength);
        return this.deliver();
      }
      case State.DataDigest: {
        if (this.available < DIGEST_LENGTH) return false;
        const received = readDigest(this.take(DIGEST_LENGTH), 0);
        const computed = crc32cUpdate(crc32cUpdate(0, this.data), this.pad);
        if (received !== computed) {
          // RFC 7143 7.8: the PDU is discarded and answered with a Reject; framing is intact.
          const err = new FramingError(
            'data-digest',
            `data digest ${hex(received)} != ${hex(computed)}`,
            false,
            this.bhs,
          );
          this.state = State.Bhs;
          this.resetPdu();
          this.onError(err);
          return !this.stopped;
        }
        return this.deliver();
      }
      case State.Stopped:
        return false;
    }
  }

  private afterAhs(): State {
    return this.wantHeaderDigest ? State.HeaderDigest : this.afterHeader();
  }

  private afterHeader(): State {
    return State.Data;
  }

  /** Hand the finished PDU to onPdu and get ready for the next BHS. */
  private deliver(): boolean {
    const pdu: IncomingPdu = { bhs: this.bhs, ahs: this.ahs, data: this.data };
    this.state = State.Bhs;
    this.resetPdu();
    this.onPdu(pdu);
    return !this.stopped;
  }

  private resetPdu(): void {
    this.bhs = EMPTY;
    this.ahs = null;
    this.data = EMPTY;
    this.pad = EMPTY;
  }

  private fail(err: FramingError): false {
    this.stop();
    this.onError(err);
    return false;
  }

  /** Consume n buffered bytes: a view when they lie in one chunk, else a copy. */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[this.head]!;
    const start = this.headOffset;
    if (first.length - start >= n) {
      const view = first.subarray(start, start + n);
      this.advance(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    while (copied < n) {
      const chunk = this.chunks[this.head]!;
      const take = Math.min(chunk.length - this.headOffset, n - copied);
      chunk.copy(out, copied, this.headOffset, this.headOffset + take);
      copied += take;
      this.advance(take);
    }
    return out;
  }

  /** Drop n buffered bytes. */
  private skip(n: number): void {
    while (n > 0) {
      const chunk = this.chunks[this.head]!;
      const step = Math.min(chunk.length - this.headOffset, n);
      this.advance(step);
      n -= step;
    }
  }

  /** Move the read position forward by n bytes, which must lie in the head chunk. */
  private advance(n: number): void {
    this.available -= n;
    this.headOffset += n;
    if (this.headOffset < this.chunks[this.head]!.length) return;
    this.chunks[this.head] = EMPTY; // release the chunk for GC
    this.head++;
    this.headOffset = 0;
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= 64) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

/**
 * Turns a TCP byte stream into iSCSI PDUs (RFC 7143 section 11.1):
 *
 *   BHS (48) -> AHS (TotalAHSLength*4) -> HEADER_DIGEST (4, if on) -> DATA (DSL + pad to 4)
 *            -> DATA_DIGEST (4, if on and DSL > 0) -> deliver -> BHS ...
 *
 * Each field is copied out of the received chunk as it arrives, straight into the buffer it is
 * delivered in: the BHS into a 48-byte buffer, the data segment into the buffer the
 * `allocateData` option names (a pooled one the store writes from, on the target). So a chunk
 * is never kept after push() returns, and the socket can read every chunk into one reused
 * buffer (socket-reads.ts): the only copy of each byte is the one into where it is used, and no
 * buffer is allocated per read. Only bytes that arrive while paused (or from inside onPdu) are
 * copied aside first.
 *
 * Public API:
 *   class PduFramer {
 *     constructor(onPdu: (pdu: IncomingPdu) => void, onError: (err: FramingError) => void,
 *                 options?: PduFramerOptions)
 *     push(chunk: Buffer, length?: number): boolean   // the first `length` bytes (default all);
 *                                       // false once paused or stopped: stop reading the socket
 *     setDigests(header: boolean, data: boolean): void
 *     setMaxDataSegmentLength(n: number): void
 *     pause(): void;  resume(): void;  stop(): void
 *     readonly paused: boolean; readonly stopped: boolean; readonly bufferedBytes: number
 *     readonly headerDigest: boolean; readonly dataDigest: boolean; readonly maxDataSegmentLength: number
 *   }
 *   interface PduFramerOptions { headerDigest?: boolean; dataDigest?: boolean; maxDataSegmentLength?: number;
 *                                allocateData?: (length: number, bhs: Buffer) => Buffer }
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
import { Buffer } from 'node:buffer';
import {
  BHS_LENGTH,
  DEFAULT_LOGIN_MAX_DATA_SEGMENT_LENGTH,
  DIGEST_LENGTH,
  MAX_DATA_SEGMENT_LENGTH,
} from './spec.js';
import { bhsDataSegmentLength, bhsTotalAhsLength, copyOut, type IncomingPdu } from './pdu.js';
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
  /**
   * Where a PDU's data segment is received into, asked once its header is in (default: a new
   * buffer). The target gives SCSI payload pooled buffers that the store writes from.
   */
  allocateData?: (length: number, bhs: Buffer) => Buffer;
  /**
   * True when the receiver keeps nothing of this PDU's header after onPdu returns (the target:
   * Data-Out). Its `bhs`, and the IncomingPdu object itself, are then reused for the next such
   * PDU (its `data` is still its own); every other PDU gets a header and object of its own.
   */
  transientHeader?: (bhs: Buffer) => boolean;
}

const enum State {
  Bhs,
  Ahs,
  HeaderDigest,
  Data,
  Pad,
  DataDigest,
  Stopped,
}

const EMPTY = Buffer.alloc(0);
/** Copies up to this many bytes are done byte by byte (see step). */
const SMALL_COPY = 64;

/** Reassembles PDUs from stream chunks; see the file header. */
export class PduFramer {
  /** The chunk being framed (a caller's buffer, valid only during push) and the position in it. */
  private input: Buffer = EMPTY;
  private inputPos = 0;
  /** End of the bytes to frame in `input` (the caller's read may fill only part of it). */
  private inputEnd = 0;
  /** Copies of bytes received while paused or from inside onPdu, framed before anything newer. */
  private readonly backlog: Buffer[] = [];
  private backlogBytes = 0;

  private state = State.Bhs;
  private running = false;
  private isPaused = false;

  private wantHeaderDigest: boolean;
  private wantDataDigest: boolean;
  private maxDsl: number;
  private readonly allocateData: (length: number, bhs: Buffer) => Buffer;
  private readonly transientHeader: ((bhs: Buffer) => boolean) | null;
  /** Every header is read into this buffer first (see PduFramerOptions.transientHeader). */
  private readonly headerBuffer = Buffer.alloc(BHS_LENGTH);
  private readonly transientPdu: IncomingPdu = { bhs: EMPTY, ahs: null, data: EMPTY };

  /** Where the current field's bytes go, and how many are there so far. */
  private field: Buffer = EMPTY;
  private filled = 0;
  /** Digests and pad bytes are read into this scratch buffer (never handed out). */
  private readonly scratch = Buffer.alloc(DIGEST_LENGTH);
  /** Pad bytes of the current PDU (0-3), kept until its data digest is checked. */
  private readonly padCopy = Buffer.alloc(DIGEST_LENGTH);

  // The PDU being assembled, and the settings latched for it.
  private bhs: Buffer = EMPTY;
  private ahs: Buffer | null = null;
  private data: Buffer = EMPTY;
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
    this.allocateData = options.allocateData ?? allocateUnpooled;
    this.transientHeader = options.transientHeader ?? null;
    this.enter(State.Bhs, this.headerBuffer);
  }

  /**
   * Feed the first `length` bytes of `chunk`; it is only read during the call (it may be a
   * reused receive buffer). Returns false when the caller should stop reading (paused or stopped).
   */
  push(chunk: Buffer, length = chunk.length): boolean {
    if (this.stopped) return false;
    const n = Math.min(length, chunk.length);
    if (this.running || this.isPaused) {
      if (n > 0) this.keep(chunk, n);
    } else if (this.backlogBytes > 0) {
      // Left over from an onPdu that threw: it goes first.
      if (n > 0) this.keep(chunk, n);
      this.run();
    } else if (n > 0) {
      this.input = chunk;
      this.inputPos = 0;
      this.inputEnd = n;
      this.run();
    }
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
    this.backlog.length = 0;
    this.backlogBytes = 0;
    this.input = EMPTY;
    this.inputPos = 0;
    this.inputEnd = 0;
    this.field = EMPTY;
    this.filled = 0;
  }

  get paused(): boolean {
    return this.isPaused;
  }
  get stopped(): boolean {
    return this.state === State.Stopped;
  }
  /** Bytes received but not yet delivered (held while paused, or part of an unfinished PDU). */
  get bufferedBytes(): number {
    return this.backlogBytes + this.partialBytes();
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
  /** More bytes were received after the PDU being delivered (true inside onPdu of a batch). */
  get hasBufferedInput(): boolean {
    return this.inputPos < this.inputEnd || this.backlogBytes > 0;
  }

  /** Bytes of the PDU being assembled received so far. */
  private partialBytes(): number {
    switch (this.state) {
      case State.Bhs:
        return this.filled;
      case State.Ahs:
        return BHS_LENGTH + this.filled;
      case State.HeaderDigest:
        return BHS_LENGTH + this.ahsLength + this.filled;
      case State.Data:
      case State.Pad:
      case State.DataDigest:
        return BHS_LENGTH + this.ahsLength + (this.wantHeaderDigest ? DIGEST_LENGTH : 0) + this.filled;
      case State.Stopped:
        return 0;
    }
  }

  /** Frame the backlog, then the current input, until paused, stopped or out of bytes. */
  private run(): void {
    this.running = true;
    try {
      for (;;) {
        if (this.isPaused || this.stopped) break;
        if (this.inputPos === this.inputEnd) {
          const next = this.backlog.shift();
          if (next === undefined) break;
          this.backlogBytes -= next.length;
          this.input = next;
          this.inputPos = 0;
          this.inputEnd = next.length;
          continue;
        }
        this.step();
      }
    } finally {
      this.running = false;
      this.saveInput();
    }
  }

  /** The caller's chunk is about to be reused: keep a copy of what is left of it. */
  private saveInput(): void {
    const left = this.inputEnd - this.inputPos;
    if (left > 0 && !this.stopped) {
      this.backlog.unshift(Buffer.from(this.input.subarray(this.inputPos, this.inputEnd)));
      this.backlogBytes += left;
    }
    this.input = EMPTY;
    this.inputPos = 0;
    this.inputEnd = 0;
  }

  private keep(chunk: Buffer, length: number): void {
    this.backlog.push(Buffer.from(chunk.subarray(0, length)));
    this.backlogBytes += length;
  }

  /** Copy input into the current field; when it is complete, act on it. */
  private step(): void {
    const field = this.field;
    const want = field.length - this.filled;
    const input = this.input;
    const from = this.inputPos;
    const n = Math.min(want, this.inputEnd - from);
    if (n <= SMALL_COPY) {
      // Headers, pads, digests: a loop, because Buffer#copy of part of a buffer allocates a
      // view of it first (one per PDU header, about 0.1 KiB of garbage each).
      for (let i = 0, to = this.filled; i < n; i++) field[to + i] = input[from + i]!;
    } else {
      input.copy(field, this.filled, from, from + n);
    }
    this.inputPos = from + n;
    this.filled += n;
    if (n === want) this.fieldDone();
  }

  private enter(state: State, field: Buffer): void {
    this.state = state;
    this.field = field;
    this.filled = 0;
  }

  /** The current field is complete. */
  private fieldDone(): void {
    switch (this.state) {
      case State.Bhs: {
        const bhs = this.ownHeader(this.field);
        this.bhs = bhs;
        this.ahs = null;
        this.data = EMPTY;
        this.ahsLength = bhsTotalAhsLength(bhs);
        this.dataLength = bhsDataSegmentLength(bhs);
        this.pduDataDigest = this.wantDataDigest;
        // RFC 7143 13.12: "the initiator MUST NOT send ... a data segment larger than the target's
        // MaxRecvDataSegmentLength"; a larger one means we no longer agree on the stream.
        if (this.dataLength > this.maxDsl) {
          this.fail(
            new FramingError(
              'too-long',
              `DataSegmentLength ${this.dataLength} exceeds MaxRecvDataSegmentLength ${this.maxDsl}`,
              true,
              bhs,
            ),
          );
          return;
        }
        if (this.ahsLength > 0) {
          this.enter(State.Ahs, Buffer.allocUnsafe(this.ahsLength));
        } else this.afterAhs();
        return;
      }
      case State.Ahs:
        this.ahs = this.field;
        this.afterAhs();
        return;
      case State.HeaderDigest: {
        const received = readDigest(this.scratch, 0);
        const computed = headerDigest(this.bhs, this.ahs);
        if (received !== computed) {
          // RFC 7143 7.8: a header digest error makes the PDU boundaries unreliable.
          this.fail(
            new FramingError(
              'header-digest',
              `header digest ${hex(received)} != ${hex(computed)}`,
              true,
              this.bhs,
            ),
          );
          return;
        }
        this.startData();
        return;
      }
      case State.Data:
        this.data = this.field;
        this.afterData();
        return;
      case State.Pad:
        this.afterPad();
        return;
      case State.DataDigest: {
        const received = readDigest(this.scratch, 0);
        // The digest covers the padding too (RFC 7143 11.1).
        const pad = this.padLength();
        let computed = crc32cUpdate(0, this.data);
        if (pad > 0) computed = crc32cUpdate(computed, this.padBytes());
        if (received !== computed) {
          // RFC 7143 7.8: the PDU is discarded and answered with a Reject; framing is intact.
          const err = new FramingError(
            'data-digest',
            `data digest ${hex(received)} != ${hex(computed)}`,
            false,
            this.bhs,
          );
          this.nextPdu();
          this.onError(err);
          return;
        }
        this.deliver();
        return;
      }
      case State.Stopped:
        return;
    }
  }

  private afterAhs(): void {
    if (this.wantHeaderDigest) {
      this.enter(State.HeaderDigest, this.scratch);
    } else this.startData();
  }

  private startData(): void {
    // No data segment, so no data digest either (RFC 7143 11.1).
    if (this.dataLength === 0) {
      this.deliver();
      return;
    }
    this.enter(State.Data, this.allocateData(this.dataLength, this.bhs));
  }

  private padLength(): number {
    return ((this.dataLength + 3) & ~3) - this.dataLength;
  }

  /** The pad bytes just read, kept for the data digest. */
  private padBytes(): Buffer {
    return this.padCopy.subarray(0, this.padLength());
  }

  private afterData(): void {
    const pad = this.padLength();
    if (pad > 0) {
      this.enter(State.Pad, this.padCopy.subarray(0, pad));
    } else this.afterPad();
  }

  private afterPad(): void {
    if (this.pduDataDigest) {
      this.enter(State.DataDigest, this.scratch);
    } else this.deliver();
  }

  /** Hand the finished PDU to onPdu and get ready for the next BHS. */
  private deliver(): void {
    let pdu: IncomingPdu;
    if (this.bhs === this.headerBuffer) {
      // A PDU with a transient header is not kept either: one object serves them all.
      pdu = this.transientPdu;
      pdu.bhs = this.bhs;
      pdu.ahs = this.ahs;
      pdu.data = this.data;
    } else pdu = { bhs: this.bhs, ahs: this.ahs, data: this.data };
    this.nextPdu();
    this.onPdu(pdu);
  }

  private nextPdu(): void {
    this.bhs = EMPTY;
    this.ahs = null;
    this.data = EMPTY;
    if (this.state === State.Stopped) return;
    this.enter(State.Bhs, this.headerBuffer);
  }

  /** The header to hand out: the reused buffer itself when the receiver keeps none, else a copy. */
  private ownHeader(received: Buffer): Buffer {
    if (this.transientHeader !== null && this.transientHeader(received)) return received;
    return copyOut(received, 0, BHS_LENGTH);
  }

  private fail(err: FramingError): void {
    this.stop();
    this.onError(err);
  }
}

function allocateUnpooled(length: number): Buffer {
  return Buffer.allocUnsafe(length);
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

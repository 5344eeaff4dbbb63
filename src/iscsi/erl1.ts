/**
 * Error recovery level 1 (RFC 7143 7, 11.16, 13.20): what the target keeps so that lost PDUs can
 * be sent again, and how it notices and requests lost Data-Out. Pure bookkeeping; the connection
 * (connection.ts) sends and receives.
 *
 *   snackRun(begRun, runLength, first, next)   which numbers a SNACK names (11.16.1)
 *   class Retention        numbered responses by StatSN and READ Data-In by ITT, kept until the
 *                          initiator acknowledges the status (ExpStatSN), bounded per connection;
 *                          a READ evicted by the bounds keeps a small record of its command so
 *                          that ERL 2 can run it again (ReadCommandRecord, never its data)
 *   class WriteRecovery    one write's Data-Out sequences at ERL >= 1: DataSN gaps and data
 *                          digest errors become holes, requested again with recovery R2Ts (7.8,
 *                          7.9); data that arrives beyond a hole is parked until the hole is filled
 *
 * Nothing here copies payload: retained Data-In is re-encoded from the command's buffer
 * (data-in.ts DataInPlan), parked Data-Out are the receive views.
 */
import { Buffer } from 'node:buffer';
import { Op } from '../scsi/cdb.js';
import { DataDirection, type ScsiCommand, type TaskAttribute } from '../scsi/command.js';
import { snLessThan } from './cmdsn.js';
import type { DataInPlan } from './data-in.js';
import { bhsItt, bhsOpcode } from './pdu.js';
import type { DataSegment } from './pdu-writer.js';
import { Opcode } from './spec.js';

// --- SNACK runs ------------------------------------------------------------------------------

/** The numbers a SNACK asks for, or why it cannot be answered. */
export type SnackRun = { from: number; count: number } | 'acknowledged' | 'not-sent';

/**
 * RFC 7143 11.16.1: the PDUs numbered [BegRun, BegRun + RunLength) that a SNACK asks for, given
 * that [first, next) are the numbers sent and not yet acknowledged. RunLength 0 means "BegRun
 * and everything after it"; BegRun 0 with RunLength 0 means "everything not acknowledged".
 * Serial arithmetic (StatSN wraps). A run reaching below `first` asks for acknowledged PDUs, one
 * reaching `next` or beyond asks for PDUs never sent: both are protocol errors (11.17.1).
 */
export function snackRun(begRun: number, runLength: number, first: number, next: number): SnackRun {
  begRun >>>= 0;
  runLength >>>= 0;
  const span = (next - first) >>> 0;
  if (begRun === 0 && runLength === 0) return span === 0 ? 'not-sent' : { from: first, count: span };
  if (snLessThan(begRun, first)) return 'acknowledged';
  const rel = (begRun - first) >>> 0;
  if (rel >= span) return 'not-sent';
  const count = runLength === 0 ? span - rel : runLength;
  if (rel + count > span) return 'not-sent';
  return { from: begRun, count };
}

// --- retention of what was sent --------------------------------------------------------------

/** A numbered response kept for Status SNACK (11.16.1 type 1). */
export interface RetainedResponse {
  statSn: number;
  /** The header as sent (never modified after sending; a resend copies it); null with `read`. */
  bhs: Buffer | null;
  /** Its data segment, or null; a status carried by a Data-In is re-encoded from `read`. */
  data: DataSegment;
  /** The READ whose last Data-In carried this status (phase collapse), if any. */
  read: RetainedRead | null;
  bytes: number;
}

/** A READ's Data-In kept for Data SNACK (11.16.1 type 0) until its status is acknowledged. */
export interface RetainedRead {
  itt: number;
  /** Null once evicted to stay within the bounds: a SNACK for it can no longer be honoured. */
  plan: DataInPlan | null;
  /** StatSN of the command's status. */
  statSn: number;
  bytes: number;
  /** Called once when the data is dropped (acknowledged or evicted): pooled buffers go back. */
  onRelease: (() => void) | null;
  /** The command, while its data is kept (the record below is taken from it on eviction). */
  cmd: ScsiCommand | null;
  /** CmdSN of the command. */
  cmdSn: number;
  /** Set when the data was evicted: what runs the READ again (ERL 2 TASK REASSIGN), or null. */
  reread: ReadCommandRecord | null;
}

/**
 * What it takes to run an evicted READ again for TASK REASSIGN (RFC 7143 7.2.2, erl2.ts): the
 * command, never its data, plus how its Data-In were cut (ExpDataSN numbers those PDUs).
 */
export interface ReadCommandRecord {
  /** Copies, not views of the receive buffers. */
  cdb: Buffer;
  lun: Buffer;
  attribute: TaskAttribute;
  expectedReadLength: number;
  cmdSn: number;
  maxXmitDataSegmentLength: number;
  maxBurstLength: number;
  pduCount: number;
}

/** READ opcodes that can run again with the same result (SBC-4: they change nothing). */
const REREADABLE = new Set<number>([Op.Read6, Op.Read10, Op.Read12, Op.Read16]);

/**
 * The record of an evicted READ, or null for a command that may not run twice (anything but
 * READ(6/10/12/16) without Data-Out, e.g. REQUEST SENSE, which clears what it reports).
 */
export function readCommandRecord(
  cmd: ScsiCommand,
  cmdSn: number,
  plan: DataInPlan,
): ReadCommandRecord | null {
  if (cmd.direction !== DataDirection.Read || !REREADABLE.has(cmd.opcode)) return null;
  return {
    cdb: Buffer.from(cmd.cdb),
    lun: Buffer.from(cmd.lun),
    attribute: cmd.attribute,
    expectedReadLength: cmd.expectedReadLength,
    cmdSn: cmdSn >>> 0,
    maxXmitDataSegmentLength: plan.maxXmitDataSegmentLength,
    maxBurstLength: plan.maxBurstLength,
    pduCount: plan.pduCount,
  };
}

export interface RetentionLimits {
  /** Data-In payload bytes (plus response segments) kept per connection; the oldest go first. */
  maxBytes: number;
  /** Numbered responses (and READs) kept per connection; the oldest go first. */
  maxEntries: number;
}

/** A SCSI status not acknowledged yet, taken out for another connection (ERL 2, erl2.ts). */
export interface UnacknowledgedStatus {
  itt: number;
  statSn: number;
  /** The READ's Data-In, or null; an evicted one (plan null) always has its `reread` record. */
  read: RetainedRead | null;
  /** The SCSI Response as sent; null when the status rode on the READ's last Data-In. */
  response: RetainedResponse | null;
  /** Bytes still counted through `hooks.hold`: the taker gives them back. */
  bytes: number;
}

/** Whether a StatSN can be sent again. */
export type ResponseLookup = RetainedResponse | 'acknowledged' | 'evicted' | 'not-sent';

/** Fixed cost counted for each kept response (its header and bookkeeping). */
const RESPONSE_OVERHEAD = 128;

/**
 * What one connection keeps for SNACK at ERL >= 1 (see the file header). `hold`/`release` are
 * told about every byte kept and given back (the connection counts them in limits.ts's
 * daemon-wide budget).
 */
export class Retention {
  private readonly responses = new Map<number, RetainedResponse>();
  private readonly reads = new Map<number, RetainedRead>();
  private heldBytes = 0;
  /** Lowest StatSN not acknowledged (the initiator's ExpStatSN as last seen). */
  private acked: number;

  constructor(
    private readonly limits: RetentionLimits,
    firstStatSn: number,
    private readonly hooks: { hold(bytes: number): void; release(bytes: number): void },
  ) {
    this.acked = firstStatSn >>> 0;
  }

  /** Bytes kept now. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Responses kept now (for tests and stats). */
  get responseCount(): number {
    return this.responses.size;
  }

  /** READs kept now (evicted ones included until acknowledged). */
  get readCount(): number {
    return this.reads.size;
  }

  /** Lowest StatSN the initiator has not acknowledged. */
  get expStatSn(): number {
    return this.acked;
  }

  /**
   * Keep a numbered response that just went out. A response sent again with the same StatSN
   * (R-Data SNACK) replaces the kept one in place, so the map stays in StatSN order.
   */
  addResponse(statSn: number, bhs: Buffer | null, data: DataSegment, read: RetainedRead | null = null): void {
    const old = this.responses.get(statSn >>> 0);
    if (old) this.unhold(old.bytes);
    const bytes = RESPONSE_OVERHEAD + segmentBytes(data);
    this.responses.set(statSn >>> 0, { statSn: statSn >>> 0, bhs, data, read, bytes });
    this.hold(bytes);
    this.trim();
  }

  /**
   * Keep a READ's Data-In until StatSN `statSn` is acknowledged; `onRelease` runs once when the
   * data is dropped. `cmd` (and its `cmdSn`) give the record kept if the data is evicted.
   * Returns its record.
   */
  addRead(
    plan: DataInPlan,
    statSn: number,
    onRelease: (() => void) | null = null,
    cmd: ScsiCommand | null = null,
    cmdSn = 0,
  ): RetainedRead {
    const old = this.reads.get(plan.itt);
    if (old) this.dropRead(old);
    const read: RetainedRead = {
      itt: plan.itt,
      plan,
      statSn: statSn >>> 0,
      bytes: plan.length,
      onRelease,
      cmd,
      cmdSn,
      reread: null,
    };
    this.reads.set(plan.itt, read);
    this.hold(read.bytes);
    this.trim();
    return read;
  }

  /** The READ kept for `itt` (its plan is null when evicted). */
  read(itt: number): RetainedRead | undefined {
    return this.reads.get(itt);
  }

  /** The response numbered `statSn`, or why it cannot be sent again; `next` = next StatSN. */
  response(statSn: number, next: number): ResponseLookup {
    const r = this.responses.get(statSn >>> 0);
    if (r) return r;
    if (snLessThan(statSn, this.acked)) return 'acknowledged';
    if (!snLessThan(statSn, next)) return 'not-sent';
    return 'evicted';
  }

  /**
   * The initiator's ExpStatSN (RFC 7143 3.2.2.2: it acknowledges every status below it). Values
   * behind the last one or beyond `next` (what was sent) are ignored.
   */
  acknowledge(expStatSn: number, next: number): void {
    expStatSn >>>= 0;
    if (!snLessThan(this.acked, expStatSn) || snLessThan(next, expStatSn)) return;
    this.acked = expStatSn;
    for (const r of this.responses.values()) {
      if (!snLessThan(r.statSn, expStatSn)) break;
      this.dropResponse(r);
    }
    for (const read of this.reads.values()) {
      if (!snLessThan(read.statSn, expStatSn)) break;
      this.dropRead(read);
    }
  }

  /**
   * ERL 2 (connection recovery): take out the SCSI statuses the initiator has not acknowledged,
   * with the READ Data-In kept for them, so that TASK REASSIGN can deliver them on another
   * connection. Their bytes stay counted (the taker releases them) and their onRelease is the
   * taker's to call. A READ that cannot be delivered whole (its data was evicted, or its SCSI
   * Response with the sense data was dropped) goes as its `reread` record instead: it runs
   * again. One with no record (not a plain READ) stays (clear() drops it).
   */
  takeUnacknowledgedStatus(): UnacknowledgedStatus[] {
    const out: UnacknowledgedStatus[] = [];
    for (const r of [...this.responses.values()]) {
      let itt: number | null = null;
      if (r.read) itt = r.read.itt;
      else if (r.bhs && bhsOpcode(r.bhs) === Opcode.ScsiResponse) itt = bhsItt(r.bhs);
      if (itt === null) continue;
      const read = this.reads.get(itt) ?? null;
      // A status riding on Data-In whose record the bounds dropped cannot be delivered.
      if (r.read && read !== r.read) continue;
      if (read && (read.statSn !== r.statSn || (read.plan === null && read.reread === null))) continue;
      this.responses.delete(r.statSn);
      if (read) this.reads.delete(itt);
      const bytes = r.bytes + (read ? read.bytes : 0);
      this.heldBytes -= bytes;
      const response = r.read || read?.plan === null ? null : r;
      out.push({ itt, statSn: r.statSn, read, response, bytes });
    }
    // READs whose response was dropped by the bounds: the status rides on the kept Data-In, or
    // (sense data lost with the response) the READ runs again.
    for (const read of [...this.reads.values()]) {
      if (read.plan && !read.plan.collapse) this.evictRead(read, true);
      if (!read.plan && !read.reread) continue;
      this.reads.delete(read.itt);
      this.heldBytes -= read.bytes;
      out.push({ itt: read.itt, statSn: read.statSn, read, response: null, bytes: read.bytes });
    }
    return out;
  }

  /** Give everything back (the connection closes). */
  clear(): void {
    for (const r of [...this.responses.values()]) this.dropResponse(r);
    for (const read of [...this.reads.values()]) this.dropRead(read);
  }

  /** Evict the oldest until within the bounds: their SNACKs get "SNACK reject" from now on. */
  private trim(): void {
    const { maxBytes, maxEntries } = this.limits;
    while (this.responses.size > maxEntries) this.dropResponse(this.responses.values().next().value!);
    while (this.reads.size > maxEntries) this.dropRead(this.reads.values().next().value!);
    if (this.heldBytes <= maxBytes) return;
    for (const read of this.reads.values()) {
      if (this.heldBytes <= maxBytes) return;
      this.evictRead(read, true);
    }
    while (this.heldBytes > maxBytes && this.responses.size > 0) {
      this.dropResponse(this.responses.values().next().value!);
    }
  }

  private hold(bytes: number): void {
    this.heldBytes += bytes;
    this.hooks.hold(bytes);
  }

  private unhold(bytes: number): void {
    this.heldBytes -= bytes;
    this.hooks.release(bytes);
  }

  private dropResponse(r: RetainedResponse): void {
    this.responses.delete(r.statSn);
    this.unhold(r.bytes);
  }

  /**
   * Keep the record (a SNACK for it is refused, not taken for a protocol error), drop the data;
   * with `rereadable`, keep what runs the READ again too (ERL 2).
   */
  private evictRead(read: RetainedRead, rereadable: boolean): void {
    const plan = read.plan;
    if (!plan) return;
    if (rereadable && read.cmd) read.reread = readCommandRecord(read.cmd, read.cmdSn, plan);
    read.cmd = null;
    read.plan = null;
    this.unhold(read.bytes);
    read.bytes = 0;
    const release = read.onRelease;
    read.onRelease = null;
    release?.();
  }

  private dropRead(read: RetainedRead): void {
    this.evictRead(read, false);
    read.reread = null;
    this.reads.delete(read.itt);
  }
}

function segmentBytes(data: DataSegment): number {
  if (!data) return 0;
  if (Buffer.isBuffer(data)) return data.length;
  let n = 0;
  for (const d of data) n += d.length;
  return n;
}

// --- Data-Out recovery -----------------------------------------------------------------------

/** A byte range of the write's data. */
export interface Range {
  offset: number;
  length: number;
}

/** One Data-Out sequence: the data an R2T (or the unsolicited burst) asked for. */
export interface DataOutSequence {
  /** The R2T's Target Transfer Tag (0xffffffff: unsolicited data). */
  ttt: number;
  start: number;
  end: number;
  nextOffset: number;
  nextDataSn: number;
  /** Opened by a recovery R2T. */
  recovery: boolean;
}

/**
 * What to do with a Data-Out: take it ('accept'), drop it silently because its DataSN was
 * already seen ('stale'), or refuse it because it does not fit the sequence ('invalid').
 */
export type DataOutVerdict = 'accept' | 'stale' | 'invalid';

/**
 * The Data-Out state of one write at ERL >= 1 (see the file header). With DataPDUInOrder=Yes the
 * PDUs of a sequence come in offset order, so a DataSN gap tells exactly which bytes were lost
 * (RFC 7143 7.9: an out-of-order DataSN means an earlier PDU was lost to a digest error), and a
 * PDU whose data digest failed tells it from its header (7.8). Lost ranges are kept as holes and
 * requested again, one recovery R2T at a time, once the sequence they belong to has ended (so
 * no more than one R2T is ever outstanding, RFC 7143 13.19 with ERL > 0).
 */
export class WriteRecovery {
  /** The sequence being received, or null between sequences. */
  seq: DataOutSequence | null = null;
  /** Lost ranges waiting for a recovery R2T, in offset order. */
  readonly holes: Range[] = [];
  /** Data received beyond a hole, in offset order; absorbed once the hole is filled. */
  readonly parked: { offset: number; data: Buffer }[] = [];
  /**
   * ERL 2: R2Ts numbered below this were acknowledged by a TASK REASSIGN's ExpDataSN (RFC 7143
   * 7.2.2); the initiator expects the next R2T to carry it.
   */
  acknowledgedR2tSn = 0;

  /** Start receiving the sequence an R2T (or the command, for unsolicited data) asked for. */
  open(ttt: number, start: number, end: number, recovery: boolean): void {
    this.seq = { ttt, start, end, nextOffset: start, nextDataSn: 0, recovery };
  }

  /**
   * Check a Data-Out (or the header of one that failed its data digest) against the open
   * sequence. A DataSN ahead of the expected one means the PDUs in between were lost: their
   * bytes [expected offset, this offset) become a hole and the sequence continues here.
   */
  check(ttt: number, dataSn: number, offset: number, length: number): DataOutVerdict {
    const seq = this.seq;
    if (!seq || ttt !== seq.ttt) return 'invalid';
    if (snLessThan(dataSn, seq.nextDataSn)) return 'stale';
    if (offset + length > seq.end) return 'invalid';
    if (dataSn === seq.nextDataSn) return offset === seq.nextOffset ? 'accept' : 'invalid';
    // DataSN gap (7.9): offsets must show where the lost PDUs were.
    if (offset <= seq.nextOffset) return 'invalid';
    this.addHole({ offset: seq.nextOffset, length: offset - seq.nextOffset });
    seq.nextOffset = offset;
    seq.nextDataSn = dataSn;
    return 'accept';
  }

  /**
   * An accepted PDU has been handled: move the sequence on. Returns the sequence if this PDU
   * ended it (F bit). A sequence that ends short of what was asked for (by the R2T, or
   * FirstBurstLength for unsolicited data) leaves the rest as a hole.
   */
  advance(length: number, final: boolean): DataOutSequence | null {
    const seq = this.seq!;
    seq.nextOffset += length;
    seq.nextDataSn = (seq.nextDataSn + 1) >>> 0;
    if (!final) return null;
    if (seq.nextOffset < seq.end) {
      this.addHole({ offset: seq.nextOffset, length: seq.end - seq.nextOffset });
    }
    this.seq = null;
    return seq;
  }

  /** Record a lost range (a Data-Out discarded for its data digest, or a DataSN gap). */
  addHole(range: Range): void {
    let i = this.holes.length;
    while (i > 0 && this.holes[i - 1]!.offset > range.offset) i--;
    this.holes.splice(i, 0, range);
  }

  /** The next hole to request with a recovery R2T (removed from the list). */
  takeHole(): Range | undefined {
    return this.holes.shift();
  }

  /**
   * Place received data: what continues the contiguous prefix (`received`) goes to `absorb`,
   * followed by any parked data it makes contiguous; data beyond a hole is parked. Returns the
   * new contiguous length.
   */
  place(received: number, offset: number, data: Buffer, absorb: (data: Buffer) => void): number {
    if (offset !== received) {
      let i = this.parked.length;
      while (i > 0 && this.parked[i - 1]!.offset > offset) i--;
      this.parked.splice(i, 0, { offset, data });
      return received;
    }
    absorb(data);
    received += data.length;
    while (this.parked.length > 0 && this.parked[0]!.offset === received) {
      const next = this.parked.shift()!;
      absorb(next.data);
      received += next.data.length;
    }
    return received;
  }

  /**
   * ERL 2: the write moves to another connection (RFC 7143 7.2.2: it goes on from its current
   * state). The open sequence is void (its R2T belonged to the failed connection); every byte of
   * [received, end) not parked (the old holes, the rest of that sequence, the rest of the
   * unsolicited burst) becomes a hole, cut at `maxBurstLength` (one R2T each); the parked data
   * stays. `end` is where the bytes solicited so far end.
   */
  resume(received: number, end: number, maxBurstLength: number): void {
    this.seq = null;
    this.holes.length = 0;
    let at = received;
    for (const p of this.parked) {
      if (p.offset > at) this.addMissing(at, p.offset, maxBurstLength);
      at = Math.max(at, p.offset + p.data.length);
    }
    if (end > at) this.addMissing(at, end, maxBurstLength);
  }

  /**
   * RFC 7143 7.2.2 / 11.5.6: a TASK REASSIGN's ExpDataSN for a write acknowledges the R2Ts
   * numbered below it (the initiator received them) and is the R2TSN it expects next. 0 leaves
   * the acknowledged number unchanged, and so does a value below it or beyond `sent` (the R2Ts
   * sent): such values are ignored. Returns the R2TSN the next R2T takes.
   */
  acknowledgeR2ts(expDataSn: number, sent: number): number {
    expDataSn >>>= 0;
    if (expDataSn !== 0 && expDataSn >= this.acknowledgedR2tSn && expDataSn <= sent) {
      this.acknowledgedR2tSn = expDataSn;
    }
    return this.acknowledgedR2tSn;
  }

  private addMissing(from: number, to: number, maxBurstLength: number): void {
    for (let offset = from; offset < to; offset += maxBurstLength) {
      this.holes.push({ offset, length: Math.min(maxBurstLength, to - offset) });
    }
  }

  /** Nothing lost is still waiting to be requested or received. */
  get idle(): boolean {
    return this.seq === null && this.holes.length === 0;
  }
}

/**
 * Session-wide command numbering (RFC 7143 4.2.2.1): non-immediate commands are delivered in
 * CmdSN order, whatever order they arrive in; the window [ExpCmdSN, MaxCmdSN] bounds what an
 * initiator may send.
 *
 * Unlike tgt's constant "ExpCmdSN + 128", MaxCmdSN here shrinks while commands are outstanding:
 * the window is `depth` commands in total, counting those received but not yet answered, so the
 * memory a session can pin is bounded. It never moves backwards (the initiator ignores a
 * smaller MaxCmdSN anyway, RFC 7143 4.2.2.1).
 */

/** Serial number arithmetic (RFC 1982) on 32-bit sequence numbers: a < b. */
export function snLessThan(a: number, b: number): boolean {
  return a !== b && ((b - a) | 0) > 0;
}

/** a <= b in serial arithmetic. */
export function snLessOrEqual(a: number, b: number): boolean {
  return a === b || snLessThan(a, b);
}

export type Delivery = () => void;

const callDelivery = (deliver: Delivery): void => deliver();

export type CmdSnVerdict = 'deliver' | 'queued' | 'outside-window';

export class CmdSnWindow {
  /** Next CmdSN expected in order. */
  expCmdSn: number;
  /** Highest CmdSN the initiator may send (as last advertised). */
  private maxCmdSnValue: number;
  /** Non-immediate commands accepted into the window and not yet finished. */
  private outstanding = 0;
  /** Commands that arrived ahead of a gap, by CmdSN. */
  private readonly pending = new Map<number, Delivery>();

  constructor(
    initialCmdSn: number,
    /** Window size: the most non-immediate commands in flight (tgt's MaxQueueCmd). */
    private readonly depth: number,
  ) {
    this.expCmdSn = initialCmdSn >>> 0;
    this.maxCmdSnValue = (this.expCmdSn + depth - 1) >>> 0;
  }

  /** MaxCmdSN to advertise now. */
  get maxCmdSn(): number {
    const candidate = (this.expCmdSn - 1 + this.depth - this.outstanding) >>> 0;
    if (snLessThan(this.maxCmdSnValue, candidate)) this.maxCmdSnValue = candidate;
    return this.maxCmdSnValue;
  }

  /** Commands counted against the window. */
  get inFlight(): number {
    return this.outstanding;
  }

  /**
   * A non-immediate command with `cmdSn` arrived. It is delivered now (and then any queued
   * successors), queued until the gap before it fills, or refused when outside the window
   * (RFC 7143 4.2.2.1: the target MUST silently ignore it).
   */
  accept(cmdSn: number, deliver: Delivery): CmdSnVerdict {
    return this.acceptWith(cmdSn, callDelivery, deliver);
  }

  /**
   * accept() for a delivery that takes an argument: `deliver(arg)` runs now when `cmdSn` is the
   * next one, so the caller needs no closure per command (one is made only when it is queued).
   */
  acceptWith<T>(cmdSn: number, deliver: (arg: T) => void, arg: T): CmdSnVerdict {
    cmdSn >>>= 0;
    if (snLessThan(cmdSn, this.expCmdSn) || snLessThan(this.maxCmdSn, cmdSn)) return 'outside-window';
    if (this.pending.has(cmdSn)) return 'outside-window'; // a duplicate of a queued command
    this.outstanding++;
    if (cmdSn !== this.expCmdSn) {
      this.pending.set(cmdSn, () => deliver(arg));
      return 'queued';
    }
    this.expCmdSn = (this.expCmdSn + 1) >>> 0;
    deliver(arg);
    this.drain();
    return 'deliver';
  }

  /**
   * Consider `cmdSn` received without a command (RFC 7143 11.5.1 b, ABORT TASK of a command not
   * yet arrived): the window moves past it, and the command is ignored when it comes. False when
   * the CmdSN is outside the window or already taken.
   */
  consume(cmdSn: number): boolean {
    return this.accept(cmdSn, () => this.finished()) !== 'outside-window';
  }

  /** A command counted by accept() has finished (answered or aborted). */
  finished(): void {
    if (this.outstanding > 0) this.outstanding--;
  }

  /** Drop queued commands (session ending). */
  clear(): void {
    this.outstanding -= this.pending.size;
    this.pending.clear();
  }

  private drain(): void {
    for (;;) {
      const next = this.pending.get(this.expCmdSn);
      if (!next) return;
      this.pending.delete(this.expCmdSn);
      this.expCmdSn = (this.expCmdSn + 1) >>> 0;
      next();
    }
  }
}

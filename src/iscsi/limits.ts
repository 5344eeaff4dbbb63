/**
 * Resource limits of the iSCSI fabric, in one place (docs/robustness.md): how long a connection
 * may take to log in, how much a connection (and all of them together) may hold in received
 * Data-Out, how many immediate commands and R2Ts it may have outstanding, how much login text
 * it may send, and (ERL >= 1) how much it keeps for SNACK. Hostile or broken initiators hit these bounds instead of the daemon's memory.
 *
 * Public API:
 *   interface IscsiLimits { ...fields below... }
 *   const DEFAULT_LIMITS: Readonly<IscsiLimits>
 *   function resolveLimits(overrides?: Partial<IscsiLimits>): IscsiLimits
 *   class DataOutBudget   // the daemon-wide Data-Out byte budget shared by every connection
 */
import { MAX_TRANSFER_BYTES } from '../scsi/device/spc.js';

export interface IscsiLimits {
  /** A connection must reach full feature phase within this many ms (0: no limit). */
  loginTimeoutMs: number;
  /** A connection that has not sent one complete PDU within this many ms is closed (0: no limit). */
  firstPduTimeoutMs: number;
  /**
   * A connection that owes a command Data-Out (after an R2T, or announced unsolicited data) and
   * sends none for this long is closed (0: never), so a client that stops sending cannot hold
   * its LU's ORDERED commands back for ever (tgtd --iscsi dataout_timeout=SECONDS).
   */
  dataOutTimeoutMs: number;
  /** Connections accepted at once, all portals together; more are closed at accept. */
  maxConnections: number;
  /** Immediate commands outstanding per connection (beyond: Reject 0x06, RFC 7143 11.17.1). */
  maxImmediateCommands: number;
  /** R2Ts outstanding per command, whatever MaxOutstandingR2T allows (RFC 7143 13.17: at most). */
  maxOutstandingR2TPerTask: number;
  /**
   * Data-Out bytes one command may bring in. Larger EDTLs are solicited only up to this; every
   * valid CDB needs at most MAX_TRANSFER_BYTES (VPD B0), the core fails larger ones.
   */
  maxWriteLength: number;
  /** Data-Out bytes received or solicited and not yet released, per connection. */
  maxDataOutBytesPerConnection: number;
  /** The same, all connections together. */
  maxDataOutBytesTotal: number;
  /** Login text accumulated over Continue PDUs (RFC 7143 6.2.1). */
  maxLoginTextBytes: number;
  /**
   * ERL >= 1: READ Data-In and numbered responses kept per connection for SNACK until the
   * initiator acknowledges their status (erl1.ts); the oldest are dropped beyond this.
   */
  maxRetainedBytesPerConnection: number;
  /** ERL >= 1: numbered responses (and READs) kept per connection for SNACK. */
  maxRetainedResponsesPerConnection: number;
}

/** Defaults: generous for real initiators, small enough that a thousand bad ones fit in memory. */
export const DEFAULT_LIMITS: Readonly<IscsiLimits> = Object.freeze({
  loginTimeoutMs: 30_000,
  firstPduTimeoutMs: 15_000,
  dataOutTimeoutMs: 20_000,
  maxConnections: 4096,
  maxImmediateCommands: 64,
  maxOutstandingR2TPerTask: 16,
  maxWriteLength: 2 * MAX_TRANSFER_BYTES,
  maxDataOutBytesPerConnection: 64 * 1024 * 1024,
  maxDataOutBytesTotal: 1024 * 1024 * 1024,
  maxLoginTextBytes: 64 * 1024,
  maxRetainedBytesPerConnection: 32 * 1024 * 1024,
  maxRetainedResponsesPerConnection: 1024,
});

/** The defaults with `overrides` applied (non-finite or negative values are ignored). */
export function resolveLimits(overrides: Partial<IscsiLimits> = {}): IscsiLimits {
  const out: IscsiLimits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof IscsiLimits)[]) {
    const v = overrides[key];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) out[key] = Math.floor(v);
  }
  return out;
}

/**
 * The Data-Out byte budget of the whole daemon. A connection reserves a command's solicited
 * bytes before its first R2T and gives them back when the command is gone; at ERL >= 1 what it
 * keeps for SNACK is counted too (force/release), so retained Data-In delays other writes'
 * R2Ts instead of growing memory without bound. A connection that holds nothing is always
 * granted one reservation, so every connection makes progress and a client that never sends its
 * data can stall only itself; the total is therefore bounded by
 * `total + connections * (maxWriteLength + maxRetainedBytesPerConnection)`.
 */
export class DataOutBudget {
  private usedBytes = 0;
  private readonly waiters = new Set<() => void>();

  constructor(readonly total: number) {}

  /** Bytes reserved now, all connections together. */
  get used(): number {
    return this.usedBytes;
  }

  /** Reserve `bytes` for a connection that already holds `held` of its `limit`; false: wait. */
  tryReserve(bytes: number, held: number, limit: number): boolean {
    if (held > 0 && (held + bytes > limit || this.usedBytes + bytes > this.total)) return false;
    this.usedBytes += bytes;
    return true;
  }

  /** Count bytes that arrive whatever the budget says (immediate and unsolicited data). */
  force(bytes: number): void {
    this.usedBytes += bytes;
  }

  /** Give bytes back and let waiting connections retry. */
  release(bytes: number): void {
    if (bytes <= 0) return;
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
    // Every READ releases its budget: no snapshot of the set unless someone waits.
    if (this.waiters.size === 0) return;
    for (const wake of [...this.waiters]) wake();
  }

  /** Call `wake` after each release until unsubscribed. */
  subscribe(wake: () => void): void {
    this.waiters.add(wake);
  }

  unsubscribe(wake: () => void): void {
    this.waiters.delete(wake);
  }
}

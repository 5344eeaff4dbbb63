/**
 * The iSCSI side of one SCSI command: the state RFC 7143 keeps per task (Data-Out progress,
 * R2T sequencing, CmdSN delivery) around the fabric-independent ScsiCommand.
 */
import { Buffer } from 'node:buffer';
import { TaskAttribute, type ScsiCommand } from '../scsi/command.js';
import type { IscsiConnection } from './connection.js';
import type { WriteRecovery } from './erl1.js';
import { RESERVED_TAG, TaskAttr } from './spec.js';

export class IscsiTask {
  /** Bytes of Data-Out received so far (immediate data included). */
  received = 0;
  /** Offset where the unsolicited part ends (immediate + unsolicited Data-Out). */
  unsolicitedEnd = 0;
  unsolicitedDone = true;
  /**
   * performance.now() since when the initiator owes this task Data-Out (an R2T sent or
   * unsolicited data announced), refreshed by each Data-Out; 0 while it owes nothing.
   */
  awaitingDataSince = 0;
  /** Next offset to solicit with an R2T. */
  nextR2tOffset = 0;
  r2tSn = 0;
  /** R2Ts sent and not yet completed by a Data-Out with F=1. */
  r2tsInFlight = 0;
  /** DataSN expected on the next Data-Out of the current sequence. */
  expectedDataSn = 0;
  /** Target Transfer Tag of this task's R2Ts (RESERVED_TAG until the first R2T). */
  ttt = RESERVED_TAG;
  /** Delivered by the CmdSN window (or immediate). */
  ordered = false;
  submitted = false;
  done = false;
  /** Data-Out bytes counted against the connection's budget (limits.ts), given back when gone. */
  reservedBytes = 0;
  /** A READ's Data-In bytes, reserved in the I/O budget before it runs (0: not a read). */
  readBytes = 0;
  /** The solicited part has been reserved: R2Ts may go out. */
  admitted = false;
  /** ERL >= 1 writes: Data-Out sequences, lost ranges and parked data (erl1.ts). */
  recovery: WriteRecovery | null = null;
  /**
   * The connection the task is allegiant to (RFC 7143 7.2.2); null while detached at ERL 2
   * (its connection failed, erl2.ts) or when created outside a connection.
   */
  connection: IscsiConnection | null = null;
  /** ERL 2: kept by its session for TASK REASSIGN after its connection failed (erl2.ts). */
  detached = false;
  /** ERL >= 1: the R2T outstanding now (R2TSN and header as sent), for R2T SNACK (11.16.1). */
  lastR2t: { r2tSn: number; bhs: Buffer } | null = null;
  /**
   * Data-Out bytes this task takes in: the EDTL, capped at the fabric's per-command limit. A
   * larger EDTL is answered with an underflow residual (or the core's CHECK CONDITION for the
   * CDB) instead of soliciting gigabytes.
   */
  readonly writeLength: number;

  constructor(
    readonly itt: number,
    readonly cmd: ScsiCommand,
    readonly immediate: boolean,
    maxWriteLength = Number.MAX_SAFE_INTEGER,
    /** CmdSN carried by the command (for ABORT TASK's RefCmdSN checks). */
    readonly cmdSn = 0,
  ) {
    this.writeLength = Math.min(cmd.expectedWriteLength, maxWriteLength);
  }

  get dataComplete(): boolean {
    return this.received >= this.writeLength;
  }

  /** Append received Data-Out bytes (a view; never copied). */
  absorb(data: Buffer): void {
    if (data.length === 0) return;
    this.cmd.addDataOut(data);
    this.received += data.length;
  }
}

/** RFC 7143 11.3.1.4 ATTR to SAM task attribute (tgt §6: untagged = simple, unknown = ordered). */
export function taskAttribute(attr: number): TaskAttribute {
  switch (attr) {
    case TaskAttr.Untagged:
    case TaskAttr.Simple:
      return TaskAttribute.Simple;
    case TaskAttr.HeadOfQueue:
      return TaskAttribute.HeadOfQueue;
    case TaskAttr.Aca:
      return TaskAttribute.Aca;
    default:
      return TaskAttribute.Ordered;
  }
}

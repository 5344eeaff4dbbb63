/**
 * The iSCSI side of one SCSI command: the state RFC 7143 keeps per task (Data-Out progress,
 * R2T sequencing, CmdSN delivery) around the fabric-independent ScsiCommand.
 */
import { TaskAttribute, type ScsiCommand } from '../scsi/command.js';
import { RESERVED_TAG, TaskAttr } from './spec.js';

export class IscsiTask {
  /** Bytes of Data-Out received so far (immediate data included). */
  received = 0;
  /** Offset where the unsolicited part ends (immediate + unsolicited Data-Out). */
  unsolicitedEnd = 0;
  unsolicitedDone = true;
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
  /** Received data is dropped (write over the size limit); the core then fails the command. */
  discardData = false;

  constructor(
    readonly itt: number,
    readonly cmd: ScsiCommand,
    readonly immediate: boolean,
  ) {}

  get writeLength(): number {
    return this.cmd.expectedWriteLength;
  }

  get dataComplete(): boolean {
    return this.received >= this.writeLength;
  }

  /** Append received Data-Out bytes (a view; never copied) unless they are being discarded. */
  absorb(data: Buffer): void {
    if (data.length === 0) return;
    if (!this.discardData) this.cmd.addDataOut(data);
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

export interface Residual {
  overflow: boolean;
  underflow: boolean;
  count: number;
}

/** RFC 7143 11.4.5: residual of `actual` bytes against the `expected` transfer length. */
export function residual(actual: number, expected: number): Residual {
  if (actual > expected) return { overflow: true, underflow: false, count: actual - expected };
  if (actual < expected) return { overflow: false, underflow: true, count: expected - actual };
  return { overflow: false, underflow: false, count: 0 };
}

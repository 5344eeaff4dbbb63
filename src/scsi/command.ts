/**
 * The SCSI command object: the one thing that flows from a fabric (iSCSI) through the core
 * (task set, device type handler) to a backing store and back (tgt's `scsi_cmd`, SPDK's
 * `spdk_scsi_task`, LIO's `se_cmd`).
 *
 *   fabric                      core                              store
 *   ------                      ----                              -----
 *   new ScsiCommand(...)
 *   (in command order) ----->   nexus.announce(cmd)  optional: joins the task set, not ready
 *   collect Data-Out ------->   nexus.submit(cmd)    data ready
 *                               task set gate (SIMPLE/ORDERED/HEAD)
 *                               UA / reservation / opcode table
 *                               handler decodes CDB  ----------->  read(into cmd.dataIn) / write(cmd.dataOut)
 *                               status + sense  <---------------  completion
 *   onComplete(cmd) <--------   cmd.complete()
 *   Data-In / SCSI Response
 *
 * Fabrics own everything transport-specific (ITT, CmdSN, DataSN, R2T state) in their own
 * task object that points at the ScsiCommand; the core never sees it.
 */
import { Buffer } from 'node:buffer';
import type { CommandList } from './command-list.js';
import type { LogicalUnit } from './lu.js';

/** Data transfer direction, from the fabric's point of view of the initiator's request. */
export enum DataDirection {
  None = 0,
  /** Data-In: target to initiator. */
  Read = 1,
  /** Data-Out: initiator to target. */
  Write = 2,
  Bidirectional = 3,
}

/** SAM-5 task attributes (iSCSI ATTR field values map onto these). */
export enum TaskAttribute {
  Simple = 0,
  Ordered = 1,
  HeadOfQueue = 2,
  Aca = 3,
}

/** SAM-5 status codes. */
export enum ScsiStatus {
  Good = 0x00,
  CheckCondition = 0x02,
  ConditionMet = 0x04,
  Busy = 0x08,
  ReservationConflict = 0x18,
  TaskSetFull = 0x28,
  AcaActive = 0x30,
  TaskAborted = 0x40,
}

/** Where a command stands after `nexus.announce()` (SAM-5 8.6: it is in the task set before its data). */
export enum Announcement {
  /** Not announced: it enters its LU's task set when submitted. */
  None = 0,
  /** In its LU's task set, never started before `nexus.submit()` says its data is in. */
  Accepted = 1,
  /** The task set was full when it was announced: it ends with TASK SET FULL once submitted. */
  Refused = 2,
}

/** What a fabric supplies when it creates a command. */
export interface ScsiCommandInit {
  /** CDB bytes (16 from the BHS, or longer with an extended-CDB AHS). Trailing zero padding is fine. */
  cdb: Buffer;
  /** The 8-byte SAM LUN field exactly as received. */
  lun: Buffer;
  /** Fabric tag (iSCSI: Initiator Task Tag), used by task management to find the command. */
  tag: number;
  attribute: TaskAttribute;
  direction: DataDirection;
  /** Bytes of Data-In the initiator is prepared to receive (iSCSI: EDTL, or the bidi read length). */
  expectedReadLength: number;
  /** Bytes of Data-Out the initiator will send (iSCSI: EDTL for writes). */
  expectedWriteLength: number;
}

export type CommandCallback = (cmd: ScsiCommand) => void;

export class ScsiCommand {
  cdb: Buffer;
  lun: Buffer;
  tag: number;
  attribute: TaskAttribute;
  direction: DataDirection;
  expectedReadLength: number;
  expectedWriteLength: number;

  /**
   * Data-Out payload as the fabric received it: views of the receive buffers, in order,
   * never concatenated on the data path (stores write them with writev). Total length is
   * `dataOutLength`.
   */
  dataOut: Buffer[] = [];
  dataOutLength = 0;
  /**
   * Set by a handler once the store has written `dataOut` and nothing in the core keeps a view
   * of it: the fabric may then reuse the buffers it received the data into (SBC WRITE).
   */
  dataOutConsumed = false;

  /**
   * Set by the fabric when more requests had already been received behind this one (the rest
   * of a socket read): the store should not block on this command then (BackingStore.read).
   * A fabric that cannot tell leaves it true.
   */
  moreReceived = true;

  /**
   * Data-In produced by the command. The core allocates it (stores read straight into it) and
   * the fabric sends views of it. `dataInLength` is how many bytes the command produced,
   * which may exceed `expectedReadLength` (the fabric then reports residual overflow and sends
   * only what fits).
   */
  dataIn: Buffer | null = null;
  dataInLength = 0;

  /**
   * Bytes of Data-Out the CDB called for (set by the handler). The fabric compares it with
   * `expectedWriteLength` for residual counts.
   */
  writeTransferLength = 0;

  status: ScsiStatus = ScsiStatus.Good;
  /** Sense data (fixed or descriptor format, decided by the LU) when status is CHECK CONDITION. */
  sense: Buffer | null = null;

  /** Set by task management; an aborted command completes with no response sent by the fabric. */
  aborted = false;

  /** Set by `nexus.announce()`; fabrics read it to know whether the core holds the command. */
  announcement: Announcement = Announcement.None;

  /** Called exactly once when the core has finished with the command. */
  onComplete: CommandCallback;

  /** Opaque per-fabric state (e.g. the iSCSI task). The core never reads it. */
  fabricData: unknown = null;

  /**
   * Set by the core when `dataIn` came from a buffer pool: takes it back. Fabrics call
   * releaseBuffers() once nothing of theirs references `dataIn` any more (the socket has
   * flushed it); a fabric that never does only costs the pool a buffer.
   */
  onRelease: ((dataIn: Buffer) => void) | null = null;

  // Links of the core's command lists (command-list.ts), owned by them: the LU task set's
  // running commands, and the nexus's outstanding commands with the LU each is addressed to.
  runList: CommandList | null = null;
  runPrev: ScsiCommand | null = null;
  runNext: ScsiCommand | null = null;
  outList: CommandList | null = null;
  outPrev: ScsiCommand | null = null;
  outNext: ScsiCommand | null = null;
  /** The LU of an outstanding command (null: addressed to none); set by the nexus. */
  outLu: LogicalUnit | null = null;

  constructor(init: ScsiCommandInit, onComplete: CommandCallback) {
    this.cdb = init.cdb;
    this.lun = init.lun;
    this.tag = init.tag;
    this.attribute = init.attribute;
    this.direction = init.direction;
    this.expectedReadLength = init.expectedReadLength;
    this.expectedWriteLength = init.expectedWriteLength;
    this.onComplete = onComplete;
  }

  get opcode(): number {
    return this.cdb[0]!;
  }

  /** Give pooled buffers back (see onRelease); `dataIn` must not be used afterwards. Idempotent. */
  releaseBuffers(): void {
    const release = this.onRelease;
    if (release === null) return;
    const data = this.dataIn;
    this.onRelease = null;
    this.dataIn = null;
    if (data) release(data);
  }

  /** Append a received Data-Out segment (a view; not copied). */
  addDataOut(segment: Buffer): void {
    if (segment.length === 0) return;
    this.dataOut.push(segment);
    this.dataOutLength += segment.length;
  }

  /**
   * Copy up to `length` bytes of Data-Out into one contiguous buffer. For parameter lists
   * (MODE SELECT, UNMAP, PR OUT...), never for READ/WRITE payloads.
   */
  gatherDataOut(length = this.dataOutLength): Buffer {
    const n = Math.min(length, this.dataOutLength);
    if (this.dataOut.length === 1) return this.dataOut[0]!.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    for (const seg of this.dataOut) {
      if (off >= n) break;
      off += seg.copy(out, off, 0, Math.min(seg.length, n - off));
    }
    return out;
  }
}

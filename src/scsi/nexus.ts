/**
 * An I_T nexus (iSCSI: a session): the initiator's view of one target. Holds per-LU state
 * (pending unit attentions, PREVENT ALLOW MEDIUM REMOVAL, statistics), admits commands into
 * the LUs' task sets, and runs task management.
 */
import { ScsiStatus, type ScsiCommand } from './command.js';
import { completeWithStatus, executeWithoutLu, finishAborted } from './execute.js';
import { resolveOpcode, UNSUPPORTED_SERVICE_ACTION } from './device/types.js';
import { decodeLun } from './lun-address.js';
import type { LogicalUnit } from './lu.js';
import { SenseReason } from './sense.js';
import type { ScsiTarget } from './target.js';
import { TmfFunction, TmfResult } from './tmf.js';

/** What `target show` prints for the nexus (tgt captures this text when the session starts). */
export type NexusInfo = string;

/** Per I_T nexus, per LU counters (`tgtadm --op stat`, tgt's lu_stat). */
export class LuStats {
  readSubmittedBytes = 0;
  readSubmittedCommands = 0;
  readDoneBytes = 0;
  readDoneCommands = 0;
  writeSubmittedBytes = 0;
  writeSubmittedCommands = 0;
  writeDoneBytes = 0;
  writeDoneCommands = 0;
  errors = 0;
}

/** What RECEIVE COPY RESULTS reports about one EXTENDED COPY (SPC-4 6.18.3). */
export interface CopyResult {
  /** COPY MANAGER STATUS: 00h in progress, 01h completed without errors, 02h completed with errors. */
  status: 0 | 1 | 2;
  segmentsProcessed: number;
  /** Bytes copied. */
  transferred: number;
}

/** Bound on queued unit attentions per nexus per LU (duplicates are merged anyway). */
const MAX_PENDING_UA = 16;

/** State an I_T nexus keeps for one LU (tgt's it_nexus_lu_info). */
export class NexusLuInfo {
  /** Pending unit attentions, oldest first (SAM-5 5.14). */
  readonly unitAttentions: SenseReason[] = [];
  /** PREVENT ALLOW MEDIUM REMOVAL held by this nexus (SBC-4 5.14). */
  prevent = false;
  readonly stats = new LuStats();
  /** EXTENDED COPY results held for RECEIVE COPY RESULTS, by list identifier (SPC-4 6.4.3). */
  readonly copyResults = new Map<number, CopyResult>();

  constructor(readonly lu: LogicalUnit) {}

  /** Queue a unit attention unless the same one is already pending. */
  addUnitAttention(reason: SenseReason): void {
    if (this.unitAttentions.includes(reason)) return;
    if (this.unitAttentions.length >= MAX_PENDING_UA) this.unitAttentions.shift();
    this.unitAttentions.push(reason);
  }

  /** Drop a pending unit attention (REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED). */
  clearUnitAttention(reason: SenseReason): void {
    const i = this.unitAttentions.indexOf(reason);
    if (i >= 0) this.unitAttentions.splice(i, 1);
  }
}

export class ItNexus {
  readonly id: number;
  readonly target: ScsiTarget;
  readonly initiatorName: string;
  /**
   * The initiator port name that identifies this I_T nexus for persistent reservations
   * (SPC-4 5.13.1; iSCSI: "<InitiatorName>,i,0x<ISID>", RFC 7143 10.4.3). Defaults to the
   * initiator name when the fabric does not give one.
   */
  initiatorPort: string;
  info: NexusInfo;
  /** Creation time (ms since epoch). */
  readonly createdAt = Date.now();
  closed = false;
  /** Commands submitted and not yet completed, with their LU (null: addressed to no LU). */
  readonly outstanding = new Map<ScsiCommand, LogicalUnit | null>();
  private readonly luInfos = new Map<LogicalUnit, NexusLuInfo>();

  constructor(
    id: number,
    target: ScsiTarget,
    initiatorName: string,
    info: NexusInfo,
    initiatorPort?: string,
  ) {
    this.id = id;
    this.target = target;
    this.initiatorName = initiatorName;
    this.initiatorPort = initiatorPort ?? initiatorName;
    this.info = info;
    // SAM-5 6.3.1: every LU reports POWER ON, RESET at the first command of a new nexus.
    for (const lu of target.luns) this.luInfo(lu).addUnitAttention(SenseReason.PowerOnReset);
  }

  /** Per-LU state of this nexus (created on first use). */
  luInfo(lu: LogicalUnit): NexusLuInfo {
    let info = this.luInfos.get(lu);
    if (!info) {
      info = new NexusLuInfo(lu);
      this.luInfos.set(lu, info);
    }
    return info;
  }

  /** Per-LU state if it exists (no creation). */
  peekLuInfo(lu: LogicalUnit): NexusLuInfo | undefined {
    return this.luInfos.get(lu);
  }

  /** Forget an LU that was deleted. */
  dropLu(lu: LogicalUnit): void {
    this.luInfos.delete(lu);
  }

  /**
   * Submit a command. The core calls `cmd.onComplete` exactly once, never synchronously from
   * inside submit().
   */
  submit(cmd: ScsiCommand): void {
    if (this.closed) {
      this.outstanding.set(cmd, null);
      queueMicrotask(() => finishAborted(cmd, this, null));
      return;
    }
    const n = decodeLun(cmd.lun);
    const lu = n >= 0 ? this.target.luByNumber(n) : undefined;
    if (!lu) {
      this.outstanding.set(cmd, null);
      executeWithoutLu(cmd, this);
      return;
    }
    this.outstanding.set(cmd, lu);
    const info = this.luInfo(lu);
    if (cmd.expectedReadLength > 0) {
      info.stats.readSubmittedCommands++;
      info.stats.readSubmittedBytes += cmd.expectedReadLength;
    }
    if (cmd.expectedWriteLength > 0) {
      info.stats.writeSubmittedCommands++;
      info.stats.writeSubmittedBytes += cmd.expectedWriteLength;
    }
    if (this.target.state !== 'ready') {
      // tgt sends nothing for an offline target; BUSY lets the initiator retry instead of timing out.
      completeWithStatus(cmd, this, lu, ScsiStatus.Busy);
      return;
    }
    const entry = resolveOpcode(lu.deviceType.ops, cmd.cdb);
    const exclusive = entry !== undefined && entry !== UNSUPPORTED_SERVICE_ACTION && entry.exclusive === true;
    if (!lu.taskSet.submit(cmd, this, exclusive)) completeWithStatus(cmd, this, lu, ScsiStatus.TaskSetFull);
  }

  /**
   * Task management (SAM-5 7). Resolves once the function has taken effect: commands that
   * had not started complete with `aborted = true` first; commands already running complete
   * normally before the result is given (tgt §4.13).
   */
  async taskManagement(fn: TmfFunction, lun: Buffer, refTag: number): Promise<TmfResult> {
    switch (fn) {
      case TmfFunction.AbortTask:
        return this.abortTask(refTag);
      case TmfFunction.AbortTaskSet:
      case TmfFunction.ClearTaskSet:
      case TmfFunction.LogicalUnitReset: {
        const n = decodeLun(lun);
        const lu = n >= 0 ? this.target.luByNumber(n) : undefined;
        if (!lu) return TmfResult.LunNotFound;
        if (fn === TmfFunction.AbortTaskSet) await this.abortOnLu(lu, (_c, nexus) => nexus === this);
        else if (fn === TmfFunction.ClearTaskSet) await this.clearTaskSet(lu);
        else await resetLu(lu);
        return TmfResult.FunctionComplete;
      }
      case TmfFunction.TargetWarmReset:
        await Promise.all(this.target.luns.map((lu) => resetLu(lu)));
        return TmfResult.FunctionComplete;
      default:
        return TmfResult.NotSupported;
    }
  }

  /**
   * I_T nexus loss: abort this nexus's queued commands, release its SPC-2 reservations and
   * PREVENT state, and leave the target. Resolves when its running commands have finished.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const pending: Promise<void>[] = [];
    for (const lu of this.target.luns) {
      pending.push(this.abortOnLu(lu, (_c, nexus) => nexus === this));
      if (lu.reservation === this) lu.reservation = null;
    }
    this.luInfos.clear();
    this.target.nexuses.delete(this.id);
    return Promise.all(pending).then(() => undefined);
  }

  private async abortTask(refTag: number): Promise<TmfResult> {
    for (const [cmd, lu] of this.outstanding) {
      if (cmd.tag !== refTag) continue;
      if (!lu) return TmfResult.FunctionComplete; // completes on its own (no LU path)
      const removed = lu.taskSet.removeWaiting((c) => c === cmd);
      if (removed.length > 0) {
        finishAborted(cmd, this, lu);
        return TmfResult.FunctionComplete;
      }
      lu.taskSet.interrupt([cmd]);
      await lu.taskSet.whenFinished([cmd]);
      return TmfResult.FunctionComplete;
    }
    return TmfResult.TaskNotFound;
  }

  /** Abort queued commands on `lu` that `match`, then wait for matching running ones. */
  private abortOnLu(lu: LogicalUnit, match: (cmd: ScsiCommand, nexus: ItNexus) => boolean): Promise<void> {
    for (const w of lu.taskSet.removeWaiting(match)) finishAborted(w.cmd, w.nexus, lu);
    const running: ScsiCommand[] = [];
    const nexuses = new Set(this.target.nexuses.values()).add(this);
    for (const nexus of nexuses)
      for (const [cmd, cmdLu] of nexus.outstanding) if (cmdLu === lu && match(cmd, nexus)) running.push(cmd);
    lu.taskSet.interrupt(running);
    return lu.taskSet.whenFinished(running);
  }

  /** CLEAR TASK SET: every nexus's commands; others learn it by UA (SAM-5 7.4). */
  private clearTaskSet(lu: LogicalUnit): Promise<void> {
    const cleared = new Set<ItNexus>();
    const done = this.abortOnLu(lu, (_c, nexus) => {
      cleared.add(nexus);
      return true;
    });
    for (const nexus of cleared)
      if (nexus !== this) nexus.luInfo(lu).addUnitAttention(SenseReason.CommandsClearedByAnotherInitiator);
    return done;
  }
}

/**
 * LOGICAL UNIT RESET (SAM-5 7.7): abort every queued command of every nexus, drop the SPC-2
 * reservation and all PREVENT states, and report BUS DEVICE RESET FUNCTION OCCURRED to every
 * nexus. Resolves when the commands that were already running have finished.
 */
export function resetLu(lu: LogicalUnit): Promise<void> {
  const target = lu.target;
  for (const w of lu.taskSet.removeWaiting(() => true)) finishAborted(w.cmd, w.nexus, lu);
  lu.reservation = null;
  for (const nexus of target.nexuses.values()) {
    const info = nexus.luInfo(lu);
    info.prevent = false;
    info.addUnitAttention(SenseReason.BusDeviceReset);
  }
  const running = lu.taskSet.runningCommands();
  lu.taskSet.interrupt(running);
  return lu.taskSet.whenFinished(running);
}

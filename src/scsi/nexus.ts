/**
 * An I_T nexus (iSCSI: a session): the initiator's view of one target. Holds per-LU state
 * (pending unit attentions, PREVENT ALLOW MEDIUM REMOVAL, statistics), admits commands into
 * the LUs' task sets, and runs task management.
 */
import { Buffer } from 'node:buffer';
import { Announcement, ScsiStatus, TaskAttribute, type ScsiCommand } from './command.js';
import { completeWithStatus, executeWithoutLu, finishAborted, taskAbortedStatus } from './execute.js';
import { resolveOpcode, UNSUPPORTED_SERVICE_ACTION } from './device/types.js';
import { deferCompletion } from './completions.js';
import { CommandList, CommandSlot } from './command-list.js';
import { decodeLun } from './lun-address.js';
import type { LogicalUnit } from './lu.js';
import { senseCode, SenseReason } from './sense.js';
import type { ScsiTarget } from './target.js';
import { TmfFunction, TmfResult, type TmfAnswer } from './tmf.js';

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

/**
 * The unit attention I_T NEXUS RESET leaves on every LU: I_T NEXUS LOSS OCCURRED (SAM-5 6.3.4).
 */
const IT_NEXUS_LOSS_UA = SenseReason.ItNexusLoss;

/** State an I_T nexus keeps for one LU (tgt's it_nexus_lu_info). */
export class NexusLuInfo {
  /** Pending unit attentions, oldest first (SAM-5 5.14). */
  readonly unitAttentions: SenseReason[] = [];
  /** PREVENT ALLOW MEDIUM REMOVAL held by this nexus (SBC-4 5.14). */
  prevent = false;
  readonly stats = new LuStats();
  /** EXTENDED COPY results held for RECEIVE COPY RESULTS, by list identifier (SPC-4 6.4.3). */
  readonly copyResults = new Map<number, CopyResult>();
  /** A guest of a shared target (sharing/guest.ts): the lease this nexus holds on the LU, 0 none. */
  lease = 0;

  constructor(
    readonly lu: LogicalUnit,
    readonly nexus: ItNexus,
  ) {}

  /** Queue a unit attention unless the same one is already pending. */
  addUnitAttention(reason: SenseReason): void {
    if (this.unitAttentions.includes(reason)) return;
    if (this.unitAttentions.length >= MAX_PENDING_UA) this.unitAttentions.shift();
    this.unitAttentions.push(reason);
    this.lu.target.sharing?.unitAttentionAdded(this.nexus, this.lu);
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
  /** Commands submitted and not yet completed; each one's LU is `cmd.outLu` (null: none). */
  readonly outstanding = new CommandList(CommandSlot.Outstanding);
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
      info = new NexusLuInfo(lu, this);
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
   * Enter a command into its LU's task set before its data is in (SAM-5 8.5/8.6), in the order
   * the fabric delivers commands (iSCSI: CmdSN order, RFC 7143 3.2.2.1). It is an older task
   * for every command that arrives later but never starts before `submit(cmd)` says its data is
   * in. Optional: `submit` alone still works. Afterwards the fabric calls exactly one of
   * `submit(cmd)` or `withdraw(cmd)`, unless the core has completed the command first (task
   * management, QERR, PREEMPT AND ABORT can end it while it waits: `onComplete` then runs
   * before its data is in and a later `submit` does nothing). HEAD OF QUEUE commands, commands
   * for no LU, on an offline target or a closed nexus are not announced (`submit` handles them as
   * before); a full task set marks the command to end with TASK SET FULL once submitted.
   */
  announce(cmd: ScsiCommand): void {
    if (this.closed || cmd.announcement !== Announcement.None) return;
    if (cmd.attribute === TaskAttribute.HeadOfQueue || this.target.state !== 'ready') return;
    const n = decodeLun(cmd.lun);
    const lu = n >= 0 ? this.target.luByNumber(n) : undefined;
    if (!lu) return;
    const sharing = this.target.sharing;
    if (sharing !== null && lu.taskSet.size >= lu.taskSet.maxDepth) {
      cmd.announcement = Announcement.Refused;
      return;
    }
    if (sharing !== null && sharing.route(cmd, this, lu, true)) {
      // Another process runs it (sharing/guest.ts); it is in the task set here as running.
      cmd.announcement = Announcement.Accepted;
      this.track(cmd, lu);
      countSubmitted(this.luInfo(lu), cmd);
      return;
    }
    if (!lu.taskSet.announce(cmd, this)) {
      cmd.announcement = Announcement.Refused;
      return;
    }
    cmd.announcement = Announcement.Accepted;
    this.track(cmd, lu);
    countSubmitted(this.luInfo(lu), cmd);
  }

  /**
   * Take an announced command whose data never came back out of the task set without
   * completing it (the fabric ended it itself: connection lost, data digest error, logout).
   * Returns false when the core does not hold it waiting (not announced, already completed, or
   * running).
   */
  withdraw(cmd: ScsiCommand): boolean {
    if (cmd.announcement !== Announcement.Accepted) return false;
    const lu = this.outstandingLu(cmd);
    if (!lu || !(lu.taskSet.withdraw(cmd) || this.target.sharing?.withdrawn(cmd, lu))) return false;
    this.outstanding.delete(cmd);
    this.target.sharing?.ended(cmd, lu);
    return true;
  }

  /**
   * Submit a command whose data is in. The core calls `cmd.onComplete` exactly once, never
   * synchronously from inside submit().
   */
  submit(cmd: ScsiCommand): void {
    if (cmd.announcement === Announcement.Accepted) {
      this.submitAnnounced(cmd);
      return;
    }
    if (this.closed) {
      this.track(cmd, null);
      deferCompletion(finishAborted, cmd, this, null);
      return;
    }
    const n = decodeLun(cmd.lun);
    const lu = n >= 0 ? this.target.luByNumber(n) : undefined;
    if (!lu) {
      this.track(cmd, null);
      executeWithoutLu(cmd, this);
      return;
    }
    this.track(cmd, lu);
    countSubmitted(this.luInfo(lu), cmd);
    if (this.target.state !== 'ready') {
      // tgt sends nothing for an offline target; BUSY lets the initiator retry instead of timing out.
      completeWithStatus(cmd, this, lu, ScsiStatus.Busy);
      return;
    }
    // SAM-5 8.6: a command refused when it was announced stays refused.
    if (cmd.announcement === Announcement.Refused) {
      completeWithStatus(cmd, this, lu, ScsiStatus.TaskSetFull);
      return;
    }
    const sharing = this.target.sharing;
    // A shared target's set is full when its size says so (the task set would start some anyway).
    if (sharing !== null && lu.taskSet.size >= lu.taskSet.maxDepth) {
      completeWithStatus(cmd, this, lu, ScsiStatus.TaskSetFull);
      return;
    }
    if (sharing !== null && sharing.route(cmd, this, lu, false)) return;
    if (!lu.taskSet.submit(cmd, this, isExclusive(lu, cmd)))
      completeWithStatus(cmd, this, lu, ScsiStatus.TaskSetFull);
  }

  /** The data of an announced command is in: the task set may start it. */
  private submitAnnounced(cmd: ScsiCommand): void {
    const lu = this.outstandingLu(cmd);
    // Completed already (task management ended it while it waited for its data): nothing to do.
    if (!lu) return;
    if (this.target.sharing?.dataIn(cmd, this, lu)) return;
    if (this.target.state !== 'ready') {
      lu.taskSet.withdraw(cmd);
      completeWithStatus(cmd, this, lu, ScsiStatus.Busy);
      return;
    }
    lu.taskSet.ready(cmd, isExclusive(lu, cmd));
  }

  /**
   * Task management (SAM-5 7). Resolves once the function has taken effect: commands that
   * had not started complete with `aborted = true` first (or with TASK ABORTED, see
   * finishAborted); commands already running complete normally before the result is given
   * (tgt §4.13). Announced commands still waiting for their data are in the task set: they end
   * aborted like queued ones. The queries look at the core only: a fabric that holds commands of
   * its own (neither announced nor submitted) answers for those itself.
   */
  async taskManagement(fn: TmfFunction, lun: Buffer, refTag: number): Promise<TmfResult> {
    const shared = this.target.sharing?.taskManagement(this, fn, lun, refTag);
    if (shared) return (await shared).result;
    switch (fn) {
      case TmfFunction.AbortTask:
        return this.abortTask(refTag);
      case TmfFunction.TargetWarmReset:
        await this.target.sharing?.beforeTaskManagement(this.target.luns, fn, this);
        await Promise.all(this.target.luns.map((lu) => resetLu(lu, this)));
        return TmfResult.FunctionComplete;
      case TmfFunction.ItNexusReset:
        await this.target.sharing?.beforeTaskManagement(this.target.luns, fn, this);
        await this.itNexusReset();
        return TmfResult.FunctionComplete;
      case TmfFunction.QueryAsyncEvent:
        return this.queryAsyncEvent(lun).result;
      default:
        break;
    }
    const lu = this.lunToLu(lun);
    switch (fn) {
      case TmfFunction.AbortTaskSet:
      case TmfFunction.ClearTaskSet:
      case TmfFunction.LogicalUnitReset:
        if (!lu) return TmfResult.LunNotFound;
        if (fn === TmfFunction.AbortTaskSet) await this.abortOnLu(lu, (_c, nexus) => nexus === this);
        else {
          const elsewhere = (await this.target.sharing?.beforeTaskManagement([lu], fn, this)) ?? null;
          if (fn === TmfFunction.ClearTaskSet) await this.clearTaskSet(lu, elsewhere);
          else await resetLu(lu, this);
        }
        return TmfResult.FunctionComplete;
      case TmfFunction.QueryTask:
      case TmfFunction.QueryTaskSet: {
        if (!lu) return TmfResult.LunNotFound;
        // SAM-5 7.x: FUNCTION SUCCEEDED when the task (any task of this nexus) is in the task set.
        const all = fn === TmfFunction.QueryTaskSet;
        for (const cmd of this.outstanding.toArray())
          if (cmd.outLu === lu && (all || cmd.tag === refTag)) return TmfResult.FunctionSucceeded;
        return TmfResult.FunctionComplete;
      }
      default:
        return TmfResult.NotSupported;
    }
  }

  /**
   * QUERY ASYNCHRONOUS EVENT (SAM-5 7.x, RFC 7144 4.1): FUNCTION SUCCEEDED with the sense key,
   * ASC and ASCQ of the unit attention the next command on the LU would get, and UADE DEPTH
   * (01b: the only one pending, 10b: more are pending). The unit attention stays pending.
   */
  askAsyncEvent(lun: Buffer): Promise<TmfAnswer> {
    const shared = this.target.sharing?.taskManagement(this, TmfFunction.QueryAsyncEvent, lun, 0);
    return shared ?? Promise.resolve(this.queryAsyncEvent(lun));
  }

  /** QUERY ASYNCHRONOUS EVENT as this process knows it (askAsyncEvent asks where the state is). */
  queryAsyncEvent(lun: Buffer): TmfAnswer {
    const lu = this.lunToLu(lun);
    if (!lu) return { result: TmfResult.LunNotFound, additionalInfo: 0 };
    const pending = this.peekLuInfo(lu)?.unitAttentions ?? [];
    if (pending.length === 0) return { result: TmfResult.FunctionComplete, additionalInfo: 0 };
    const { key, asc, ascq } = senseCode(pending[0]!);
    const depth = pending.length === 1 ? 0x10 : 0x20;
    return { result: TmfResult.FunctionSucceeded, additionalInfo: ((depth | key) << 16) | (asc << 8) | ascq };
  }

  /**
   * Whether a command of this nexus for `lun` that `issuer`'s task management aborts is told so
   * with TASK ABORTED (the LU's TAS bit; never for the issuer's own commands). For fabrics that
   * abort commands they still hold.
   */
  reportsAbort(lun: Buffer, issuer: ItNexus | null): boolean {
    if (issuer === this) return false;
    const lu = this.lunToLu(lun);
    return lu !== undefined && taskAbortedStatus(lu);
  }

  /** Count `cmd` as outstanding, addressed to `lu` (null: to no LU). */
  private track(cmd: ScsiCommand, lu: LogicalUnit | null): void {
    cmd.outLu = lu;
    this.outstanding.add(cmd);
  }

  /** The LU of an outstanding command (null: none); undefined when it is not outstanding. */
  private outstandingLu(cmd: ScsiCommand): LogicalUnit | null | undefined {
    return this.outstanding.has(cmd) ? cmd.outLu : undefined;
  }

  private lunToLu(lun: Buffer): LogicalUnit | undefined {
    const n = decodeLun(lun);
    return n >= 0 ? this.target.luByNumber(n) : undefined;
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
    const drained = Promise.all(pending).then(() => undefined);
    this.target.sharing?.nexusClosed(this, drained);
    return drained;
  }

  private async abortTask(refTag: number): Promise<TmfResult> {
    for (const cmd of this.outstanding.toArray()) {
      if (cmd.tag !== refTag) continue;
      const lu = cmd.outLu;
      if (!lu) return TmfResult.FunctionComplete; // completes on its own (no LU path)
      const removed = lu.taskSet.removeWaiting((c) => c === cmd);
      if (removed.length > 0) {
        finishAborted(cmd, this, lu, this);
        return TmfResult.FunctionComplete;
      }
      lu.taskSet.interrupt([cmd]);
      await lu.taskSet.whenFinished([cmd], lu.abandonTimeoutMs);
      return TmfResult.FunctionComplete;
    }
    return TmfResult.TaskNotFound;
  }

  /** Abort queued commands on `lu` that `match`, then wait for matching running ones. */
  private abortOnLu(lu: LogicalUnit, match: (cmd: ScsiCommand, nexus: ItNexus) => boolean): Promise<void> {
    for (const w of lu.taskSet.removeWaiting(match)) finishAborted(w.cmd, w.nexus, lu, this);
    const running: ScsiCommand[] = [];
    const nexuses = new Set(this.target.nexuses.values()).add(this);
    for (const nexus of nexuses)
      for (const cmd of nexus.outstanding.toArray())
        if (cmd.outLu === lu && match(cmd, nexus)) running.push(cmd);
    lu.taskSet.interrupt(running);
    return lu.taskSet.whenFinished(running, lu.abandonTimeoutMs);
  }

  /**
   * CLEAR TASK SET: every nexus's commands (SAM-5 7.4). With TAS=0 the other nexuses learn it
   * by unit attention; with TAS=1 their queued commands end with TASK ABORTED instead (5.6).
   */
  private clearTaskSet(lu: LogicalUnit, clearedElsewhere: Set<ItNexus> | null): Promise<void> {
    const cleared = new Set<ItNexus>(clearedElsewhere);
    const done = this.abortOnLu(lu, (_c, nexus) => {
      cleared.add(nexus);
      return true;
    });
    if (!taskAbortedStatus(lu))
      for (const nexus of cleared)
        if (nexus !== this) nexus.luInfo(lu).addUnitAttention(SenseReason.CommandsClearedByAnotherInitiator);
    return done;
  }

  /**
   * I_T NEXUS RESET (SAM-5 7.x): the I_T nexus loss actions (6.3.4) without losing the nexus:
   * abort its commands on every LU, release its SPC-2 reservations and PREVENT states (persistent
   * reservations stay), and report the reset to it by unit attention on every LU.
   */
  private itNexusReset(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const lu of this.target.luns) {
      pending.push(this.abortOnLu(lu, (_c, nexus) => nexus === this));
      if (lu.reservation === this) lu.reservation = null;
      const info = this.luInfo(lu);
      info.prevent = false;
      info.addUnitAttention(IT_NEXUS_LOSS_UA);
    }
    return Promise.all(pending).then(() => undefined);
  }
}

/** tgt's submitted-command counters (`tgtadm --op stat`). */
function countSubmitted(info: NexusLuInfo, cmd: ScsiCommand): void {
  if (cmd.expectedReadLength > 0) {
    info.stats.readSubmittedCommands++;
    info.stats.readSubmittedBytes += cmd.expectedReadLength;
  }
  if (cmd.expectedWriteLength > 0) {
    info.stats.writeSubmittedCommands++;
    info.stats.writeSubmittedBytes += cmd.expectedWriteLength;
  }
}

/**
 * Whether the command runs alone on its LU (COMPARE AND WRITE, ORWRITE, WRITE ATOMIC:
 * `exclusive` in the opcode table); a barrier for shared targets too (sharing/).
 */
export function isExclusive(lu: LogicalUnit, cmd: ScsiCommand): boolean {
  const entry = resolveOpcode(lu.deviceType.ops, cmd.cdb);
  return entry !== undefined && entry !== UNSUPPORTED_SERVICE_ACTION && entry.exclusive === true;
}

/**
 * LOGICAL UNIT RESET (SAM-5 7.7): abort every queued command of every nexus, drop the SPC-2
 * reservation and all PREVENT states, and report BUS DEVICE RESET FUNCTION OCCURRED to every
 * nexus. With TAS=1 the queued commands of nexuses other than `issuer` end with TASK ABORTED.
 * Resolves when the commands that were already running have finished.
 */
export function resetLu(lu: LogicalUnit, issuer: ItNexus | null = null): Promise<void> {
  const target = lu.target;
  for (const w of lu.taskSet.removeWaiting(() => true)) finishAborted(w.cmd, w.nexus, lu, issuer);
  lu.reservation = null;
  for (const nexus of target.nexuses.values()) {
    const info = nexus.luInfo(lu);
    info.prevent = false;
    info.addUnitAttention(SenseReason.BusDeviceReset);
  }
  const running = lu.taskSet.runningCommands();
  lu.taskSet.interrupt(running);
  return lu.taskSet.whenFinished(running, lu.abandonTimeoutMs);
}

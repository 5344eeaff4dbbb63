/**
 * Error recovery level 2 (RFC 7143 7.1.4 connection recovery, 7.2.2 allegiance reassignment,
 * 6.3.4 connection reinstatement, 11.5.1 TASK REASSIGN, 11.14.5, 13.15, 13.16): the
 * tasks of a failed connection outlive it for DefaultTime2Wait + DefaultTime2Retain seconds,
 * detached from any connection ("allegiance lost"), until TASK REASSIGN on another (or a
 * reinstated) connection of the session takes them over. Pure bookkeeping; the connection
 * (connection.ts) detaches and adopts, the session (session.ts) frees what expires.
 *
 *   class ConnectionRecovery   detached tasks of a session by ITT, one retention timer per
 *                              failed connection; a Logout's ExpStatSN releases the statuses of
 *                              the failed connection it names (11.14)
 *   acknowledgedCid(bhs, cid)  the connection whose statuses a PDU's ExpStatSN acknowledges
 *   reassignedDataIn(...)      which Data-In of a READ go out again after TASK REASSIGN
 *                              (11.5.1 ExpDataSN), re-cut for the new connection
 *   rereadTask(...)            a READ whose kept Data-In was evicted (erl1.ts), run again
 *   rereadFrom(...)            the DataSN its Data-In start from (ExpDataSN)
 *   rearmWrite(task, ...)      a write that waited for Data-Out: ask for what it lacks, R2TSN
 *                              from ExpDataSN (7.2.2)
 */
import { Buffer } from 'node:buffer';
import { MAX_TRANSFER_BYTES } from '../scsi/device/spc.js';
import { DataDirection, ScsiCommand, type CommandCallback } from '../scsi/command.js';
import { snLessThan } from './cmdsn.js';
import { dataInPduCount, type DataInLimits, type DataInPlan } from './data-in.js';
import type { ReadCommandRecord, RetainedRead, RetainedResponse } from './erl1.js';
import { bhsOpcode } from './pdu.js';
import { LOGOUT_REASON_MASK, LogoutReason, Opcode, RESERVED_TAG } from './spec.js';
import { IscsiTask } from './task.js';

/** A status (and READ data) sent on the failed connection that the initiator never acknowledged. */
export interface SentStatus {
  /** StatSN it went out with on the failed connection. */
  statSn: number;
  /** The READ's Data-In (plan and its release), or null; plan null: run it again (`reread`). */
  read: RetainedRead | null;
  /** The SCSI Response as sent, or null when the status rode on the last Data-In. */
  response: RetainedResponse | null;
}

/** One task whose connection failed, waiting for TASK REASSIGN. */
export interface DetachedTask {
  itt: number;
  /** CID of the connection it was allegiant to. */
  cid: number;
  /**
   * The task while it has not been answered: waiting for Data-Out (not submitted), running in
   * the core (submitted), or finished while detached (done, result kept). Null with `sent`.
   */
  task: IscsiTask | null;
  /** Its status went out on the failed connection but was not acknowledged (ExpStatSN). */
  sent: SentStatus | null;
  /** Bytes counted in the daemon's Data-Out budget for this entry besides task.reservedBytes. */
  bytes: number;
}

/** What TASK REASSIGN finds for a Referenced Task Tag. */
export type DetachedState = 'waiting-data' | 'running' | 'completed' | 'status-sent';

/** The state a detached task is in (docs/robustness.md "Error recovery level 2"). */
export function detachedState(entry: DetachedTask): DetachedState {
  const task = entry.task;
  if (!task) return 'status-sent';
  if (task.done) return 'completed';
  return task.submitted ? 'running' : 'waiting-data';
}

/** Timer functions (injectable for tests). */
export interface RecoveryTimers {
  set(run: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const NODE_TIMERS: RecoveryTimers = {
  set(run, ms) {
    const t = setTimeout(run, ms);
    t.unref();
    return t;
  },
  clear(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

interface FailedConnection {
  cid: number;
  entries: Map<number, DetachedTask>;
  timer: unknown;
  /** The StatSN it would have sent next (null: unknown); an ExpStatSN beyond it is ignored. */
  nextStatSn: number | null;
}

/**
 * The detached tasks of one session. Each failed connection starts its own timer of
 * DefaultTime2Wait + DefaultTime2Retain seconds (RFC 7143 13.15, 13.16: the initiator waits
 * Time2Wait before it reassigns, the target keeps the state Time2Retain after that); when it
 * fires, what was not reassigned is handed to `expired` (terminated, 11.14.5 c) and the session
 * may end if no connection is left (`pending` turns false).
 */
export class ConnectionRecovery {
  private readonly failed = new Set<FailedConnection>();
  private readonly byItt = new Map<number, FailedConnection>();

  constructor(
    /** DefaultTime2Wait + DefaultTime2Retain, in ms. */
    readonly retainMs: number,
    private readonly expired: (entries: DetachedTask[]) => void,
    private readonly timers: RecoveryTimers = NODE_TIMERS,
  ) {}

  /**
   * A connection failed: keep its tasks (possibly none) until the retention time runs out.
   * `nextStatSn` is the StatSN it would have sent next.
   */
  detach(cid: number, entries: readonly DetachedTask[], nextStatSn: number | null = null): void {
    const group: FailedConnection = { cid, entries: new Map(), timer: null, nextStatSn };
    for (const e of entries) {
      // An ITT is unique in the session (11.2.1.8); a stale duplicate is replaced.
      this.take(e.itt);
      group.entries.set(e.itt, e);
      this.byItt.set(e.itt, group);
    }
    this.failed.add(group);
    group.timer = this.timers.set(() => this.expire(group), this.retainMs);
  }

  /** Whether `itt` names a detached task. */
  has(itt: number): boolean {
    return this.byItt.has(itt);
  }

  /** Whether a connection numbered `cid` failed and its retention time is still running. */
  hasFailed(cid: number): boolean {
    for (const g of this.failed) if (g.cid === cid) return true;
    return false;
  }

  /** The detached task `itt`, left in place. */
  get(itt: number): DetachedTask | undefined {
    return this.byItt.get(itt)?.entries.get(itt);
  }

  /** Remove the detached task `itt` (TASK REASSIGN takes it over), or undefined. */
  take(itt: number): DetachedTask | undefined {
    const group = this.byItt.get(itt);
    if (!group) return undefined;
    const entry = group.entries.get(itt)!;
    group.entries.delete(itt);
    this.byItt.delete(itt);
    return entry;
  }

  /**
   * RFC 7143 11.14: the ExpStatSN of a Logout naming the failed connection `cid` (the latest
   * one of that CID) acknowledges the statuses it sent before that number. Removes and returns
   * those statuses (the caller frees them); tasks not answered yet stay. A value beyond what the
   * connection sent is ignored.
   */
  acknowledge(cid: number, expStatSn: number): DetachedTask[] {
    let group: FailedConnection | null = null;
    for (const g of this.failed) if (g.cid === cid) group = g;
    if (!group || (group.nextStatSn !== null && snLessThan(group.nextStatSn, expStatSn))) return [];
    const out: DetachedTask[] = [];
    for (const e of [...group.entries.values()]) {
      if (!e.sent || !snLessThan(e.sent.statSn, expStatSn)) continue;
      group.entries.delete(e.itt);
      this.byItt.delete(e.itt);
      out.push(e);
    }
    return out;
  }

  /** Some failed connection's retention time is still running (the session must stay). */
  get pending(): boolean {
    return this.failed.size > 0;
  }

  /** Whether some detached task satisfies `match` (left in place). */
  some(match: (e: DetachedTask) => boolean): boolean {
    for (const [itt, group] of this.byItt) if (match(group.entries.get(itt)!)) return true;
    return false;
  }

  /** Remove and return the detached tasks `match` selects (task management reaching them). */
  takeWhere(match: (e: DetachedTask) => boolean): DetachedTask[] {
    const out: DetachedTask[] = [];
    for (const [itt, group] of [...this.byItt]) {
      const e = group.entries.get(itt)!;
      if (!match(e)) continue;
      group.entries.delete(itt);
      this.byItt.delete(itt);
      out.push(e);
    }
    return out;
  }

  /** Detached tasks now. */
  get size(): number {
    return this.byItt.size;
  }

  /** Stop every timer and return what is left (the session ends; the caller frees it). */
  clear(): DetachedTask[] {
    const out: DetachedTask[] = [];
    for (const g of this.failed) {
      this.timers.clear(g.timer);
      out.push(...g.entries.values());
    }
    this.failed.clear();
    this.byItt.clear();
    return out;
  }

  private expire(group: FailedConnection): void {
    if (!this.failed.delete(group)) return;
    const left = [...group.entries.values()];
    for (const e of left) this.byItt.delete(e.itt);
    group.entries.clear();
    this.expired(left);
  }
}

/**
 * RFC 7143 11.5.1 (ExpDataSN of TASK REASSIGN): the target sends a reassigned READ's Data-In
 * again from the initiator's data acknowledgment reference number; 0 means unchanged, and as
 * this target never asks for DataACK (A bit) nothing was acknowledged: everything goes again.
 * The Data-In are cut for the new connection (its MaxRecvDataSegmentLength may differ); a
 * non-zero ExpDataSN is honoured only when the cut is unchanged (DataSNs then name the same
 * bytes) and it lies in [1, pduCount]; other values are ignored, as the RFC asks. When no
 * Data-In is left to send, a status that rode on the last one goes in a SCSI Response instead.
 */
export function reassignedDataIn(
  plan: DataInPlan,
  limits: DataInLimits,
  expDataSn: number,
): { plan: DataInPlan; from: number } {
  const sameCut =
    plan.maxXmitDataSegmentLength === limits.maxXmitDataSegmentLength &&
    plan.maxBurstLength === limits.maxBurstLength;
  const cut: DataInPlan = sameCut
    ? { ...plan }
    : {
        ...plan,
        maxXmitDataSegmentLength: limits.maxXmitDataSegmentLength,
        maxBurstLength: limits.maxBurstLength,
        pduCount: dataInPduCount(plan.length, limits.maxXmitDataSegmentLength, limits.maxBurstLength),
      };
  expDataSn >>>= 0;
  const from = sameCut && expDataSn > 0 && expDataSn <= plan.pduCount ? expDataSn : 0;
  if (from >= cut.pduCount) cut.collapse = false;
  return { plan: cut, from };
}

/**
 * RFC 7143 11.14: a Logout's ExpStatSN is "the last ExpStatSN value for the connection to be
 * closed", so when its CID names another connection (reasons 1 and 2) it acknowledges that
 * connection's statuses, not those of the one it arrives on. Returns the CID whose statuses the
 * ExpStatSN of `bhs` acknowledges (`ownCid` for every other PDU).
 */
export function acknowledgedCid(bhs: Buffer, ownCid: number): number {
  if (bhsOpcode(bhs) !== Opcode.LogoutRequest) return ownCid;
  if ((bhs[1]! & LOGOUT_REASON_MASK) === LogoutReason.CloseSession) return ownCid;
  return bhs.readUInt16BE(20);
}

/**
 * RFC 7143 7.2.2 / 11.5.6 for a READ run again after its Data-In were evicted: its Data-In
 * start at ExpDataSN (the initiator has the ones before) when this connection cuts them as the
 * failed one did (the DataSNs then name the same bytes) and ExpDataSN is in [1, pduCount];
 * otherwise (0, another cut, a value beyond what was sent) all of them go.
 */
export function rereadFrom(record: ReadCommandRecord, limits: DataInLimits, expDataSn: number): number {
  expDataSn >>>= 0;
  const sameCut =
    record.maxXmitDataSegmentLength === limits.maxXmitDataSegmentLength &&
    record.maxBurstLength === limits.maxBurstLength;
  return sameCut && expDataSn > 0 && expDataSn <= record.pduCount ? expDataSn : 0;
}

/**
 * The task that runs an evicted READ again (`record`, erl1.ts) with its ITT. It counts as an
 * immediate task: its CmdSN was consumed long ago, so finishing must not free a CmdSN slot.
 * The caller makes it allegiant to its connection and delivers it.
 */
export function rereadTask(
  itt: number,
  record: ReadCommandRecord,
  onComplete: CommandCallback,
  maxWriteLength: number,
): IscsiTask {
  const cmd = new ScsiCommand(
    {
      cdb: record.cdb,
      lun: record.lun,
      tag: itt,
      attribute: record.attribute,
      direction: DataDirection.Read,
      expectedReadLength: record.expectedReadLength,
      expectedWriteLength: 0,
    },
    onComplete,
  );
  const task = new IscsiTask(itt, cmd, true, maxWriteLength, record.cmdSn);
  cmd.fabricData = task;
  task.readBytes = Math.min(record.expectedReadLength, MAX_TRANSFER_BYTES);
  return task;
}

/**
 * A write that waited for Data-Out when its connection failed, taken over by a new one (RFC 7143
 * 7.2.2: it goes on from its current state). The R2Ts of the old connection are void (their
 * TTTs were its own); what is missing below the data solicited so far is asked for again, one
 * R2T per hole (WriteRecovery.resume: data received beyond a hole is kept), then the rest as
 * usual. ExpDataSN acknowledges the R2Ts numbered below it: the new R2Ts are numbered from it,
 * as the initiator never saw the later ones (0 or an invalid value: from the last acknowledged
 * number, 0 at first). Without WriteRecovery (a READ waiting for its turn) nothing is asked for.
 */
export function rearmWrite(task: IscsiTask, expDataSn: number, maxBurstLength: number): void {
  const rec = task.recovery;
  if (rec) {
    rec.resume(task.received, Math.max(task.received, task.nextR2tOffset), maxBurstLength);
    task.r2tSn = rec.acknowledgeR2ts(expDataSn, task.r2tSn);
  } else {
    task.nextR2tOffset = task.received;
  }
  task.r2tsInFlight = 0;
  task.expectedDataSn = 0;
  task.unsolicitedDone = true;
  task.ttt = RESERVED_TAG;
  task.lastR2t = null;
}

/**
 * An iSCSI session (RFC 7143 3.4): the initiator/target pair identified by ISID + TSIH, its
 * negotiated parameters, its connections, the session-wide CmdSN window, and the SCSI I_T
 * nexus it maps to (none for discovery sessions).
 */
import type { ItNexus } from '../scsi/nexus.js';
import type { ScsiTarget } from '../scsi/target.js';
import { TmfFunction } from '../scsi/tmf.js';
import { CmdSnWindow } from './cmdsn.js';
import { ConnectionRecovery, type DetachedTask } from './erl2.js';
import type { DataOutBudget } from './limits.js';
import type { NegotiatedParams } from './negotiate.js';
import type { IscsiConnection } from './connection.js';

export class IscsiSession {
  readonly connections = new Set<IscsiConnection>();
  readonly window: CmdSnWindow;
  private closed = false;
  /**
   * Resolves once the commands this session had handed to the SCSI core have finished (they run
   * on after the session closes: a write already in the store cannot be called back).
   */
  drained: Promise<void> = Promise.resolve();
  /** ERL 2: the tasks of failed connections, kept for TASK REASSIGN (erl2.ts); else null. */
  recovery: ConnectionRecovery | null = null;
  private budget: DataOutBudget | null = null;
  private onEnd: (() => void) | null = null;

  constructor(
    readonly tsih: number,
    /** ISID as 12 hex digits (with InitiatorName, the session's identity for reinstatement). */
    readonly isid: string,
    readonly initiatorName: string,
    readonly initiatorAlias: string | undefined,
    /** Null for a discovery session. */
    readonly target: ScsiTarget | null,
    readonly nexus: ItNexus | null,
    readonly params: NegotiatedParams,
    initialCmdSn: number,
  ) {
    this.window = new CmdSnWindow(initialCmdSn, params.maxQueueCmd);
  }

  get isDiscovery(): boolean {
    return this.target === null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * ERL 2 (RFC 7143 7.1.4, 7.2.2): a failed connection leaves its tasks to the session for
   * DefaultTime2Wait + DefaultTime2Retain seconds; `budget` is where their bytes are counted,
   * `onEnd` runs when the session ends because that time ran out with no connection left.
   */
  enableRecovery(budget: DataOutBudget, onEnd: () => void): void {
    if (this.recovery || this.isDiscovery) return;
    const seconds = this.params.defaultTime2Wait + this.params.defaultTime2Retain;
    this.budget = budget;
    this.onEnd = onEnd;
    this.recovery = new ConnectionRecovery(seconds * 1000, (entries) => this.retentionExpired(entries));
  }

  /**
   * End the session: close every connection and the I_T nexus (which aborts what is still
   * queued in the core and releases SPC-2 reservations). Idempotent.
   */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.window.clear();
    for (const conn of [...this.connections]) conn.close(reason);
    // Detached tasks in the core are aborted with the nexus; the rest is freed here.
    if (this.recovery) for (const e of this.recovery.clear()) this.dropDetached(e, false);
    if (this.nexus) this.drained = this.nexus.close();
  }

  /**
   * A connection of this session went away; the session ends with its last connection, unless
   * (ERL 2) a failed connection's tasks are still kept for reassignment.
   */
  connectionClosed(conn: IscsiConnection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0 && !this.recovery?.pending) this.close('last connection closed');
  }

  /**
   * RFC 7143 11.14.5 c: tasks not reassigned within Time2Wait + Time2Retain are terminated; a
   * session with no connection left ends then (its state is no longer kept, 13.16).
   */
  private retentionExpired(entries: DetachedTask[]): void {
    for (const e of entries) this.dropDetached(e, true);
    if (this.closed || this.connections.size > 0 || this.recovery!.pending) return;
    this.close('DefaultTime2Retain expired');
    this.onEnd?.();
  }

  /**
   * Free a detached task: one running in the core is aborted there (`abortRunning`; its
   * completion then only gives its buffers back), one waiting for Data-Out is dropped, a kept
   * result or unacknowledged status is released.
   */
  dropDetached(e: DetachedTask, abortRunning: boolean): void {
    const budget = this.budget!;
    budget.release(e.bytes);
    e.bytes = 0;
    e.sent?.read?.onRelease?.();
    const task = e.task;
    if (!task) return;
    task.detached = false;
    const cmd = task.cmd;
    if (task.done) {
      cmd.releaseBuffers();
      budget.release(task.reservedBytes);
      task.reservedBytes = 0;
    } else if (task.submitted) {
      if (abortRunning && this.nexus && !this.closed) {
        void this.nexus.taskManagement(TmfFunction.AbortTask, cmd.lun, task.itt);
      }
    } else {
      task.done = true;
      cmd.aborted = true;
      // Announced to its LU's task set (still waiting for data): leave it, or it would hold
      // back younger ORDERED commands for as long as the session lives.
      this.nexus?.withdraw(cmd);
      budget.release(task.reservedBytes);
      task.reservedBytes = 0;
      // A task the window has not delivered yet frees its slot when delivered (done).
      if (task.ordered && !this.closed) this.window.finished();
    }
  }
}

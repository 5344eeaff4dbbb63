/**
 * How a target shared between processes (tgtd --workers with sessions spread, docs/multicore.md)
 * hooks into the SCSI core. The process that owns the target's SCSI state (its "home": task
 * sets, reservations, unit attentions, mode pages) and each process serving some of its sessions
 * (a "guest") install one of these on their ScsiTarget; a target that is not shared has none and
 * runs exactly as before.
 */
import type { Buffer } from 'node:buffer';
import type { ScsiCommand } from '../command.js';
import type { LogicalUnit } from '../lu.js';
import type { ItNexus } from '../nexus.js';
import type { TmfAnswer, TmfFunction } from '../tmf.js';

export interface TargetSharing {
  /**
   * A command arrived (`announced`: before its data, nexus.announce; else with it, submit):
   * true when the sharing takes it to run in another process, which the task set here then
   * only counts as running (TaskSet.adopt); false: it goes through the task set here.
   */
  route(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit, announced: boolean): boolean;
  /** The data of a command taken when announced is in; false: not one of those. */
  dataIn(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): boolean;
  /** The fabric ends a command taken when announced, before its data came; false: not one of those. */
  withdrawn(cmd: ScsiCommand, lu: LogicalUnit): boolean;
  /** A command on `lu` ended: completed, or withdrawn before it started. */
  ended(cmd: ScsiCommand, lu: LogicalUnit): void;
  /** Run a command the LU's task set has enabled (in place of executeCommand). */
  start(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): void;
  /** A nexus was created on the target. */
  nexusOpened(nexus: ItNexus): void;
  /** A nexus was closed; `drained` resolves once its commands have finished. */
  nexusClosed(nexus: ItNexus, drained: Promise<void>): void;
  /** A unit attention was queued for `nexus` on `lu`. */
  unitAttentionAdded(nexus: ItNexus, lu: LogicalUnit): void;
  /**
   * Guest: task management that the home must carry out (it reaches other nexuses, or state
   * kept there), or null to run it here as usual.
   */
  taskManagement(nexus: ItNexus, fn: TmfFunction, lun: Buffer, refTag: number): Promise<TmfAnswer> | null;
  /**
   * Home: before task management on `lus` takes effect here, the guests stop running commands
   * on them under leases (and with `abort`, end the commands they hold waiting, as the function
   * ends those queued here). Resolves with the nexuses of other processes that lost commands.
   */
  beforeTaskManagement(lus: readonly LogicalUnit[], fn: TmfFunction, issuer: ItNexus): Promise<Set<ItNexus>>;
}

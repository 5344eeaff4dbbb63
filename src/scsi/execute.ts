/**
 * Running one command on an LU once the task set has enabled it (tgt's scsi_cmd_perform):
 *
 *   CONTROL byte (NACA/LINK) -> unit attention -> opcode / service action lookup
 *   -> SPC-2 / persistent reservation conflict -> medium present -> device type handler
 *
 * and completing it: status + sense, statistics, `cmd.onComplete`, then the task set lets
 * the next commands run. Every path ends in `completeCommand` exactly once.
 */
import { debuglog } from 'node:util';
import { ScsiStatus, type ScsiCommand } from './command.js';
import { cdbControl, cdbLength, Op } from './cdb.js';
import { UaPolicy, resolveOpcode, UNSUPPORTED_SERVICE_ACTION } from './device/types.js';
import type { LogicalUnit } from './lu.js';
import type { ItNexus } from './nexus.js';
import { PrAccess } from './pr.js';
import { buildSense, invalidCdbField, SenseError, SenseReason } from './sense.js';
import { inquiryHandler, reportLunsHandler } from './device/spc.js';
import { commandFinished, commandStarted } from './running.js';
import { deferCompletion } from './completions.js';

const debug = debuglog('tgt:scsi');

/**
 * Start an enabled command (called by the LU's task set). `leased`: a process sharing the LU
 * with the one that holds its state runs it under a lease (sharing/guest.ts), which vouches
 * that no unit attention is pending for the nexus, no reservation is held and no sanitize
 * runs: those checks, made against state this process does not have, are skipped.
 */
export function executeCommand(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit, leased = false): void {
  let result: void | Promise<void>;
  commandStarted();
  try {
    result = dispatch(cmd, nexus, lu, leased);
  } catch (err) {
    setError(cmd, lu, err);
    result = undefined;
  }
  if (result === undefined) {
    commandFinished();
    // Never complete synchronously inside submit(): fabrics may still be setting up.
    deferCompletion(completeCommand, cmd, nexus, lu);
  } else {
    result.then(
      () => {
        commandFinished();
        completeCommand(cmd, nexus, lu);
      },
      (err: unknown) => {
        commandFinished();
        setError(cmd, lu, err);
        completeCommand(cmd, nexus, lu);
      },
    );
  }
}

function dispatch(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit, leased: boolean): void | Promise<void> {
  const cdb = cmd.cdb;
  const len = cdbLength(cdb[0]!);
  if (cdb.length < len) throw new SenseError(SenseReason.InvalidFieldInCdb);
  // SAM-5 5.2: no ACA and no linked commands: NACA or LINK set -> INVALID FIELD IN CDB.
  if ((cdbControl(cdb) & 0x05) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);

  const found = resolveOpcode(lu.deviceType.ops, cdb);
  const entry = found === UNSUPPORTED_SERVICE_ACTION ? undefined : found;
  if (leased) {
    if (found === undefined || found === UNSUPPORTED_SERVICE_ACTION)
      throw new SenseError(SenseReason.InvalidOpcode);
    if (found.needsMedia && (!lu.online || lu.store === null))
      throw new SenseError(SenseReason.LuBecomingReady);
    return found.handler(cmd, lu, nexus);
  }
  const info = nexus.luInfo(lu);
  if (info.unitAttentions.length > 0) {
    const policy = entry?.ua ?? UaPolicy.Report;
    if (policy === UaPolicy.Report) {
      // SAM-5 5.14: report the oldest pending unit attention and clear it.
      throw new SenseError(info.unitAttentions.shift()!);
    }
    if (policy === UaPolicy.ReportLuns) info.clearUnitAttention(SenseReason.ReportedLunsDataChanged);
  }
  if (found === undefined) throw new SenseError(SenseReason.InvalidOpcode);
  // SPC-4 4.2.5.2: an unsupported SERVICE ACTION points at its field (byte 1, bits 4-0)
  if (found === UNSUPPORTED_SERVICE_ACTION) throw invalidCdbField(1, 4);

  // SPC-2 5.5.1: another nexus's RESERVE blocks everything but a few informational commands.
  if (lu.reservation !== null && lu.reservation !== nexus && !found.reservationExempt) {
    cmd.status = ScsiStatus.ReservationConflict;
    return;
  }
  // SPC-4 5.13.1: a persistent reservation held by someone else blocks by command class.
  if (lu.pr.reservationType !== null && lu.pr.conflicts(nexus.initiatorPort, found.pr ?? PrAccess.Write)) {
    cmd.status = ScsiStatus.ReservationConflict;
    return;
  }
  // SBC-4 4.11: while a sanitize runs, only a few informational commands are processed
  if (lu.sanitize !== null && !found.duringSanitize)
    throw new SenseError(SenseReason.SanitizeInProgress, undefined, undefined, lu.sanitize.progress);
  if (found.needsMedia && (!lu.online || lu.store === null)) {
    throw new SenseError(lu.removable ? SenseReason.MediumNotPresent : SenseReason.LuBecomingReady);
  }
  // SBC-4 4.11.4: after a failed sanitize the medium is unusable until a sanitize succeeds
  if (lu.sanitizeFailure !== null && found.needsMedia && cdb[0] !== Op.Sanitize)
    throw new SenseError(SenseReason.SanitizeFailed);
  return found.handler(cmd, lu, nexus);
}

/** Turn a thrown error into CHECK CONDITION with sense in the LU's format. */
function setError(cmd: ScsiCommand, lu: LogicalUnit | null, err: unknown): void {
  const descriptor = lu?.descriptorSense ?? false;
  cmd.dataInLength = 0;
  if (err instanceof SenseError) {
    cmd.status = ScsiStatus.CheckCondition;
    cmd.sense = buildSense(err.reason, descriptor, err.information, err.field, err.progress);
    return;
  }
  debug('command 0x%s failed unexpectedly: %s', cmd.opcode.toString(16), err);
  cmd.status = ScsiStatus.CheckCondition;
  cmd.sense = buildSense(SenseReason.InternalTargetFailure, descriptor);
}

/** Bookkeeping, then `onComplete`, then let the task set start what was waiting. */
export function completeCommand(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit | null): void {
  nexus.outstanding.delete(cmd);
  if (lu) {
    const stats = nexus.peekLuInfo(lu)?.stats;
    if (stats) {
      if (cmd.status !== ScsiStatus.Good && cmd.status !== ScsiStatus.ConditionMet) stats.errors++;
      else {
        if (cmd.expectedReadLength > 0) {
          stats.readDoneCommands++;
          stats.readDoneBytes += Math.min(cmd.dataInLength, cmd.expectedReadLength);
        }
        if (cmd.expectedWriteLength > 0) {
          stats.writeDoneCommands++;
          stats.writeDoneBytes += Math.min(cmd.writeTransferLength, cmd.dataOutLength);
        }
      }
    }
  }
  try {
    cmd.onComplete(cmd);
  } catch (err) {
    debug('onComplete threw: %s', err);
  }
  if (lu) {
    // QERR first, so that nothing waiting behind the failed command starts before it is aborted.
    if (cmd.status === ScsiStatus.CheckCondition && !cmd.aborted) applyQErr(lu, nexus);
    lu.taskSet.finish(cmd);
    lu.target.sharing?.ended(cmd, lu);
  }
}

/**
 * Control mode page QERR (SPC-4 7.5.8, byte 3 bits 2:1) after a command ended with CHECK
 * CONDITION on `nexus`: 01b aborts every command still waiting in the task set, and other I_T
 * nexuses that lost commands get COMMANDS CLEARED BY DEVICE SERVER (or TASK ABORTED status
 * when TAS=1); 11b aborts only the waiting commands of `nexus`; 00b aborts nothing. Commands
 * already running finish (tgt-ts has no ACA, so there is nothing else to hold).
 */
function applyQErr(lu: LogicalUnit, nexus: ItNexus): void {
  const page = lu.modePages.get(0x0a, 0);
  const qerr = page ? (page.current[3]! >> 1) & 0x03 : 0;
  if (qerr !== 0x01 && qerr !== 0x03) return;
  const removed = lu.taskSet.removeWaiting((_c, n) => qerr === 0x01 || n === nexus);
  const tas = taskAbortedStatus(lu);
  for (const w of removed) {
    finishAborted(w.cmd, w.nexus, lu, nexus);
    if (w.nexus !== nexus && !tas)
      w.nexus.luInfo(lu).addUnitAttention(SenseReason.CommandsClearedByDeviceServer);
  }
}

/** Complete a command that never ran with a bare status (BUSY, TASK SET FULL). */
export function completeWithStatus(
  cmd: ScsiCommand,
  nexus: ItNexus,
  lu: LogicalUnit,
  status: ScsiStatus,
): void {
  cmd.status = status;
  deferCompletion(completeCommand, cmd, nexus, lu);
}

/**
 * Complete a command aborted before it started. SAM-5 5.6: no status is delivered (the fabric
 * sends nothing for `cmd.aborted`), except that when the LU's TAS bit is set a command of an I_T
 * nexus other than `issuer` (the one whose request aborted it) ends with TASK ABORTED. `issuer`
 * null: the abort came from no nexus's task management (PREEMPT AND ABORT of other nexuses).
 */
export function finishAborted(
  cmd: ScsiCommand,
  nexus: ItNexus,
  lu: LogicalUnit | null,
  issuer: ItNexus | null = null,
): void {
  cmd.aborted = !(lu !== null && nexus !== issuer && taskAbortedStatus(lu));
  cmd.status = ScsiStatus.TaskAborted;
  cmd.sense = null;
  cmd.dataInLength = 0;
  completeCommand(cmd, nexus, lu);
}

/**
 * Control mode page TAS (SPC-4 7.5.8, byte 5 bit 6): commands aborted by another I_T nexus's
 * task management, or by PREEMPT AND ABORT, complete with TASK ABORTED instead of silently.
 */
export function taskAbortedStatus(lu: LogicalUnit): boolean {
  const page = lu.modePages.get(0x0a, 0);
  return page !== undefined && (page.current[5]! & 0x40) !== 0;
}

/**
 * A command addressed to a LUN that does not exist (SPC-4 and tgt §5.1): INQUIRY answers with
 * peripheral qualifier 011b / type 1Fh, REPORT LUNS works, REQUEST SENSE returns LOGICAL UNIT
 * NOT SUPPORTED as parameter data, everything else CHECK CONDITION LOGICAL UNIT NOT SUPPORTED.
 */
export function executeWithoutLu(cmd: ScsiCommand, nexus: ItNexus): void {
  const lun0 = nexus.target.luns[0] ?? null;
  const run = async (): Promise<void> => {
    const op = cmd.opcode;
    if (op === Op.Inquiry && lun0) {
      inquiryHandler(cmd, lun0);
      if (cmd.dataIn && cmd.dataInLength > 0) cmd.dataIn[0] = 0x7f;
    } else if (op === Op.ReportLuns && lun0) {
      reportLunsHandler(cmd, lun0);
    } else if (op === Op.RequestSense) {
      const sense = buildSense(SenseReason.LuNotSupported, (cmd.cdb[1]! & 0x01) !== 0);
      const n = Math.min(sense.length, cmd.cdb[4]!);
      cmd.dataIn = sense;
      cmd.dataInLength = n;
    } else {
      throw new SenseError(SenseReason.LuNotSupported);
    }
  };
  run().then(
    () => completeCommand(cmd, nexus, null),
    (err: unknown) => {
      setError(cmd, lun0, err);
      completeCommand(cmd, nexus, null);
    },
  );
}

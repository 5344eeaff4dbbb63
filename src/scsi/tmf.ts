/**
 * Task management functions and results, transport-neutral (SAM-5 7). The numbering follows
 * RFC 7143 11.5.1 / 11.6.1 so the iSCSI fabric maps them one to one, but nothing here is
 * iSCSI-specific.
 */

export enum TmfFunction {
  AbortTask = 1,
  AbortTaskSet = 2,
  ClearAca = 3,
  ClearTaskSet = 4,
  LogicalUnitReset = 5,
  TargetWarmReset = 6,
  TargetColdReset = 7,
  TaskReassign = 8,
}

export enum TmfResult {
  /** SAM-5 FUNCTION COMPLETE. */
  FunctionComplete = 0,
  /** The referenced task is not in the task set (it may already have completed). */
  TaskNotFound = 1,
  /** SAM-5 INCORRECT LOGICAL UNIT NUMBER. */
  LunNotFound = 2,
  /** The function is not supported (the fabric handles TARGET COLD RESET / TASK REASSIGN itself). */
  NotSupported = 5,
  /** SAM-5 FUNCTION REJECTED. */
  Rejected = 255,
}

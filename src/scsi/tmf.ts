/**
 * Task management functions and results, transport-neutral (SAM-5 7). The numbering follows
 * RFC 7143 11.5.1 / 11.6.1 and RFC 7144 4.1 so the iSCSI fabric maps them one to one, but
 * nothing here is iSCSI-specific.
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
  /** RFC 7144 4.1 / SAM-5 7.x: does the referenced task exist? */
  QueryTask = 9,
  /** RFC 7144 4.1 / SAM-5 7.x: does any task of this I_T nexus exist on the LU? */
  QueryTaskSet = 10,
  /** RFC 7144 4.1 / SAM-5 7.x: the I_T nexus loss actions, the nexus itself stays. */
  ItNexusReset = 11,
  /** RFC 7144 4.1 / SAM-5 7.x: the pending unit attention of this I_T_L nexus, if any. */
  QueryAsyncEvent = 12,
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
  /** SAM-5 FUNCTION SUCCEEDED: the queried task or event exists (RFC 7144 4.1: response 7). */
  FunctionSucceeded = 7,
  /** SAM-5 FUNCTION REJECTED. */
  Rejected = 255,
}

/** A result with SAM-5's 24-bit ADDITIONAL RESPONSE INFORMATION (QUERY ASYNCHRONOUS EVENT). */
export interface TmfAnswer {
  result: TmfResult;
  /** Byte 0: UADE DEPTH (bits 5-4) and SENSE KEY (bits 3-0); byte 1: ASC; byte 2: ASCQ. 0 when none. */
  additionalInfo: number;
}

/**
 * Mapping between iSCSI task management (RFC 7143 11.5, 11.6, RFC 7144 4.1) and the core's
 * transport-neutral TMF functions and results.
 */
import { Buffer } from 'node:buffer';
import { TmfFunction, TmfResult } from '../scsi/tmf.js';
import { TmfResponse } from './spec.js';

/** The core function that carries out an iSCSI TMF, or null when the fabric answers it alone. */
export function coreFunction(fn: number): TmfFunction | null {
  switch (fn) {
    case TmfFunction.AbortTask:
    case TmfFunction.AbortTaskSet:
    case TmfFunction.ClearTaskSet:
    case TmfFunction.LogicalUnitReset:
    case TmfFunction.TargetWarmReset:
    case TmfFunction.QueryTask:
    case TmfFunction.QueryTaskSet:
    case TmfFunction.ItNexusReset:
    case TmfFunction.QueryAsyncEvent:
      return fn;
    // A cold reset is a warm reset plus dropping every connection (11.5.1), which the fabric does.
    case TmfFunction.TargetColdReset:
      return TmfFunction.TargetWarmReset;
    default:
      return null;
  }
}

/**
 * RFC 7144 4.1 function codes (SAM-5 QUERY TASK, QUERY TASK SET, I_T NEXUS RESET, QUERY
 * ASYNCHRONOUS EVENT), beyond the 1-8 of RFC 7143 11.5.1.
 */
export const RFC7144_FUNCTIONS: readonly number[] = [
  TmfFunction.QueryTask,
  TmfFunction.QueryTaskSet,
  TmfFunction.ItNexusReset,
  TmfFunction.QueryAsyncEvent,
];

/** The response for functions the fabric answers without the core (ERL 0, no ACA). */
export function fabricOnlyResponse(fn: number): TmfResponse {
  switch (fn) {
    case TmfFunction.TaskReassign:
      // Allegiance reassignment needs ERL 2 (11.5.1).
      return TmfResponse.TaskAllegianceReassignmentNotSupported;
    default:
      // CLEAR ACA (no ACA support) and codes no RFC defines.
      return TmfResponse.NotSupported;
  }
}

/** RFC 7143 11.6.1 / RFC 7144 4.1 response code for a core result. */
export function tmfResponse(r: TmfResult): TmfResponse {
  switch (r) {
    case TmfResult.FunctionComplete:
      return TmfResponse.FunctionComplete;
    case TmfResult.FunctionSucceeded:
      return TmfResponse.FunctionSucceeded;
    case TmfResult.TaskNotFound:
      return TmfResponse.TaskDoesNotExist;
    case TmfResult.LunNotFound:
      return TmfResponse.LunDoesNotExist;
    case TmfResult.NotSupported:
      return TmfResponse.NotSupported;
    default:
      return TmfResponse.FunctionRejected;
  }
}

/**
 * QUERY TASK / QUERY TASK SET: the core knows the commands submitted to it, the fabric those it
 * still holds (in the CmdSN window or waiting for Data-Out); either one makes the task exist.
 */
export function queryResponse(core: TmfResult, heldByFabric: boolean): TmfResponse {
  if (core === TmfResult.FunctionComplete && heldByFabric) return TmfResponse.FunctionSucceeded;
  return tmfResponse(core);
}

/** RFC 7144 4.1: ADDITIONAL RESPONSE INFORMATION (24 bits) in bytes 8-10 of the TMF response BHS. */
export function setAdditionalResponseInfo(bhs: Buffer, info: number): void {
  bhs[8] = (info >>> 16) & 0xff;
  bhs[9] = (info >>> 8) & 0xff;
  bhs[10] = info & 0xff;
}

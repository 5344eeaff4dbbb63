/**
 * Mapping between iSCSI task management (RFC 7143 11.5, 11.6) and the core's transport-neutral
 * TMF functions and results.
 */
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
 * ASYNCHRONOUS EVENT). RFC 7143 11.5.1 defines 1-8 only; these are answered "not supported"
 * (docs/robustness.md).
 */
export const RFC7144_FUNCTIONS: readonly number[] = [9, 10, 11, 12];

/** The response for functions the fabric answers without the core (ERL 0, no ACA). */
export function fabricOnlyResponse(fn: number): TmfResponse {
  switch (fn) {
    case TmfFunction.TaskReassign:
      // Allegiance reassignment needs ERL 2 (11.5.1).
      return TmfResponse.TaskAllegianceReassignmentNotSupported;
    default:
      // CLEAR ACA (no ACA support), the RFC 7144 functions and codes no RFC defines.
      return TmfResponse.NotSupported;
  }
}

/** RFC 7143 11.6.1 response code for a core result. */
export function tmfResponse(r: TmfResult): TmfResponse {
  switch (r) {
    case TmfResult.FunctionComplete:
      return TmfResponse.FunctionComplete;
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

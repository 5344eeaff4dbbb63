import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  coreFunction,
  fabricOnlyResponse,
  RFC7144_FUNCTIONS,
  tmfResponse,
} from '../../../../src/iscsi/task-management.js';
import { TmfFunction, TmfResponse } from '../../../../src/iscsi/spec.js';
import { TmfResult } from '../../../../src/scsi/tmf.js';

test('rfc7143 11.5.1: ABORT TASK .. TARGET WARM RESET go to the core; COLD RESET is a warm reset there', () => {
  for (const fn of [
    TmfFunction.AbortTask,
    TmfFunction.AbortTaskSet,
    TmfFunction.ClearTaskSet,
    TmfFunction.LogicalUnitReset,
    TmfFunction.TargetWarmReset,
  ])
    assert.equal(coreFunction(fn), fn);
  assert.equal(coreFunction(TmfFunction.TargetColdReset), TmfFunction.TargetWarmReset);
  assert.equal(coreFunction(TmfFunction.TaskReassign), null);
});

test('rfc7143 11.6.1 / rfc7144 4.1: functions the target does not implement -> 5 (not supported); TASK REASSIGN at ERL 0 -> 4', () => {
  for (const fn of [...RFC7144_FUNCTIONS, TmfFunction.ClearAca, 0, 13, 0x7f]) {
    assert.equal(coreFunction(fn), null, `function ${fn}`);
    assert.equal(fabricOnlyResponse(fn), TmfResponse.NotSupported, `function ${fn}`);
  }
  assert.equal(
    fabricOnlyResponse(TmfFunction.TaskReassign),
    TmfResponse.TaskAllegianceReassignmentNotSupported,
  );
});

test('rfc7143 11.6.1: core results map to response codes', () => {
  assert.equal(tmfResponse(TmfResult.FunctionComplete), TmfResponse.FunctionComplete);
  assert.equal(tmfResponse(TmfResult.TaskNotFound), TmfResponse.TaskDoesNotExist);
  assert.equal(tmfResponse(TmfResult.LunNotFound), TmfResponse.LunDoesNotExist);
  assert.equal(tmfResponse(TmfResult.NotSupported), TmfResponse.NotSupported);
  assert.equal(tmfResponse(TmfResult.Rejected), TmfResponse.FunctionRejected);
});

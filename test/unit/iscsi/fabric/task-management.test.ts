import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  coreFunction,
  fabricOnlyResponse,
  queryResponse,
  RFC7144_FUNCTIONS,
  setAdditionalResponseInfo,
  tmfResponse,
} from '../../../../src/iscsi/task-management.js';
import { TmfFunction, TmfResponse } from '../../../../src/iscsi/spec.js';
import { TmfResult } from '../../../../src/scsi/tmf.js';

test('rfc7143 11.5.1 / rfc7144 4.1: ABORT TASK .. TARGET WARM RESET and functions 9-12 go to the core; COLD RESET is a warm reset there', () => {
  for (const fn of [
    TmfFunction.AbortTask,
    TmfFunction.AbortTaskSet,
    TmfFunction.ClearTaskSet,
    TmfFunction.LogicalUnitReset,
    TmfFunction.TargetWarmReset,
    ...RFC7144_FUNCTIONS,
  ])
    assert.equal(coreFunction(fn), fn);
  assert.deepEqual(RFC7144_FUNCTIONS, [9, 10, 11, 12]);
  assert.equal(coreFunction(TmfFunction.TargetColdReset), TmfFunction.TargetWarmReset);
  assert.equal(coreFunction(TmfFunction.TaskReassign), null);
});

test('rfc7143 11.6.1: functions the target does not implement -> 5 (not supported); TASK REASSIGN at ERL 0 -> 4', () => {
  for (const fn of [TmfFunction.ClearAca, 0, 13, 0x7f]) {
    assert.equal(coreFunction(fn), null, `function ${fn}`);
    assert.equal(fabricOnlyResponse(fn), TmfResponse.NotSupported, `function ${fn}`);
  }
  assert.equal(
    fabricOnlyResponse(TmfFunction.TaskReassign),
    TmfResponse.TaskAllegianceReassignmentNotSupported,
  );
});

test('rfc7143 11.6.1 / rfc7144 4.1: core results map to response codes (FUNCTION SUCCEEDED is 7)', () => {
  assert.equal(tmfResponse(TmfResult.FunctionComplete), TmfResponse.FunctionComplete);
  assert.equal(tmfResponse(TmfResult.FunctionSucceeded), 7);
  assert.equal(tmfResponse(TmfResult.TaskNotFound), TmfResponse.TaskDoesNotExist);
  assert.equal(tmfResponse(TmfResult.LunNotFound), TmfResponse.LunDoesNotExist);
  assert.equal(tmfResponse(TmfResult.NotSupported), TmfResponse.NotSupported);
  assert.equal(tmfResponse(TmfResult.Rejected), TmfResponse.FunctionRejected);
});

test('rfc7144 4.1: QUERY TASK / QUERY TASK SET count commands the fabric still holds; a missing LU wins', () => {
  assert.equal(queryResponse(TmfResult.FunctionComplete, true), TmfResponse.FunctionSucceeded);
  assert.equal(queryResponse(TmfResult.FunctionComplete, false), TmfResponse.FunctionComplete);
  assert.equal(queryResponse(TmfResult.FunctionSucceeded, false), TmfResponse.FunctionSucceeded);
  assert.equal(queryResponse(TmfResult.LunNotFound, true), TmfResponse.LunDoesNotExist);
});

test('rfc7144 4.1: ADDITIONAL RESPONSE INFORMATION goes in bytes 8-10 of the response BHS', () => {
  const bhs = Buffer.alloc(48);
  setAdditionalResponseInfo(bhs, 0x162900);
  assert.deepEqual([...bhs.subarray(7, 12)], [0, 0x16, 0x29, 0x00, 0]);
});

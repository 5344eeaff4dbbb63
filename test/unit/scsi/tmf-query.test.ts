/**
 * SAM-5 task management beyond the aborts (issue 5 item 1): QUERY TASK, QUERY TASK SET,
 * I_T NEXUS RESET, QUERY ASYNCHRONOUS EVENT (RFC 7144 4.1 functions 9-12), and the control mode
 * page's TAS bit deciding whether commands aborted by another nexus end with TASK ABORTED.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus, TaskAttribute, type ScsiCommand } from '../../../src/scsi/command.js';
import { lunField } from '../../../src/scsi/lun-address.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';
import { SenseReason } from '../../../src/scsi/sense.js';
import { TmfFunction, TmfResult } from '../../../src/scsi/tmf.js';
import { cdb10, dataIn, GatedStore, makeCommand, makeHarness, senseText, submit } from './harness.js';

const TUR = [0, 0, 0, 0, 0, 0];

async function gated() {
  let store!: GatedStore;
  const h = await makeHarness({ wrap: (m) => (store = new GatedStore(m)) });
  const target = h.system.targets.get(1)!;
  const other = target.createNexus(2, 'iqn.2024-01.test:other', 'info');
  for (const lu of target.luns) other.luInfo(lu).unitAttentions.length = 0;
  return { ...h, store, target, lu: target.findLu(1n)!, other };
}

/** Submit without waiting for completion. */
function fire(
  nexus: ItNexus,
  cdb: number[],
  tag: number,
  attribute = TaskAttribute.Simple,
): Promise<ScsiCommand> {
  return new Promise((resolve) => nexus.submit(makeCommand(cdb, { tag, attribute }, resolve)));
}

const tick = () => new Promise((r) => setImmediate(r));

/** Hold the LU with a running ORDERED read (gated in the store) so later commands queue behind it. */
function occupy(h: { store: GatedStore; nexus: ItNexus }): Promise<ScsiCommand> {
  h.store.gated = true;
  return fire(h.nexus, cdb10(0x28, 0, 1), 1, TaskAttribute.Ordered);
}

/** MODE SELECT(6) of the control mode page with TAS set or cleared (SPC-4 7.5.8 byte 5 bit 6). */
async function setTas(nexus: ItNexus, on: boolean): Promise<void> {
  const sense = dataIn(await submit(nexus, [0x1a, 0x08, 0x0a, 0, 255, 0]));
  const list = Buffer.from(sense);
  list[0] = 0; // MODE DATA LENGTH is reserved in MODE SELECT
  list[4 + 5] = on ? list[4 + 5]! | 0x40 : list[4 + 5]! & ~0x40;
  const r = await submit(nexus, [0x15, 0x10, 0, 0, list.length, 0], { dataOut: list });
  assert.equal(r.status, ScsiStatus.Good, 'MODE SELECT of TAS');
}

test('spc4 7.5.8 control mode page: TAS defaults to 0 and is changeable', async () => {
  const { nexus } = await makeHarness();
  const current = dataIn(await submit(nexus, [0x1a, 0x08, 0x0a, 0, 255, 0]));
  assert.equal(current[4 + 5]! & 0x40, 0);
  const changeable = dataIn(await submit(nexus, [0x1a, 0x08, 0x40 | 0x0a, 0, 255, 0]));
  assert.equal(changeable[4 + 5]! & 0x40, 0x40);
  await setTas(nexus, true);
  assert.equal(dataIn(await submit(nexus, [0x1a, 0x08, 0x0a, 0, 255, 0]))[4 + 5]! & 0x40, 0x40);
});

test('sam5 7.x QUERY TASK: a waiting or running command exists (FUNCTION SUCCEEDED), a finished one does not', async () => {
  const h = await gated();
  const running = occupy(h);
  const waiting = fire(h.nexus, cdb10(0x28, 1, 1), 2);
  await tick();
  const query = (tag: number, lun = 1, nexus = h.nexus) =>
    nexus.taskManagement(TmfFunction.QueryTask, lunField(lun), tag);
  assert.equal(await query(1), TmfResult.FunctionSucceeded, 'running');
  assert.equal(await query(2), TmfResult.FunctionSucceeded, 'waiting');
  assert.equal(await query(3), TmfResult.FunctionComplete, 'never seen');
  assert.equal(await query(2, 0), TmfResult.FunctionComplete, 'same tag, other LU');
  assert.equal(await query(2, 1, h.other), TmfResult.FunctionComplete, 'same tag, other nexus');
  assert.equal(await query(2, 7), TmfResult.LunNotFound);
  h.store.release();
  await running;
  await tick();
  h.store.release();
  assert.equal((await waiting).status, ScsiStatus.Good);
  assert.equal(await query(1), TmfResult.FunctionComplete, 'completed');
  assert.equal(await query(2), TmfResult.FunctionComplete, 'completed');
});

test('sam5 7.x QUERY TASK SET: any command of this nexus on the LU; others do not count', async () => {
  const h = await gated();
  const querySet = (nexus: ItNexus, lun = 1) =>
    nexus.taskManagement(TmfFunction.QueryTaskSet, lunField(lun), 0);
  assert.equal(await querySet(h.nexus), TmfResult.FunctionComplete);
  h.store.gated = true;
  const theirs = fire(h.other, cdb10(0x28, 0, 1), 9);
  await tick();
  assert.equal(await querySet(h.nexus), TmfResult.FunctionComplete, "another nexus's command");
  assert.equal(await querySet(h.other), TmfResult.FunctionSucceeded);
  assert.equal(await querySet(h.other, 0), TmfResult.FunctionComplete, 'other LU');
  assert.equal(await querySet(h.other, 7), TmfResult.LunNotFound);
  h.store.release();
  await theirs;
  assert.equal(await querySet(h.other), TmfResult.FunctionComplete);
});

test('sam5 7.x QUERY ASYNCHRONOUS EVENT: the pending UA (key/ASC/ASCQ, UADE DEPTH) without clearing it', async () => {
  const { system, nexus } = await makeHarness({ keepUa: true });
  const lu = system.targets.get(1)!.findLu(1n)!;
  // POWER ON, RESET (29/00) only: UADE DEPTH 01b, sense key 6.
  assert.deepEqual(nexus.queryAsyncEvent(lunField(1)), {
    result: TmfResult.FunctionSucceeded,
    additionalInfo: 0x162900,
  });
  assert.equal(
    await nexus.taskManagement(TmfFunction.QueryAsyncEvent, lunField(1), 0),
    TmfResult.FunctionSucceeded,
  );
  // Two pending: UADE DEPTH 10b, still the oldest one reported.
  nexus.luInfo(lu).addUnitAttention(SenseReason.BusDeviceReset);
  assert.equal(nexus.queryAsyncEvent(lunField(1)).additionalInfo, 0x262900);
  // Not cleared by the query: the next command reports it.
  assert.equal(senseText(await submit(nexus, TUR)), '6/29/0');
  assert.equal(senseText(await submit(nexus, TUR)), '6/29/3');
  assert.deepEqual(nexus.queryAsyncEvent(lunField(1)), {
    result: TmfResult.FunctionComplete,
    additionalInfo: 0,
  });
  assert.equal(nexus.queryAsyncEvent(lunField(7)).result, TmfResult.LunNotFound);
});

test('sam5 7.x I_T NEXUS RESET: this nexus loses its commands, reservation and PREVENT on every LU, and gets I_T NEXUS LOSS OCCURRED (29/07)', async () => {
  const h = await gated();
  assert.equal((await submit(h.nexus, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good); // RESERVE(6)
  assert.equal((await submit(h.nexus, [0x1e, 0, 0, 0, 1, 0])).status, ScsiStatus.Good); // PREVENT
  assert.equal(h.lu.preventRemoval, true);
  const running = occupy(h);
  const queued = fire(h.nexus, cdb10(0x28, 1, 1), 2);
  await tick();
  let done = false;
  const reset = h.nexus.taskManagement(TmfFunction.ItNexusReset, lunField(1), 0).then((r) => {
    done = true;
    return r;
  });
  const q = await queued;
  assert.equal(q.aborted, true, 'the queued command is aborted silently');
  await tick();
  assert.equal(done, false, 'waits for the running command');
  h.store.release();
  assert.equal((await running).status, ScsiStatus.Good);
  assert.equal(await reset, TmfResult.FunctionComplete);
  assert.equal(h.lu.reservation, null);
  assert.equal(h.lu.preventRemoval, false);
  h.store.gated = false;
  for (const lun of [0, 1]) {
    const r = await submit(h.nexus, TUR, { lun });
    assert.equal(r.status, ScsiStatus.CheckCondition, `LUN ${lun}`);
    assert.equal(r.sense![2]! & 0x0f, 6, `LUN ${lun}: UNIT ATTENTION`);
    assert.deepEqual([r.sense![12], r.sense![13]], [0x29, 0x07], `LUN ${lun}: I_T NEXUS LOSS OCCURRED`);
    assert.equal((await submit(h.nexus, TUR, { lun })).status, ScsiStatus.Good);
  }
  // The other nexus is not touched.
  assert.equal((await submit(h.other, TUR)).status, ScsiStatus.Good);
});

test('sam5 5.6 TAS=1: LOGICAL UNIT RESET ends other nexuses\u2019 queued commands with TASK ABORTED, the issuer\u2019s silently', async () => {
  const h = await gated();
  await setTas(h.nexus, true);
  h.other.luInfo(h.lu).unitAttentions.length = 0; // MODE PARAMETERS CHANGED
  const running = occupy(h);
  const mine = fire(h.nexus, cdb10(0x28, 1, 1), 2);
  const theirs = fire(h.other, cdb10(0x28, 2, 1), 3);
  await tick();
  const reset = h.nexus.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0);
  const m = await mine;
  const t = await theirs;
  assert.equal(m.aborted, true, "the issuer's command is never answered");
  assert.equal(t.aborted, false, "the other nexus's command is answered");
  assert.equal(t.status, ScsiStatus.TaskAborted);
  assert.equal(t.sense, null);
  h.store.release();
  await running;
  assert.equal(await reset, TmfResult.FunctionComplete);
});

test('sam5 5.6 TAS=0: commands aborted by another nexus end silently, as before', async () => {
  const h = await gated();
  const running = occupy(h);
  const theirs = fire(h.other, cdb10(0x28, 2, 1), 3);
  await tick();
  const reset = h.nexus.taskManagement(TmfFunction.TargetWarmReset, lunField(0), 0);
  assert.equal((await theirs).aborted, true);
  h.store.release();
  await running;
  await reset;
});

test('sam5 7.4 CLEAR TASK SET with TAS=1: TASK ABORTED instead of COMMANDS CLEARED BY ANOTHER INITIATOR', async () => {
  const h = await gated();
  await setTas(h.nexus, true);
  h.other.luInfo(h.lu).unitAttentions.length = 0;
  const running = occupy(h);
  const theirs = fire(h.other, cdb10(0x28, 2, 1), 3);
  await tick();
  const clear = h.nexus.taskManagement(TmfFunction.ClearTaskSet, lunField(1), 0);
  const t = await theirs;
  assert.equal(t.aborted, false);
  assert.equal(t.status, ScsiStatus.TaskAborted);
  h.store.release();
  await running;
  await clear;
  h.store.gated = false;
  assert.equal((await submit(h.other, TUR)).status, ScsiStatus.Good, 'no 2F/00 unit attention');
});

test('sam5 7.2 ABORT TASK SET with TAS=1: only the issuer is affected, and silently', async () => {
  const h = await gated();
  await setTas(h.nexus, true);
  const running = occupy(h);
  const mine = fire(h.nexus, cdb10(0x28, 1, 1), 2);
  await tick();
  const ats = h.nexus.taskManagement(TmfFunction.AbortTaskSet, lunField(1), 0);
  assert.equal((await mine).aborted, true);
  h.store.release();
  await running;
  await ats;
  assert.equal(h.other.reportsAbort(lunField(1), h.nexus), true);
  assert.equal(h.nexus.reportsAbort(lunField(1), h.nexus), false);
  assert.equal(h.other.reportsAbort(lunField(0), h.nexus), false, 'LUN 0 has no control page');
});

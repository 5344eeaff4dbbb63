/**
 * A command stuck in its backing store can be aborted (issue 5 item 7): task management waits
 * for it at most `abandon_timeout` ms, then answers and abandons it. The abandoned command is
 * never answered, and nothing else starts on its LU until the store returns, so none of its
 * writes can land after a newer command's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../../src/backing/memory.js';
import { ScsiStatus, type ScsiCommand } from '../../../src/scsi/command.js';
import { lunField } from '../../../src/scsi/lun-address.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';
import { TmfFunction, TmfResult } from '../../../src/scsi/tmf.js';
import { AdminError } from '../../../src/scsi/admin-error.js';
import { cdb10, dataIn, GatedStore, makeCommand, makeHarness, submit } from './harness.js';

const BS = 512;

async function stuck(abandonMs: number) {
  let store!: GatedStore;
  const h = await makeHarness({ wrap: (m: MemoryStore) => (store = new GatedStore(m)) });
  assert.equal(await h.system.updateLu(1, 1n, { abandon_timeout: String(abandonMs) }), AdminError.Success);
  return { ...h, store, lu: h.system.targets.get(1)!.findLu(1n)! };
}

/** Submit without waiting; `answered` counts completions the fabric would answer. */
function fire(nexus: ItNexus, cdb: number[], tag: number, dataOut?: Buffer) {
  const state = { done: false, cmd: undefined as ScsiCommand | undefined };
  const cmd = makeCommand(cdb, { tag, dataOut }, () => (state.done = true));
  state.cmd = cmd;
  nexus.submit(cmd);
  return state;
}

test('sam5 7.2 / issue 5: ABORT TASK of a write stuck in the store answers after abandon_timeout; the LU holds newer commands until the store returns', async () => {
  const h = await stuck(100);
  h.store.gated = true;
  const old = Buffer.alloc(BS, 0x11);
  const stale = fire(h.nexus, cdb10(0x2a, 0, 1), 1, old);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(h.store.held, 1, 'the write is in the store');
  const started = Date.now();
  assert.equal(
    await h.nexus.taskManagement(TmfFunction.AbortTask, lunField(1), 1),
    TmfResult.FunctionComplete,
  );
  const waited = Date.now() - started;
  assert.ok(waited >= 90 && waited < 2000, `answered after the timeout (${waited} ms)`);
  assert.equal(h.lu.taskSet.abandonedCount, 1);
  // A newer write to the same block does not start while the stale one is in the store.
  h.store.gated = false;
  const newer = Buffer.alloc(BS, 0x22);
  const next = fire(h.nexus, cdb10(0x2a, 0, 1), 2, newer);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(next.done, false, 'held behind the abandoned write');
  h.store.release();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(next.done, true);
  assert.equal(next.cmd!.status, ScsiStatus.Good);
  assert.equal(stale.cmd!.aborted, true, 'the abandoned write is never answered');
  assert.equal(h.lu.taskSet.abandonedCount, 0);
  assert.deepEqual(dataIn(await submit(h.nexus, cdb10(0x28, 0, 1))), newer, 'the newer data stays');
});

test('issue 5: LOGICAL UNIT RESET with a stuck read completes; abandon_timeout=0 waits for the store', async () => {
  const h = await stuck(50);
  h.store.gated = true;
  fire(h.nexus, cdb10(0x28, 0, 1), 1);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(
    await h.nexus.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0),
    TmfResult.FunctionComplete,
  );
  h.store.release();

  const patient = await stuck(0);
  patient.store.gated = true;
  fire(patient.nexus, cdb10(0x28, 0, 1), 1);
  await new Promise((r) => setTimeout(r, 10));
  let answered = false;
  const reset = patient.nexus
    .taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0)
    .then(() => (answered = true));
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(answered, false, 'abandon_timeout=0: the reset waits for the store');
  patient.store.release();
  await reset;
});

test('tgt-ts --params abandon_timeout: a number of ms up to an hour', async () => {
  const h = await makeHarness();
  assert.equal(await h.system.updateLu(1, 1n, { abandon_timeout: '2500' }), AdminError.Success);
  assert.equal(h.system.targets.get(1)!.findLu(1n)!.abandonTimeoutMs, 2500);
  for (const bad of ['-1', 'x', '3600001'])
    assert.equal(await h.system.updateLu(1, 1n, { abandon_timeout: bad }), AdminError.InvalidRequest, bad);
});

/**
 * Control mode page QERR (SPC-4 7.5.8): what happens to the other commands in the task set when
 * one ends with CHECK CONDITION.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../../src/backing/memory.js';
import { ScsiStatus, TaskAttribute, type ScsiCommand } from '../../../src/scsi/command.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';
import { cdb10, dataIn, GatedStore, makeCommand, makeHarness, senseText, submit } from './harness.js';

/** MODE SELECT(6) of the control mode page with QERR set to `qerr` (byte 3 bits 2:1). */
async function setQErr(nexus: ItNexus, qerr: number): Promise<ScsiCommand> {
  const sense = dataIn(await submit(nexus, [0x1a, 0x08, 0x0a, 0, 255, 0]));
  const list = Buffer.from(sense);
  list[0] = 0;
  list[4 + 3] = (list[4 + 3]! & ~0x06) | (qerr << 1);
  return submit(nexus, [0x15, 0x10, 0, 0, list.length, 0], { dataOut: list });
}

function fire(nexus: ItNexus, cdb: number[], tag: number, attribute = TaskAttribute.Simple) {
  const state = { done: false, cmd: undefined as ScsiCommand | undefined };
  state.cmd = makeCommand(cdb, { tag, attribute }, () => (state.done = true));
  nexus.submit(state.cmd);
  return state;
}

/**
 * A failing command (READ past the end, held in the store by an ORDERED read ahead of it so that
 * others queue behind it), then a waiting command from each nexus.
 */
async function scenario(qerr: number) {
  let store!: GatedStore;
  const h = await makeHarness({ wrap: (m: MemoryStore) => (store = new GatedStore(m)) });
  const target = h.system.targets.get(1)!;
  const other = target.createNexus(2, 'iqn.2024-01.test:other', 'info');
  for (const lu of target.luns) other.luInfo(lu).unitAttentions.length = 0;
  assert.equal((await setQErr(h.nexus, qerr)).status, ScsiStatus.Good, `MODE SELECT QERR=${qerr}`);
  other.luInfo(target.findLu(1n)!).unitAttentions.length = 0; // MODE PARAMETERS CHANGED
  store.gated = true;
  const blocker = fire(h.nexus, cdb10(0x28, 0, 1), 1, TaskAttribute.Ordered);
  const failing = fire(h.nexus, cdb10(0x28, 0xfffffff0, 1), 2, TaskAttribute.Ordered); // LBA out of range
  const mine = fire(h.nexus, cdb10(0x28, 1, 1), 3);
  const theirs = fire(other, cdb10(0x28, 2, 1), 4);
  await new Promise((r) => setTimeout(r, 10));
  store.gated = false;
  store.release();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(blocker.cmd!.status, ScsiStatus.Good);
  assert.equal(senseText(failing.cmd!), '5/21/0', 'the failing command');
  return { h, other, mine, theirs };
}

test('spc4 7.5.8 QERR 00b: a CHECK CONDITION aborts nothing else', async () => {
  const { mine, theirs } = await scenario(0);
  assert.equal(mine.cmd!.status, ScsiStatus.Good);
  assert.equal(theirs.cmd!.status, ScsiStatus.Good);
});

test('spc4 7.5.8 QERR 01b: every waiting command is aborted; the other nexus gets COMMANDS CLEARED BY DEVICE SERVER', async () => {
  const { other, mine, theirs } = await scenario(1);
  assert.equal(mine.cmd!.aborted, true, 'same nexus: aborted, never answered');
  assert.equal(theirs.cmd!.aborted, true, 'other nexus: aborted (TAS=0)');
  assert.equal(senseText(await submit(other, cdb10(0x28, 2, 1))), '6/2f/2');
});

test('spc4 7.5.8 QERR 11b: only the waiting commands of the nexus that got the CHECK CONDITION', async () => {
  const { other, mine, theirs } = await scenario(3);
  assert.equal(mine.cmd!.aborted, true);
  assert.equal(theirs.cmd!.status, ScsiStatus.Good, 'the other nexus is not touched');
  assert.equal((await submit(other, cdb10(0x28, 2, 1))).status, ScsiStatus.Good, 'and gets no UA');
});

test('spc4 7.5.8: QERR 10b is reserved -> MODE SELECT INVALID FIELD IN PARAMETER LIST', async () => {
  const { nexus } = await makeHarness();
  assert.equal(senseText(await setQErr(nexus, 2)), '5/26/0');
});

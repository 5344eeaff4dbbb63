/**
 * Commands that join their LU's task set before their data is in (`nexus.announce`, then
 * `nexus.submit` once the data is in, or `nexus.withdraw`): SAM-5 8.5/8.6 ordering against
 * them, across I_T nexuses, and task management of commands still waiting for their data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Announcement, ScsiStatus, TaskAttribute, type ScsiCommand } from '../../../src/scsi/command.js';
import { lunField } from '../../../src/scsi/lun-address.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';
import { TmfFunction, TmfResult } from '../../../src/scsi/tmf.js';
import { cdb10, dataIn, makeCommand, makeHarness, type Harness, type SubmitOptions } from './harness.js';

const BS = 512;
const READ10 = 0x28;
const WRITE10 = 0x2a;

const tick = () => new Promise((r) => setImmediate(r));

/** A command with its completion count and order of completion. */
interface Tracked {
  cmd: ScsiCommand;
  done: Promise<ScsiCommand>;
  calls: () => number;
}

function track(cdb: number[], o: SubmitOptions, order: string[], name: string): Tracked {
  let calls = 0;
  let resolve!: (c: ScsiCommand) => void;
  const done = new Promise<ScsiCommand>((r) => (resolve = r));
  const cmd = makeCommand(cdb, o, (c) => {
    calls++;
    order.push(name);
    resolve(c);
  });
  return { cmd, done, calls: () => calls };
}

/** A write announced without its data (it comes with `dataReady`). */
function announcedWrite(
  nexus: ItNexus,
  lba: number,
  order: string[],
  name: string,
  attribute = TaskAttribute.Simple,
): Tracked & { dataReady: (fill: number) => void } {
  const t = track(cdb10(WRITE10, lba, 1), { writeLength: BS, attribute }, order, name);
  nexus.announce(t.cmd);
  return {
    ...t,
    dataReady(fill: number) {
      t.cmd.addDataOut(Buffer.alloc(BS, fill));
      nexus.submit(t.cmd);
    },
  };
}

/** A READ of one block submitted at once (its "data" is in: it has none). */
function submittedRead(nexus: ItNexus, lba: number, order: string[], name: string, attribute: TaskAttribute) {
  const t = track(cdb10(READ10, lba, 1), { readLength: BS, attribute }, order, name);
  nexus.submit(t.cmd);
  return t;
}

function luOf(h: Harness) {
  return h.system.targets.get(1)!.findLu(1n)!;
}

function otherNexus(h: Harness): ItNexus {
  const target = h.system.targets.get(1)!;
  const other = target.createNexus(2, 'iqn.2024-01.test:other', '');
  for (const lu of target.luns) other.luInfo(lu).unitAttentions.length = 0;
  return other;
}

test('sam5 8.6 ORDERED waits for an older SIMPLE write still waiting for its data, and reads what it wrote', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  const write = announcedWrite(h.nexus, 7, order, 'simple write');
  assert.equal(write.cmd.announcement, Announcement.Accepted);
  const read = submittedRead(h.nexus, 7, order, 'ordered read', TaskAttribute.Ordered);
  await tick();
  await tick();
  assert.deepEqual(order, [], 'the ORDERED READ ran before the older SIMPLE WRITE had its data');
  assert.equal(luOf(h).taskSet.size, 2);
  write.dataReady(0x5a);
  assert.equal((await write.done).status, ScsiStatus.Good);
  const r = await read.done;
  assert.equal(r.status, ScsiStatus.Good);
  assert.deepEqual(order, ['simple write', 'ordered read']);
  assert.ok(dataIn(r).equals(Buffer.alloc(BS, 0x5a)), 'the READ returns the WRITE data');
  assert.equal(luOf(h).taskSet.size, 0);
});

test('sam5 8.6 a SIMPLE command after an ORDERED write still waiting for its data starts only after the write completed', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  const write = announcedWrite(h.nexus, 3, order, 'ordered write', TaskAttribute.Ordered);
  const read = submittedRead(h.nexus, 3, order, 'simple read', TaskAttribute.Simple);
  await tick();
  await tick();
  assert.deepEqual(order, [], 'the SIMPLE READ overtook the older ORDERED WRITE');
  write.dataReady(0xa5);
  const r = await read.done;
  assert.deepEqual(order, ['ordered write', 'simple read']);
  assert.ok(dataIn(r).equals(Buffer.alloc(BS, 0xa5)));
});

test('sam5 8.6 SIMPLE commands do not wait for an older SIMPLE still waiting for its data', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  const write = announcedWrite(h.nexus, 0, order, 'write');
  const read = submittedRead(h.nexus, 9, order, 'read', TaskAttribute.Simple);
  await read.done;
  assert.deepEqual(order, ['read']);
  write.dataReady(1);
  await write.done;
  assert.equal(luOf(h).taskSet.size, 0);
});

test('sam5 8.6 announced SIMPLE commands queued behind an ORDERED one: ready ones start after it, the others when their data is in', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  const w1 = announcedWrite(h.nexus, 1, order, 'w1');
  const o2 = announcedWrite(h.nexus, 2, order, 'o2', TaskAttribute.Ordered);
  const s3 = announcedWrite(h.nexus, 3, order, 's3');
  const s4 = announcedWrite(h.nexus, 4, order, 's4');
  const o5 = submittedRead(h.nexus, 1, order, 'o5', TaskAttribute.Ordered);
  s4.dataReady(4);
  o2.dataReady(2);
  await tick();
  await tick();
  assert.deepEqual(order, [], 'everything waits for w1 (o2 is ORDERED, the rest is younger than o2)');
  w1.dataReady(1);
  await o2.done;
  await s4.done;
  await tick();
  assert.deepEqual(order, ['w1', 'o2', 's4'], 's4 ran after o2 although s3, older, still waits for its data');
  assert.equal(o5.calls(), 0, 'the ORDERED READ waits for s3');
  s3.dataReady(3);
  const r = await o5.done;
  assert.deepEqual(order, ['w1', 'o2', 's4', 's3', 'o5']);
  assert.ok(dataIn(r).equals(Buffer.alloc(BS, 1)));
});

test('sam5 8.6 the task set is per LU across I_T nexuses: an ORDERED command of another nexus waits for the announced write', async () => {
  const h = await makeHarness();
  const other = otherNexus(h);
  const order: string[] = [];
  const write = announcedWrite(h.nexus, 5, order, 'write (nexus 1)');
  const read = submittedRead(other, 5, order, 'ordered read (nexus 2)', TaskAttribute.Ordered);
  const simple = announcedWrite(other, 6, order, 'simple write (nexus 2)');
  await tick();
  await tick();
  assert.deepEqual(order, []);
  simple.dataReady(6);
  await tick();
  await tick();
  assert.deepEqual(order, [], 'the SIMPLE write younger than the ORDERED READ waits for it');
  write.dataReady(0x11);
  const r = await read.done;
  await simple.done;
  assert.deepEqual(order, ['write (nexus 1)', 'ordered read (nexus 2)', 'simple write (nexus 2)']);
  assert.ok(dataIn(r).equals(Buffer.alloc(BS, 0x11)));
});

test('sam5 8.6 HEAD OF QUEUE is not announced and still runs at once, ahead of waiting commands', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  announcedWrite(h.nexus, 0, order, 'ordered write', TaskAttribute.Ordered);
  const head = track(
    cdb10(READ10, 0, 1),
    { readLength: BS, attribute: TaskAttribute.HeadOfQueue },
    order,
    'head',
  );
  h.nexus.announce(head.cmd);
  assert.equal(head.cmd.announcement, Announcement.None);
  h.nexus.submit(head.cmd);
  await head.done;
  assert.deepEqual(order, ['head']);
});

test('sam5 7.2 ABORT TASK of a command waiting for its data: aborted once, out of the task set, the younger ORDERED runs', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  const write = announcedWrite(h.nexus, 0, order, 'write');
  write.cmd.tag = 0x21;
  const read = submittedRead(h.nexus, 0, order, 'ordered read', TaskAttribute.Ordered);
  assert.equal(
    await h.nexus.taskManagement(TmfFunction.QueryTask, lunField(1), 0x21),
    TmfResult.FunctionSucceeded,
    'QUERY TASK: the announced command is in the task set',
  );
  assert.equal(
    await h.nexus.taskManagement(TmfFunction.AbortTask, lunField(1), 0x21),
    TmfResult.FunctionComplete,
  );
  const w = await write.done;
  assert.equal(w.aborted, true);
  assert.equal(w.status, ScsiStatus.TaskAborted);
  await read.done;
  assert.deepEqual(order, ['write', 'ordered read']);
  // The fabric's data arriving late changes nothing: no second completion.
  write.dataReady(1);
  await tick();
  await tick();
  assert.equal(write.calls(), 1);
  assert.equal(luOf(h).taskSet.size, 0);
  assert.equal(h.nexus.outstanding.size, 0);
});

test('sam5 7.3/7.7 ABORT TASK SET and LOGICAL UNIT RESET end commands waiting for their data', async () => {
  const h = await makeHarness();
  const other = otherNexus(h);
  const order: string[] = [];
  const mine = announcedWrite(h.nexus, 0, order, 'mine', TaskAttribute.Ordered);
  const theirs = announcedWrite(other, 1, order, 'theirs');
  assert.equal(
    await h.nexus.taskManagement(TmfFunction.AbortTaskSet, lunField(1), 0),
    TmfResult.FunctionComplete,
  );
  assert.equal((await mine.done).aborted, true);
  assert.equal(theirs.calls(), 0, 'ABORT TASK SET reaches only its own nexus');
  assert.equal(
    await h.nexus.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0),
    TmfResult.FunctionComplete,
  );
  assert.equal((await theirs.done).status, ScsiStatus.TaskAborted);
  assert.equal(luOf(h).taskSet.size, 0);
  assert.equal(other.outstanding.size, 0);
});

test('sam5 6.3.4 I_T nexus loss ends its commands waiting for their data', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  const write = announcedWrite(h.nexus, 0, order, 'write');
  await h.nexus.close();
  assert.equal((await write.done).aborted, true);
  assert.equal(luOf(h).taskSet.size, 0);
});

test('withdraw: a command its fabric ended leaves the task set without completing; the younger ORDERED runs', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  const write = announcedWrite(h.nexus, 0, order, 'write');
  const read = submittedRead(h.nexus, 0, order, 'ordered read', TaskAttribute.Ordered);
  assert.equal(h.nexus.withdraw(write.cmd), true);
  assert.equal(h.nexus.withdraw(write.cmd), false, 'withdrawn once');
  await read.done;
  await tick();
  assert.equal(write.calls(), 0, 'a withdrawn command is not completed by the core');
  assert.equal(h.nexus.outstanding.size, 0);
  const plain = track(cdb10(READ10, 0, 1), { readLength: BS }, order, 'plain');
  assert.equal(h.nexus.withdraw(plain.cmd), false, 'a command never announced');
});

test('sam5 8.6 a full task set refuses an announced command: TASK SET FULL once its data is in', async () => {
  const h = await makeHarness();
  const lu = luOf(h);
  const order: string[] = [];
  const writes = [];
  for (let i = 0; i < lu.taskSet.maxDepth; i++) writes.push(announcedWrite(h.nexus, i, order, `w${i}`));
  const late = announcedWrite(h.nexus, 0, order, 'late');
  assert.equal(late.cmd.announcement, Announcement.Refused);
  for (const w of writes) w.dataReady(0);
  await Promise.all(writes.map((w) => w.done));
  late.dataReady(0);
  assert.equal((await late.done).status, ScsiStatus.TaskSetFull);
});

test('tgt §2.5 a target taken offline while a command waits for its data: BUSY, and it leaves the task set', async () => {
  const h = await makeHarness();
  const order: string[] = [];
  const write = announcedWrite(h.nexus, 0, order, 'write');
  h.system.targets.get(1)!.state = 'offline';
  write.dataReady(0);
  assert.equal((await write.done).status, ScsiStatus.Busy);
  assert.equal(luOf(h).taskSet.size, 0);
});

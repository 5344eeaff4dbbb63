import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus, TaskAttribute, type ScsiCommand } from '../../../src/scsi/command.js';
import { lunField } from '../../../src/scsi/lun-address.js';
import { TmfFunction, TmfResult } from '../../../src/scsi/tmf.js';
import { cdb10, GatedStore, makeCommand, makeHarness, submit, type SubmitOptions } from './harness.js';

const BS = 512;

async function gated() {
  let store!: GatedStore;
  const h = await makeHarness({ wrap: (m) => (store = new GatedStore(m)) });
  return { ...h, store };
}

/** Submit without waiting; record completion order. */
function fire(
  h: { nexus: import('../../../src/scsi/nexus.js').ItNexus },
  order: string[],
  name: string,
  cdb: number[],
  o: SubmitOptions = {},
) {
  return new Promise<ScsiCommand>((resolve) => {
    h.nexus.submit(
      makeCommand(cdb, o, (c) => {
        order.push(name);
        resolve(c);
      }),
    );
  });
}

const tick = () => new Promise((r) => setImmediate(r));

test('sam5 8.6 ORDERED waits for earlier SIMPLE commands; later SIMPLE waits for the ORDERED', async () => {
  const h = await gated();
  h.store.gated = true;
  const order: string[] = [];
  const a = fire(h, order, 'simple-1', cdb10(0x28, 0, 1));
  const b = fire(h, order, 'ordered', cdb10(0x2a, 0, 1), {
    attribute: TaskAttribute.Ordered,
    dataOut: Buffer.alloc(BS),
  });
  const c = fire(h, order, 'simple-2', cdb10(0x28, 1, 1));
  await tick();
  assert.equal(h.store.held, 1); // only simple-1 reached the store
  h.store.release();
  await a;
  await tick();
  assert.deepEqual(h.store.log, ['read 0', 'write 0']);
  h.store.release();
  await b;
  await tick();
  h.store.release();
  await c;
  assert.deepEqual(order, ['simple-1', 'ordered', 'simple-2']);
});

test('sam5 8.6 HEAD OF QUEUE runs at once, ahead of waiting commands', async () => {
  const h = await gated();
  h.store.gated = true;
  const order: string[] = [];
  const a = fire(h, order, 'simple', cdb10(0x28, 0, 1));
  const b = fire(h, order, 'ordered', cdb10(0x28, 1, 1), { attribute: TaskAttribute.Ordered });
  const c = fire(h, order, 'head', cdb10(0x28, 2, 1), { attribute: TaskAttribute.HeadOfQueue });
  await tick();
  assert.deepEqual(h.store.log, [`read 0`, `read ${2 * BS}`]);
  h.store.release();
  await Promise.all([a, c]);
  await tick();
  h.store.release();
  await b;
  assert.deepEqual(order.slice(2), ['ordered']);
});

test('sbc4 5.3 COMPARE AND WRITE runs alone: later SIMPLE writes wait for it', async () => {
  const h = await gated();
  h.store.gated = true;
  const order: string[] = [];
  const caw = [0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0];
  const a = fire(h, order, 'caw', caw, { dataOut: [Buffer.alloc(BS), Buffer.alloc(BS, 1)] });
  const b = fire(h, order, 'write', cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(BS, 2) });
  await tick();
  assert.deepEqual(h.store.log, ['read 0']);
  h.store.release();
  await tick();
  h.store.release();
  await a;
  await tick();
  h.store.release();
  await b;
  assert.deepEqual(order, ['caw', 'write']);
  assert.deepEqual(h.store.log, ['read 0', 'write 0', 'write 0']);
});

test('sam5 7.2 ABORT TASK: a waiting command completes aborted; a running one completes normally first', async () => {
  const h = await gated();
  h.store.gated = true;
  const order: string[] = [];
  const running = fire(h, order, 'running', cdb10(0x28, 0, 1), { tag: 1, attribute: TaskAttribute.Ordered });
  const waiting = fire(h, order, 'waiting', cdb10(0x28, 1, 1), { tag: 2 });
  await tick();
  assert.equal(
    await h.nexus.taskManagement(TmfFunction.AbortTask, lunField(1), 2),
    TmfResult.FunctionComplete,
  );
  const w = await waiting;
  assert.equal(w.aborted, true);
  assert.equal(w.status, ScsiStatus.TaskAborted);
  let tmfDone = false;
  const tmf = h.nexus.taskManagement(TmfFunction.AbortTask, lunField(1), 1).then((r) => {
    tmfDone = true;
    return r;
  });
  await tick();
  assert.equal(tmfDone, false); // waits for the running command
  h.store.release();
  const r = await running;
  assert.equal(r.aborted, false);
  assert.equal(r.status, ScsiStatus.Good);
  assert.equal(await tmf, TmfResult.FunctionComplete);
  assert.deepEqual(order, ['waiting', 'running']);
  assert.equal(await h.nexus.taskManagement(TmfFunction.AbortTask, lunField(1), 99), TmfResult.TaskNotFound);
});

test('sam5 7.3 ABORT TASK SET aborts only this nexus; CLEAR TASK SET all, with 2F/00 to the others', async () => {
  const h = await gated();
  const target = h.system.targets.get(1)!;
  const other = target.createNexus(2, 'iqn.other', '');
  for (const lu of target.luns) other.luInfo(lu).unitAttentions.length = 0;
  h.store.gated = true;
  const order: string[] = [];
  const first = fire(h, order, 'first', cdb10(0x28, 0, 1), { attribute: TaskAttribute.Ordered });
  const mine = fire(h, order, 'mine', cdb10(0x28, 1, 1));
  const theirs = new Promise<ScsiCommand>((resolve) =>
    other.submit(makeCommand(cdb10(0x28, 2, 1), {}, resolve)),
  );
  await tick();
  const ats = h.nexus.taskManagement(TmfFunction.AbortTaskSet, lunField(1), 0);
  assert.equal((await mine).aborted, true);
  h.store.release();
  assert.equal(await ats, TmfResult.FunctionComplete);
  await first;
  await tick();
  h.store.release();
  assert.equal((await theirs).aborted, false);

  const blocker = fire(h, order, 'blocker', cdb10(0x28, 0, 1), { attribute: TaskAttribute.Ordered });
  const theirs2 = new Promise<ScsiCommand>((resolve) =>
    other.submit(makeCommand(cdb10(0x28, 2, 1), {}, resolve)),
  );
  await tick();
  const cts = h.nexus.taskManagement(TmfFunction.ClearTaskSet, lunField(1), 0);
  assert.equal((await theirs2).aborted, true);
  h.store.release();
  await cts;
  await blocker;
  h.store.gated = false;
  const lu = target.findLu(1n)!;
  assert.deepEqual(other.luInfo(lu).unitAttentions.length, 1);
  assert.equal((await submit(other, [0, 0, 0, 0, 0, 0])).sense![12], 0x2f);
});

test('sam5 task set full -> TASK SET FULL status', async () => {
  const h = await gated();
  const lu = h.system.targets.get(1)!.findLu(1n)!;
  h.store.gated = true;
  const cmds: Promise<ScsiCommand>[] = [];
  cmds.push(fire(h, [], 'o', cdb10(0x28, 0, 1), { attribute: TaskAttribute.Ordered }));
  for (let i = 1; i < lu.taskSet.maxDepth; i++) cmds.push(fire(h, [], 's', cdb10(0x28, 0, 1)));
  const full = await fire(h, [], 'x', cdb10(0x28, 0, 1));
  assert.equal(full.status, ScsiStatus.TaskSetFull);
  h.store.gated = false;
  h.store.release();
  await Promise.all(cmds);
});

test('sam5 I_T nexus loss: queued commands complete aborted, running ones complete normally', async () => {
  const h = await gated();
  h.store.gated = true;
  const running = fire(h, [], 'r', cdb10(0x28, 0, 1), { attribute: TaskAttribute.Ordered });
  const queued = fire(h, [], 'q', cdb10(0x28, 0, 1));
  await tick();
  const closed = h.nexus.close();
  assert.equal((await queued).aborted, true);
  h.store.release();
  assert.equal((await running).status, ScsiStatus.Good);
  await closed;
  assert.equal(h.system.targets.get(1)!.nexuses.size, 0);
  // a command submitted after close still completes exactly once, aborted
  assert.equal((await submit(h.nexus, [0, 0, 0, 0, 0, 0])).aborted, true);
});

test('tgt §2.5 commands on an offline target complete with BUSY', async () => {
  const h = await makeHarness();
  h.system.targets.get(1)!.state = 'offline';
  assert.equal((await submit(h.nexus, [0, 0, 0, 0, 0, 0])).status, ScsiStatus.Busy);
});

test('tgt stat counters: submitted and done bytes/commands per nexus per LU', async () => {
  const h = await makeHarness();
  const lu = h.system.targets.get(1)!.findLu(1n)!;
  await submit(h.nexus, cdb10(0x2a, 0, 2), { dataOut: Buffer.alloc(2 * BS) });
  await submit(h.nexus, cdb10(0x28, 0, 1), { readLength: BS });
  await submit(h.nexus, cdb10(0x28, 1 << 20, 1), { readLength: BS });
  const s = h.nexus.peekLuInfo(lu)!.stats;
  assert.deepEqual(
    [s.writeSubmittedCommands, s.writeSubmittedBytes, s.writeDoneCommands, s.writeDoneBytes],
    [1, 2 * BS, 1, 2 * BS],
  );
  assert.deepEqual([s.readSubmittedCommands, s.readDoneCommands, s.readDoneBytes, s.errors], [2, 1, BS, 1]);
});

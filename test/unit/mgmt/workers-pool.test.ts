/**
 * WorkerPool (tgtd --workers, src/mgmt/workers/pool.ts) against fake worker processes: where
 * new targets go, TSIH lending, and what a worker's death answers. The real processes are
 * exercised in test/integration/workers.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { WorkerPool } from '../../../src/mgmt/workers/pool.js';
import type { MainToWorker, WorkerToMain } from '../../../src/mgmt/workers/protocol.js';
import { defaultRequest, MgmtMode, MgmtOp } from '../../../src/mgmt/wire.js';
import { AdminError } from '../../../src/scsi/admin-error.js';

/** A worker that reports ready at once and answers management requests with `answer`. */
class FakeWorker extends EventEmitter {
  readonly sent: MainToWorker[] = [];
  exitCode: number | null = null;
  signalCode: string | null = null;
  answer: AdminError = AdminError.Success;
  pid = 0;

  constructor() {
    super();
    setImmediate(() => this.emit('message', { kind: 'ready' } satisfies WorkerToMain));
  }

  send(m: MainToWorker, _handle?: unknown, _options?: unknown, done?: () => void): boolean {
    this.sent.push(m);
    if (m.kind === 'mgmt')
      setImmediate(() => this.emit('message', { kind: 'mgmt', id: m.id, err: this.answer }));
    done?.();
    return true;
  }

  say(m: WorkerToMain): void {
    this.emit('message', m);
  }

  kill(): void {
    this.die(null, 'SIGKILL');
  }

  die(code: number | null, signal: string | null = null): void {
    this.exitCode = code;
    this.signalCode = signal;
    this.emit('exit', code, signal);
  }
}

function newPool(max: number): { pool: WorkerPool; workers: FakeWorker[]; slots: number[] } {
  const workers: FakeWorker[] = [];
  const slots: number[] = [];
  const pool = new WorkerPool(max, (slot) => {
    const w = new FakeWorker();
    workers.push(w);
    slots.push(slot);
    return w as unknown as ChildProcess;
  });
  return { pool, workers, slots };
}

const fakeHandle = (): { close(): void; closed: boolean } => ({
  closed: false,
  close() {
    this.closed = true;
  },
});

test('workers: the first target stays in tgtd; each next one goes to the process with the fewest', async () => {
  const { pool, workers } = newPool(2);
  assert.equal(await pool.place(0), undefined, 'no targets anywhere: tgtd takes it');
  assert.equal(workers.length, 0, 'no worker started for the first target');
  const first = await pool.place(1);
  assert.equal(first, 0, 'tgtd has one: a worker starts');
  pool.assign(10, first!);
  const second = await pool.place(1);
  assert.equal(second, 1, 'both have one: another worker starts');
  pool.assign(11, second!);
  assert.equal(await pool.place(1), undefined, 'at the limit: tgtd first on a tie');
  assert.equal(await pool.place(2), 0, 'tgtd has more: the first worker with the fewest');
  pool.release(10);
  assert.equal(await pool.place(1), 0, 'a worker that lost its target is the emptiest');
  assert.equal(workers.length, 2);
});

test('workers: a dead worker gets no new targets and answers "unknown error"', async () => {
  const { pool, workers } = newPool(1);
  const index = await pool.place(1);
  pool.assign(1, index!);
  workers[0]!.die(1);
  assert.equal(pool.isAlive(0), false);
  assert.equal(await pool.place(1), 1, 'a new target goes to a new worker, never to the dead one');
  const res = await pool.call(0, defaultRequest(MgmtMode.Target, MgmtOp.Show), '');
  assert.equal(res.err, AdminError.UnknownErr);
});

test("workers: a replacement takes the dead worker's place and targets; a free place lets the pool grow", async () => {
  const { pool, workers, slots } = newPool(2);
  pool.assign(1, (await pool.place(1))!);
  pool.assign(2, (await pool.place(1))!);
  pool.assign(3, 0);
  workers[0]!.die(null, 'SIGKILL');
  const fresh = await pool.replace(0);
  assert.equal(fresh, 2);
  assert.deepEqual(slots, [0, 1, 0], 'the replacement fills place 0 again');
  assert.deepEqual(pool.targetsOf(0).sort(), [1, 3], 'the dead one keeps its targets until they move');
  pool.move(1, fresh);
  pool.move(3, fresh);
  assert.deepEqual(pool.targetsOf(fresh).sort(), [1, 3]);
  assert.deepEqual(pool.targetsOf(0), []);
  assert.equal(pool.ownerOf(3), fresh);
  await assert.rejects(pool.replace(1), /not dead/);
  workers[1]!.die(1);
  // Worker 1 died with target 2 and was not replaced: a new target may start a worker in its place.
  assert.equal(await pool.place(2), 3);
  assert.deepEqual(slots, [0, 1, 0, 1]);
  assert.equal(
    pool.ownerOf(2),
    1,
    'the dead worker keeps its targets until they are deleted or it is replaced',
  );
});

test('workers: a request pending when its worker dies is answered "unknown error"', async () => {
  const { pool, workers } = newPool(1);
  await pool.place(1);
  workers[0]!.send = (m: MainToWorker) => {
    workers[0]!.sent.push(m);
    return true; // never answers
  };
  const pending = pool.call(0, defaultRequest(MgmtMode.Target, MgmtOp.Show), '');
  workers[0]!.die(null, 'SIGSEGV');
  assert.equal((await pending).err, AdminError.UnknownErr);
});

test('workers: a lent TSIH stays taken until its worker gives it back or dies', async () => {
  const { pool, workers } = newPool(2);
  const a = (await pool.place(1))!;
  pool.assign(1, a);
  const b = (await pool.place(1))!;
  pool.assign(2, b);
  const h = fakeHandle();
  assert.ok(pool.handOff(a, h, Buffer.alloc(48), 7));
  assert.ok(h.closed, "the main process's copy of the descriptor is closed once sent");
  assert.deepEqual(workers[a]!.sent.at(-1), { kind: 'connection', head: Buffer.alloc(48), tsih: 7 });
  assert.ok(pool.handOff(b, fakeHandle(), Buffer.alloc(48), 8));
  assert.ok(pool.isLent(7) && pool.isLent(8));
  workers[b]!.say({ kind: 'tsih-free', tsih: 7 });
  assert.ok(pool.isLent(7), 'only the worker it was lent to gives it back');
  workers[a]!.say({ kind: 'tsih-free', tsih: 7 });
  assert.ok(!pool.isLent(7));
  workers[b]!.die(0);
  assert.ok(!pool.isLent(8), "a dead worker's TSIHs are free");
  assert.equal(pool.handOff(b, fakeHandle(), Buffer.alloc(48), 9), false, 'no hand-off to a dead worker');
  assert.ok(!pool.isLent(9));
});

test('workers: a replacement and a new worker started at the same time get their own indexes and places', async () => {
  const { pool, workers, slots } = newPool(3);
  pool.assign(1, (await pool.place(1))!);
  workers[0]!.die(null, 'SIGKILL');
  const [replacement, grown] = await Promise.all([pool.replace(0), pool.place(5)]);
  assert.notEqual(replacement, grown);
  assert.ok(pool.isAlive(replacement) && pool.isAlive(grown!));
  assert.deepEqual(slots, [0, 0, 1], 'the replacement in the dead place, the new worker in the next');
  assert.deepEqual(pool.targetsOf(0), [1]);
});

test('workers: a worker that dies before acknowledging a connection leaves no descriptor open here', async () => {
  const { pool, workers } = newPool(1);
  const index = (await pool.place(1))!;
  const handles = [fakeHandle(), fakeHandle()];
  // The second handle waits for the first one's acknowledgement, which never comes.
  workers[index]!.send = (m: MainToWorker, _h?: unknown, _o?: unknown, done?: () => void): boolean => {
    workers[index]!.sent.push(m);
    if (workers[index]!.sent.length === 1) done?.();
    return true;
  };
  assert.ok(pool.handOff(index, handles[0]!, Buffer.alloc(48), 0));
  assert.ok(pool.handOff(index, handles[1]!, Buffer.alloc(48), 0));
  assert.deepEqual(
    handles.map((h) => h.closed),
    [true, false],
  );
  workers[index]!.die(null, 'SIGKILL');
  assert.ok(handles[1]!.closed, 'closed when its worker died');
});

test('workers: a worker that cannot be prepared is stopped and its start fails', async () => {
  const { pool, workers } = newPool(1);
  pool.prepare = () => Promise.reject(new Error('no accounts'));
  await assert.rejects(pool.place(1), /no accounts/);
  assert.equal(workers[0]!.signalCode, 'SIGKILL');
});

/**
 * A target shared between processes (src/scsi/sharing, docs/multicore.md): the home holds the
 * SCSI state and leases LUs to guests, which run READ/WRITE under the lease and send the rest
 * home. Here both sides live in one process, their messages cloned and delivered on later
 * turns of the event loop as over tgtd's IPC channel; the LU's store is the same object on
 * both sides, as two descriptors of one file share the page cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminError } from '../../../src/scsi/admin-error.js';
import { ScsiStatus, TaskAttribute, type ScsiCommand } from '../../../src/scsi/command.js';
import { lunField } from '../../../src/scsi/lun-address.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';
import { TargetSystem } from '../../../src/scsi/system.js';
import { SharingGuest } from '../../../src/scsi/sharing/guest.js';
import { SharingHome } from '../../../src/scsi/sharing/home.js';
import type { GuestToHome, HomeToGuest } from '../../../src/scsi/sharing/messages.js';
import { TmfFunction, TmfResult } from '../../../src/scsi/tmf.js';
import type { StoreType } from '../../../src/backing/store.js';
import { MemoryStore } from '../../../src/backing/memory.js';
import { cdb10, dataIn, GatedStore, makeCommand, senseText, stubDriver, submit } from './harness.js';

const TUR = [0, 0, 0, 0, 0, 0];
const READ10 = 0x28;
const WRITE10 = 0x2a;
const settle = async (turns = 20) => {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
};

/** Both sides of target 1 (LUN 1 on one gated memory store), one nexus each, linked. */
async function rig() {
  const store = new GatedStore(new MemoryStore('1048576', 1024 * 1024, false));
  const storeType: StoreType = { name: 'rdwr', supportedOflags: [], open: async () => store };
  const systems: TargetSystem[] = [];
  for (let i = 0; i < 2; i++) {
    const system = new TargetSystem({ storeTypes: [storeType] });
    system.registerDriver(stubDriver());
    assert.equal(system.createTarget('iscsi', 1, 'iqn.2026-11.test:shared'), AdminError.Success);
    assert.equal(await system.createLu(1, 1n, { path: '1048576' }), AdminError.Success);
    systems.push(system);
  }
  const [homeSystem, guestSystem] = systems as [TargetSystem, TargetSystem];
  const toHome: GuestToHome[] = [];
  const toGuest: HomeToGuest[] = [];
  const home = new SharingHome();
  const guest = new SharingGuest((m) => {
    toHome.push(m);
    const copy = structuredClone(m);
    setImmediate(() => home.receive(7, copy));
  });
  home.addGuest(7, (m) => {
    toGuest.push(m);
    const copy = structuredClone(m);
    setImmediate(() => guest.receive(copy));
  });
  home.share(homeSystem.targets.get(1)!);
  guest.join(guestSystem.targets.get(1)!);
  const homeTarget = homeSystem.targets.get(1)!;
  const guestTarget = guestSystem.targets.get(1)!;
  const local = homeTarget.createNexus(1, 'iqn.2026-11.test:a', 'info a', 'iqn.2026-11.test:a,i,0x1');
  const remote = guestTarget.createNexus(2, 'iqn.2026-11.test:b', 'info b', 'iqn.2026-11.test:b,i,0x2');
  await settle();
  // Both nexuses start with POWER ON, RESET pending, reported by the home.
  assert.equal(senseText(await submit(local, TUR)), '6/29/0');
  assert.equal(senseText(await submit(remote, TUR)), '6/29/0');
  const cmds = () => toHome.filter((m) => m.t === 'cmd').length;
  return { store, home, guest, homeTarget, guestTarget, local, remote, toHome, toGuest, cmds };
}

function fire(
  nexus: ItNexus,
  cdb: number[],
  o: Parameters<typeof makeCommand>[1] = {},
): Promise<ScsiCommand> {
  return new Promise((resolve) => nexus.submit(makeCommand(cdb, o, resolve)));
}

/** Run commands until the guest nexus holds a lease (its next command stays in the guest). */
async function leased(r: Awaited<ReturnType<typeof rig>>): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const before = r.cmds();
    assert.equal((await submit(r.remote, cdb10(READ10, 0, 1))).status, ScsiStatus.Good);
    await settle();
    if (r.cmds() === before) return;
  }
  assert.fail(
    `no lease granted: ${JSON.stringify(r.toGuest.filter((m) => m.t !== 'done').map((m) => m.t))} ${JSON.stringify(r.toHome.map((m) => m.t))}`,
  );
}

test('sharing: the guest nexus exists at home, and its first commands run there', async () => {
  const r = await rig();
  assert.ok(r.homeTarget.nexuses.has(2), 'the home has the guest nexus');
  assert.equal(r.homeTarget.nexuses.get(2)!.info, 'info b');
  assert.ok(r.cmds() >= 1, 'the unit attention came from the home');
});

test('sharing: under a lease the guest reads and writes itself; the home reads what it wrote', async () => {
  const r = await rig();
  await leased(r);
  const before = r.cmds();
  const block = Buffer.alloc(512, 0x5a);
  assert.equal((await submit(r.remote, cdb10(WRITE10, 8, 1), { dataOut: block })).status, ScsiStatus.Good);
  assert.deepEqual(dataIn(await submit(r.remote, cdb10(READ10, 8, 1), { readLength: 512 })), block);
  assert.equal(r.cmds(), before, 'no command went home');
  assert.deepEqual(dataIn(await submit(r.local, cdb10(READ10, 8, 1), { readLength: 512 })), block);
});

test('sharing: commands the guest may not run itself go home and come back with their data', async () => {
  const r = await rig();
  await leased(r);
  const before = r.cmds();
  const inquiry = await submit(r.remote, [0x12, 0, 0, 0, 96, 0], { readLength: 96 });
  assert.equal(inquiry.status, ScsiStatus.Good);
  assert.equal(dataIn(inquiry).subarray(8, 11).toString(), 'IET');
  assert.equal(r.cmds(), before + 1);
});

test('sharing: spc2 RESERVE at home revokes the lease; the guest gets RESERVATION CONFLICT until RELEASE', async () => {
  const r = await rig();
  await leased(r);
  assert.equal((await submit(r.local, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  await settle();
  assert.equal((await submit(r.remote, cdb10(READ10, 0, 1))).status, ScsiStatus.ReservationConflict);
  assert.equal(
    (await submit(r.remote, cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) })).status,
    ScsiStatus.ReservationConflict,
  );
  assert.equal((await submit(r.local, [0x17, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  await leased(r);
});

test('sharing: a RESERVE from the guest holds the home nexus off, and its nexus loss releases it', async () => {
  const r = await rig();
  assert.equal((await submit(r.remote, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(r.local, cdb10(READ10, 0, 1))).status, ScsiStatus.ReservationConflict);
  await r.remote.close();
  await settle();
  assert.ok(!r.homeTarget.nexuses.has(2), 'the home closed its copy');
  assert.equal((await submit(r.local, cdb10(READ10, 0, 1))).status, ScsiStatus.Good);
});

test('sam5 8.6 ORDERED at home waits for the command the guest runs under its lease', async () => {
  const r = await rig();
  await leased(r);
  r.store.gated = true;
  const events: string[] = [];
  const guestRead = fire(r.remote, cdb10(READ10, 0, 1)).then((c) => (events.push('guest read'), c));
  await settle();
  assert.equal(r.store.held, 1, 'the guest read is in the store');
  const ordered = fire(r.local, TUR, { attribute: TaskAttribute.Ordered }).then(
    (c) => (events.push('ordered'), c),
  );
  await settle();
  assert.deepEqual(events, [], 'ORDERED waits for the leased read');
  r.store.gated = false;
  r.store.release();
  assert.equal((await guestRead).status, ScsiStatus.Good);
  assert.equal((await ordered).status, ScsiStatus.Good);
  assert.deepEqual(events, ['guest read', 'ordered']);
});

test('sam5 8.6 ORDERED from the guest gives its leases up: nothing younger runs before it', async () => {
  const r = await rig();
  await leased(r);
  r.store.log.length = 0;
  r.store.gated = true;
  const first = fire(r.remote, cdb10(READ10, 0, 1));
  await settle();
  const ordered = fire(r.remote, cdb10(READ10, 1, 1), { attribute: TaskAttribute.Ordered, tag: 2 });
  const after = fire(r.remote, cdb10(READ10, 2, 1), { tag: 3 });
  await settle();
  // Only the first read is in the store; the ORDERED and the one after it wait.
  assert.deepEqual(r.store.log, ['read 0']);
  r.store.gated = false;
  r.store.release();
  await Promise.all([first, ordered, after]);
  assert.deepEqual(r.store.log, ['read 0', 'read 512', 'read 1024']);
});

test('sam5 7.7 LOGICAL UNIT RESET from the guest: every nexus gets the unit attention, at home and in the guest', async () => {
  const r = await rig();
  await leased(r);
  assert.equal(
    await r.remote.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0),
    TmfResult.FunctionComplete,
  );
  assert.equal(senseText(await submit(r.local, TUR)), '6/29/3');
  assert.equal(senseText(await submit(r.remote, TUR)), '6/29/3');
  assert.equal((await submit(r.remote, TUR)).status, ScsiStatus.Good);
});

test('spc4 7.5.5 MODE SELECT at home: the guest reports MODE PARAMETERS CHANGED, then writes as the new page says', async () => {
  const r = await rig();
  await leased(r);
  const page = dataIn(await submit(r.local, [0x1a, 0x08, 0x08, 0, 255, 0]));
  const list = Buffer.from(page);
  list[0] = 0;
  list[4 + 2] = list[4 + 2]! & ~0x04; // WCE off: write-through
  assert.equal(
    (await submit(r.local, [0x15, 0x10, 0, 0, list.length, 0], { dataOut: list })).status,
    ScsiStatus.Good,
  );
  await settle();
  assert.equal(senseText(await submit(r.remote, TUR)), '6/2a/1');
  await leased(r);
  r.store.writeCalls = [];
  assert.equal(
    (await submit(r.remote, cdb10(WRITE10, 4, 1), { dataOut: Buffer.alloc(512, 1) })).status,
    ScsiStatus.Good,
  );
  assert.equal(r.guestTarget.findLu(1n)!.writeCacheEnabled, false);
  assert.equal(r.store.flushes > 0 || r.store.writeCalls.some((w) => w.fua), true, 'the guest wrote through');
});

test('rfc7144 4.1 QUERY ASYNCHRONOUS EVENT from the guest asks the home', async () => {
  const r = await rig();
  assert.equal((await submit(r.local, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal(
    await r.local.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0),
    TmfResult.FunctionComplete,
  );
  const answer = await r.remote.askAsyncEvent(lunField(1));
  assert.equal(answer.result, TmfResult.FunctionSucceeded);
  assert.equal(answer.additionalInfo & 0xffff, 0x2903);
});

test('sam5 7.2 ABORT TASK at the guest ends a command still waiting at home', async () => {
  const r = await rig();
  r.store.gated = true;
  const held = fire(r.local, cdb10(READ10, 0, 1), { attribute: TaskAttribute.Ordered });
  await settle();
  let ended: ScsiCommand | null = null;
  void fire(r.remote, [0x12, 0, 0, 0, 96, 0], { tag: 9, readLength: 96 }).then((c) => (ended = c));
  await settle();
  assert.equal(ended, null, 'INQUIRY waits behind the ORDERED read at home');
  assert.equal(
    await r.remote.taskManagement(TmfFunction.AbortTask, lunField(1), 9),
    TmfResult.FunctionComplete,
  );
  assert.ok(ended !== null && (ended as ScsiCommand).aborted, 'ended without a response');
  r.store.gated = false;
  r.store.release();
  await held;
});

test('sharing: a guest that goes away loses its nexuses at home, and nothing waits for it', async () => {
  const r = await rig();
  await leased(r);
  r.home.removeGuest(7);
  assert.ok(!r.homeTarget.nexuses.has(2));
  // A command that would revoke the lease runs at once.
  assert.equal((await submit(r.local, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
});

for (const withLease of [false, true]) {
  test(`sam5 8.6 an ORDERED READ at home waits for the guest's SIMPLE WRITE still waiting for its data (${withLease ? 'under a lease' : 'sent home'})`, async () => {
    const r = await rig();
    if (withLease) await leased(r);
    const data = Buffer.alloc(512, 0x77);
    let written = false;
    const write = makeCommand(cdb10(WRITE10, 20, 1), { writeLength: 512 }, () => (written = true));
    r.remote.announce(write);
    await settle();
    let read: ScsiCommand | null = null;
    void fire(r.local, cdb10(READ10, 20, 1), { attribute: TaskAttribute.Ordered, readLength: 512 }).then(
      (c) => (read = c),
    );
    await settle();
    assert.equal(read, null, 'the ORDERED READ waits for the announced WRITE');
    write.addDataOut(data);
    r.remote.submit(write);
    for (let i = 0; i < 50 && read === null; i++) await settle(2);
    assert.ok(written);
    assert.deepEqual(dataIn(read!), data, 'the READ saw the WRITE');
  });
}

test('sam5 5.6 TAS=1: LOGICAL UNIT RESET at home ends the guest WRITE waiting for its data with TASK ABORTED', async () => {
  const r = await rig();
  const control = dataIn(await submit(r.local, [0x1a, 0x08, 0x0a, 0, 255, 0]));
  const list = Buffer.from(control);
  list[0] = 0;
  list[4 + 5] = list[4 + 5]! | 0x40;
  assert.equal(
    (await submit(r.local, [0x15, 0x10, 0, 0, list.length, 0], { dataOut: list })).status,
    ScsiStatus.Good,
  );
  await submit(r.remote, TUR); // the MODE PARAMETERS CHANGED unit attention
  let ended: ScsiCommand | null = null;
  const write = makeCommand(cdb10(WRITE10, 30, 1), { writeLength: 512 }, (c) => (ended = c));
  r.remote.announce(write);
  await settle();
  assert.equal(
    await r.local.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0),
    TmfResult.FunctionComplete,
  );
  await settle();
  assert.ok(ended !== null, 'ended before its data came');
  assert.equal((ended as ScsiCommand).status, ScsiStatus.TaskAborted);
  assert.equal((ended as ScsiCommand).aborted, false, 'answered, not silent');
});

test('sharing: a lease asked for while LOGICAL UNIT RESET revokes is not granted behind its back (unit attention, then RESERVE)', async () => {
  const r = await rig();
  await new Promise((res) => setTimeout(res, 5)); // past the ask backoff
  const read = submit(r.remote, cdb10(READ10, 0, 1)); // asks for a lease on its way home
  const reset = r.local.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0);
  await read;
  assert.equal(await reset, TmfResult.FunctionComplete);
  await settle();
  assert.equal(senseText(await submit(r.remote, cdb10(READ10, 0, 1))), '6/29/3', 'the reset is reported');
  await submit(r.local, TUR);
  assert.equal((await submit(r.local, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  const w = await submit(r.remote, cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512, 0xee) });
  assert.equal(w.status, ScsiStatus.ReservationConflict);
});

/** A leased guest READ held in the store, the LU's abandon_timeout at home 50 ms; resolves with its promise. */
async function guestReadInStore(r: Awaited<ReturnType<typeof rig>>): Promise<{ read: Promise<ScsiCommand> }> {
  await leased(r);
  r.homeTarget.findLu(1n)!.abandonTimeoutMs = 50;
  r.store.gated = true;
  const read = fire(r.remote, cdb10(READ10, 0, 1));
  await settle();
  return { read }; // not the promise itself: an async function would wait for it
}

/** Wait until both commands have ended (or give up). */
async function bothEnd(a: () => ScsiCommand | null, b: () => ScsiCommand | null): Promise<void> {
  for (let i = 0; i < 100 && (a() === null || b() === null); i++) await settle(5);
  assert.ok(a() !== null && b() !== null, 'both commands ended');
}

test('sbc4 5.3 COMPARE AND WRITE from the guest, then a WRITE waiting for its data: both end (no deadlock)', async () => {
  const r = await rig();
  await leased(r);
  const current = dataIn(await submit(r.remote, cdb10(READ10, 40, 1), { readLength: 512 }));
  let caw: ScsiCommand | null = null;
  const cawCdb = [0x89, 0, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 1, 0, 0];
  void fire(r.remote, cawCdb, { dataOut: Buffer.concat([current, Buffer.alloc(512, 0x33)]), tag: 1 }).then(
    (c) => (caw = c),
  );
  let write: ScsiCommand | null = null;
  const w = makeCommand(cdb10(WRITE10, 50, 1), { writeLength: 512, tag: 2 }, (c) => (write = c));
  r.remote.announce(w);
  await settle();
  w.addDataOut(Buffer.alloc(512, 0x44));
  r.remote.submit(w);
  await bothEnd(
    () => caw,
    () => write,
  );
  assert.equal(caw!.status, ScsiStatus.Good);
  assert.equal(write!.status, ScsiStatus.Good);
});

test('sam5 8.6 ORDERED from the guest behind a running leased READ, then a WRITE waiting for its data: all end in order', async () => {
  const r = await rig();
  await leased(r);
  r.store.gated = true;
  const first = fire(r.remote, cdb10(READ10, 0, 1), { tag: 1 });
  await settle();
  let ordered: ScsiCommand | null = null;
  void fire(r.remote, cdb10(READ10, 1, 1), { attribute: TaskAttribute.Ordered, tag: 2 }).then(
    (c) => (ordered = c),
  );
  let write: ScsiCommand | null = null;
  const w = makeCommand(cdb10(WRITE10, 50, 1), { writeLength: 512, tag: 3 }, (c) => (write = c));
  r.remote.announce(w);
  await settle();
  r.store.log.length = 0;
  r.store.gated = false;
  r.store.release();
  await first;
  w.addDataOut(Buffer.alloc(512, 0x44));
  r.remote.submit(w);
  await bothEnd(
    () => ordered,
    () => write,
  );
  assert.deepEqual(r.store.log, ['read 512', 'write 25600'], 'the WRITE after the ORDERED READ');
});

test('sam5 8.6 HEAD OF QUEUE from the guest while an older leased WRITE waits for its data: both end', async () => {
  const r = await rig();
  await leased(r);
  let write: ScsiCommand | null = null;
  const w = makeCommand(cdb10(WRITE10, 50, 1), { writeLength: 512, tag: 3 }, (c) => (write = c));
  r.remote.announce(w);
  let head: ScsiCommand | null = null;
  void fire(r.remote, cdb10(READ10, 1, 1), { attribute: TaskAttribute.HeadOfQueue, tag: 4 }).then(
    (c) => (head = c),
  );
  await settle();
  w.addDataOut(Buffer.alloc(512, 0x44));
  r.remote.submit(w);
  await bothEnd(
    () => head,
    () => write,
  );
});

test('sam5 7.7 with abandon_timeout: LOGICAL UNIT RESET at home does not wait for ever for a guest store call that hangs', async () => {
  const r = await rig();
  const { read: stuck } = await guestReadInStore(r);
  let done = false;
  void r.local.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0).then(() => (done = true));
  await new Promise((res) => setTimeout(res, 300));
  assert.ok(done, 'the reset answered after the abandon timeout');
  // Until the guest lets go, nothing starts at home on the LU (as behind an abandoned command).
  let after: ScsiCommand | null = null;
  void fire(r.local, cdb10(READ10, 2, 1)).then((c) => (after = c));
  await settle();
  assert.equal(after, null, 'held back while the guest has not let go');
  r.store.gated = false;
  r.store.release();
  await stuck;
  for (let i = 0; i < 50 && after === null; i++) await settle(2);
  assert.ok(after !== null, 'runs once the guest let go');
});

test('sharing: nothing is kept for commands announced and withdrawn, nor for closed nexuses', async () => {
  const r = await rig();
  r.homeTarget.state = 'offline'; // the home does not take the announcements
  for (let i = 0; i < 10; i++) {
    const w = makeCommand(cdb10(WRITE10, 20, 1), { writeLength: 512, tag: 10 + i });
    r.remote.announce(w);
    await settle();
    assert.ok(r.remote.withdraw(w));
    await settle();
  }
  r.homeTarget.state = 'ready';
  assert.equal(r.home.forwardedCount(7), 0, 'home forgot the withdrawn commands');
  assert.equal((await submit(r.local, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good); // every lease request denied
  for (let i = 0; i < 20; i++) {
    const n = r.guestTarget.createNexus(
      100 + i,
      `iqn.2026-11.test:x${i}`,
      'x',
      `iqn.2026-11.test:x${i},i,0x1`,
    );
    await settle(4);
    await submit(n, cdb10(READ10, 0, 1));
    await n.close();
    await settle(4);
  }
  assert.ok(r.guest.pendingCount() <= 1, `lease requests kept: ${r.guest.pendingCount()}`);
});

test('sam5 6.3.4 a guest nexus that is closing lets go of its lease only once its leased WRITE has left the store', async () => {
  const r = await rig();
  await leased(r);
  r.store.gated = true;
  r.store.log.length = 0;
  void fire(r.remote, cdb10(WRITE10, 60, 1), { dataOut: Buffer.alloc(512, 0x11) });
  await settle();
  assert.equal(r.store.held, 1, 'the guest WRITE is in the store');
  void r.remote.close(); // connection lost: the nexus waits for its WRITE
  await settle();
  void fire(r.local, cdb10(WRITE10, 60, 1), {
    dataOut: Buffer.alloc(512, 0x22),
    attribute: TaskAttribute.Ordered,
  });
  await settle();
  const held = r.store.held;
  r.store.gated = false;
  r.store.release();
  await settle();
  assert.equal(
    held,
    1,
    `the ORDERED WRITE at home must wait for the older guest WRITE (store log ${JSON.stringify(r.store.log)})`,
  );
});

test('sharing: an ORDERED command announced by the guest and withdrawn leaves no barrier behind (leases again)', async () => {
  const r = await rig();
  const w = makeCommand(cdb10(WRITE10, 20, 1), {
    writeLength: 512,
    tag: 5,
    attribute: TaskAttribute.Ordered,
  });
  r.remote.announce(w);
  await settle();
  assert.ok(r.remote.withdraw(w));
  await settle();
  await new Promise((res) => setTimeout(res, 5));
  await leased(r);
});

test('sam5 7.2 ABORT TASK at the guest that gave up on a command running at home (abandon_timeout): its late answer stays silent', async () => {
  const r = await rig();
  r.guestTarget.findLu(1n)!.abandonTimeoutMs = 50;
  r.store.gated = true;
  let ended: ScsiCommand | null = null;
  void fire(r.remote, cdb10(READ10, 0, 1), { tag: 9, readLength: 512 }).then((c) => (ended = c));
  await settle();
  assert.equal(r.store.held, 1, 'running at home');
  assert.equal(
    await r.remote.taskManagement(TmfFunction.AbortTask, lunField(1), 9),
    TmfResult.FunctionComplete,
  );
  r.store.gated = false;
  r.store.release();
  for (let i = 0; i < 50 && ended === null; i++) await settle(2);
  assert.ok(ended !== null);
  assert.equal(
    (ended as ScsiCommand).aborted,
    true,
    'abandoned: no response after ABORT TASK said FUNCTION COMPLETE',
  );
});

test('sam5 8.6 a full guest task set answers TASK SET FULL, never runs a command without a lease', async () => {
  const r = await rig();
  assert.equal((await submit(r.local, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good); // RESERVE by the home nexus
  const lu = r.guestTarget.findLu(1n)!;
  const pending: ScsiCommand[] = [];
  for (let i = 0; lu.taskSet.size < lu.taskSet.maxDepth; i++) {
    const c = makeCommand(cdb10(WRITE10, 100, 1), { writeLength: 512, tag: 1000 + i });
    r.remote.announce(c);
    pending.push(c);
  }
  await settle();
  const w = await submit(r.remote, cdb10(WRITE10, 7, 1), { dataOut: Buffer.alloc(512, 0x99), tag: 7 });
  assert.equal(w.status, ScsiStatus.TaskSetFull, `status ${w.status}`);
});

test('sam5 8.6 a guest SIMPLE WRITE arriving after an ORDERED WRITE waiting at home runs after it', async () => {
  const r = await rig();
  await leased(r);
  r.store.gated = true;
  r.store.log.length = 0;
  const older = fire(r.local, cdb10(READ10, 0, 1), { tag: 1 }); // running at home, holds the ORDERED back
  await settle();
  const ordered = fire(r.local, cdb10(WRITE10, 70, 1), {
    dataOut: Buffer.alloc(512, 0x0d),
    attribute: TaskAttribute.Ordered,
    tag: 2,
  });
  await settle();
  const younger = fire(r.remote, cdb10(WRITE10, 70, 1), { dataOut: Buffer.alloc(512, 0x5e), tag: 3 });
  await settle();
  const log = [...r.store.log];
  r.store.gated = false;
  r.store.release();
  await Promise.all([older, ordered, younger]);
  assert.deepEqual(log, ['read 0'], 'the younger SIMPLE WRITE must wait for the ORDERED one');
});

test('sharing: a guest command whose data went home cannot be withdrawn; it completes once', async () => {
  const r = await rig();
  r.store.gated = true;
  let calls = 0;
  const w = makeCommand(cdb10(WRITE10, 20, 1), { writeLength: 512, tag: 5 }, () => calls++);
  r.remote.announce(w);
  w.addDataOut(Buffer.alloc(512, 1));
  r.remote.submit(w);
  await settle();
  assert.equal(r.store.held, 1, 'running at home');
  const withdrew = r.remote.withdraw(w);
  r.store.gated = false;
  r.store.release();
  await settle();
  assert.deepEqual(
    { withdrew, calls },
    { withdrew: false, calls: 1 },
    'as in one process: a running command is not withdrawn',
  );
});

test('sam5 7.2 a home command held behind a stuck LU and aborted never writes', async () => {
  const r = await rig();
  const { read: stuck } = await guestReadInStore(r);
  await submit(r.local, TUR, { attribute: TaskAttribute.Ordered }); // revokes; the guest does not answer: stuck
  r.store.log.length = 0;
  void fire(r.local, cdb10(WRITE10, 80, 1), { dataOut: Buffer.alloc(512, 0xab), tag: 44 });
  await settle();
  assert.equal(
    await r.local.taskManagement(TmfFunction.AbortTask, lunField(1), 44),
    TmfResult.FunctionComplete,
  );
  r.store.gated = false;
  r.store.release();
  await stuck;
  await settle(40);
  assert.ok(
    !r.store.log.includes('write 40960'),
    `the aborted WRITE ran after ABORT TASK: ${JSON.stringify(r.store.log)}`,
  );
});

test('sharing: a guest whose copy no longer matches (distrusted) loses its leases and runs every command at home', async () => {
  const r = await rig();
  await leased(r);
  r.home.distrust(1, 7);
  await settle();
  for (let i = 0; i < 3; i++) {
    const before = r.cmds();
    assert.equal((await submit(r.remote, cdb10(READ10, 0, 1))).status, ScsiStatus.Good);
    await new Promise((res) => setTimeout(res, 5)); // past any ask backoff
    assert.equal(r.cmds(), before + 1, 'the READ went home');
  }
});

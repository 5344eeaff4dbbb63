import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { TmfFunction } from '../../../src/scsi/tmf.js';
import { lunField } from '../../../src/scsi/lun-address.js';
import {
  cdb10,
  dataIn,
  GatedStore,
  makeCommand,
  makeHarness,
  senseOf,
  senseText,
  submit,
} from './harness.js';

const BS = 512;

/** SANITIZE CDB: service action, IMMED/AUSE flags, parameter list length. */
function sanitize(sa: number, listLen = 0, flags = 0): number[] {
  return [0x48, flags | sa, 0, 0, 0, 0, 0, listLen >> 8, listLen & 0xff, 0];
}

/** OVERWRITE parameter list: count passes of `pattern`, INVERT when asked. */
function overwriteList(pattern: Buffer, count = 1, invert = false): Buffer {
  const b = Buffer.alloc(4 + pattern.length);
  b[0] = (invert ? 0x80 : 0) | count;
  b.writeUInt16BE(pattern.length, 2);
  pattern.copy(b, 4);
  return b;
}

test('sbc4 5.30 SANITIZE OVERWRITE writes the pattern (repeated to fill each block) over the whole medium', async () => {
  const { nexus } = await makeHarness({ size: 64 * 1024 });
  const list = overwriteList(Buffer.from([1, 2, 3, 4]));
  const cmd = await submit(nexus, sanitize(1, list.length), { dataOut: list });
  assert.equal(cmd.status, ScsiStatus.Good);
  const expected = Buffer.alloc(BS);
  for (let i = 0; i < BS; i += 4) expected.set([1, 2, 3, 4], i);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 0, 1))), expected);
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 127, 1))), expected);
  // two passes with INVERT: the second pass writes the inverted pattern
  const inv = overwriteList(Buffer.from([0x0f]), 2, true);
  await submit(nexus, sanitize(1, inv.length), { dataOut: inv });
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 5, 1))), Buffer.alloc(BS, 0xf0));
});

test('sbc4 5.30.3 SANITIZE OVERWRITE: bad parameter lists and reserved CDB fields -> INVALID FIELD IN CDB', async () => {
  const { nexus } = await makeHarness({ size: 64 * 1024 });
  const good = overwriteList(Buffer.alloc(BS, 0xaa));
  for (const len of [0, 4, BS + 5]) {
    const data = Buffer.concat([good, Buffer.alloc(8)]).subarray(0, len);
    assert.equal(senseText(await submit(nexus, sanitize(1, len), { dataOut: data })), '5/24/0', `len ${len}`);
  }
  const zeroCount = Buffer.from(good);
  zeroCount[0] = 0;
  assert.equal(senseText(await submit(nexus, sanitize(1, good.length), { dataOut: zeroCount })), '5/24/0');
  const noPattern = Buffer.from(good);
  noPattern.writeUInt16BE(0, 2);
  assert.equal(senseText(await submit(nexus, sanitize(1, good.length), { dataOut: noPattern })), '5/24/0');
  const reserved = sanitize(1, good.length);
  reserved[4] = 1;
  assert.equal(senseText(await submit(nexus, reserved, { dataOut: good })), '5/24/0');
  // BLOCK ERASE, CRYPTO ERASE and EXIT FAILURE MODE take no parameter list; unknown service actions fail
  for (const sa of [2, 3, 0x1f])
    assert.equal(senseText(await submit(nexus, sanitize(sa, 8), { dataOut: Buffer.alloc(8) })), '5/24/0');
  for (const sa of [0, 4, 0x1e]) assert.equal(senseText(await submit(nexus, sanitize(sa))), '5/24/0');
});

test('sbc4 5.30 SANITIZE BLOCK/CRYPTO ERASE deallocate every block of a thin LU: zeroes, GET LBA STATUS all deallocated', async () => {
  const { system, nexus } = await makeHarness({ size: 256 * 1024 });
  await system.updateLu(1, 1n, { thin_provisioning: '1' });
  for (const sa of [2, 3]) {
    await submit(nexus, cdb10(0x2a, 0, 4), { dataOut: Buffer.alloc(4 * BS, 0x61) });
    assert.equal((await submit(nexus, sanitize(sa))).status, ScsiStatus.Good);
    assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 0, 4))), Buffer.alloc(4 * BS));
    const c = Buffer.alloc(16);
    c[0] = 0x9e;
    c[1] = 0x12;
    c.writeUInt32BE(64, 10);
    const d = dataIn(await submit(nexus, c));
    assert.equal(d.readUInt32BE(0), 20); // one descriptor ...
    assert.equal(d.readUInt32BE(16), 512); // ... for every block
    assert.equal(d[20], 1); // deallocated
  }
  // VPD B1: WABEREQ = WACEREQ = 01b (reads after an erase succeed)
  assert.equal(dataIn(await submit(nexus, [0x12, 1, 0xb1, 0, 64, 0]))[7], 0x50);
});

test('sbc4 4.11 while a sanitize runs: NOT READY, SANITIZE IN PROGRESS with progress; INQUIRY works; it survives abort and LU reset', async () => {
  let store!: GatedStore;
  const { nexus } = await makeHarness({ size: 64 * 1024, wrap: (m) => (store = new GatedStore(m)) });
  store.gated = true; // hold the overwrite's first write
  const list = overwriteList(Buffer.alloc(BS, 0x11));
  const done: ScsiStatus[] = [];
  const cmd = makeCommand(sanitize(1, list.length), { dataOut: list, tag: 77 }, (c) => done.push(c.status));
  nexus.submit(cmd);
  await new Promise((ok) => setImmediate(ok));
  const tur = await submit(nexus, [0, 0, 0, 0, 0, 0]);
  assert.equal(senseText(tur), '2/4/1b');
  assert.equal(tur.sense![15]! & 0x80, 0x80); // SKSV: progress indication
  assert.equal((await submit(nexus, [0x12, 0, 0, 0, 36, 0])).status, ScsiStatus.Good);
  const rs = dataIn(await submit(nexus, [0x03, 0, 0, 0, 18, 0]));
  assert.deepEqual([rs[2]! & 0x0f, rs[12], rs[13]], [2, 0x04, 0x1b]);
  // ABORT TASK ends the command at once (no status is sent), the operation goes on
  await nexus.taskManagement(TmfFunction.AbortTask, lunField(1), 77);
  assert.equal(cmd.aborted, true);
  await nexus.taskManagement(TmfFunction.LogicalUnitReset, lunField(1), 0);
  await submit(nexus, [0, 0, 0, 0, 0, 0]); // the reset's unit attention
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '2/4/1b');
  store.gated = false;
  store.release();
  for (let i = 0; i < 50 && (await submit(nexus, [0, 0, 0, 0, 0, 0])).status !== ScsiStatus.Good; i++)
    await new Promise((ok) => setTimeout(ok, 10));
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 100, 1))), Buffer.alloc(BS, 0x11));
  assert.deepEqual(done, [ScsiStatus.TaskAborted]);
});

test('sbc4 4.11.4 a failed sanitize leaves the LU in failure mode until EXIT FAILURE MODE (AUSE) or a good sanitize', async () => {
  let store!: GatedStore;
  const { nexus } = await makeHarness({ size: 64 * 1024, wrap: (m) => (store = new GatedStore(m)) });
  store.failWrites = true;
  const list = overwriteList(Buffer.alloc(BS, 1));
  assert.equal(senseText(await submit(nexus, sanitize(1, list.length), { dataOut: list })), '3/31/3');
  assert.equal(senseText(await submit(nexus, cdb10(0x28, 0, 1))), '3/31/3');
  // without AUSE the failure mode cannot simply be left
  assert.equal(senseText(await submit(nexus, sanitize(0x1f))), '5/24/0');
  assert.equal(senseText(await submit(nexus, sanitize(1, list.length, 0x20), { dataOut: list })), '3/31/3');
  assert.equal((await submit(nexus, sanitize(0x1f))).status, ScsiStatus.Good);
  store.failWrites = false;
  assert.equal((await submit(nexus, cdb10(0x28, 0, 1))).status, ScsiStatus.Good);
});

test('sbc4 5.30 SANITIZE with IMMED returns at once; a write-protected LU answers WRITE PROTECTED', async () => {
  const { system, nexus } = await makeHarness({ size: 64 * 1024 });
  const list = overwriteList(Buffer.alloc(BS, 7));
  assert.equal(
    (await submit(nexus, sanitize(1, list.length, 0x80), { dataOut: list })).status,
    ScsiStatus.Good,
  );
  for (let i = 0; i < 50 && (await submit(nexus, [0, 0, 0, 0, 0, 0])).status !== ScsiStatus.Good; i++)
    await new Promise((ok) => setTimeout(ok, 10));
  assert.deepEqual(dataIn(await submit(nexus, cdb10(0x28, 3, 1))), Buffer.alloc(BS, 7));
  await system.updateLu(1, 1n, { readonly: '1' });
  assert.equal(senseOf(await submit(nexus, sanitize(2))).key, 7);
});

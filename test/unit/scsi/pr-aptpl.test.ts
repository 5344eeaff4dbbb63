/**
 * Persistent reservations beyond the basics: APTPL (state saved per LU and restored at LU
 * creation), SPEC_I_PT registrations from iSCSI TransportIDs, ALL_TG_PT, and what REPORT
 * CAPABILITIES / READ FULL STATUS say about them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminError } from '../../../src/scsi/admin-error.js';
import { ScsiStatus } from '../../../src/scsi/command.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';
import { decodeIscsiTransportId, encodeIscsiTransportId, PrType } from '../../../src/scsi/pr.js';
import { decodePrState, encodePrState, prStatePath, PrStateError } from '../../../src/scsi/pr-store.js';
import { TargetSystem } from '../../../src/scsi/system.js';
import { cdb10, dataIn, senseText, stubDriver, submit, testStoreType } from './harness.js';

const TARGET = 'iqn.2024-01.test:t1';
const NAME1 = 'iqn.2024-01.test:init';
const NAME2 = 'iqn.2024-01.test:init2';
const NAME3 = 'iqn.2024-01.test:init3';
const PORT1 = `${NAME1},i,0x400000000001`;
const PORT2 = `${NAME2},i,0x400000000002`;
const PORT3 = `${NAME3},i,0x400000000003`;

const REGISTER = 0;
const RESERVE = 1;
const CLEAR = 3;
const PREEMPT = 4;
const REGISTER_IGNORE = 6;
const REGISTER_AND_MOVE = 7;
const SPEC_I_PT = 0x08;
const ALL_TG_PT = 0x04;
const APTPL = 0x01;

let root: string;
let dirCount = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tgt-ts-pr-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh directory for one test's APTPL files. */
function freshDir(): string {
  return join(root, `d${++dirCount}`);
}

/** A "tgtd" (TargetSystem) with target 1, a disk at LUN 1 and nexuses for PORT1 / PORT2. */
async function daemon(
  prStateDir: string | null,
): Promise<{ system: TargetSystem; n1: ItNexus; n2: ItNexus }> {
  const system = new TargetSystem({ storeTypes: [testStoreType()] });
  system.registerDriver(stubDriver());
  system.prStateDir = prStateDir;
  assert.equal(system.createTarget('iscsi', 1, TARGET), AdminError.Success);
  assert.equal(await system.createLu(1, 1n, { path: String(1 << 20) }), AdminError.Success);
  const target = system.targets.get(1)!;
  const n1 = target.createNexus(1, NAME1, 'info', PORT1);
  const n2 = target.createNexus(2, NAME2, 'info', PORT2);
  for (const n of [n1, n2]) for (const lu of target.luns) n.luInfo(lu).unitAttentions.length = 0;
  return { system, n1, n2 };
}

/** PERSISTENT RESERVE OUT with a 24-byte list, plus `extra` (SPEC_I_PT TransportIDs). */
function prOut(
  nexus: ItNexus,
  action: number,
  p: { key?: bigint; sark?: bigint; flags?: number; type?: number; extra?: Buffer } = {},
) {
  const list = Buffer.concat([Buffer.alloc(24), p.extra ?? Buffer.alloc(0)]);
  list.writeBigUInt64BE(p.key ?? 0n, 0);
  list.writeBigUInt64BE(p.sark ?? 0n, 8);
  list[20] = p.flags ?? 0;
  const cdb = Buffer.alloc(10);
  cdb[0] = 0x5f;
  cdb[1] = action;
  cdb[2] = p.type ?? 0;
  cdb.writeUInt32BE(list.length, 5);
  return submit(nexus, cdb, { dataOut: list });
}

/** The SPEC_I_PT tail: TRANSPORTID PARAMETER DATA LENGTH and the TransportIDs. */
function transportIds(...ports: string[]): Buffer {
  const ids = Buffer.concat(ports.map((p) => encodeIscsiTransportId(p)));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(ids.length);
  return Buffer.concat([len, ids]);
}

function prIn(nexus: ItNexus, action: number) {
  return submit(nexus, [0x5e, action, 0, 0, 0, 0, 0, 0x20, 0, 0]);
}

async function readKeys(nexus: ItNexus): Promise<{ generation: number; keys: bigint[] }> {
  const d = dataIn(await prIn(nexus, 0));
  const keys: bigint[] = [];
  for (let o = 8; o + 8 <= d.length; o += 8) keys.push(d.readBigUInt64BE(o));
  return { generation: d.readUInt32BE(0), keys };
}

async function readReservation(nexus: ItNexus): Promise<{ key: bigint; type: number } | null> {
  const d = dataIn(await prIn(nexus, 1));
  if (d.readUInt32BE(4) === 0) return null;
  return { key: d.readBigUInt64BE(8), type: d[21]! & 0x0f };
}

interface FullStatus {
  key: bigint;
  allTgPt: boolean;
  holder: boolean;
  type: number;
  port: string;
}

async function readFullStatus(nexus: ItNexus): Promise<FullStatus[]> {
  const d = dataIn(await prIn(nexus, 3));
  const out: FullStatus[] = [];
  for (let o = 8; o < 8 + d.readUInt32BE(4);) {
    const tidLen = d.readUInt32BE(o + 20);
    out.push({
      key: d.readBigUInt64BE(o),
      allTgPt: (d[o + 12]! & 0x02) !== 0,
      holder: (d[o + 12]! & 0x01) !== 0,
      type: d[o + 13]! & 0x0f,
      port: decodeIscsiTransportId(d.subarray(o + 24, o + 24 + tidLen)).port,
    });
    o += 24 + tidLen;
  }
  return out;
}

const write10 = (n: ItNexus) => submit(n, cdb10(0x2a, 1, 1), { dataOut: Buffer.alloc(512, 7) });
const read10 = (n: ItNexus) => submit(n, cdb10(0x28, 1, 1), { readLength: 512 });

// ---------------------------------------------------------------------------------------------
// APTPL

test('spc4 6.15.4 REPORT CAPABILITIES: PTPL_C with an APTPL directory, PTPL_A once APTPL is set', async () => {
  const { n1 } = await daemon(freshDir());
  assert.deepEqual([...dataIn(await prIn(n1, 2))], [0, 8, 0x1d, 0x90, 0xea, 0x01, 0, 0]);
  assert.equal((await prOut(n1, REGISTER, { sark: 1n, flags: APTPL })).status, ScsiStatus.Good);
  assert.equal(dataIn(await prIn(n1, 2))[3], 0x91);
  // SPC-4 5.13.5: the APTPL bit of the last registration wins
  assert.equal((await prOut(n1, REGISTER, { key: 1n, sark: 2n })).status, ScsiStatus.Good);
  assert.equal(dataIn(await prIn(n1, 2))[3], 0x90);
});

test('spc4 5.13.5 APTPL: registrations, reservation and PRgeneration survive a restart; others still conflict', async () => {
  const dir = freshDir();
  const a = await daemon(dir);
  assert.equal((await prOut(a.n1, REGISTER, { sark: 0xa1n, flags: APTPL })).status, ScsiStatus.Good);
  assert.equal((await prOut(a.n2, REGISTER_IGNORE, { sark: 0xb2n, flags: APTPL })).status, ScsiStatus.Good);
  assert.equal(
    (await prOut(a.n1, RESERVE, { key: 0xa1n, type: PrType.WriteExclusive })).status,
    ScsiStatus.Good,
  );
  const before = await readKeys(a.n1);
  const file = prStatePath(dir, TARGET, 1n);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);

  const b = await daemon(dir); // "tgtd restarted": a new system creating the same LU
  assert.deepEqual(await readKeys(b.n1), before);
  assert.deepEqual(await readReservation(b.n2), { key: 0xa1n, type: PrType.WriteExclusive });
  assert.equal((await write10(b.n2)).status, ScsiStatus.ReservationConflict);
  assert.equal((await read10(b.n2)).status, ScsiStatus.Good);
  assert.equal((await write10(b.n1)).status, ScsiStatus.Good);
  assert.equal(dataIn(await prIn(b.n1, 2))[3], 0x91); // PTPL_A still active
});

test('spc4 5.13.5 APTPL: changes by any service action are saved; APTPL=0 forgets the saved state', async () => {
  const dir = freshDir();
  const a = await daemon(dir);
  await prOut(a.n1, REGISTER, { sark: 1n, flags: APTPL });
  await prOut(a.n2, REGISTER, { sark: 2n, flags: APTPL });
  // PREEMPT (no APTPL bit of its own) removes n2's registration; the file follows
  assert.equal((await prOut(a.n1, PREEMPT, { key: 1n, sark: 2n, type: 1 })).status, ScsiStatus.Good);
  assert.deepEqual((await readKeys((await daemon(dir)).n1)).keys, [1n]);
  // REGISTER with APTPL=0: the state no longer persists through power loss
  assert.equal((await prOut(a.n1, REGISTER, { key: 1n, sark: 3n })).status, ScsiStatus.Good);
  await assert.rejects(stat(prStatePath(dir, TARGET, 1n)), { code: 'ENOENT' });
  const c = await daemon(dir);
  assert.deepEqual(await readKeys(c.n1), { generation: 0, keys: [] });
  assert.equal(await readReservation(c.n1), null);
});

test('spc4 5.13.5 APTPL: CLEAR is saved too (nothing comes back)', async () => {
  const dir = freshDir();
  const a = await daemon(dir);
  await prOut(a.n1, REGISTER, { sark: 1n, flags: APTPL });
  await prOut(a.n1, RESERVE, { key: 1n, type: PrType.ExclusiveAccess });
  assert.equal((await prOut(a.n1, CLEAR, { key: 1n })).status, ScsiStatus.Good);
  const b = await daemon(dir);
  assert.deepEqual((await readKeys(b.n1)).keys, []);
  assert.equal(await readReservation(b.n1), null);
});

test('spc4 6.16.4 REGISTER AND MOVE with APTPL: the moved reservation survives a restart', async () => {
  const dir = freshDir();
  const a = await daemon(dir);
  await prOut(a.n1, REGISTER, { sark: 1n });
  await prOut(a.n1, RESERVE, { key: 1n, type: PrType.ExclusiveAccess });
  const tid = encodeIscsiTransportId(PORT2);
  const list = Buffer.alloc(24 + tid.length);
  list.writeBigUInt64BE(1n, 0);
  list.writeBigUInt64BE(0x22n, 8);
  list[17] = 0x02 | APTPL; // UNREG, APTPL
  list.writeUInt16BE(1, 18);
  list.writeUInt32BE(tid.length, 20);
  tid.copy(list, 24);
  const cdb = Buffer.alloc(10);
  cdb[0] = 0x5f;
  cdb[1] = REGISTER_AND_MOVE;
  cdb[2] = PrType.ExclusiveAccess;
  cdb.writeUInt32BE(list.length, 5);
  assert.equal((await submit(a.n1, cdb, { dataOut: list })).status, ScsiStatus.Good);
  const b = await daemon(dir);
  assert.deepEqual((await readKeys(b.n1)).keys, [0x22n]);
  assert.equal((await read10(b.n1)).status, ScsiStatus.ReservationConflict);
  assert.equal((await read10(b.n2)).status, ScsiStatus.Good);
});

test('spc4 5.13.5 APTPL: a state that cannot be saved is not reported GOOD', async () => {
  const dir = freshDir();
  const { n1 } = await daemon(dir);
  await writeFile(dir, 'a file where the directory should be');
  const r = await prOut(n1, REGISTER, { sark: 1n, flags: APTPL });
  assert.equal(r.status, ScsiStatus.CheckCondition);
  assert.equal(senseText(r), '4/44/0'); // INTERNAL TARGET FAILURE
});

test('spc4 5.13.5 APTPL: a corrupt or foreign saved state refuses the LU instead of dropping reservations', async () => {
  const dir = freshDir();
  const a = await daemon(dir);
  await prOut(a.n1, REGISTER, { sark: 1n, flags: APTPL });
  const file = prStatePath(dir, TARGET, 1n);
  const good = await readFile(file, 'utf8');
  for (const bad of ['{', good.replace(TARGET, 'iqn.2024-01.test:other'), good.replace('"0x1"', '"zz"')]) {
    await writeFile(file, bad);
    const system = new TargetSystem({ storeTypes: [testStoreType()] });
    system.registerDriver(stubDriver());
    system.prStateDir = dir;
    system.createTarget('iscsi', 1, TARGET);
    assert.equal(await system.createLu(1, 1n, { path: String(1 << 20) }), AdminError.InvalidRequest);
  }
});

test('spc4 5.13.5 APTPL state file: round trip, keys and TransportIDs recorded, bad fields rejected', () => {
  const state = {
    generation: 7,
    aptpl: true,
    type: PrType.WriteExclusiveRegistrantsOnly,
    holder: PORT1,
    registrations: [
      { port: PORT1, key: 0xffff_ffff_ffff_ffffn, allTargetPorts: true },
      { port: NAME2, key: 5n, allTargetPorts: false },
    ],
  };
  const text = encodePrState(state, TARGET, 3n);
  assert.deepEqual(decodePrState(text, TARGET, 3n), state);
  const doc = JSON.parse(text) as { registrations: { transportId: string }[] };
  assert.equal(doc.registrations[1]!.transportId, encodeIscsiTransportId(NAME2).toString('hex'));
  assert.throws(() => decodePrState(text, TARGET, 4n), PrStateError);
  assert.throws(() => decodePrState(text.replace('"type": 5', '"type": 2'), TARGET, 3n), PrStateError);
  assert.throws(
    () => decodePrState(text.replace('"generation": 7', '"generation": -1'), TARGET, 3n),
    PrStateError,
  );
});

// ---------------------------------------------------------------------------------------------
// SPEC_I_PT and ALL_TG_PT

test('spc4 5.13.7 REGISTER with SPEC_I_PT: the issuer and every TransportID are registered; READ FULL STATUS lists them', async () => {
  const { n1, n2 } = await daemon(null);
  const r = await prOut(n1, REGISTER, { sark: 0x77n, flags: SPEC_I_PT, extra: transportIds(PORT2, NAME3) });
  assert.equal(r.status, ScsiStatus.Good);
  assert.deepEqual(await readKeys(n1), { generation: 1, keys: [0x77n, 0x77n, 0x77n] });
  assert.deepEqual(
    (await readFullStatus(n1)).map((s) => [s.port, s.key]),
    [
      [PORT1, 0x77n],
      [PORT2, 0x77n],
      [NAME3, 0x77n],
    ],
  );
  // the specified I_T nexus is registered: it can reserve with the key
  assert.equal(
    (await prOut(n2, RESERVE, { key: 0x77n, type: PrType.WriteExclusive })).status,
    ScsiStatus.Good,
  );
  const full = await readFullStatus(n1);
  assert.deepEqual(
    full.map((s) => [s.holder, s.type]),
    [
      [false, 0],
      [true, PrType.WriteExclusive],
      [false, 0],
    ],
  );
});

test('spc4 7.6.4.6 SPEC_I_PT with a name-only TransportID registers every initiator port of that name', async () => {
  const { system, n1 } = await daemon(null);
  await prOut(n1, REGISTER, { sark: 1n, flags: SPEC_I_PT, extra: transportIds(NAME3) });
  await prOut(n1, RESERVE, { key: 1n, type: PrType.WriteExclusiveRegistrantsOnly });
  const target = system.targets.get(1)!;
  const n3 = target.createNexus(3, NAME3, 'info', PORT3);
  const other = target.createNexus(4, NAME3, 'info', `${NAME3},i,0x400000000009`);
  for (const n of [n3, other]) n.luInfo(target.luns[1]!).unitAttentions.length = 0;
  assert.equal((await write10(n3)).status, ScsiStatus.Good);
  assert.equal((await write10(other)).status, ScsiStatus.Good);
  // and one of them may unregister it (sark 0 with the key)
  assert.equal((await prOut(other, REGISTER, { key: 1n, sark: 0n })).status, ScsiStatus.Good);
  assert.equal((await write10(n3)).status, ScsiStatus.ReservationConflict);
});

test('spc4 5.13.11.4 unit attentions reach every I_T nexus a name-only registration covers', async () => {
  const { system, n1 } = await daemon(null);
  const target = system.targets.get(1)!;
  const lu = target.luns[1]!;
  const n3 = target.createNexus(3, NAME3, 'info', PORT3);
  const other = target.createNexus(4, NAME3, 'info', `${NAME3},i,0x400000000009`);
  for (const n of [n3, other]) n.luInfo(lu).unitAttentions.length = 0;
  // n1 registers itself and NAME3 (every port of that name) with key 1; NAME3 changes its key to 3
  await prOut(n1, REGISTER, { sark: 1n, flags: SPEC_I_PT, extra: transportIds(NAME3) });
  assert.equal((await prOut(n3, REGISTER, { key: 1n, sark: 3n })).status, ScsiStatus.Good);
  // n1 preempts key 3
  assert.equal(
    (await prOut(n1, PREEMPT, { key: 1n, sark: 3n, type: PrType.WriteExclusive })).status,
    ScsiStatus.Good,
  );
  // REGISTRATIONS PREEMPTED (2A/05) for both ports of NAME3
  for (const n of [n3, other]) assert.equal(senseText(await write10(n)), '6/2a/5');
});

test('spc4 6.16.3.1 SPEC_I_PT errors: registered issuer, duplicate or registered TransportID, bad lengths; all or nothing', async () => {
  const { n1, n2 } = await daemon(null);
  await prOut(n2, REGISTER, { sark: 2n });
  // a TransportID naming a registered I_T nexus: nothing at all is registered
  let r = await prOut(n1, REGISTER, { sark: 1n, flags: SPEC_I_PT, extra: transportIds(PORT3, PORT2) });
  assert.equal(senseText(r), '5/26/0');
  r = await prOut(n1, REGISTER, { sark: 1n, flags: SPEC_I_PT, extra: transportIds(PORT3, PORT3) });
  assert.equal(senseText(r), '5/26/0');
  assert.deepEqual((await readKeys(n1)).keys, [2n]);
  // TRANSPORTID PARAMETER DATA LENGTH not matching the list
  const extra = transportIds(PORT3);
  extra.writeUInt32BE(extra.length, 0);
  r = await prOut(n1, REGISTER, { sark: 1n, flags: SPEC_I_PT, extra });
  assert.equal(senseText(r), '5/1a/0');
  // not an iSCSI TransportID (PROTOCOL IDENTIFIER 0 = Fibre Channel)
  const fc = transportIds(PORT3);
  fc[4] = 0x00;
  r = await prOut(n1, REGISTER, { sark: 1n, flags: SPEC_I_PT, extra: fc });
  assert.equal(senseText(r), '5/26/0');
  // a registered issuer may not use SPEC_I_PT (SPC-4 5.13.7)
  r = await prOut(n2, REGISTER, { key: 2n, sark: 3n, flags: SPEC_I_PT, extra: transportIds(PORT3) });
  assert.equal(senseText(r), '5/24/0');
  // unregistered issuer with a non-zero RESERVATION KEY: conflict
  r = await prOut(n1, REGISTER, { key: 9n, sark: 1n, flags: SPEC_I_PT, extra: transportIds(PORT3) });
  assert.equal(r.status, ScsiStatus.ReservationConflict);
  assert.deepEqual(await readKeys(n1), { generation: 1, keys: [2n] });
});

test('spc4 6.16.3.1 ALL_TG_PT (ATP_C): registered for our target port; READ FULL STATUS shows ALL_TG_PT, also with SPEC_I_PT', async () => {
  const { n1, n2 } = await daemon(null);
  await prOut(n1, REGISTER, { sark: 1n, flags: ALL_TG_PT | SPEC_I_PT, extra: transportIds(PORT3) });
  await prOut(n2, REGISTER, { sark: 2n });
  assert.deepEqual(
    (await readFullStatus(n1)).map((s) => [s.port, s.allTgPt]),
    [
      [PORT1, true],
      [PORT3, true],
      [PORT2, false],
    ],
  );
  assert.equal((await prOut(n1, RESERVE, { key: 1n, type: PrType.ExclusiveAccess })).status, ScsiStatus.Good);
  assert.equal((await read10(n1)).status, ScsiStatus.Good);
  assert.equal((await read10(n2)).status, ScsiStatus.ReservationConflict);
});

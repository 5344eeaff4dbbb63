import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus, TaskAttribute } from '../../../src/scsi/command.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';
import { resetLu } from '../../../src/scsi/nexus.js';
import {
  decodeIscsiTransportId,
  encodeIscsiTransportId,
  PersistentReservations,
  PrAccess,
  PrType,
} from '../../../src/scsi/pr.js';
import { MemoryStore } from '../../../src/backing/memory.js';
import { cdb10, dataIn, GatedStore, makeHarness, senseText, submit, type Harness } from './harness.js';

const PORT1 = 'iqn.2024-01.test:init,i,0x400000000001';
const PORT2 = 'iqn.2024-01.test:init2,i,0x400000000002';

/** Harness with two I_T nexuses (ports PORT1 / PORT2), unit attentions drained. */
async function twoNexuses(opts: Parameters<typeof makeHarness>[0] = {}): Promise<Harness & { n2: ItNexus }> {
  const h = await makeHarness(opts);
  h.nexus.initiatorPort = PORT1;
  const target = h.system.targets.get(1)!;
  const n2 = target.createNexus(2, 'iqn.2024-01.test:init2', 'info', PORT2);
  for (const lu of target.luns) n2.luInfo(lu).unitAttentions.length = 0;
  return { ...h, n2 };
}

interface ProutParams {
  type?: number;
  scope?: number;
  key?: bigint;
  sark?: bigint;
  flags?: number;
  listLength?: number;
  attribute?: TaskAttribute;
}

/** PERSISTENT RESERVE OUT with the basic 24-byte parameter list. */
function prOut(nexus: ItNexus, action: number, p: ProutParams = {}) {
  const list = Buffer.alloc(24);
  list.writeBigUInt64BE(p.key ?? 0n, 0);
  list.writeBigUInt64BE(p.sark ?? 0n, 8);
  list[20] = p.flags ?? 0;
  const len = p.listLength ?? 24;
  const cdb = [0x5f, action, ((p.scope ?? 0) << 4) | (p.type ?? 0), 0, 0, 0, 0, 0, len, 0];
  return submit(nexus, cdb, { dataOut: list.subarray(0, Math.min(24, len)), attribute: p.attribute });
}

/** PERSISTENT RESERVE IN. */
function prIn(nexus: ItNexus, action: number, alloc = 8192) {
  return submit(nexus, [0x5e, action, 0, 0, 0, 0, 0, alloc >> 8, alloc & 0xff, 0]);
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

const REGISTER = 0;
const RESERVE = 1;
const RELEASE = 2;
const CLEAR = 3;
const PREEMPT = 4;
const PREEMPT_AND_ABORT = 5;
const REGISTER_IGNORE = 6;
const REGISTER_AND_MOVE = 7;

const read10 = (n: ItNexus) => submit(n, cdb10(0x28, 1, 1), { readLength: 512 });
const write10 = (n: ItNexus, attribute?: TaskAttribute) =>
  submit(n, cdb10(0x2a, 1, 1), { dataOut: Buffer.alloc(512, 7), attribute });

function pendingUas(nexus: ItNexus, h: Harness): string[] {
  const lu = h.system.targets.get(1)!.luns.find((l) => l.lun === 1n)!;
  return nexus.luInfo(lu).unitAttentions.map((r) => String(r));
}

test('spc4 6.15.2 READ KEYS: empty list; ADDITIONAL LENGTH is not cut by the allocation length', async () => {
  const { nexus } = await twoNexuses();
  const empty = dataIn(await prIn(nexus, 0));
  assert.deepEqual([...empty], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal((await prOut(nexus, REGISTER_IGNORE, { sark: 0xabcn })).status, ScsiStatus.Good);
  const cut = await prIn(nexus, 0, 8);
  assert.equal(dataIn(cut).length, 8);
  assert.equal(dataIn(cut).readUInt32BE(4), 8); // one key, although none fits
});

test('spc4 5.13.7 REGISTER: register, wrong key -> RESERVATION CONFLICT, change key, unregister; PRgeneration counts', async () => {
  const { nexus } = await twoNexuses();
  assert.equal((await prOut(nexus, REGISTER, { sark: 0x11n })).status, ScsiStatus.Good);
  assert.deepEqual(await readKeys(nexus), { generation: 1, keys: [0x11n] });
  // registered: RESERVATION KEY must be the registered key (libiscsi ProutRegister.Simple)
  assert.equal((await prOut(nexus, REGISTER, { sark: 0x12n })).status, ScsiStatus.ReservationConflict);
  assert.equal((await prOut(nexus, REGISTER, { key: 0x11n, sark: 0x12n })).status, ScsiStatus.Good);
  assert.deepEqual(await readKeys(nexus), { generation: 2, keys: [0x12n] });
  // REGISTER AND IGNORE EXISTING KEY ignores the RESERVATION KEY field
  assert.equal((await prOut(nexus, REGISTER_IGNORE, { key: 0x999n, sark: 0x13n })).status, ScsiStatus.Good);
  assert.equal((await prOut(nexus, REGISTER, { key: 0x13n, sark: 0n })).status, ScsiStatus.Good);
  assert.deepEqual(await readKeys(nexus), { generation: 4, keys: [] });
  // not registered, non-zero RESERVATION KEY -> conflict; nothing counted
  assert.equal(
    (await prOut(nexus, REGISTER, { key: 0x1n, sark: 0x2n })).status,
    ScsiStatus.ReservationConflict,
  );
  assert.equal((await readKeys(nexus)).generation, 4);
});

test('spc4 6.15.4 REPORT CAPABILITIES without APTPL storage: CRH, SIP_C, ATP_C, PTPL_C 0, TMV + ALLOW COMMANDS 001b, all six types', async () => {
  const { nexus } = await twoNexuses();
  assert.deepEqual([...dataIn(await prIn(nexus, 2))], [0, 8, 0x1c, 0x90, 0xea, 0x01, 0, 0]);
});

test('spc4 6.15.1 PERSISTENT RESERVE IN service actions 4..1Fh -> INVALID FIELD IN CDB', async () => {
  const { nexus } = await twoNexuses();
  for (const sa of [4, 5, 0x10, 0x1f]) assert.equal(senseText(await prIn(nexus, sa)), '5/24/0');
  for (const sa of [0, 1, 2, 3]) assert.equal((await prIn(nexus, sa)).status, ScsiStatus.Good);
});

test('spc4 6.16.3 PERSISTENT RESERVE OUT: list length, SCOPE, TYPE, APTPL (no PTPL_C) and SPEC_I_PT checks', async () => {
  const { nexus } = await twoNexuses();
  assert.equal(senseText(await prOut(nexus, REGISTER, { sark: 1n, listLength: 23 })), '5/1a/0');
  assert.equal(senseText(await prOut(nexus, REGISTER, { sark: 1n, flags: 0x01 })), '5/26/0'); // APTPL
  // SPEC_I_PT needs the TRANSPORTID PARAMETER DATA LENGTH field after the 24 bytes
  assert.equal(senseText(await prOut(nexus, REGISTER, { sark: 1n, flags: 0x08 })), '5/1a/0');
  // SPEC_I_PT is valid for REGISTER only
  assert.equal(senseText(await prOut(nexus, REGISTER_IGNORE, { sark: 1n, flags: 0x08 })), '5/26/0');
  assert.deepEqual((await readKeys(nexus)).keys, []);
  assert.equal((await prOut(nexus, REGISTER, { sark: 1n, flags: 0x04 })).status, ScsiStatus.Good); // ALL_TG_PT
  assert.equal(senseText(await prOut(nexus, RESERVE, { key: 1n, type: 2 })), '5/24/0');
  assert.equal(senseText(await prOut(nexus, RESERVE, { key: 1n, type: 1, scope: 1 })), '5/24/0');
  assert.equal(senseText(await submit(nexus, [0x5f, 8, 0, 0, 0, 0, 0, 0, 24, 0])), '5/24/0');
});

/** libiscsi ProutReserve.Access*: [registered i2 read, write, unregistered i2 read, write]. */
const ACCESS: [PrType, boolean[]][] = [
  [PrType.ExclusiveAccess, [false, false, false, false]],
  [PrType.WriteExclusive, [true, false, true, false]],
  [PrType.ExclusiveAccessRegistrantsOnly, [true, true, false, false]],
  [PrType.WriteExclusiveRegistrantsOnly, [true, true, true, false]],
  [PrType.ExclusiveAccessAllRegistrants, [true, true, false, false]],
  [PrType.WriteExclusiveAllRegistrants, [true, true, true, false]],
];

for (const [type, expected] of ACCESS) {
  test(`spc4 5.13.1 Table 63 / sbc4 4.17: access of another I_T nexus under type ${PrType[type]}`, async () => {
    const h = await twoNexuses();
    const { nexus, n2 } = h;
    await prOut(nexus, REGISTER_IGNORE, { sark: 0xa1n });
    await prOut(n2, REGISTER_IGNORE, { sark: 0xb2n });
    assert.equal((await prOut(nexus, RESERVE, { key: 0xa1n, type })).status, ScsiStatus.Good);
    const allReg =
      type === PrType.ExclusiveAccessAllRegistrants || type === PrType.WriteExclusiveAllRegistrants;
    assert.deepEqual(await readReservation(n2), { key: allReg ? 0n : 0xa1n, type });
    assert.equal((await read10(nexus)).status, ScsiStatus.Good);
    assert.equal((await write10(nexus)).status, ScsiStatus.Good);
    const ok = (s: ScsiStatus) => s === ScsiStatus.Good;
    const got = [ok((await read10(n2)).status), ok((await write10(n2)).status)];
    await prOut(n2, REGISTER, { key: 0xb2n, sark: 0n });
    got.push(ok((await read10(n2)).status), ok((await write10(n2)).status));
    assert.deepEqual(got, expected);
    // informational commands are never blocked
    assert.equal((await submit(n2, [0x00, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
    assert.equal((await submit(n2, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
    assert.equal((await submit(n2, [0x1a, 0, 0x3f, 0, 255, 0])).status, ScsiStatus.ReservationConflict);
    assert.equal((await prOut(nexus, RELEASE, { key: 0xa1n, type })).status, ScsiStatus.Good);
    assert.equal(await readReservation(nexus), null);
  });
}

test('spc4 5.13.9 RESERVE: same type again is GOOD; other type or other I_T nexus -> RESERVATION CONFLICT', async () => {
  const { nexus, n2 } = await twoNexuses();
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(n2, REGISTER_IGNORE, { sark: 2n });
  assert.equal(
    (await prOut(nexus, RESERVE, { key: 1n, type: PrType.WriteExclusive })).status,
    ScsiStatus.Good,
  );
  assert.equal(
    (await prOut(nexus, RESERVE, { key: 1n, type: PrType.WriteExclusive })).status,
    ScsiStatus.Good,
  );
  assert.equal(
    (await prOut(nexus, RESERVE, { key: 1n, type: PrType.ExclusiveAccess })).status,
    ScsiStatus.ReservationConflict,
  );
  assert.equal(
    (await prOut(n2, RESERVE, { key: 2n, type: PrType.WriteExclusive })).status,
    ScsiStatus.ReservationConflict,
  );
  // wrong key -> conflict; RESERVE does not change PRgeneration
  assert.equal(
    (await prOut(nexus, RESERVE, { key: 9n, type: PrType.WriteExclusive })).status,
    ScsiStatus.ReservationConflict,
  );
  assert.equal((await readKeys(nexus)).generation, 2);
});

test('spc4 5.13.11.2 RELEASE: non-holder is a no-op; wrong TYPE -> INVALID RELEASE OF PERSISTENT RESERVATION', async () => {
  const { nexus, n2 } = await twoNexuses();
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(n2, REGISTER_IGNORE, { sark: 2n });
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.ExclusiveAccess });
  assert.equal((await prOut(n2, RELEASE, { key: 2n, type: PrType.ExclusiveAccess })).status, ScsiStatus.Good);
  assert.notEqual(await readReservation(nexus), null);
  assert.equal(senseText(await prOut(nexus, RELEASE, { key: 1n, type: PrType.WriteExclusive })), '5/26/4');
  assert.equal(
    (await prOut(nexus, RELEASE, { key: 1n, type: PrType.ExclusiveAccess })).status,
    ScsiStatus.Good,
  );
  assert.equal(await readReservation(nexus), null);
});

test('spc4 5.13.11.2 RELEASE of a registrants-only reservation: RESERVATIONS RELEASED to other registrants', async () => {
  const h = await twoNexuses();
  const { nexus, n2 } = h;
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(n2, REGISTER_IGNORE, { sark: 2n });
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.WriteExclusiveRegistrantsOnly });
  await prOut(nexus, RELEASE, { key: 1n, type: PrType.WriteExclusiveRegistrantsOnly });
  assert.equal(senseText(await submit(n2, [0, 0, 0, 0, 0, 0])), '6/2a/4');
  assert.deepEqual(pendingUas(nexus, h), []);
});

test('spc4 5.13.11.2.3 holder unregisters: EA released silently, EARO with 2A/04 to others, EAAR kept', async () => {
  for (const [type, reserved, ua] of [
    [PrType.ExclusiveAccess, false, false],
    [PrType.ExclusiveAccessRegistrantsOnly, false, true],
    [PrType.ExclusiveAccessAllRegistrants, true, false],
  ] as const) {
    const h = await twoNexuses();
    const { nexus, n2 } = h;
    await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
    await prOut(n2, REGISTER_IGNORE, { sark: 2n });
    await prOut(nexus, RESERVE, { key: 1n, type });
    await prOut(nexus, REGISTER, { key: 1n, sark: 0n });
    // the unregistering nexus sees no unit attention (libiscsi ProutReserve.Ownership*)
    assert.equal((await prIn(nexus, 1)).status, ScsiStatus.Good, PrType[type]);
    assert.equal((await readReservation(nexus)) !== null, reserved, PrType[type]);
    assert.equal(pendingUas(n2, h).length > 0, ua, PrType[type]);
    if (reserved) {
      // the remaining registrant is a holder and may release
      assert.equal((await prOut(n2, RELEASE, { key: 2n, type })).status, ScsiStatus.Good);
      assert.equal(await readReservation(nexus), null);
    }
  }
});

test('spc4 5.13.11.3 CLEAR: all registrations and the reservation go; RESERVATIONS PREEMPTED to the others', async () => {
  const h = await twoNexuses();
  const { nexus, n2 } = h;
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(n2, REGISTER_IGNORE, { sark: 2n });
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.ExclusiveAccess });
  const before = (await readKeys(nexus)).generation;
  assert.equal((await prOut(n2, CLEAR, { key: 3n })).status, ScsiStatus.ReservationConflict);
  assert.equal((await prOut(n2, CLEAR, { key: 2n })).status, ScsiStatus.Good);
  assert.deepEqual(await readKeys(n2), { generation: before + 1, keys: [] });
  assert.equal(await readReservation(n2), null);
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '6/2a/3');
  assert.deepEqual(pendingUas(n2, h), []);
});

test('spc4 5.13.11.4.4 PREEMPT without a reservation removes registrations by key (2A/05); SARK 0 invalid', async () => {
  const { nexus, n2 } = await twoNexuses();
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(n2, REGISTER_IGNORE, { sark: 2n });
  const before = (await readKeys(nexus)).generation;
  assert.equal(senseText(await prOut(n2, PREEMPT, { key: 2n, sark: 0n, type: 3 })), '5/26/0');
  assert.equal(
    (await prOut(n2, PREEMPT, { key: 2n, sark: 7n, type: 3 })).status,
    ScsiStatus.ReservationConflict,
  );
  assert.equal((await prOut(n2, PREEMPT, { key: 2n, sark: 1n, type: 3 })).status, ScsiStatus.Good);
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '6/2a/5');
  assert.deepEqual(await readKeys(nexus), { generation: before + 1, keys: [2n] });
  assert.equal(await readReservation(nexus), null);
});

test('spc4 5.13.11.4.3 PREEMPT of the holder: the reservation passes to the preempting I_T nexus with its TYPE', async () => {
  const h = await twoNexuses();
  const { nexus, n2 } = h;
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(n2, REGISTER_IGNORE, { sark: 2n });
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.ExclusiveAccess });
  assert.equal(
    (await prOut(n2, PREEMPT, { key: 2n, sark: 1n, type: PrType.WriteExclusive })).status,
    ScsiStatus.Good,
  );
  assert.deepEqual(await readReservation(n2), { key: 2n, type: PrType.WriteExclusive });
  assert.deepEqual((await readKeys(n2)).keys, [2n]);
  assert.equal(senseText(await submit(nexus, [0, 0, 0, 0, 0, 0])), '6/2a/5');
  // the preempted nexus may still read under Write Exclusive, but not write
  assert.equal((await read10(nexus)).status, ScsiStatus.Good);
  assert.equal((await write10(nexus)).status, ScsiStatus.ReservationConflict);
});

test('spc4 5.13.11.4.3 PREEMPT with SARK 0 under an all-registrants reservation removes every other registrant', async () => {
  const { nexus, n2 } = await twoNexuses();
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(n2, REGISTER_IGNORE, { sark: 2n });
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.WriteExclusiveAllRegistrants });
  assert.equal(
    (await prOut(n2, PREEMPT, { key: 2n, sark: 0n, type: PrType.ExclusiveAccess })).status,
    ScsiStatus.Good,
  );
  assert.deepEqual(await readReservation(n2), { key: 2n, type: PrType.ExclusiveAccess });
  assert.deepEqual((await readKeys(n2)).keys, [2n]);
});

test('spc4 5.13.11.4.5 PREEMPT AND ABORT: queued commands of the preempted I_T nexus are aborted', async () => {
  let gated: GatedStore | undefined;
  const h = await twoNexuses({ wrap: (s: MemoryStore) => (gated = new GatedStore(s)) });
  const { nexus, n2 } = h;
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(n2, REGISTER_IGNORE, { sark: 2n });
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.WriteExclusive });
  gated!.gated = true;
  const running = write10(nexus);
  const queued = write10(nexus, TaskAttribute.Ordered);
  await new Promise((r) => setImmediate(r));
  const pa = prOut(n2, PREEMPT_AND_ABORT, {
    key: 2n,
    sark: 1n,
    type: PrType.ExclusiveAccess,
    attribute: TaskAttribute.HeadOfQueue,
  });
  assert.equal((await pa).status, ScsiStatus.Good);
  gated!.release();
  assert.equal((await queued).aborted, true);
  assert.equal((await running).status, ScsiStatus.Good);
  assert.deepEqual(await readReservation(n2), { key: 2n, type: PrType.ExclusiveAccess });
});

/** REGISTER AND MOVE parameter list (SPC-4 6.16.4) with an iSCSI TransportID. */
function registerAndMove(
  nexus: ItNexus,
  key: bigint,
  sark: bigint,
  dest: string,
  unreg: boolean,
  type: number,
) {
  const tid = encodeIscsiTransportId(dest);
  const list = Buffer.alloc(24 + tid.length);
  list.writeBigUInt64BE(key, 0);
  list.writeBigUInt64BE(sark, 8);
  list[17] = unreg ? 0x02 : 0;
  list.writeUInt16BE(1, 18);
  list.writeUInt32BE(tid.length, 20);
  tid.copy(list, 24);
  return submit(nexus, [0x5f, REGISTER_AND_MOVE, type, 0, 0, 0, 0, 0, list.length, 0], { dataOut: list });
}

test('spc4 5.13.8 REGISTER AND MOVE: the holder hands the reservation to another I_T nexus', async () => {
  const { nexus, n2 } = await twoNexuses();
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  assert.equal(
    (await registerAndMove(nexus, 1n, 5n, PORT2, true, PrType.WriteExclusive)).status,
    ScsiStatus.ReservationConflict, // not a holder yet
  );
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.WriteExclusive });
  assert.equal(senseText(await registerAndMove(nexus, 1n, 5n, PORT1, true, PrType.WriteExclusive)), '5/26/0');
  assert.equal(
    (await registerAndMove(nexus, 1n, 5n, PORT2, true, PrType.WriteExclusive)).status,
    ScsiStatus.Good,
  );
  assert.deepEqual(await readReservation(n2), { key: 5n, type: PrType.WriteExclusive });
  assert.deepEqual((await readKeys(n2)).keys, [5n]);
  assert.equal((await write10(n2)).status, ScsiStatus.Good);
  assert.equal((await write10(nexus)).status, ScsiStatus.ReservationConflict);
});

test('spc4 6.15.5 READ FULL STATUS: key, R_HOLDER, scope/type, relative port 1, iSCSI TransportID', async () => {
  const { nexus, n2 } = await twoNexuses();
  await prOut(nexus, REGISTER_IGNORE, { sark: 0x77n, flags: 0x04 });
  await prOut(n2, REGISTER_IGNORE, { sark: 0x88n });
  await prOut(nexus, RESERVE, { key: 0x77n, type: PrType.ExclusiveAccess });
  const d = dataIn(await prIn(nexus, 3));
  assert.equal(d.readUInt32BE(4), d.length - 8);
  const first = d.subarray(8);
  assert.equal(first.readBigUInt64BE(0), 0x77n);
  assert.equal(first[12], 0x03); // ALL_TG_PT, R_HOLDER
  assert.equal(first[13], PrType.ExclusiveAccess);
  assert.equal(first.readUInt16BE(18), 1);
  const tidLen = first.readUInt32BE(20);
  assert.equal(decodeIscsiTransportId(first.subarray(24, 24 + tidLen)).port, PORT1);
  const second = first.subarray(24 + tidLen);
  assert.equal(second.readBigUInt64BE(0), 0x88n);
  assert.equal(second[12], 0);
});

test('spc3 5.6.3 RESERVE(6)/RELEASE(6) next to registrations: conflict, or a GOOD no-op for the holder', async () => {
  const h = await twoNexuses();
  const { nexus, n2 } = h;
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  assert.equal((await submit(n2, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.ReservationConflict);
  assert.equal((await submit(nexus, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.ReservationConflict);
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.WriteExclusive });
  assert.equal((await submit(nexus, [0x16, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal((await submit(nexus, [0x17, 0, 0, 0, 0, 0])).status, ScsiStatus.Good);
  assert.equal(h.system.targets.get(1)!.luns.find((l) => l.lun === 1n)!.reservation, null);
  assert.equal((await prIn(n2, 1)).status, ScsiStatus.Good);
});

test('spc4 5.13.1 registrations and the reservation survive I_T nexus loss and LOGICAL UNIT RESET', async () => {
  const h = await twoNexuses();
  const { nexus } = h;
  const target = h.system.targets.get(1)!;
  await prOut(nexus, REGISTER_IGNORE, { sark: 1n });
  await prOut(nexus, RESERVE, { key: 1n, type: PrType.ExclusiveAccess });
  await nexus.close();
  await resetLu(target.luns.find((l) => l.lun === 1n)!);
  const again = target.createNexus(3, 'iqn.2024-01.test:init', 'info', PORT1.toUpperCase());
  for (const lu of target.luns) again.luInfo(lu).unitAttentions.length = 0;
  assert.deepEqual(await readReservation(again), { key: 1n, type: PrType.ExclusiveAccess });
  assert.equal((await write10(again)).status, ScsiStatus.Good); // same port: still the holder
});

test('spc4 7.6.4.6 iSCSI TransportID: format 00b name and 01b port round trip; other protocols refused', () => {
  for (const port of ['iqn.2024-01.test:a', PORT1]) {
    const t = encodeIscsiTransportId(port);
    assert.equal(t.length % 4, 0);
    assert.ok(t.length >= 24);
    assert.equal(decodeIscsiTransportId(t).port, port);
  }
  assert.equal(encodeIscsiTransportId(PORT1)[0], 0x45);
  assert.equal(encodeIscsiTransportId('iqn.x:y')[0], 0x05);
  const fc = Buffer.alloc(24);
  assert.throws(() => decodeIscsiTransportId(fc), /InvalidFieldInParameterList/);
  const truncated = encodeIscsiTransportId(PORT1).subarray(0, 10);
  assert.throws(() => decodeIscsiTransportId(truncated), /InvalidFieldInParameterList/);
});

test('spc4 5.13.1 conflict classes: reads pass Write Exclusive, writes never pass, Allowed always passes', () => {
  const pr = new PersistentReservations();
  assert.ok(pr.register('a', 0n, 1n, false, false));
  assert.ok(pr.reserve('a', 1n, PrType.WriteExclusive));
  assert.equal(pr.conflicts('b', PrAccess.Read), false);
  assert.equal(pr.conflicts('b', PrAccess.Write), true);
  assert.equal(pr.conflicts('b', PrAccess.Allowed), false);
  assert.equal(pr.conflicts('A', PrAccess.Write), false); // same port, other case
});

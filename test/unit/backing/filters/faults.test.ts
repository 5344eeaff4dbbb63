import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FaultSpecError,
  FaultStore,
  memoryStoreType,
  MemoryStore,
  parseFaultSpec,
  withFaultFilter,
} from '../../../../src/backing/index.js';
import type { BackingStore } from '../../../../src/backing/store.js';
import { cdb10, makeHarness, submit, senseText } from '../../scsi/harness.js';

const READ10 = 0x28;
const WRITE10 = 0x2a;
const SYNC_CACHE10 = 0x35;

function faulty(bsopts: string, blockSize = 512): FaultStore {
  return new FaultStore(new MemoryStore('1M', 1024 * 1024, false), parseFaultSpec(bsopts), blockSize);
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
}

test('fault filter: --bsopts fault/delay keys are taken, other items go to the store', () => {
  const spec = parseFaultSpec(
    'conf=/etc/x;fault=read:EIO@lba=100-200;fault=write:ENOSPC@every=10;delay=50ms',
  );
  assert.equal(spec.rest, 'conf=/etc/x');
  assert.deepEqual(spec.faults[0], {
    ops: ['read'],
    error: 'EIO',
    selector: { kind: 'lba', first: 100, last: 200 },
  });
  assert.deepEqual(spec.faults[1]?.selector, { kind: 'every', n: 10 });
  assert.deepEqual(spec.delays, [{ ops: ['read', 'write', 'flush', 'unmap'], ms: 50 }]);
  assert.deepEqual(parseFaultSpec('delay=write:2s').delays, [{ ops: ['write'], ms: 2000 }]);
  for (const bad of [
    'fault=bogus:EIO',
    'fault=read:eio',
    'fault=read:EIO@lba=9-3',
    'fault=read:EIO@every=0',
    'delay=5m',
    'fault=read:EIO@x=1',
  ])
    assert.throws(() => parseFaultSpec(bad), FaultSpecError, bad);
});

test('fault filter: lba= hits only calls touching the range, in logical blocks', async () => {
  const s = faulty('fault=read:EIO@lba=100-200', 4096);
  const buf = Buffer.alloc(4096);
  assert.equal(await code(s.read(buf, 99 * 4096)), undefined);
  assert.equal(await code(s.read(Buffer.alloc(8192), 99 * 4096)), 'EIO');
  assert.equal(await code(s.read(buf, 200 * 4096)), 'EIO');
  assert.equal(await code(s.read(buf, 201 * 4096)), undefined);
  assert.equal(await code(s.write([buf], 150 * 4096, false)), undefined, 'writes are not hit by a read rule');
});

test('fault filter: every=N fails each Nth call, after=N every call past N', async () => {
  const s = faulty('fault=write:ENOSPC@every=3;fault=flush:EIO@after=1');
  const results: (string | undefined)[] = [];
  for (let i = 0; i < 6; i++) results.push(await code(s.write([Buffer.alloc(512)], 0, false)));
  assert.deepEqual(results, [undefined, undefined, 'ENOSPC', undefined, undefined, 'ENOSPC']);
  assert.equal(await code(s.flush()), undefined);
  assert.equal(await code(s.flush()), 'EIO');
});

test('fault filter: delay= holds a call back; stall hangs it until close (EIO)', async () => {
  const s = faulty('delay=read:40ms;fault=write:stall');
  const t0 = Date.now();
  await s.read(Buffer.alloc(512), 0);
  assert.ok(Date.now() - t0 >= 35);
  let settled = false;
  const stuck = code(s.write([Buffer.alloc(512)], 0, false)).finally(() => (settled = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(settled, false, 'a stalled write must not complete');
  await s.close();
  assert.equal(await stuck, 'EIO');
});

test('fault filter: wraps only when asked, and mirrors the optional calls of the store', async () => {
  const type = withFaultFilter(memoryStoreType);
  const plain = await type.open('1M', { bsopts: '' });
  assert.ok(!(plain instanceof FaultStore));
  const wrapped: BackingStore = await type.open('1M', { bsopts: 'fault=unmap:EIO' });
  assert.ok(wrapped instanceof FaultStore);
  assert.equal(wrapped.size, 1024 * 1024);
  assert.equal(typeof wrapped.unmap, typeof plain.unmap);
  assert.equal(await code(wrapped.unmap!(0, 512)), 'EIO');
  await assert.rejects(type.open('1M', { bsopts: 'fault=read' }), FaultSpecError);
});

test('sbc4 4.18 / spc4 4.4: injected EIO -> MEDIUM ERROR 11/00 on read, 0C/00 on write and SYNCHRONIZE CACHE', async () => {
  const spec = parseFaultSpec('fault=read:EIO@lba=8;fault=write:EIO@lba=16;fault=flush:EIO');
  // A store that flushes (memory does not), so SYNCHRONIZE CACHE reaches the filter.
  const flushing = (m: MemoryStore): BackingStore =>
    Object.create(m, { capabilities: { value: { ...m.capabilities, flush: true } } }) as BackingStore;
  const h = await makeHarness({ wrap: (m) => new FaultStore(flushing(m), spec) });
  assert.equal(senseText(await submit(h.nexus, cdb10(READ10, 7, 2), { readLength: 1024 })), '3/11/0');
  assert.equal((await submit(h.nexus, cdb10(READ10, 9, 1), { readLength: 512 })).status, 0);
  const data = Buffer.alloc(512, 1);
  assert.equal(senseText(await submit(h.nexus, cdb10(WRITE10, 16, 1), { dataOut: data })), '3/c/0');
  assert.equal(senseText(await submit(h.nexus, cdb10(SYNC_CACHE10, 0, 0), { readLength: 0 })), '3/c/0');
});

test('sbc4 4.7.3.6: a full disk (ENOSPC) -> DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT 27/07', async () => {
  const spec = parseFaultSpec('fault=write:ENOSPC');
  const h = await makeHarness({ wrap: (m) => new FaultStore(m, spec) });
  const data = Buffer.alloc(512, 2);
  assert.equal(senseText(await submit(h.nexus, cdb10(WRITE10, 0, 1), { dataOut: data })), '7/27/7');
});

test('fault filter: a stalled store does not block another LUN', async () => {
  let opened = 0;
  const spec = parseFaultSpec('fault=any:stall');
  const h = await makeHarness({ wrap: (m) => (opened++ === 0 ? new FaultStore(m, spec) : m) });
  assert.equal(await h.system.createLu(1, 2n, { path: String(1024 * 1024) }), 0);
  // Creating LUN 2 raised REPORTED LUNS DATA HAS CHANGED: drain it everywhere.
  for (const lu of h.system.targets.get(1)!.luns) h.nexus.luInfo(lu).unitAttentions.length = 0;
  let stuckDone = false;
  const stuck = submit(h.nexus, cdb10(READ10, 0, 1), { lun: 1, readLength: 512 }).then((c) => {
    stuckDone = true;
    return c;
  });
  for (let i = 0; i < 20; i++) {
    const c = await submit(h.nexus, cdb10(WRITE10, i, 1), { lun: 2, dataOut: Buffer.alloc(512, i) });
    assert.equal(c.status, 0);
  }
  assert.equal(stuckDone, false);
  await h.stores[0]!.close();
  assert.equal(senseText(await stuck), '3/11/0');
});

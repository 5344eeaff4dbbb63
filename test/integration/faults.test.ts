/**
 * Backing-store faults through a real tgtd (issue 5 item 7), made with the fault-injection
 * filter of --bsopts (src/backing/filters, docs/robustness.md): I/O errors become MEDIUM ERROR
 * with the ASC of the operation, a full disk the thin-provisioning sense, and a stuck store
 * stalls only its own LU; tgtd still stops cleanly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Session } from '../../src/initiator/index.js';
import { TgtDaemon } from '../helpers/daemon.js';
import { BLOCK, CHECK_CONDITION, closeSession, GOOD, IQN, loginReady, pattern } from './util.js';

const TARGET = `${IQN}:faults`;

function senseOf(r: { status: number; sense?: { key: number; asc: number; ascq: number } }): string {
  if (r.status !== CHECK_CONDITION || !r.sense) return `status ${r.status}`;
  const h = (n: number): string => n.toString(16).padStart(2, '0');
  return `${r.sense.key}/${h(r.sense.asc)}/${h(r.sense.ascq)}`;
}

describe('backing-store faults', () => {
  let d: TgtDaemon;
  let s: Session | undefined;

  before(async () => {
    d = await TgtDaemon.start();
    await d.addTarget({ tid: 1, name: TARGET });
    const file = await d.sparseFile('lun1.img', 4 << 20);
    const lun = (n: number, bsopts: string, bstype = 'memory', path = '4M'): Promise<void> =>
      d.addLu(1, { lun: n, bsopts, bstype, path });
    await lun(
      1,
      'fault=read:EIO@lba=100-200;fault=write:ENOSPC@every=10;fault=flush:EIO@after=1',
      'rdwr',
      file,
    );
    await lun(2, 'fault=any:stall');
    await lun(3, 'delay=write:5ms');
    s = await loginReady(d, TARGET, 1);
    for (const l of [2, 3]) await s.testUnitReady(l);
  });

  after(async () => {
    await closeSession(s);
    await d.cleanup();
  });

  test('sbc4 4.18.2: a read that hits an EIO -> MEDIUM ERROR, UNRECOVERED READ ERROR (03/11/00)', async () => {
    assert.equal(senseOf(await s!.read10(1, 150, 1, BLOCK)), '3/11/00');
    assert.equal(senseOf(await s!.read10(1, 95, 8, BLOCK)), '3/11/00', 'overlapping the range');
    assert.equal((await s!.read10(1, 201, 8, BLOCK)).status, GOOD, 'outside the range');
  });

  test('sbc4 4.7.3.6: ENOSPC on write -> DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT (07/27/07)', async () => {
    const results: string[] = [];
    for (let i = 0; i < 10; i++)
      results.push(senseOf(await s!.write10(1, 300 + i, pattern(BLOCK, i), BLOCK)));
    assert.deepEqual(results.slice(0, 9), Array(9).fill('status 0'));
    assert.equal(results[9], '7/27/07');
  });

  test('sbc4 5.24: a failing flush -> SYNCHRONIZE CACHE answers MEDIUM ERROR, WRITE ERROR (03/0c/00)', async () => {
    assert.equal((await s!.synchronizeCache(1)).status, GOOD, 'the first flush succeeds (after=1)');
    assert.equal(senseOf(await s!.synchronizeCache(1)), '3/0c/00');
  });

  test('a stuck store stalls only its own LU: the others keep answering', async () => {
    let stuckDone = false;
    const stuck = s!.read10(2, 0, 1, BLOCK).finally(() => (stuckDone = true));
    stuck.catch(() => undefined);
    for (let i = 0; i < 20; i++) {
      const data = pattern(BLOCK * 4, 1000 + i);
      assert.equal((await s!.write10(3, i * 4, data, BLOCK)).status, GOOD);
      const r = await s!.read10(3, i * 4, 4, BLOCK);
      assert.ok(r.data.equals(data), `LUN 3 block ${i * 4} reads back`);
    }
    assert.equal(stuckDone, false, 'the read on the stuck LU is still outstanding');
  });

  test('sam5 7.2 / issue 5: ABORT TASK of a command stuck in a store answers after abandon_timeout', async () => {
    await d.updateLu(1, 2, 'abandon_timeout=200');
    const stuck = s!.read10(2, 8, 1, BLOCK);
    stuck.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    const itt = s!.pendingItts().at(-1); // the previous test's stuck read is still outstanding too
    assert.notEqual(itt, undefined, 'the read is outstanding');
    const started = Date.now();
    assert.equal(await s!.abortTask(itt!, 2), 0, 'FUNCTION COMPLETE');
    assert.ok(Date.now() - started >= 150, 'after abandon_timeout');
    assert.equal((await s!.read10(3, 0, 1, BLOCK)).status, GOOD, 'the session goes on');
  });

  test('tgtadm: a malformed fault rule in --bsopts refuses the LU (invalid request)', async () => {
    const r = await d.tgtadm([
      '--lld',
      'iscsi',
      '--mode',
      'logicalunit',
      '--op',
      'new',
      '--tid',
      '1',
      '--lun',
      '9',
      '--bstype',
      'memory',
      '-b',
      '1M',
      '--bsopts',
      'fault=read:EIO@lba=x',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid request/);
  });

  test('tgtd stops cleanly (exit 0) with a command stuck in a store', async () => {
    await d.stopChecked();
  });
});

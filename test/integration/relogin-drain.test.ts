/**
 * A write that was running in the backing store when its connection died must not land after
 * the initiator has logged in again (RFC 7143 6.3.5 session reinstatement, SAM-5 I_T nexus
 * loss): the new session's final Login Response waits until the old session's commands are done.
 * Otherwise an initiator that retries the failed write and writes newer data afterwards finds it
 * overwritten by the stale write.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TgtDaemon, delay } from '../helpers/daemon.js';
import { BLOCK, closeSession, GOOD, IQN, loginReady, pattern } from './util.js';

const TARGET = `${IQN}:relogin-drain`;
const LUN = 1;
const STORE_DELAY_MS = 300;

describe('a new login waits for the commands of the initiator’s closed sessions', () => {
  let d: TgtDaemon;

  before(async () => {
    d = await TgtDaemon.start();
    await d.addTarget({ tid: 1, name: TARGET, luns: [] });
    await d.addLu(1, { lun: LUN, path: '16M', bstype: 'memory', bsopts: `delay=write:${STORE_DELAY_MS}ms` });
  });

  after(async () => {
    try {
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  for (const sameIsid of [true, false]) {
    test(`rfc7143 6.3.5 / sam5 I_T nexus loss: no stale write lands after a new login (${sameIsid ? 'same ISID: reinstatement' : 'new ISID'})`, async () => {
      const initiatorName = `${IQN}:drain-${sameIsid ? 'same' : 'new'}`;
      const isid = (n: number) => Buffer.from([0x80, 0x12, 0x34, 0x56, 0x00, n]);
      let s = await loginReady(d, TARGET, LUN, { initiatorName, isid: isid(1) });
      const acknowledged = pattern(8 * BLOCK, 1);
      const stale = pattern(8 * BLOCK, 2);
      const newer = pattern(8 * BLOCK, 3);
      try {
        assert.equal((await s.write10(LUN, 0, acknowledged, BLOCK)).status, GOOD);
        // The write sits in the store (300 ms) when the connection goes.
        const pending = s.write10(LUN, 0, stale, BLOCK).catch(() => undefined);
        await delay(50);
        s.destroy();
        await pending;
        const started = Date.now();
        s = await loginReady(d, TARGET, LUN, { initiatorName, isid: isid(sameIsid ? 1 : 2) });
        assert.ok(Date.now() - started >= STORE_DELAY_MS - 100, 'the login waited for the old write');
        // The old write is done: whatever the sector holds now stays until we write.
        assert.equal((await s.write10(LUN, 0, newer, BLOCK)).status, GOOD);
        await delay(STORE_DELAY_MS + 100);
        const r = await s.read10(LUN, 0, 8, BLOCK);
        assert.equal(r.status, GOOD);
        assert.ok(r.data.equals(newer), 'the newer write was overwritten by the stale one');
      } finally {
        await closeSession(s);
      }
    });
  }

  test('rfc7143 6.3.5: another initiator does not wait for them', async () => {
    const s = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:drain-victim` });
    const pending = s.write10(LUN, 64, pattern(8 * BLOCK, 4), BLOCK).catch(() => undefined);
    await delay(50);
    s.destroy();
    await pending;
    const started = Date.now();
    const other = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:drain-bystander` });
    try {
      assert.ok(Date.now() - started < STORE_DELAY_MS, 'an unrelated initiator logs in at once');
    } finally {
      await closeSession(other);
    }
  });
});

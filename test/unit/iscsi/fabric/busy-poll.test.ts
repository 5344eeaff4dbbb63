import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BLOCK, LUN, startFabric } from './harness.js';

test('busy poll (tgtd --iscsi busy_poll): QD 1 commands are caught by polling, and polling stops when they stop', async () => {
  const f = await startFabric({}, { busyPollUs: 200_000 });
  try {
    const s = await f.login();
    await s.testUnitReady(LUN); // power-on UA
    const data = Buffer.alloc(BLOCK * 4, 0x5a);
    assert.equal((await s.write10(LUN, 0, data, BLOCK)).status, 0);
    const poll = f.driver.busyPoll;
    const hitsBefore = poll.hits;
    for (let i = 0; i < 50; i++) {
      const r = await s.read10(LUN, i % 4, 1, BLOCK);
      assert.equal(r.status, 0);
      assert.ok(r.data.equals(data.subarray(0, BLOCK)));
    }
    assert.ok(
      poll.hits - hitsBefore >= 40,
      `${poll.hits - hitsBefore} of 50 commands found the loop polling`,
    );
    assert.ok(poll.polling, 'still polling right after the last command');
    await sleep(poll.windowUs / 1000 + 50);
    assert.ok(!poll.polling, 'the loop blocks again once the window has passed');
  } finally {
    await f.close();
  }
});

test('busy poll 0: the loop never polls', async () => {
  const f = await startFabric({}, { busyPollUs: 0 });
  try {
    const s = await f.login();
    await s.testUnitReady(LUN);
    for (let i = 0; i < 10; i++) assert.equal((await s.read10(LUN, 0, 1, BLOCK)).status, 0);
    assert.equal(f.driver.busyPoll.hits, 0);
    assert.ok(!f.driver.busyPoll.polling);
  } finally {
    await f.close();
  }
});

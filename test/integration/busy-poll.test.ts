/**
 * tgtd --iscsi busy_poll (src/iscsi/busy-poll.ts) on a real daemon: polling between commands
 * must end with the work, so an idle tgtd uses no CPU, with sessions logged in or not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TgtDaemon, delay } from '../helpers/daemon.js';
import { BLOCK, closeSession, GOOD, IQN, loginReady } from './util.js';

const TARGET = `${IQN}:busy-poll`;
const LUN = 1;

/** User + system CPU time of a process, in clock ticks (USER_HZ, 100 per second). */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('busy_poll: after a burst of QD 1 commands the daemon goes idle (no CPU while nothing arrives)', async () => {
  const d = await TgtDaemon.start({ args: ['--iscsi', 'busy_poll=1000'] });
  try {
    await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: LUN, bstype: 'memory', path: '16M' }] });
    const s = await loginReady(d, TARGET, LUN);
    try {
      for (let i = 0; i < 2000; i++) assert.equal((await s.read10(LUN, i % 64, 1, BLOCK)).status, GOOD);
      await delay(100); // well past the longest window (1 ms)
      const pid = d.proc.pid!;
      const before = cpuTicks(pid);
      await delay(1000);
      const used = cpuTicks(pid) - before;
      assert.ok(used <= 5, `idle tgtd with a session logged in used ${used * 10} ms of CPU in 1 s`);
    } finally {
      await closeSession(s);
    }
  } finally {
    await d.stop();
    await d.cleanup();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { TgtDaemon } from '../helpers/daemon.js';

/** Threads of a process (libuv's pool starts all of its threads at once, at its first job). */
function threads(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).length;
}

test('tgt §1.7 -t N: bin/tgtd -f sizes the I/O thread pool from -t, in the foreground too', async () => {
  const small = await TgtDaemon.start({ args: ['-t', '4'] });
  const large = await TgtDaemon.start({ args: ['-t', '12'] });
  try {
    assert.equal(
      threads(large.proc.pid!) - threads(small.proc.pid!),
      8,
      'eight more pool threads with -t 12',
    );
    assert.doesNotMatch(large.output, /has no effect/);
  } finally {
    await small.stop();
    await large.stop();
  }
});

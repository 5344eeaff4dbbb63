import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deferCompletion, holdCompletions, releaseCompletions } from '../../../src/scsi/completions.js';
import type { ScsiCommand } from '../../../src/scsi/command.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';

// Stand-ins: the queue only carries these to the callback.
const cmd = (n: number): ScsiCommand => ({ tag: n }) as unknown as ScsiCommand;
const nexus = {} as ItNexus;

test('execute: a deferred completion never runs inside the submitting call (fabrics are still setting up)', async () => {
  const seen: number[] = [];
  deferCompletion((c) => seen.push((c as unknown as { tag: number }).tag), cmd(1), nexus, null);
  assert.deepEqual(seen, [], 'ran synchronously');
  await Promise.resolve();
  assert.deepEqual(seen, [1]);
});

test('execute: completions run in the order they were queued, ones queued while draining included', async () => {
  const seen: number[] = [];
  const record = (c: ScsiCommand): void => {
    const tag = (c as unknown as { tag: number }).tag;
    seen.push(tag);
    // A completion that starts the next command, which finishes synchronously.
    if (tag === 2) deferCompletion(record, cmd(4), nexus, null);
  };
  for (const n of [1, 2, 3]) deferCompletion(record, cmd(n), nexus, null);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [1, 2, 3, 4]);
  // The queue is usable again after draining.
  deferCompletion(record, cmd(5), nexus, null);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
});

test('execute: a throwing completion is reported as uncaught and the ones behind it still run', async () => {
  const seen: number[] = [];
  const errors: unknown[] = [];
  const onUncaught = (err: unknown): void => {
    errors.push(err);
  };
  const listeners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', onUncaught);
  try {
    deferCompletion(
      () => {
        throw new Error('boom');
      },
      cmd(1),
      nexus,
      null,
    );
    deferCompletion(() => seen.push(2), cmd(2), nexus, null);
    await new Promise((r) => setImmediate(r));
  } finally {
    process.removeListener('uncaughtException', onUncaught);
    for (const l of listeners) process.on('uncaughtException', l);
  }
  assert.deepEqual(seen, [2]);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /boom/);
});

test('execute: completions deferred while a fabric holds them run when it releases, in order, not in a microtask', async () => {
  const seen: number[] = [];
  const record = (c: ScsiCommand): void => {
    const tag = (c as unknown as { tag: number }).tag;
    seen.push(tag);
    if (tag === 1) deferCompletion(record, cmd(3), nexus, null); // queued while draining
  };
  holdCompletions();
  holdCompletions(); // nested holds: only the outermost release drains
  deferCompletion(record, cmd(1), nexus, null);
  deferCompletion(record, cmd(2), nexus, null);
  releaseCompletions();
  assert.deepEqual(seen, [], 'an inner release does not drain');
  await Promise.resolve();
  assert.deepEqual(seen, [], 'no microtask drains held completions');
  releaseCompletions();
  assert.deepEqual(seen, [1, 2, 3], 'the outermost release ran them all, synchronously');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [1, 2, 3], 'each ran once');
  // Not holding any more: back to the microtask.
  deferCompletion(record, cmd(4), nexus, null);
  assert.deepEqual(seen, [1, 2, 3]);
  await Promise.resolve();
  assert.deepEqual(seen, [1, 2, 3, 4]);
});

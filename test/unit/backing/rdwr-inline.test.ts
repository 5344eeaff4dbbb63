import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { InlineIoGate } from '../../../src/backing/rdwr.js';

test('rdwr inline I/O: small requests run inline while they are fast', () => {
  const gate = new InlineIoGate(true);
  assert.equal(gate.allow(4096), true);
  gate.record(0.01);
  assert.equal(gate.allow(128 * 1024), true);
});

test('rdwr inline I/O: requests above 128 KiB always use the thread pool', () => {
  assert.equal(new InlineIoGate(true).allow(128 * 1024 + 512), false);
});

test('rdwr inline I/O: one slow request alone (preemption) keeps inline I/O on', () => {
  const gate = new InlineIoGate(true);
  gate.record(5);
  gate.record(0.01);
  gate.record(5);
  assert.equal(gate.allow(4096), true);
});

test('rdwr inline I/O: two slow requests in a row (slow medium) go to the thread pool until the back-off ends', async () => {
  const gate = new InlineIoGate(true, 30);
  gate.record(5);
  gate.record(5);
  assert.equal(gate.allow(4096), false, 'a slow medium must not stall the event loop');
  await sleep(40);
  assert.equal(gate.allow(4096), true, 'inline again after the back-off period');
});

test('rdwr inline I/O: off (O_DIRECT, O_SYNC writes, TGT_INLINE_IO=0) means never inline', () => {
  assert.equal(new InlineIoGate(false).allow(512), false);
});

test('rdwr inline I/O: while backing off, a request nothing else waits behind still runs inline (no hand-off to serve no one)', () => {
  const gate = new InlineIoGate(true, 60_000);
  gate.record(5);
  gate.record(5);
  assert.equal(gate.allow(4096), false, 'others may be waiting: thread pool');
  assert.equal(gate.allow(4096, true), true, 'alone: inline');
  assert.equal(gate.allow(256 * 1024, true), false, 'large requests still use the thread pool');
  assert.equal(new InlineIoGate(false).allow(4096, true), false, 'never inline when turned off');
});

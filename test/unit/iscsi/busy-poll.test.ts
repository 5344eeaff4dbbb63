import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BusyPoller, defaultBusyPollUs, type BusyPollClock } from '../../../src/iscsi/busy-poll.js';

/** A clock the test moves by hand; scheduled polls run when the test says the loop polled. */
class ManualClock implements BusyPollClock {
  ms = 1000;
  pending: (() => void)[] = [];
  now(): number {
    return this.ms;
  }
  schedule(fn: () => void): void {
    this.pending.push(fn);
  }
  /** Advance by `us`, running the poll chain as the event loop would meanwhile (one poll per us). */
  idle(us: number): void {
    for (let i = 0; i < us; i++) {
      this.ms += 0.001;
      const run = this.pending.splice(0);
      for (const fn of run) fn();
    }
  }
  get polling(): boolean {
    return this.pending.length > 0;
  }
}

test('busy poll: after work the loop keeps polling for the window, then blocks', () => {
  const clock = new ManualClock();
  const poller = new BusyPoller(200, clock);
  assert.equal(poller.windowUs, 50, 'starts at a quarter of the maximum');
  poller.touch();
  assert.ok(clock.polling);
  clock.idle(40);
  assert.ok(clock.polling, 'still within the window');
  clock.idle(20);
  assert.ok(!clock.polling, 'window over: the loop may block');
});

test('busy poll: a gap polling missed but the maximum covers grows the window (haltpoll grow)', () => {
  const clock = new ManualClock();
  const poller = new BusyPoller(200, clock);
  poller.touch();
  clock.idle(80);
  poller.wake();
  assert.equal(poller.misses, 1);
  assert.equal(poller.windowUs, 100);
  poller.touch();
  clock.idle(80);
  poller.wake();
  assert.equal(poller.hits, 1, 'caught by polling now');
  assert.equal(poller.windowUs, 100, 'a hit keeps the window');
  for (let i = 0; i < 3; i++) {
    poller.touch();
    clock.idle(150);
    poller.wake();
  }
  assert.equal(poller.windowUs, 200, 'never beyond the maximum');
  assert.equal(poller.hits, 3, 'the first 150 us gap was missed, the next two caught');
});

test('busy poll: gaps beyond the maximum halve the window down to nothing, and short ones restart it', () => {
  const clock = new ManualClock();
  const poller = new BusyPoller(200, clock);
  const windows: number[] = [];
  for (let i = 0; i < 5; i++) {
    poller.touch();
    clock.idle(1000);
    poller.wake();
    windows.push(poller.windowUs);
  }
  assert.deepEqual(windows, [25, 12.5, 6.25, 0, 0]);
  poller.touch();
  assert.ok(!clock.polling, 'a client whose commands come far apart stops the polling');
  clock.idle(30);
  poller.wake();
  assert.equal(poller.windowUs, 50, 'a short gap starts polling again');
});

test('busy poll: 0 never polls', () => {
  const clock = new ManualClock();
  const poller = new BusyPoller(0, clock);
  poller.touch();
  assert.ok(!clock.polling);
  clock.idle(10);
  poller.wake();
  assert.equal(poller.windowUs, 0);
  assert.equal(poller.misses, 0);
});

test('busy poll: off by default with one CPU, where spinning only delays the client', () => {
  assert.equal(defaultBusyPollUs(1), 0);
  assert.ok(defaultBusyPollUs(2) > 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CmdSnWindow, snLessThan } from '../../../../src/iscsi/cmdsn.js';

test('rfc1982 serial arithmetic: comparisons wrap at 2^32', () => {
  assert.equal(snLessThan(1, 2), true);
  assert.equal(snLessThan(2, 1), false);
  assert.equal(snLessThan(0xffffffff, 0), true);
  assert.equal(snLessThan(0, 0xffffffff), false);
  assert.equal(snLessThan(5, 5), false);
});

test('rfc7143 4.2.2.1: commands are delivered in CmdSN order whatever the arrival order', () => {
  const w = new CmdSnWindow(10, 8);
  const order: number[] = [];
  assert.equal(
    w.accept(12, () => order.push(12)),
    'queued',
  );
  assert.equal(
    w.accept(11, () => order.push(11)),
    'queued',
  );
  assert.equal(order.length, 0);
  assert.equal(
    w.accept(10, () => order.push(10)),
    'deliver',
  );
  assert.deepEqual(order, [10, 11, 12]);
  assert.equal(w.expCmdSn, 13);
});

test('rfc7143 4.2.2.1: CmdSN below ExpCmdSN or above MaxCmdSN is ignored', () => {
  const w = new CmdSnWindow(100, 4);
  let ran = 0;
  assert.equal(
    w.accept(99, () => ran++),
    'outside-window',
  );
  assert.equal(w.maxCmdSn, 103);
  assert.equal(
    w.accept(104, () => ran++),
    'outside-window',
  );
  assert.equal(ran, 0);
  assert.equal(w.inFlight, 0);
});

test('MaxCmdSN shrinks while commands are outstanding and never moves backwards', () => {
  const w = new CmdSnWindow(1, 4);
  assert.equal(w.maxCmdSn, 4);
  for (let sn = 1; sn <= 4; sn++) w.accept(sn, () => {});
  // Four commands in flight: the window is full, MaxCmdSN stays at 4 (= ExpCmdSN - 1).
  assert.equal(w.expCmdSn, 5);
  assert.equal(w.maxCmdSn, 4);
  assert.equal(
    w.accept(5, () => {}),
    'outside-window',
  );
  w.finished();
  assert.equal(w.maxCmdSn, 5);
  w.finished();
  w.finished();
  w.finished();
  assert.equal(w.maxCmdSn, 8);
});

test('the window bounds outstanding work: never more than depth commands accepted', () => {
  const w = new CmdSnWindow(0, 16);
  let accepted = 0;
  for (let sn = 0; sn < 100; sn++) if (w.accept(sn, () => {}) !== 'outside-window') accepted++;
  assert.equal(accepted, 16);
  assert.equal(w.inFlight, 16);
});

test('a duplicate of a queued CmdSN is refused', () => {
  const w = new CmdSnWindow(0, 8);
  assert.equal(
    w.accept(3, () => {}),
    'queued',
  );
  assert.equal(
    w.accept(3, () => {}),
    'outside-window',
  );
});

test('CmdSN wraps from 0xffffffff to 0', () => {
  const w = new CmdSnWindow(0xfffffffe, 8);
  const order: number[] = [];
  w.accept(0, () => order.push(0));
  w.accept(0xffffffff, () => order.push(0xffffffff));
  w.accept(0xfffffffe, () => order.push(0xfffffffe));
  assert.deepEqual(order, [0xfffffffe, 0xffffffff, 0]);
  assert.equal(w.expCmdSn, 1);
});

test('rfc7143 11.5.1 b: consume() takes a CmdSN not received yet; the late command is then ignored', () => {
  const w = new CmdSnWindow(100, 8);
  const ran: number[] = [];
  assert.equal(w.consume(101), true, 'ahead of a gap');
  assert.equal(
    w.accept(100, () => ran.push(100)),
    'deliver',
  );
  assert.equal(w.expCmdSn, 102, 'the window moved past the consumed CmdSN');
  assert.equal(
    w.accept(101, () => ran.push(101)),
    'outside-window',
    'the late command is dropped',
  );
  assert.equal(w.consume(102), true, 'at ExpCmdSN');
  assert.equal(w.expCmdSn, 103);
  assert.equal(w.consume(99), false, 'already used');
  assert.equal(w.consume(103 + 100), false, 'beyond MaxCmdSN');
  assert.deepEqual(ran, [100]);
  w.finished();
  assert.equal(w.inFlight, 0, 'consumed CmdSNs hold no window slot');
});

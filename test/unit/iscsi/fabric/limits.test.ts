/**
 * The fabric's resource limits (src/iscsi/limits.ts, docs/robustness.md) against an in-process
 * target with small limits: login and first-PDU timeouts, the connection cap, the Data-Out byte
 * budget, the immediate-command cap and the per-command write cap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { read10Cdb, write10Cdb } from '../../../../src/initiator/cdb.js';
import { DataOutBudget, DEFAULT_LIMITS, resolveLimits } from '../../../../src/iscsi/limits.js';
import { bhsOpcode, R2TView, RejectView, ScsiResponseView } from '../../../../src/iscsi/pdu.js';
import { Opcode, RejectReason } from '../../../../src/iscsi/spec.js';
import { nextPdu, receiveUntil, sendRawCommand, sendRawDataOut } from '../../../integration/util.js';
import { firstLoginPdu } from '../../../helpers/login-pdu.js';
import { BLOCK, closedWithin, LUN, startFabric, TARGET } from './harness.js';

test('limits: overrides replace defaults; negative or non-finite values are ignored', () => {
  const l = resolveLimits({ loginTimeoutMs: 5, maxConnections: -1, maxImmediateCommands: NaN });
  assert.equal(l.loginTimeoutMs, 5);
  assert.equal(l.maxConnections, DEFAULT_LIMITS.maxConnections);
  assert.equal(l.maxImmediateCommands, DEFAULT_LIMITS.maxImmediateCommands);
});

test('limits: the Data-Out budget grants one reservation to an empty connection, else bounds it', () => {
  const b = new DataOutBudget(100);
  assert.equal(b.tryReserve(500, 0, 50), true, 'an empty connection always progresses');
  assert.equal(b.tryReserve(10, 500, 1000), false, 'total exceeded');
  b.release(500);
  assert.equal(b.tryReserve(40, 10, 50), true);
  assert.equal(b.tryReserve(20, 50, 50), false, 'per-connection limit');
  let woken = 0;
  const wake = (): void => void woken++;
  b.subscribe(wake);
  b.release(40);
  assert.equal(woken, 1);
  b.unsubscribe(wake);
  b.release(1);
  assert.equal(woken, 1);
  assert.equal(b.used, 0);
});

function firstLoginRequest(): Buffer {
  // T=0: the login stays in the security stage.
  return firstLoginPdu({
    initiatorName: 'iqn.2026-01.org.tgt-ts.unit:slow',
    targetName: TARGET,
    transit: false,
  });
}

test('robustness: a login that never completes is closed after loginTimeoutMs', async () => {
  const f = await startFabric({ loginTimeoutMs: 400, firstPduTimeoutMs: 0 });
  try {
    const sock = await f.rawSocket();
    sock.write(firstLoginRequest()); // T=0: the login stays in the security stage
    const t0 = Date.now();
    assert.ok(await closedWithin(sock, 3000), 'connection still open 3 s after a stalled login');
    assert.ok(Date.now() - t0 >= 250, 'closed before the timeout');
    // A login that completes is not affected by the timer.
    const s = await f.login();
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(s.state, 'full-feature');
    assert.equal((await s.testUnitReady(LUN)).status, 0x02, 'power-on UA: the session works');
  } finally {
    await f.close();
  }
});

test('robustness: a connection that sends no complete PDU is closed after firstPduTimeoutMs', async () => {
  const f = await startFabric({ firstPduTimeoutMs: 300 });
  try {
    const silent = await f.rawSocket();
    const half = await f.rawSocket();
    half.write(firstLoginRequest().subarray(0, 20));
    assert.ok(await closedWithin(silent, 3000), 'silent connection still open');
    assert.ok(await closedWithin(half, 3000), 'half-a-header connection still open');
    assert.equal(f.driver.connections.size, 0, 'no connection left behind');
  } finally {
    await f.close();
  }
});

test('robustness: connections beyond maxConnections are closed at accept', async () => {
  const f = await startFabric({ maxConnections: 2 });
  try {
    const a = await f.rawSocket();
    const b = await f.rawSocket();
    await new Promise((r) => setTimeout(r, 50));
    const c = await f.rawSocket();
    assert.ok(await closedWithin(c, 2000), 'third connection accepted');
    assert.equal(await closedWithin(a, 100), false);
    assert.equal(await closedWithin(b, 100), false);
  } finally {
    await f.close();
  }
});

/** A fabric whose connections may hold `size` I/O bytes, and a raw session that sends no immediate data. */
async function budgetedSession(size: number) {
  const f = await startFabric({ maxDataOutBytesPerConnection: size });
  const s = await f.login({ proposals: { initialR2T: true, immediateData: false, maxBurstLength: size } });
  await s.testUnitReady(LUN); // power-on UA
  s.setRawMode(true);
  return { f, s };
}

test('robustness: R2Ts wait for Data-Out budget (maxDataOutBytesPerConnection) and follow when it frees', async () => {
  const size = 64 * 1024;
  const { f, s } = await budgetedSession(size);
  try {
    const data = Buffer.alloc(size, 0xab);
    sendRawCommand(s, { itt: 0x10, lun: LUN, cdb: write10Cdb(0, size / BLOCK), write: true, edtl: size });
    sendRawCommand(s, { itt: 0x11, lun: LUN, cdb: write10Cdb(128, size / BLOCK), write: true, edtl: size });
    const [first] = await receiveUntil(s, Opcode.R2T, 0x10, 3000);
    assert.ok(first);
    assert.equal(await nextPdu(s, 300), undefined, 'the second write was solicited beyond the budget');
    sendRawDataOut(s, {
      itt: 0x10,
      lun: LUN,
      ttt: new R2TView(first.bhs).ttt,
      data,
      from: 0,
      to: size,
      segment: 8192,
    });
    const pdus = await receiveUntil(s, Opcode.R2T, 0x11, 3000);
    const response = pdus.find((p) => bhsOpcode(p.bhs) === Opcode.ScsiResponse);
    assert.ok(response, 'the first write completed before the second R2T');
    assert.equal(new ScsiResponseView(response.bhs).status, 0);
    const r2t = new R2TView(pdus[pdus.length - 1]!.bhs);
    sendRawDataOut(s, { itt: 0x11, lun: LUN, ttt: r2t.ttt, data, from: 0, to: size, segment: 8192 });
    const done = await receiveUntil(s, Opcode.ScsiResponse, 0x11, 3000);
    assert.equal(new ScsiResponseView(done[done.length - 1]!.bhs).status, 0);
    assert.equal(f.driver.dataOutBudget.used, 0, 'all budget given back');
  } finally {
    await f.close();
  }
});

test('robustness: READs reserve their Data-In bytes in the same budget; one waits while a write holds it', async () => {
  const size = 64 * 1024;
  const { f, s } = await budgetedSession(size);
  try {
    sendRawCommand(s, { itt: 0x30, lun: LUN, cdb: write10Cdb(0, size / BLOCK), write: true, edtl: size });
    const [r2t] = await receiveUntil(s, Opcode.R2T, 0x30, 3000);
    assert.ok(r2t, 'the write holds the whole connection budget');
    sendRawCommand(s, { itt: 0x31, lun: LUN, cdb: read10Cdb(0, size / BLOCK), read: true, edtl: size });
    assert.equal(await nextPdu(s, 300), undefined, 'the READ waits for budget');
    sendRawDataOut(s, {
      itt: 0x30,
      lun: LUN,
      ttt: new R2TView(r2t.bhs).ttt,
      data: Buffer.alloc(size, 0xcd),
      from: 0,
      to: size,
      segment: 8192,
    });
    const pdus = await receiveUntil(s, Opcode.DataIn, 0x31, 3000);
    assert.ok(
      pdus.some((p) => bhsOpcode(p.bhs) === Opcode.ScsiResponse),
      'the write answered first, then the READ ran',
    );
    for (let i = 0; i < 20 && f.driver.dataOutBudget.used !== 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(f.driver.dataOutBudget.used, 0, 'all budget given back');
  } finally {
    await f.close();
  }
});

test('rfc7143 11.17.1: immediate commands beyond maxImmediateCommands -> Reject 0x06', async () => {
  const f = await startFabric({ maxImmediateCommands: 2 });
  try {
    const s = await f.login({ proposals: { initialR2T: true, immediateData: false } });
    s.setRawMode(true);
    // Writes waiting for their R2T'd data stay outstanding.
    for (const itt of [0x20, 0x21, 0x22]) {
      sendRawCommand(s, { itt, lun: LUN, cdb: write10Cdb(0, 1), write: true, edtl: BLOCK, immediate: true });
    }
    const pdus = await receiveUntil(s, Opcode.Reject, undefined, 3000);
    const reject = pdus[pdus.length - 1]!;
    assert.equal(new RejectView(reject.bhs).reason, RejectReason.ImmediateCommandReject);
    assert.equal(reject.data.readUInt32BE(16), 0x22, 'the third command is the one rejected');
  } finally {
    await f.close();
  }
});

test('robustness: an EDTL of 2^32-1 on a one-block WRITE solicits at most maxWriteLength, then GOOD + underflow', async () => {
  const cap = 16 * 1024;
  const f = await startFabric({ maxWriteLength: cap });
  try {
    const s = await f.login({
      proposals: { initialR2T: true, immediateData: false, maxBurstLength: 262144 },
    });
    await s.testUnitReady(LUN); // power-on UA
    s.setRawMode(true);
    const data = Buffer.alloc(cap, 0x5a);
    sendRawCommand(s, { itt: 0x30, lun: LUN, cdb: write10Cdb(7, 1), write: true, edtl: 0xffffffff });
    const [r2tPdu] = await receiveUntil(s, Opcode.R2T, 0x30, 3000);
    const r2t = new R2TView(r2tPdu!.bhs);
    assert.equal(r2t.bufferOffset, 0);
    assert.equal(r2t.desiredDataTransferLength, cap, 'solicited only up to maxWriteLength');
    sendRawDataOut(s, { itt: 0x30, lun: LUN, ttt: r2t.ttt, data, from: 0, to: cap, segment: 8192 });
    const pdus = await receiveUntil(s, Opcode.ScsiResponse, 0x30, 3000);
    const v = new ScsiResponseView(pdus[pdus.length - 1]!.bhs);
    assert.ok(
      pdus.every((p) => bhsOpcode(p.bhs) !== Opcode.R2T || p === r2tPdu),
      'no further R2T',
    );
    assert.equal(v.underflow, true);
    assert.equal(v.residualCount, 0xffffffff - BLOCK);
    s.setRawMode(false);
    const r = await s.read10(LUN, 7, 1, BLOCK);
    assert.equal(r.status, 0);
    assert.ok(r.data.equals(data.subarray(0, BLOCK)), 'the block the CDB asked for was written');
  } finally {
    await f.close();
  }
});

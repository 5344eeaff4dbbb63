import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FakeTarget } from './fake-target.js';
import {
  discover,
  InitiatorError,
  LoginFailedError,
  parseStandardInquiry,
  Session,
  type SessionOptions,
} from '../../../src/initiator/index.js';
import { Opcode, TmfResponse } from '../../../src/iscsi/spec.js';
import { encodeNopOut } from '../../../src/iscsi/pdu.js';

async function withTarget(
  target: FakeTarget,
  options: Partial<SessionOptions>,
  fn: (s: Session, t: FakeTarget) => Promise<void>,
): Promise<void> {
  await target.start();
  const s = await Session.login({
    host: '127.0.0.1',
    port: target.port,
    targetName: 'iqn.t:fake',
    timeoutMs: 5000,
    ...options,
  });
  try {
    await fn(s, target);
  } finally {
    s.destroy();
    await target.stop();
  }
}

const received = (t: FakeTarget, op: Opcode) => t.received.filter((p) => p.opcode === op);

test('rfc7143 6.3: login goes security -> operational -> full feature and honours the target answers', async () => {
  const target = new FakeTarget({
    answers: { ImmediateData: 'No', MaxBurstLength: '16384', FirstBurstLength: '8192' },
    targetKeys: [['MaxRecvDataSegmentLength', '4096']],
  });
  await withTarget(target, {}, async (s) => {
    assert.equal(s.state, 'full-feature');
    assert.equal(s.tsih, 7);
    assert.equal(s.params.immediateData, false);
    assert.equal(s.params.maxBurstLength, 16384);
    assert.equal(s.params.firstBurstLength, 8192);
    assert.equal(s.params.maxXmitDataSegmentLength, 4096);
    assert.equal(s.params.targetPortalGroupTag, 1);
    const logins = received(target, Opcode.LoginRequest);
    assert.deepEqual(
      logins.map((p) => (p.bhs[1]! >> 2) & 3),
      [0, 1],
      'one security-stage and one operational-stage request',
    );
    // RFC 7143 11.12: Login Requests are immediate.
    assert.ok(logins.every((p) => (p.bhs[0]! & 0x40) !== 0));
  });
});

test('rfc7143 11.13.5: a non-zero login status rejects with LoginFailedError carrying class and detail', async () => {
  const target = await new FakeTarget({ loginStatus: 0x0203 }).start();
  try {
    await assert.rejects(
      Session.login({ host: '127.0.0.1', port: target.port, targetName: 'iqn.t:none', timeoutMs: 5000 }),
      (e: unknown) => e instanceof LoginFailedError && e.statusClass === 2 && e.statusDetail === 3,
    );
  } finally {
    await target.stop();
  }
});

test('rfc7143 6.2: a target raising a "min" key above our proposal fails negotiation', async () => {
  const target = await new FakeTarget({ answers: { MaxBurstLength: '99999999' } }).start();
  try {
    await assert.rejects(
      Session.login({
        host: '127.0.0.1',
        port: target.port,
        targetName: 'iqn.t:x',
        proposals: { maxBurstLength: 65536 },
      }),
      { code: 'TGT_ERR_INI_NEGOTIATION' },
    );
  } finally {
    await target.stop();
  }
});

test('rfc7143 11.7: Data-In cut at our MRDSL is reassembled; status in the last Data-In; underflow residual', async () => {
  const target = new FakeTarget();
  await withTarget(target, { proposals: { maxRecvDataSegmentLength: 512 } }, async (s) => {
    const pattern = randomBytes(8 * 512);
    pattern.copy(target.disk, 4 * 512);
    const r = await s.read10(1, 4, 8, 512);
    assert.equal(r.status, 0);
    assert.ok(r.statusInDataIn);
    assert.deepEqual(r.data, pattern);
    assert.equal(received(target, Opcode.ScsiCommand).length, 1);
    const inq = await s.command({ lun: 0, cdb: Buffer.from([0x12, 0, 0, 0, 36, 0]), readLength: 100 });
    assert.deepEqual(inq.residual, { kind: 'underflow', count: 64 });
    assert.equal(inq.data.length, 36);
    assert.equal(parseStandardInquiry(inq.data)?.vendor, 'FAKE');
  });
});

test('rfc7143 11.4.7: CHECK CONDITION sense data is decoded (key, asc, ascq, raw)', async () => {
  await withTarget(new FakeTarget(), {}, async (s) => {
    const r = await s.command({ lun: 0, cdb: Buffer.from([0xff, 0, 0, 0, 0, 0]) });
    assert.equal(r.status, 2);
    assert.equal(r.sense?.key, 5);
    assert.equal(r.sense?.asc, 0x20);
    assert.equal(r.sense?.raw.length, 18);
  });
});

test('rfc7143 13.13/13.14/11.8: write uses immediate data, unsolicited Data-Out to FirstBurstLength, then R2Ts', async () => {
  const target = new FakeTarget({
    answers: { InitialR2T: 'No', ImmediateData: 'Yes', FirstBurstLength: '8192', MaxBurstLength: '16384' },
    targetKeys: [['MaxRecvDataSegmentLength', '4096']],
  });
  await withTarget(target, {}, async (s) => {
    const data = randomBytes(100 * 512);
    // Two segments with an odd split, as a caller with scattered buffers would pass them.
    const r = await s.write10(1, 10, [data.subarray(0, 1001), data.subarray(1001)], 512);
    assert.equal(r.status, 0);
    assert.deepEqual(target.disk.subarray(10 * 512, 110 * 512), data);
    const cmd = received(target, Opcode.ScsiCommand)[0]!;
    assert.equal(cmd.data.length, 4096, 'immediate data limited by the target MRDSL');
    assert.equal(cmd.bhs[1]! & 0x80, 0, 'F=0: unsolicited Data-Out follows');
    const outs = received(target, Opcode.DataOut);
    assert.ok(
      outs.every((p) => p.data.length <= 4096),
      'no Data-Out above the target MRDSL',
    );
    const unsolicited = outs.filter((p) => p.bhs.readUInt32BE(20) === 0xffffffff);
    assert.equal(
      unsolicited.reduce((n, p) => n + p.data.length, 0),
      8192 - 4096,
    );
    // Per R2T sequence, DataSN restarts at 0 and the last PDU has F.
    const byTtt = new Map<number, Buffer[]>();
    for (const p of outs)
      byTtt.set(p.bhs.readUInt32BE(20), [...(byTtt.get(p.bhs.readUInt32BE(20)) ?? []), p.bhs]);
    for (const seq of byTtt.values()) {
      assert.deepEqual(
        seq.map((b) => b.readUInt32BE(36)),
        seq.map((_, i) => i),
      );
      assert.ok(seq.every((b, i) => ((b[1]! & 0x80) !== 0) === (i === seq.length - 1)));
    }
  });
});

test('rfc7143 4.2.2.1: commands wait for the CmdSN window (never above MaxCmdSN)', async () => {
  const target = new FakeTarget({ window: 2, holdOpcodes: [0x00] });
  await withTarget(target, {}, async (s, t) => {
    const all = Promise.all([0, 1, 2, 3].map(() => s.testUnitReady(0)));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(received(t, Opcode.ScsiCommand).length, 2, 'only two commands fit the window');
    t.releaseHeld();
    await new Promise((r) => setTimeout(r, 100));
    t.releaseHeld();
    const results = await all;
    assert.ok(results.every((r) => r.status === 0));
    assert.deepEqual(t.windowViolations, []);
    const sns = received(t, Opcode.ScsiCommand).map((p) => p.bhs.readUInt32BE(24));
    assert.deepEqual(sns, [sns[0]!, sns[0]! + 1, sns[0]! + 2, sns[0]! + 3]);
  });
});

test('rfc7143 11.18.3: a target NOP-In ping is answered with its TTT, ITT 0xffffffff, immediate', async () => {
  const target = new FakeTarget();
  await withTarget(target, {}, async (s, t) => {
    t.ping(0xabcd);
    await new Promise((r) => setTimeout(r, 100));
    const nop = received(t, Opcode.NopOut).at(-1)!;
    assert.equal(nop.bhs.readUInt32BE(20), 0xabcd);
    assert.equal(nop.bhs.readUInt32BE(16), 0xffffffff);
    assert.ok(nop.bhs[0]! & 0x40);
    assert.equal(s.nopInsAnswered, 1);
    assert.deepEqual(await s.nop(Buffer.from('hello')), Buffer.from('hello'));
  });
});

test('rfc7143 11.10/11.11: SendTargets answers continued with C bit + TTT are collected in full', async () => {
  const target = await new FakeTarget({ discoveryTargets: 40 }).start();
  try {
    const targets = await discover({ host: '127.0.0.1', port: target.port });
    assert.equal(targets.length, 40);
    assert.equal(targets[39]!.name, 'iqn.2026-11.test:fake-39');
    assert.deepEqual(targets[0]!.addresses, [`127.0.0.1:${target.port},1`]);
    const texts = received(target, Opcode.TextRequest);
    assert.ok(texts.length > 1, 'continuation requests were sent');
    assert.equal(texts[1]!.bhs.readUInt32BE(20), 0x1234, 'continuation carries the target TTT');
    // Discovery sessions do not negotiate session keys irrelevant to them (RFC 7143 13).
    const op = target.received.filter((p) => p.opcode === Opcode.LoginRequest).map((p) => p.data.toString());
    assert.ok(!op.join('').includes('InitialR2T'));
  } finally {
    await target.stop();
  }
});

test('rfc7143 13.1: with CRC32C digests negotiated, commands still round-trip', async () => {
  const target = new FakeTarget();
  await withTarget(target, { proposals: { headerDigest: 'CRC32C', dataDigest: 'CRC32C' } }, async (s) => {
    assert.equal(s.params.headerDigest, true);
    assert.equal(s.params.dataDigest, true);
    const data = randomBytes(4096);
    assert.equal((await s.write10(1, 0, data, 512)).status, 0);
    assert.deepEqual((await s.read10(1, 0, 8, 512)).data, data);
  });
});

test('rfc7143 11.5: ABORT TASK completes and the aborted command rejects instead of hanging', async () => {
  const target = new FakeTarget({ holdOpcodes: [0x00] });
  await withTarget(target, {}, async (s) => {
    const pending = s.testUnitReady(0);
    await new Promise((r) => setTimeout(r, 50));
    const [itt] = s.pendingItts();
    assert.equal(await s.abortTask(itt!), TmfResponse.FunctionComplete);
    await assert.rejects(
      pending,
      (e: unknown) => e instanceof InitiatorError && e.code === 'TGT_ERR_INI_STATE',
    );
  });
});

test('raw mode: a hand-built NOP-Out gets a NOP-In back through receivePdu()', async () => {
  await withTarget(new FakeTarget(), {}, async (s) => {
    s.setRawMode(true);
    const itt = s.allocItt();
    const bhs = encodeNopOut(Buffer.alloc(48), {
      itt,
      ttt: 0xffffffff,
      cmdSN: s.cmdSN,
      expStatSN: s.expStatSN,
      immediate: true,
    });
    s.sendPdu(bhs, Buffer.from('raw!'));
    const pdu = await s.receivePdu(2000);
    assert.equal(pdu.bhs[0]! & 0x3f, Opcode.NopIn);
    assert.equal(pdu.bhs.readUInt32BE(16), itt);
    assert.deepEqual(pdu.data, Buffer.from('raw!'));
  });
});

test('connection loss rejects outstanding commands with TGT_ERR_INI_CONNECTION_CLOSED', async () => {
  const target = new FakeTarget({ holdOpcodes: [0x00] });
  await withTarget(target, {}, async (s, t) => {
    const pending = s.testUnitReady(0);
    await new Promise((r) => setTimeout(r, 50));
    for (const sock of t.sockets) sock.destroy();
    await assert.rejects(pending, { code: 'TGT_ERR_INI_CONNECTION_CLOSED' });
    assert.equal(s.state, 'closed');
    await assert.rejects(s.testUnitReady(0), { code: 'TGT_ERR_INI_CONNECTION_CLOSED' });
  });
});

test('rfc7143 11.14: logout waits for the Logout Response and the close', async () => {
  await withTarget(new FakeTarget(), {}, async (s) => {
    assert.equal(await s.logout(), 0);
    assert.equal(s.state, 'logged-out');
    assert.ok(s.connection.closed);
  });
});

/**
 * Digests requirable per target (issue 5 item 3, docs/robustness.md): HeaderDigest/DataDigest
 * "CRC32C-Required" refuses initiators that will not use CRC32C, while tgt's "CRC32C" keeps
 * offering it with None still accepted (tgt §4.2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginFailedError } from '../../../../src/initiator/index.js';
import { LoginPhase, type LoginReply } from '../../../../src/iscsi/login.js';
import { TargetParams } from '../../../../src/iscsi/params.js';
import { encodeLoginRequest } from '../../../../src/iscsi/pdu.js';
import { BHS_LENGTH, LoginStage, LoginStatus } from '../../../../src/iscsi/spec.js';
import { encodeText, type TextPair } from '../../../../src/iscsi/text.js';
import { LUN, startFabric, TARGET } from './harness.js';

test('tgt §4.2 + extension: CRC32C-Required is stored, shown and exported as itself; CRC32C stays "offered"', () => {
  const p = new TargetParams();
  assert.ok(p.set('HeaderDigest', 'CRC32C-Required'));
  assert.deepEqual(p.digest('HeaderDigest'), { none: false, crc32c: true });
  assert.equal(p.format('HeaderDigest'), 'CRC32C-Required');
  assert.match(p.show(), /\nHeaderDigest=CRC32C-Required\n/);
  assert.ok(p.set('DataDigest', 'CRC32C'));
  assert.deepEqual(p.digest('DataDigest'), { none: true, crc32c: true });
  assert.equal(p.format('DataDigest'), 'CRC32C');
  assert.ok(p.set('DataDigest', 'CRC32C-Required,None'), 'with None in the list it is only offered');
  assert.deepEqual(p.digest('DataDigest'), { none: true, crc32c: true });
  assert.equal(p.set('DataDigest', 'CRC32C-Maybe'), false);
});

async function loginStatus(attempt: Promise<unknown>): Promise<number | 'ok'> {
  try {
    const s = (await attempt) as { destroy(): void };
    s.destroy();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof LoginFailedError, String(e));
    return e.status;
  }
}

test('rfc7143 13.1 / 11.13.5: a target requiring CRC32C refuses None-only initiators with 0x0200, accepts CRC32C ones', async () => {
  const f = await startFabric();
  try {
    const target = f.system.targets.get(1)!;
    for (const key of ['HeaderDigest', 'DataDigest'] as const) {
      assert.equal(f.driver.targetUpdate(target, key, 'CRC32C-Required'), 0);
      const other = key === 'HeaderDigest' ? 'dataDigest' : 'headerDigest';
      const mine = key === 'HeaderDigest' ? 'headerDigest' : 'dataDigest';
      // None only, in the initiator's own proposal.
      assert.equal(
        await loginStatus(f.login({ proposals: { [mine]: 'None', [other]: 'None' } })),
        LoginStatus.InitiatorError,
        `${key}: None-only initiator`,
      );
      // The initiator prefers None but also lists CRC32C: the target picks CRC32C.
      const s = await f.login({ proposals: { [mine]: 'None,CRC32C', [other]: 'None' } });
      assert.equal(s.params[mine], true, `${key}: CRC32C selected from None,CRC32C`);
      await s.testUnitReady(LUN);
      assert.equal((await s.read10(LUN, 0, 1, 512)).status, 0, `${key}: I/O with the required digest`);
      s.destroy();
      assert.equal(f.driver.targetUpdate(target, key, 'CRC32C'), 0);
      // tgt's CRC32C: offered, None still accepted.
      assert.equal(
        await loginStatus(f.login({ proposals: { [mine]: 'None' } })),
        'ok',
        `${key}: tgt semantics`,
      );
      assert.equal(f.driver.targetUpdate(target, key, 'None'), 0);
    }
  } finally {
    await f.close();
  }
});

/** One Login Request through a LoginPhase (operational stage, no security stage). */
function request(login: LoginPhase, pairs: TextPair[], transit: boolean): LoginReply {
  const bhs = encodeLoginRequest(Buffer.alloc(BHS_LENGTH), {
    itt: 1,
    transit,
    csg: LoginStage.LoginOperationalNegotiation,
    nsg: transit ? LoginStage.FullFeaturePhase : LoginStage.LoginOperationalNegotiation,
    isid: Buffer.from([0x80, 0, 0, 0, 0, 2]),
    tsih: 0,
    cid: 0,
    cmdSN: 1,
    expStatSN: 0,
  });
  return login.handle({ bhs, ahs: null, data: encodeText(pairs) }) as LoginReply;
}

test('rfc7143 6.2 / 13.1: an initiator that answers the required digest offer with Reject or None is refused', async () => {
  const f = await startFabric();
  try {
    const target = f.system.targets.get(1)!;
    assert.equal(f.driver.targetUpdate(target, 'HeaderDigest', 'CRC32C-Required'), 0);
    for (const answer of ['Reject', 'None']) {
      const login = new LoginPhase(f.driver, '127.0.0.1');
      const first = request(
        login,
        [
          ['InitiatorName', 'iqn.2026-01.org.tgt-ts.unit:x'],
          ['TargetName', TARGET],
        ],
        true,
      );
      assert.equal(first.status, 0);
      assert.equal(first.transit, false, 'the target holds T=0 while its offer is unanswered');
      assert.deepEqual(
        first.pairs.find(([k]) => k === 'HeaderDigest'),
        ['HeaderDigest', 'CRC32C'],
        'the target offers CRC32C only',
      );
      const second = request(login, [['HeaderDigest', answer]], true);
      assert.equal(second.status, LoginStatus.InitiatorError, `answer ${answer}`);
      assert.equal(second.close, true);
      assert.equal(second.fullFeature, false);
    }
  } finally {
    await f.close();
  }
});

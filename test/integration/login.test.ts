/**
 * Login and discovery against a real tgtd (RFC 7143 6, 11.12/11.13, 12.1.3, 13.3, Appendix C;
 * tgt-behaviour.md §4.1, §4.3, §4.4, §4.6).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { discover, IscsiConnection, InitiatorError, Session } from '../../src/initiator/index.js';
import { ChapAlgorithm } from '../../src/iscsi/chap.js';
import { bhsOpcode, encodeLoginRequest, LoginResponseView } from '../../src/iscsi/pdu.js';
import {
  BHS_LENGTH,
  LoginStage,
  LoginStatus,
  LogoutReason,
  LogoutResponse,
  Opcode,
} from '../../src/iscsi/spec.js';
import { encodeText, parseTextAllowRepeats, type TextPair } from '../../src/iscsi/text.js';
import { TgtDaemon } from '../helpers/daemon.js';
import { write10Cdb } from '../../src/initiator/cdb.js';
import {
  BLOCK,
  closeSession,
  expectLoginStatus,
  GOOD,
  IQN,
  login,
  loginReady,
  pattern,
  sendRawCommand,
} from './util.js';

const OPEN = `${IQN}:login-open`;
const CHAP = `${IQN}:login-chap`;
const MUTUAL = `${IQN}:login-mutual`;
const ACL_ADDR_OK = `${IQN}:login-acl-addr-ok`;
const ACL_ADDR_NO = `${IQN}:login-acl-addr-no`;
const ACL_NAME = `${IQN}:login-acl-name`;
const DIGESTS = `${IQN}:login-digests`;
const ALLOWED_INITIATOR = `${IQN}:allowed-initiator`;
const ACL_AND = `${IQN}:login-acl-and`;

const CHAP_USER = 'alice';
const CHAP_SECRET = 'alice-secret-12';
const MUTUAL_USER = 'bob';
const MUTUAL_SECRET = 'bob-secret-1234';
const TARGET_USER = 'target-out';
const TARGET_SECRET = 'target-secret-99';

/** Send one hand-built first Login Request and return the response status and keys. */
async function rawLogin(
  d: TgtDaemon,
  keys: TextPair[],
  o: { versionMin?: number; csg?: LoginStage } = {},
): Promise<{ status: number; pairs: TextPair[] }> {
  const conn = await IscsiConnection.connect({ host: d.host, port: d.port });
  try {
    const csg = o.csg ?? LoginStage.LoginOperationalNegotiation;
    const bhs = encodeLoginRequest(Buffer.alloc(BHS_LENGTH), {
      itt: 1,
      transit: true,
      csg,
      nsg:
        csg === LoginStage.SecurityNegotiation
          ? LoginStage.LoginOperationalNegotiation
          : LoginStage.FullFeaturePhase,
      isid: Buffer.from([0x80, 0, 0, 0, 0, 9]),
      tsih: 0,
      cid: 0,
      cmdSN: 1,
      expStatSN: 0,
      versionMax: o.versionMin ?? 0,
      versionMin: o.versionMin ?? 0,
    });
    conn.send(bhs, encodeText(keys));
    const pdu = await conn.receive(5000);
    assert.equal(bhsOpcode(pdu.bhs), Opcode.LoginResponse);
    return { status: new LoginResponseView(pdu.bhs).status, pairs: parseTextAllowRepeats(pdu.data) };
  } finally {
    conn.destroy();
  }
}

describe('login and discovery', () => {
  let d: TgtDaemon;

  before(async () => {
    d = await TgtDaemon.start();
    const lun = (path = '16M') => [{ lun: 1, bstype: 'memory', path }];
    await d.addTarget({ tid: 1, name: OPEN, luns: lun() });
    await d.addTarget({ tid: 2, name: CHAP, luns: lun() });
    await d.addAccount(CHAP_USER, CHAP_SECRET, 2);
    await d.addTarget({ tid: 3, name: MUTUAL, luns: lun() });
    await d.addAccount(MUTUAL_USER, MUTUAL_SECRET, 3);
    await d.addAccount(TARGET_USER, TARGET_SECRET, 3, true);
    await d.addTarget({ tid: 4, name: ACL_ADDR_OK, luns: lun(), addresses: ['127.0.0.1'] });
    // A loopback address the test never connects from: the rule must not match 127.0.0.1.
    await d.addTarget({ tid: 5, name: ACL_ADDR_NO, luns: lun(), addresses: ['127.0.0.2'] });
    await d.addTarget({ tid: 6, name: ACL_NAME, luns: lun(), addresses: [], names: [ALLOWED_INITIATOR] });
    // tgt's targets default to digests None; `target update` lets them accept CRC32C (tgt §4.2).
    await d.addTarget({ tid: 7, name: DIGESTS, luns: lun() });
    for (const key of ['HeaderDigest', 'DataDigest']) await d.updateTarget(7, key, 'CRC32C');
    // acl_match=all: the address rule AND the name rule must both match.
    await d.addTarget({
      tid: 8,
      name: ACL_AND,
      luns: lun(),
      addresses: ['127.0.0.0/8'],
      names: [ALLOWED_INITIATOR],
    });
    await d.updateTarget(8, 'acl_match', 'all');
  });

  after(async () => {
    try {
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  test('rfc7143 12.1: AuthMethod=None login reaches full feature phase and serves I/O', async () => {
    const s = await loginReady(d, OPEN, 1);
    try {
      assert.equal(s.state, 'full-feature');
      assert.notEqual(s.tsih, 0, 'RFC 7143 11.13.6: the target assigns a non-zero TSIH');
      assert.equal(s.params.targetPortalGroupTag, 1, 'tgt §4.1: TargetPortalGroupTag=1');
      const data = pattern(4 * BLOCK, 1);
      assert.equal((await s.write10(1, 8, data, BLOCK)).status, GOOD);
      const r = await s.read10(1, 8, 4, BLOCK);
      assert.equal(r.status, GOOD);
      assert.ok(r.data.equals(data));
    } finally {
      await closeSession(s);
    }
  });

  for (const [label, algorithm] of [
    ['MD5', ChapAlgorithm.MD5],
    ['SHA-256', ChapAlgorithm.SHA256],
  ] as const) {
    test(`rfc7143 12.1.3: one-way CHAP with ${label} succeeds with the bound account`, async () => {
      const s = await loginReady(d, CHAP, 1, {
        auth: { method: 'CHAP', user: CHAP_USER, secret: CHAP_SECRET, algorithms: [algorithm] },
      });
      try {
        assert.equal(s.state, 'full-feature');
        assert.equal((await s.read10(1, 0, 1, BLOCK)).status, GOOD);
      } finally {
        await closeSession(s);
      }
    });

    test(`rfc7143 12.1.3: mutual CHAP with ${label}: the target proves the outgoing secret`, async () => {
      const s = await loginReady(d, MUTUAL, 1, {
        auth: {
          method: 'CHAP',
          user: MUTUAL_USER,
          secret: MUTUAL_SECRET,
          targetUser: TARGET_USER,
          targetSecret: TARGET_SECRET,
          algorithms: [algorithm],
        },
      });
      try {
        assert.equal(s.state, 'full-feature');
        assert.equal((await s.read10(1, 0, 1, BLOCK)).status, GOOD);
      } finally {
        await closeSession(s);
      }
    });
  }

  test('rfc7143 12.1.3: mutual CHAP with a wrong expected target secret is refused by the initiator', async () => {
    await assert.rejects(
      login(d, MUTUAL, {
        auth: {
          method: 'CHAP',
          user: MUTUAL_USER,
          secret: MUTUAL_SECRET,
          targetUser: TARGET_USER,
          targetSecret: 'not-the-target-secret',
        },
      }),
      (e: unknown) => e instanceof InitiatorError && e.code === 'TGT_ERR_INI_AUTH_FAILED',
    );
  });

  test('rfc7143 11.13.5: CHAP with a wrong secret -> 0x0201 authentication failure', async () => {
    for (const algorithm of [ChapAlgorithm.MD5, ChapAlgorithm.SHA256]) {
      await expectLoginStatus(
        login(d, CHAP, {
          auth: { method: 'CHAP', user: CHAP_USER, secret: 'wrong-secret-123', algorithms: [algorithm] },
        }),
        LoginStatus.AuthenticationFailure,
        `wrong secret, CHAP_A=${algorithm}`,
      );
    }
    await expectLoginStatus(
      login(d, CHAP, { auth: { method: 'CHAP', user: 'nobody', secret: CHAP_SECRET } }),
      LoginStatus.AuthenticationFailure,
      'unknown CHAP user',
    );
    // A user that exists but is bound to another target is not good enough (tgt §4.3).
    await expectLoginStatus(
      login(d, CHAP, { auth: { method: 'CHAP', user: MUTUAL_USER, secret: MUTUAL_SECRET } }),
      LoginStatus.AuthenticationFailure,
      'account bound to another target',
    );
  });

  test('tgt §4.1: AuthMethod=None on a target with an incoming account -> 0x0201', async () => {
    await expectLoginStatus(login(d, CHAP), LoginStatus.AuthenticationFailure, 'None on a CHAP target');
    await expectLoginStatus(
      login(d, CHAP, { skipSecurityStage: true }),
      LoginStatus.AuthenticationFailure,
      'security stage skipped on a CHAP target',
    );
  });

  test('rfc7143 11.13.5: an unknown TargetName -> 0x0203 not found', async () => {
    await expectLoginStatus(login(d, `${IQN}:no-such-target`), LoginStatus.NotFound, 'unknown target');
  });

  test('rfc7143 11.13.5 / tgt §4.6: initiator-address ACL allows 127.0.0.1, refuses others with 0x0202', async () => {
    const s = await login(d, ACL_ADDR_OK);
    await closeSession(s);
    await expectLoginStatus(login(d, ACL_ADDR_NO), LoginStatus.AuthorizationFailure, 'address not in ACL');
  });

  test('rfc7143 11.13.5 / tgt §4.6: initiator-name ACL allows that name only, others get 0x0202', async () => {
    const s = await login(d, ACL_NAME, { initiatorName: ALLOWED_INITIATOR });
    await closeSession(s);
    await expectLoginStatus(
      login(d, ACL_NAME, { initiatorName: `${IQN}:other-initiator` }),
      LoginStatus.AuthorizationFailure,
      'name not in ACL',
    );
  });

  test('tgt-ts acl_match=all: address AND name must match; either alone gets 0x0202', async () => {
    const s = await login(d, ACL_AND, { initiatorName: ALLOWED_INITIATOR });
    await closeSession(s);
    // With tgt's OR, the 127.0.0.0/8 rule alone would let this initiator in.
    await expectLoginStatus(
      login(d, ACL_AND, { initiatorName: `${IQN}:other-initiator` }),
      LoginStatus.AuthorizationFailure,
      'address matches, name does not',
    );
    await d.updateTarget(8, 'acl_match', 'any');
    const again = await login(d, ACL_AND, { initiatorName: `${IQN}:other-initiator` });
    await closeSession(again);
    await d.updateTarget(8, 'acl_match', 'all');
  });

  test('rfc7143 appendix C / tgt §4.4: SendTargets=All in a discovery session lists only allowed targets', async () => {
    const expectedAddress = `127.0.0.1:${d.port},1`;
    const listed = await discover({ host: d.host, port: d.port, timeoutMs: 10_000 });
    assert.deepEqual(
      listed.map((t) => t.name),
      [OPEN, CHAP, MUTUAL, ACL_ADDR_OK, DIGESTS],
      'targets whose ACL refuses this initiator are not listed',
    );
    for (const t of listed) assert.deepEqual(t.addresses, [expectedAddress], t.name);

    const asAllowed = await discover({
      host: d.host,
      port: d.port,
      timeoutMs: 10_000,
      initiatorName: ALLOWED_INITIATOR,
    });
    assert.ok(
      asAllowed.some((t) => t.name === ACL_NAME),
      'the name-ACL target is listed for the allowed initiator',
    );
    assert.ok(!asAllowed.some((t) => t.name === ACL_ADDR_NO));

    const one = await discover({ host: d.host, port: d.port, timeoutMs: 10_000 }, OPEN);
    assert.deepEqual(one, [{ name: OPEN, addresses: [expectedAddress] }], 'SendTargets=<iqn>');
  });

  test('rfc7143 13.3: SendTargets in a normal session answers for the session target (tgt drops the connection)', async () => {
    const s = await loginReady(d, OPEN, 1);
    try {
      const expected = [{ name: OPEN, addresses: [`127.0.0.1:${d.port},1`] }];
      assert.deepEqual(await s.sendTargets(''), expected, 'SendTargets=<empty>');
      assert.deepEqual(await s.sendTargets('All'), expected, 'SendTargets=All');
      assert.equal((await s.read10(1, 0, 1, BLOCK)).status, GOOD, 'the session carries on');
    } finally {
      await closeSession(s);
    }
  });

  test('rfc7143 13.1: HeaderDigest and DataDigest CRC32C are negotiated and carry I/O', async () => {
    const s = await loginReady(d, DIGESTS, 1, {
      proposals: { headerDigest: 'CRC32C', dataDigest: 'CRC32C' },
    });
    try {
      assert.equal(s.params.headerDigest, true);
      assert.equal(s.params.dataDigest, true);
      // Large enough for immediate data, unsolicited Data-Out, R2Ts and several Data-In PDUs.
      const data = pattern(512 * 1024, 2);
      assert.equal((await s.write10(1, 100, data, BLOCK)).status, GOOD);
      const r = await s.read10(1, 100, data.length / BLOCK, BLOCK);
      assert.equal(r.status, GOOD);
      assert.ok(r.data.equals(data), 'data read back through digests is identical');
      assert.deepEqual(await s.nop(Buffer.from('digest ping')), Buffer.from('digest ping'));
      assert.equal(s.connection.framingError, undefined, 'every digest from the target checked out');
    } finally {
      await closeSession(s);
    }
  });

  test('rfc7143 6.2.1 / 13.1: the target picks the first digest of the initiator list it supports', async () => {
    const s = await loginReady(d, DIGESTS, 1, {
      proposals: { headerDigest: 'CRC32C,None', dataDigest: 'None,CRC32C' },
    });
    try {
      assert.equal(s.params.headerDigest, true, 'HeaderDigest=CRC32C,None -> CRC32C');
      assert.equal(s.params.dataDigest, false, 'DataDigest=None,CRC32C -> None');
      assert.equal((await s.read10(1, 0, 64, BLOCK)).status, GOOD);
    } finally {
      await closeSession(s);
    }
  });

  test('rfc7143 11.13.5: malformed first Login Requests get the matching initiator-error status', async () => {
    const initiator: TextPair = ['InitiatorName', `${IQN}:raw-login`];
    const target: TextPair = ['TargetName', OPEN];
    const cases: [string, TextPair[], number, { versionMin?: number }?][] = [
      [
        'VersionMin 1',
        [initiator, ['SessionType', 'Normal'], target],
        LoginStatus.UnsupportedVersion,
        { versionMin: 1 },
      ],
      ['no InitiatorName', [['SessionType', 'Normal'], target], LoginStatus.MissingParameter],
      [
        'Normal session without TargetName',
        [initiator, ['SessionType', 'Normal']],
        LoginStatus.MissingParameter,
      ],
      [
        'SessionType=Bogus',
        [initiator, ['SessionType', 'Bogus'], target],
        LoginStatus.SessionTypeNotSupported,
      ],
    ];
    for (const [what, keys, status, o] of cases) {
      const r = await rawLogin(d, keys, o);
      assert.equal(r.status.toString(16), status.toString(16), what);
    }
    const ok = await rawLogin(d, [initiator, ['SessionType', 'Normal'], target]);
    assert.equal(ok.status, 0, 'the same login, well formed, is accepted');
  });

  test('rfc7143 11.13.5: a TSIH naming no session -> 0x020a; a 2nd connection beyond MaxConnections=1 -> 0x0206', async () => {
    await expectLoginStatus(
      login(d, OPEN, { tsih: 0x4321 }),
      LoginStatus.SessionDoesNotExist,
      'unknown TSIH',
    );
    const initiatorName = `${IQN}:mcs-initiator`;
    const s = await login(d, OPEN, { initiatorName });
    try {
      assert.equal(s.params.maxConnections, 1);
      await expectLoginStatus(
        login(d, OPEN, { initiatorName, isid: s.isid, tsih: s.tsih, cid: 1 }),
        LoginStatus.TooManyConnections,
        'second connection',
      );
      assert.equal((await s.testUnitReady(1)).response, 0, 'the session is not disturbed');
    } finally {
      await closeSession(s);
    }
  });

  test('rfc7143 11.15.1: Logout "remove the connection for recovery" at ERL 0 -> response 3', async () => {
    const s = await login(d, OPEN);
    assert.equal(s.params.errorRecoveryLevel, 0);
    const response = await s.logout(LogoutReason.RemoveConnectionForRecovery);
    assert.equal(response, LogoutResponse.RecoveryNotSupported);
  });

  test('rfc7143 6.3.5: session reinstatement (same InitiatorName + ISID) closes the old session', async () => {
    const isid = Buffer.from([0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);
    const initiatorName = `${IQN}:reinstating-initiator`;
    let first: Session | undefined;
    let second: Session | undefined;
    try {
      first = await loginReady(d, OPEN, 1, { isid, initiatorName });
      second = await login(d, OPEN, { isid, initiatorName });
      await first.connection.waitClosed(5000);
      assert.equal(first.connection.closed, true, 'the old connection was closed by the target');
      assert.notEqual(second.tsih, 0);
      // The new nexus starts with a unit attention; any answer proves the session works.
      const r = await second.testUnitReady(1);
      assert.ok(r.status === GOOD || r.status === 0x02, `TUR status ${r.status}`);
      const show = await d.adm('--lld', 'iscsi', '--mode', 'target', '--op', 'show');
      const nexuses = show.split('\n').filter((l) => l.includes(`Initiator: ${initiatorName}`));
      assert.equal(nexuses.length, 1, `one I_T nexus left for the initiator:\n${show}`);
    } finally {
      first?.destroy();
      await closeSession(second);
    }
  });
  test('rfc7143 6.3.5: reinstating a session with a write stalled waiting for Data-Out', async () => {
    const isid = Buffer.from([0x80, 0x65, 0x43, 0x21, 0x00, 0x01]);
    const initiatorName = `${IQN}:reinstating-busy-initiator`;
    const first = await loginReady(d, OPEN, 1, { isid, initiatorName, proposals: { immediateData: false } });
    let second: Session | undefined;
    try {
      first.setRawMode(true);
      sendRawCommand(first, { itt: 0x51, lun: 1, cdb: write10Cdb(0, 64), write: true, edtl: 64 * BLOCK });
      const r2t = await first.receivePdu(5000);
      assert.equal(bhsOpcode(r2t.bhs), Opcode.R2T, 'the write waits for its data');
      second = await loginReady(d, OPEN, 1, { isid, initiatorName });
      await first.connection.waitClosed(5000);
      const data = pattern(8 * BLOCK, 52);
      assert.equal((await second.write10(1, 0, data, BLOCK)).status, GOOD);
      assert.ok((await second.read10(1, 0, 8, BLOCK)).data.equals(data));
    } finally {
      first.destroy();
      await closeSession(second);
    }
  });
});

describe('discovery authentication', () => {
  let d: TgtDaemon;
  const target = `${IQN}:disco-auth-open`;

  before(async () => {
    d = await TgtDaemon.start();
    await d.addTarget({ tid: 1, name: target, luns: [{ lun: 1, bstype: 'memory', path: '8M' }] });
    // tgt §4.3 / §2.3: an account bound without --tid guards discovery sessions.
    await d.addAccount('disco-user', 'disco-secret-1');
  });

  after(async () => {
    try {
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  test('tgt §4.3: a discovery account (bound without --tid) requires CHAP for discovery only', async () => {
    await expectLoginStatus(
      Session.login({ host: d.host, port: d.port, sessionType: 'Discovery', timeoutMs: 10_000 }),
      LoginStatus.AuthenticationFailure,
      'discovery without CHAP',
    );
    const listed = await discover({
      host: d.host,
      port: d.port,
      timeoutMs: 10_000,
      auth: { method: 'CHAP', user: 'disco-user', secret: 'disco-secret-1' },
    });
    assert.deepEqual(
      listed.map((t) => t.name),
      [target],
    );
    const s = await loginReady(d, target, 1);
    await closeSession(s);
  });
});

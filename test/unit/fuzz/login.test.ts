/**
 * Property-based tests of the login state machine (src/iscsi/login.ts, RFC 7143 6, 11.12,
 * 11.13): random sequences of Login Requests with random stage bits and random key lists
 * (known keys with valid and invalid values, unknown keys, junk text) never throw, always get
 * exactly one well-formed reply, fail with a defined status class, and reach full feature phase
 * only through a success status.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IscsiDriver } from '../../../src/iscsi/driver.js';
import { LoginPhase, type LoginReply } from '../../../src/iscsi/login.js';
import { encodeLoginRequest } from '../../../src/iscsi/pdu.js';
import { BHS_LENGTH } from '../../../src/iscsi/spec.js';
import { TargetSystem } from '../../../src/scsi/system.js';

const TARGET = 'iqn.2026-01.org.tgt-ts.fuzz:t1';
const INITIATOR = 'iqn.2026-01.org.tgt-ts.fuzz:i1';

function makeDriver(chap: boolean): IscsiDriver {
  const system = new TargetSystem({ storeTypes: [] });
  const driver = new IscsiDriver(system);
  system.registerDriver(driver);
  system.createTarget('iscsi', 1, TARGET);
  system.bindAcl(1, 'address', 'ALL');
  if (chap) {
    system.accountNew('user', 'secretsecret12');
    system.accountBind(1, 'user', false);
  }
  return driver;
}

const keyNames = [
  'InitiatorName',
  'TargetName',
  'SessionType',
  'AuthMethod',
  'CHAP_A',
  'CHAP_N',
  'CHAP_R',
  'CHAP_I',
  'CHAP_C',
  'HeaderDigest',
  'DataDigest',
  'MaxConnections',
  'InitialR2T',
  'ImmediateData',
  'MaxRecvDataSegmentLength',
  'MaxBurstLength',
  'FirstBurstLength',
  'DefaultTime2Wait',
  'DefaultTime2Retain',
  'MaxOutstandingR2T',
  'DataPDUInOrder',
  'DataSequenceInOrder',
  'ErrorRecoveryLevel',
  'OFMarker',
  'IFMarker',
  'TargetAlias',
  'InitiatorAlias',
  'SendTargets',
  'TaskReporting',
  'X-com.example.k',
  'X#bad',
];
const values = [
  INITIATOR,
  TARGET,
  'Normal',
  'Discovery',
  'Bogus',
  'None',
  'CHAP',
  'CHAP,None',
  'CRC32C',
  'CRC32C,None',
  'Yes',
  'No',
  '0',
  '1',
  '2',
  '512',
  '8192',
  '65536',
  '16777215',
  '16777216',
  '4294967296',
  '-1',
  '5',
  '0x00',
  '0xzz',
  'NotUnderstood',
  'Irrelevant',
  'Reject',
  '',
  'a,b,c',
  'x'.repeat(300),
];

const pairArb = fc.oneof(
  fc.tuple(fc.constantFrom(...keyNames), fc.constantFrom(...values)),
  fc.tuple(fc.string({ maxLength: 70 }), fc.string({ maxLength: 40 })),
);

const requestArb = fc.record({
  pairs: fc.array(pairArb, { maxLength: 12 }),
  junk: fc.option(fc.uint8Array({ maxLength: 64 }), { freq: 8 }),
  transit: fc.boolean(),
  cont: fc.boolean(),
  csg: fc.integer({ min: 0, max: 3 }),
  nsg: fc.integer({ min: 0, max: 3 }),
  versionMin: fc.constantFrom(0, 0, 0, 1),
  tsih: fc.constantFrom(0, 0, 0, 1, 0xffff),
  cid: fc.constantFrom(0, 0, 1),
});

/** A plausible opening request so that deeper states are reached often. */
const opening = fc.record({
  identify: fc.boolean(),
  auth: fc.constantFrom('None', 'CHAP', 'CHAP,None'),
});

test('rfc7143 6 / 11.13 fuzz: random login request sequences never throw and always get a sane reply', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      opening,
      fc.array(requestArb, { minLength: 1, maxLength: 6 }),
      (chap, open, requests) => {
        const driver = makeDriver(chap);
        const login = new LoginPhase(driver, '127.0.0.1');
        const bhs = Buffer.alloc(BHS_LENGTH);
        let finished = false;
        requests.forEach((r, i) => {
          if (finished) return;
          let pairs = r.pairs;
          if (i === 0 && open.identify) {
            pairs = [
              ['InitiatorName', INITIATOR],
              ['TargetName', TARGET],
              ['AuthMethod', open.auth],
              ...pairs,
            ];
          }
          const text = r.junk
            ? Buffer.from(r.junk)
            : Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
          encodeLoginRequest(bhs, {
            itt: i,
            transit: r.transit,
            continue: r.cont,
            csg: r.csg,
            nsg: r.nsg,
            versionMin: r.versionMin,
            isid: Buffer.from([0x80, 0, 0, 0, 0, 1]),
            tsih: r.tsih,
            cid: r.cid,
            cmdSN: 1,
            expStatSN: 0,
          });
          const reply = login.handle({ bhs, ahs: null, data: text });
          assert.ok(!(reply instanceof Promise), 'no redirect configured: the reply is synchronous');
          checkReply(reply as LoginReply);
          if ((reply as LoginReply).close || (reply as LoginReply).fullFeature) finished = true;
        });
      },
    ),
    { numRuns: 400 },
  );
});

function checkReply(r: LoginReply): void {
  const cls = r.status >> 8;
  // RFC 7143 11.13.5: 0 success, 1 redirection, 2 initiator error, 3 target error.
  assert.ok(cls >= 0 && cls <= 3, `status 0x${r.status.toString(16)}`);
  if (r.status !== 0) {
    assert.equal(r.close, true, 'a failure ends the login');
    assert.equal(r.transit, false);
    assert.equal(r.fullFeature, false);
  }
  if (r.fullFeature) assert.equal(r.status, 0);
  if (r.transit) assert.ok(r.nsg > r.csg && r.nsg !== 2, `T=1 from ${r.csg} to ${r.nsg}`);
  for (const [k, v] of r.pairs) {
    assert.equal(typeof k, 'string');
    assert.equal(typeof v, 'string');
  }
}

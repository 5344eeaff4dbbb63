import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginNegotiator, type SessionType } from '../../../../src/iscsi/negotiate.js';
import { TARGET_PARAM_NAMES, TargetParams } from '../../../../src/iscsi/params.js';
import { parseText, type TextPair } from '../../../../src/iscsi/text.js';

function negotiator(
  settings: Record<string, string> = {},
  sessionType: SessionType = 'Normal',
): LoginNegotiator {
  const params = new TargetParams();
  for (const [k, v] of Object.entries(settings)) assert.ok(params.set(k, v), `${k}=${v}`);
  return new LoginNegotiator({ params, sessionType });
}

/** Offer one key to a fresh negotiator and return the target's answer (undefined: no answer). */
function answer(
  key: string,
  value: string,
  settings: Record<string, string> = {},
  type: SessionType = 'Normal',
) {
  const step = negotiator(settings, type).processOperational([[key, value]]);
  assert.equal(step.error, undefined);
  return new Map(step.response).get(key);
}

// ---- numerical keys: RFC 7143 6.2.2 min/max ----------------------------------------------------

const numeric: [key: string, offered: string, target: Record<string, string>, expected: string][] = [
  ['MaxBurstLength', '16776192', {}, '262144'], // 13.13 min
  ['MaxBurstLength', '4096', {}, '4096'],
  ['FirstBurstLength', '262144', {}, '65536'], // 13.14 min
  ['MaxOutstandingR2T', '8', { MaxOutstandingR2T: '4' }, '4'], // 13.17 min
  ['ErrorRecoveryLevel', '2', {}, '0'], // 13.20 min
  ['ErrorRecoveryLevel', '1', { ErrorRecoveryLevel: '2' }, '1'],
  ['DefaultTime2Wait', '0', {}, '2'], // 13.15 max
  ['DefaultTime2Wait', '10', {}, '10'],
  ['DefaultTime2Retain', '0', {}, '0'], // 13.16 min
  ['MaxConnections', '8', {}, '1'], // 13.2 min
  ['MaxConnections', '8', { MaxConnections: '4' }, '4'],
  ['iSCSIProtocolLevel', '2', {}, '1'], // RFC 7144: min with the level we implement
  ['iSCSIProtocolLevel', '0', {}, '0'],
  ['MaxBurstLength', '0x1000', {}, '4096'], // hex-constant is a numerical value
];
for (const [key, offered, target, expected] of numeric) {
  test(`rfc7143 13 ${key}=${offered} against target ${JSON.stringify(target)} -> ${expected}`, () => {
    assert.equal(answer(key, offered, target), expected);
  });
}

const outOfRange: [string, string][] = [
  ['MaxBurstLength', '511'],
  ['MaxBurstLength', '16777216'],
  ['FirstBurstLength', 'lots'],
  ['MaxOutstandingR2T', '0'],
  ['ErrorRecoveryLevel', '3'],
  ['DefaultTime2Wait', '3601'],
  ['MaxConnections', '0'],
  ['MaxConnections', '-1'],
  ['iSCSIProtocolLevel', '32'],
  ['DefaultTime2Retain', '012'],
];
for (const [key, value] of outOfRange) {
  test(`rfc7143 6.2: out-of-range or malformed ${key}=${value} -> Reject`, () => {
    assert.equal(answer(key, value), 'Reject');
  });
}

// ---- boolean keys: RFC 7143 6.2.3 AND / OR ---------------------------------------------------

const booleans: [key: string, offered: string, targetValue: string, expected: string][] = [
  ['InitialR2T', 'No', 'Yes', 'Yes'], // 13.10 OR
  ['InitialR2T', 'No', 'No', 'No'],
  ['InitialR2T', 'Yes', 'No', 'Yes'],
  ['ImmediateData', 'Yes', 'Yes', 'Yes'], // 13.11 AND
  ['ImmediateData', 'Yes', 'No', 'No'],
  ['ImmediateData', 'No', 'Yes', 'No'],
  ['DataPDUInOrder', 'No', 'Yes', 'Yes'], // 13.18 OR
  ['DataPDUInOrder', 'No', 'No', 'No'],
  ['DataSequenceInOrder', 'No', 'Yes', 'Yes'], // 13.19 OR
];
for (const [key, offered, targetValue, expected] of booleans) {
  test(`rfc7143 13 ${key}=${offered} against target ${targetValue} -> ${expected}`, () => {
    assert.equal(answer(key, offered, { [key]: targetValue }), expected);
  });
}

test('rfc7143 6.1: a boolean other than Yes/No -> Reject', () => {
  assert.equal(answer('InitialR2T', 'yes'), 'Reject');
  assert.equal(answer('ImmediateData', 'True'), 'Reject');
});

// ---- list keys: RFC 7143 6.2.1 first supported value in the initiator's list -----------------

const lists: [key: string, offered: string, target: Record<string, string>, expected: string][] = [
  ['HeaderDigest', 'None', {}, 'None'],
  ['HeaderDigest', 'CRC32C,None', {}, 'None'],
  ['HeaderDigest', 'CRC32C', {}, 'Reject'],
  ['HeaderDigest', 'CRC32C,None', { HeaderDigest: 'CRC32C' }, 'CRC32C'],
  ['HeaderDigest', 'None,CRC32C', { HeaderDigest: 'CRC32C' }, 'None'],
  ['DataDigest', 'CRC32C', { DataDigest: 'CRC32C' }, 'CRC32C'],
  ['DataDigest', 'MD5,CRC32C', { DataDigest: 'CRC32C' }, 'CRC32C'], // unknown values are skipped
  ['DataDigest', 'MD5', { DataDigest: 'CRC32C' }, 'Reject'],
  ['TaskReporting', 'FastAbort,RFC3720', {}, 'RFC3720'], // 13.23
  ['TaskReporting', 'ResponseFence', {}, 'Reject'],
];
for (const [key, offered, target, expected] of lists) {
  test(`rfc7143 13 ${key}=${offered} against target ${JSON.stringify(target)} -> ${expected}`, () => {
    assert.equal(answer(key, offered, target), expected);
  });
}

// ---- NotUnderstood ---------------------------------------------------------------------------

test('rfc7143 6.2: unknown keys -> NotUnderstood', () => {
  assert.equal(answer('NoSuchKey', 'x'), 'NotUnderstood');
});

test('rfc7143 6.1: key names are case-sensitive: headerdigest is an unknown key', () => {
  assert.equal(answer('headerdigest', 'None'), 'NotUnderstood');
});

test('rfc7143 13.22: X- and X# extension keys -> NotUnderstood', () => {
  assert.equal(answer('X-com.example.Feature', 'Yes'), 'NotUnderstood');
  assert.equal(answer('X#NodeArchitecture', 'ExampleOS/1.0'), 'NotUnderstood');
});

test('rfc7143 13.6/13.8/13.9: target-only keys sent by the initiator -> NotUnderstood', () => {
  assert.equal(answer('TargetAlias', 'x'), 'NotUnderstood');
  assert.equal(answer('TargetPortalGroupTag', '1'), 'NotUnderstood');
});

test('rfc7143 13.4/13.5/13.21: InitiatorName, TargetName, SessionType, InitiatorAlias are not answered', () => {
  const step = negotiator().processOperational([
    ['InitiatorName', 'iqn.2026-11.test:i'],
    ['InitiatorAlias', 'host'],
    ['TargetName', 'iqn.2026-11.example:disk1'],
    ['SessionType', 'Normal'],
  ]);
  assert.deepEqual(step, { response: [] });
});

// ---- Irrelevant ------------------------------------------------------------------------------

test('rfc7143 13.14: FirstBurstLength is Irrelevant when InitialR2T=Yes and ImmediateData=No', () => {
  const n = negotiator({ ImmediateData: 'No' });
  const step = n.processOperational([
    ['InitialR2T', 'Yes'],
    ['ImmediateData', 'Yes'],
    ['FirstBurstLength', '65536'],
  ]);
  assert.deepEqual(step.response, [
    ['InitialR2T', 'Yes'],
    ['ImmediateData', 'No'],
    ['FirstBurstLength', 'Irrelevant'],
  ]);
  assert.equal(n.result().immediateData, false);
});

test('rfc7143 13.14: FirstBurstLength MUST NOT exceed MaxBurstLength', () => {
  const n = negotiator();
  const step = n.processOperational([
    ['MaxBurstLength', '8192'],
    ['FirstBurstLength', '65536'],
  ]);
  assert.deepEqual(new Map(step.response).get('FirstBurstLength'), '8192');
  assert.equal(n.result().firstBurstLength, 8192);
  assert.equal(n.result().maxBurstLength, 8192);
});

const discoveryIrrelevant = [
  ['MaxConnections', '1'],
  ['InitialR2T', 'No'],
  ['ImmediateData', 'Yes'],
  ['MaxBurstLength', '262144'],
  ['FirstBurstLength', '262144'],
  ['MaxOutstandingR2T', '1'],
  ['DataPDUInOrder', 'Yes'],
  ['DataSequenceInOrder', 'Yes'],
];
for (const [key, value] of discoveryIrrelevant) {
  test(`rfc7143 13: ${key} is Irrelevant in a discovery session`, () => {
    assert.equal(answer(key!, value!, {}, 'Discovery'), 'Irrelevant');
  });
}

test('rfc7143 13.15/13.16/13.20: DefaultTime2Wait/Retain and ErrorRecoveryLevel still negotiate in discovery', () => {
  assert.equal(answer('DefaultTime2Retain', '0', {}, 'Discovery'), '0');
  assert.equal(answer('ErrorRecoveryLevel', '0', {}, 'Discovery'), '0');
});

test('rfc7143 13.25: IFMarker/OFMarker are answered No; OFMarkInt is Irrelevant once OFMarker=No, else Reject', () => {
  assert.equal(answer('IFMarker', 'Yes'), 'No');
  assert.equal(answer('OFMarkInt', '2048'), 'Reject');
  const step = negotiator().processOperational([
    ['OFMarker', 'No'],
    ['OFMarkInt', '2048~8192'],
    ['IFMarkInt', '2048'],
  ]);
  assert.deepEqual(step.response, [
    ['OFMarker', 'No'],
    ['OFMarkInt', 'Irrelevant'],
    ['IFMarkInt', 'Reject'],
  ]);
});

test('rfc7145: iSER keys on iSCSI/TCP: RDMAExtensions -> No, the others Irrelevant', () => {
  // tgt's per-target RDMAExtensions=Yes must not turn iSER on over TCP.
  assert.equal(answer('RDMAExtensions', 'Yes'), 'No');
  assert.equal(answer('TargetRecvDataSegmentLength', '262144'), 'Irrelevant');
  assert.equal(answer('InitiatorRecvDataSegmentLength', '262144'), 'Irrelevant');
  assert.equal(answer('MaxOutstandingUnexpectedPDUs', '0'), 'Irrelevant');
});

// ---- duplicates and renegotiation ------------------------------------------------------------

test('rfc7143 6.3: a key twice in one request -> initiator error (class 2, detail 0)', () => {
  const step = negotiator().processOperational([
    ['MaxBurstLength', '512'],
    ['MaxBurstLength', '1024'],
  ]);
  assert.equal(step.error?.statusClass, 2);
  assert.equal(step.error?.statusDetail, 0);
});

test('rfc7143 6.3: renegotiating a key in a later request of the same login -> initiator error', () => {
  const n = negotiator();
  assert.equal(n.processOperational([['InitialR2T', 'No']]).error, undefined);
  const step = n.processOperational([['InitialR2T', 'No']]);
  assert.equal(step.error?.statusClass, 2);
  assert.equal(step.error?.statusDetail, 0);
});

test('rfc7143 13.12: MaxRecvDataSegmentLength may be re-declared; the last declaration wins', () => {
  const n = negotiator();
  assert.equal(n.processOperational([['MaxRecvDataSegmentLength', '65536']]).error, undefined);
  assert.equal(n.processOperational([['MaxRecvDataSegmentLength', '131072']]).error, undefined);
  assert.equal(n.result().maxXmitDataSegmentLength, 131072);
});

// ---- declarative MaxRecvDataSegmentLength ----------------------------------------------------

test('rfc7143 13.12: the initiator MRDSL becomes the target send limit; no answer when ours is the default', () => {
  const n = negotiator();
  const step = n.processOperational([['MaxRecvDataSegmentLength', '262144']]);
  assert.deepEqual(step.response, []);
  const r = n.result();
  assert.equal(r.maxXmitDataSegmentLength, 262144);
  assert.equal(r.maxRecvDataSegmentLength, 8192);
});

test('rfc7143 13.12: the target declares its own MRDSL once when it differs from 8192', () => {
  const n = negotiator({ MaxRecvDataSegmentLength: '65536' });
  const first = n.processOperational([['MaxRecvDataSegmentLength', '262144']]);
  assert.deepEqual(first.response, [['MaxRecvDataSegmentLength', '65536']]);
  assert.deepEqual(n.processOperational([['MaxBurstLength', '65536']]).response, [
    ['MaxBurstLength', '65536'],
  ]);
  assert.deepEqual(n.proposals().response, []);
  assert.equal(n.result().maxRecvDataSegmentLength, 65536);
});

test('rfc7143 13.12: without a declaration the target sends at most the RFC default 8192', () => {
  assert.equal(negotiator().result().maxXmitDataSegmentLength, 8192);
});

test('rfc7143 13.12: an out-of-range initiator MRDSL is rejected and the default stays', () => {
  const n = negotiator();
  assert.deepEqual(n.processOperational([['MaxRecvDataSegmentLength', '100']]).response, [
    ['MaxRecvDataSegmentLength', 'Reject'],
  ]);
  assert.equal(n.result().maxXmitDataSegmentLength, 8192);
});

// ---- target proposals ------------------------------------------------------------------------

test('tgt §4.1: target proposes keys it changed from the RFC default that the initiator did not send', () => {
  const n = negotiator({ ImmediateData: 'No', MaxBurstLength: '1048576', DefaultTime2Retain: '20' });
  n.processOperational([['MaxRecvDataSegmentLength', '262144']]);
  const p = n.proposals();
  assert.deepEqual(p.response, [
    ['ImmediateData', 'No'],
    ['MaxBurstLength', '1048576'],
  ]);
  assert.ok(p.awaitingAnswers);
  // The initiator answers in its next request; nothing new to propose afterwards.
  const step = n.processOperational([
    ['ImmediateData', 'No'],
    ['MaxBurstLength', '262144'],
  ]);
  assert.deepEqual(step, { response: [] });
  assert.equal(n.awaitingAnswers, false);
  assert.deepEqual(n.proposals(), { response: [], awaitingAnswers: false });
  const r = n.result();
  assert.equal(r.immediateData, false);
  assert.equal(r.maxBurstLength, 262144);
});

test('tgt §4.2: a bad answer to a target proposal is a login error, not Reject', () => {
  const n = negotiator({ ImmediateData: 'No' });
  n.proposals();
  const step = n.processOperational([['ImmediateData', 'Yes']]); // AND with our No can only be No
  assert.equal(step.error?.statusClass, 2);
  assert.equal(step.error?.statusDetail, 0);
});

test('rfc7143 6.2: a min-function answer above the target offer is refused', () => {
  const n = negotiator({ MaxBurstLength: '65536' });
  n.proposals();
  assert.ok(n.processOperational([['MaxBurstLength', '131072']]).error);
});

test('rfc7143 6.2: a proposal answered Reject leaves the RFC default', () => {
  const n = negotiator({ InitialR2T: 'No' });
  assert.deepEqual(n.proposals().response, [['InitialR2T', 'No']]);
  assert.deepEqual(n.processOperational([['InitialR2T', 'Reject']]), { response: [] });
  assert.equal(n.result().initialR2T, true);
});

test('digest proposal offers both values when the target accepts both', () => {
  const n = negotiator({ HeaderDigest: 'CRC32C' });
  assert.deepEqual(n.proposals().response, [['HeaderDigest', 'CRC32C,None']]);
  assert.equal(n.processOperational([['HeaderDigest', 'CRC32C']]).error, undefined);
  assert.equal(n.result().headerDigest, true);
});

test('no proposals with a default target, and none for keys the initiator already sent', () => {
  const n = negotiator({ ImmediateData: 'No' });
  n.processOperational([['ImmediateData', 'Yes']]);
  assert.deepEqual(n.proposals(), { response: [], awaitingAnswers: false });
  assert.deepEqual(negotiator().proposals(), { response: [], awaitingAnswers: false });
});

test('discovery sessions propose no session keys that are irrelevant there', () => {
  const n = negotiator({ ImmediateData: 'No', MaxConnections: '4', DefaultTime2Wait: '5' }, 'Discovery');
  assert.deepEqual(n.proposals().response, [['DefaultTime2Wait', '5']]);
});

// ---- security stage --------------------------------------------------------------------------

test('tgt §4.1: security stage: AuthMethod=None accepted only without incoming accounts', () => {
  const open = negotiator().processSecurity([['AuthMethod', 'None']], false);
  assert.deepEqual(open.response, [['AuthMethod', 'None']]);
  assert.equal(open.authMethod, 'None');
  const closed = negotiator().processSecurity([['AuthMethod', 'None']], true);
  assert.deepEqual(closed.response, [['AuthMethod', 'Reject']]);
  assert.equal(closed.error?.statusClass, 2);
  assert.equal(closed.error?.statusDetail, 1); // authentication failure
});

test('rfc7143 12.1: AuthMethod list: first acceptable method in initiator order', () => {
  const step = negotiator().processSecurity([['AuthMethod', 'KRB5,CHAP,None']], true);
  assert.deepEqual(step.response, [['AuthMethod', 'CHAP']]);
  assert.equal(negotiator().processSecurity([['AuthMethod', 'CHAP,None']], false).authMethod, 'None');
});

test('tgt §4.1: operational keys in the security stage are answered NotUnderstood; CHAP keys pass through', () => {
  const n = negotiator();
  const step = n.processSecurity(
    [
      ['InitiatorName', 'iqn.2026-11.test:i'],
      ['AuthMethod', 'CHAP'],
      ['HeaderDigest', 'None'],
      ['CHAP_A', '5'],
    ],
    true,
  );
  assert.deepEqual(step.response, [
    ['AuthMethod', 'CHAP'],
    ['HeaderDigest', 'NotUnderstood'],
  ]);
  assert.deepEqual(step.chapPairs, [['CHAP_A', '5']]);
  // Not negotiated there, so it can be offered in the operational stage.
  assert.deepEqual(n.processOperational([['HeaderDigest', 'None']]).response, [['HeaderDigest', 'None']]);
});

test('rfc7143 6.3: AuthMethod negotiated twice -> initiator error', () => {
  const n = negotiator();
  n.processSecurity([['AuthMethod', 'CHAP']], true);
  assert.equal(n.processSecurity([['AuthMethod', 'CHAP']], true).error?.statusDetail, 0);
});

test('security keys in the operational stage: AuthMethod ignored (tgt), CHAP_* NotUnderstood', () => {
  assert.deepEqual(negotiator().processOperational([['AuthMethod', 'None']]), { response: [] });
  assert.equal(answer('CHAP_A', '5'), 'NotUnderstood');
});

// ---- MC/S: a connection joining a session ----------------------------------------------------

test('rfc7143 13: on a non-leading connection LO keys are Irrelevant and the session values stay', () => {
  const lead = negotiator({ MaxConnections: '4' });
  lead.processOperational([
    ['MaxConnections', '4'],
    ['MaxBurstLength', '65536'],
  ]);
  const session = lead.result();
  const second = new LoginNegotiator({
    params: new TargetParams(),
    sessionType: 'Normal',
    leadingSession: session,
  });
  const step = second.processOperational([
    ['MaxBurstLength', '512'],
    ['HeaderDigest', 'None'],
    ['MaxRecvDataSegmentLength', '16384'],
  ]);
  assert.deepEqual(step.response, [
    ['MaxBurstLength', 'Irrelevant'],
    ['HeaderDigest', 'None'],
  ]);
  const r = second.result();
  assert.equal(r.maxBurstLength, 65536);
  assert.equal(r.maxConnections, 4);
  assert.equal(r.maxXmitDataSegmentLength, 16384);
});

// ---- real initiators (pcap fixtures in /work/shared/fixtures) --------------------------------

// linux-kernel-initiator.pcap frame 12: Linux 6.1 iscsi_tcp / open-iscsi 2.1.8, first Login request
// (CSG=1 operational, T=1 NSG=3, AuthMethod skipped).
const KERNEL_OPERATIONAL =
  'InitiatorName=iqn.2026-11.test:initiator\0InitiatorAlias=(none)\0TargetName=iqn.2026-11.example:disk1\0' +
  'SessionType=Normal\0HeaderDigest=None\0DataDigest=None\0DefaultTime2Wait=2\0DefaultTime2Retain=0\0' +
  'IFMarker=No\0OFMarker=No\0ErrorRecoveryLevel=0\0InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=16776192\0' +
  'FirstBurstLength=262144\0MaxOutstandingR2T=1\0MaxConnections=1\0DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0' +
  'MaxRecvDataSegmentLength=262144\0';
// Frame 14: tgt's answer after its TargetPortalGroupTag=1 (which the connection layer adds).
const TGT_ANSWER_TO_KERNEL: TextPair[] = [
  ['HeaderDigest', 'None'],
  ['DataDigest', 'None'],
  ['DefaultTime2Wait', '2'],
  ['DefaultTime2Retain', '0'],
  ['IFMarker', 'No'],
  ['OFMarker', 'No'],
  ['ErrorRecoveryLevel', '0'],
  ['InitialR2T', 'Yes'],
  ['ImmediateData', 'Yes'],
  ['MaxBurstLength', '262144'],
  ['FirstBurstLength', '65536'],
  ['MaxOutstandingR2T', '1'],
  ['MaxConnections', '1'],
  ['DataPDUInOrder', 'Yes'],
  ['DataSequenceInOrder', 'Yes'],
];

test('fixture linux-kernel-initiator.pcap: our answer to the kernel equals tgt 1.0.85 key for key', () => {
  const n = negotiator();
  const step = n.processOperational(parseText(Buffer.from(KERNEL_OPERATIONAL)));
  assert.equal(step.error, undefined);
  assert.deepEqual(step.response, TGT_ANSWER_TO_KERNEL);
  assert.deepEqual(n.proposals(), { response: [], awaitingAnswers: false });
  assert.deepEqual(n.result(), {
    sessionType: 'Normal',
    headerDigest: false,
    dataDigest: false,
    maxRecvDataSegmentLength: 8192,
    maxXmitDataSegmentLength: 262144,
    firstBurstLength: 65536,
    maxBurstLength: 262144,
    initialR2T: true,
    immediateData: true,
    maxOutstandingR2T: 1,
    dataPDUInOrder: true,
    dataSequenceInOrder: true,
    errorRecoveryLevel: 0,
    defaultTime2Wait: 2,
    defaultTime2Retain: 0,
    maxConnections: 1,
    taskReporting: 'RFC3720',
    iscsiProtocolLevel: 1,
    rdmaExtensions: false,
    maxQueueCmd: 128,
  });
});

// linux-kernel-initiator-chap-digests.pcap frame 25 (after mutual CHAP): CRC32C digests requested;
// the target was configured with HeaderDigest=CRC32C and DataDigest=CRC32C. Frame 27 is tgt's answer.
const KERNEL_DIGESTS =
  'HeaderDigest=CRC32C\0DataDigest=CRC32C\0DefaultTime2Wait=2\0DefaultTime2Retain=0\0IFMarker=No\0OFMarker=No\0' +
  'ErrorRecoveryLevel=0\0InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=16776192\0FirstBurstLength=262144\0' +
  'MaxOutstandingR2T=1\0MaxConnections=1\0DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0MaxRecvDataSegmentLength=262144\0';

test('fixture linux-kernel-initiator-chap-digests.pcap: CRC32C header and data digests are selected', () => {
  const n = negotiator({ HeaderDigest: 'CRC32C', DataDigest: 'CRC32C' });
  const step = n.processOperational(parseText(Buffer.from(KERNEL_DIGESTS)));
  assert.deepEqual(step.response, [
    ['HeaderDigest', 'CRC32C'],
    ['DataDigest', 'CRC32C'],
    ...TGT_ANSWER_TO_KERNEL.slice(2),
  ]);
  const r = n.result();
  assert.equal(r.headerDigest, true);
  assert.equal(r.dataDigest, true);
});

// libiscsi-discovery-and-inquiry.pcap frame 54: libiscsi 1.19 iscsi-inq, first Login request (CSG=1).
const LIBISCSI_NORMAL =
  'InitiatorName=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-inq\0TargetName=iqn.2026-11.example:disk2\0' +
  'SessionType=Normal\0HeaderDigest=None,CRC32C\0DataDigest=None\0InitialR2T=No\0ImmediateData=Yes\0' +
  'MaxBurstLength=262144\0FirstBurstLength=262144\0DefaultTime2Wait=2\0DefaultTime2Retain=0\0MaxOutstandingR2T=1\0' +
  'ErrorRecoveryLevel=0\0IFMarker=No\0OFMarker=No\0MaxConnections=1\0MaxRecvDataSegmentLength=262144\0' +
  'DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0';

test('fixture libiscsi-discovery-and-inquiry.pcap: our answer to libiscsi equals tgt (frame 56)', () => {
  const n = negotiator();
  const step = n.processOperational(parseText(Buffer.from(LIBISCSI_NORMAL)));
  assert.deepEqual(step.response, [
    ['HeaderDigest', 'None'],
    ['DataDigest', 'None'],
    ['InitialR2T', 'Yes'],
    ['ImmediateData', 'Yes'],
    ['MaxBurstLength', '262144'],
    ['FirstBurstLength', '65536'],
    ['DefaultTime2Wait', '2'],
    ['DefaultTime2Retain', '0'],
    ['MaxOutstandingR2T', '1'],
    ['ErrorRecoveryLevel', '0'],
    ['IFMarker', 'No'],
    ['OFMarker', 'No'],
    ['MaxConnections', '1'],
    ['DataPDUInOrder', 'Yes'],
    ['DataSequenceInOrder', 'Yes'],
  ]);
  assert.equal(n.result().maxXmitDataSegmentLength, 262144);
});

// Frame 4: libiscsi iscsi-ls discovery login. tgt negotiated every key here; RFC 7143 13 makes the
// session-data keys Irrelevant in a discovery session.
const LIBISCSI_DISCOVERY =
  'InitiatorName=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-ls\0SessionType=Discovery\0HeaderDigest=None\0' +
  'DataDigest=None\0InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=262144\0FirstBurstLength=262144\0' +
  'DefaultTime2Wait=2\0DefaultTime2Retain=0\0MaxOutstandingR2T=1\0ErrorRecoveryLevel=0\0IFMarker=No\0OFMarker=No\0' +
  'MaxConnections=1\0MaxRecvDataSegmentLength=262144\0DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0';

test('fixture libiscsi discovery login: session-data keys answered Irrelevant, the rest negotiated', () => {
  const n = new LoginNegotiator({ params: new TargetParams(), sessionType: 'Discovery' });
  const step = n.processOperational(parseText(Buffer.from(LIBISCSI_DISCOVERY)));
  assert.deepEqual(step.response, [
    ['HeaderDigest', 'None'],
    ['DataDigest', 'None'],
    ['InitialR2T', 'Irrelevant'],
    ['ImmediateData', 'Irrelevant'],
    ['MaxBurstLength', 'Irrelevant'],
    ['FirstBurstLength', 'Irrelevant'],
    ['DefaultTime2Wait', '2'],
    ['DefaultTime2Retain', '0'],
    ['MaxOutstandingR2T', 'Irrelevant'],
    ['ErrorRecoveryLevel', '0'],
    ['IFMarker', 'No'],
    ['OFMarker', 'No'],
    ['MaxConnections', 'Irrelevant'],
    ['DataPDUInOrder', 'Irrelevant'],
    ['DataSequenceInOrder', 'Irrelevant'],
  ]);
  const r = n.result();
  assert.equal(r.sessionType, 'Discovery');
  assert.equal(r.maxXmitDataSegmentLength, 262144);
  assert.equal(r.maxBurstLength, 262144);
});

// linux-kernel-initiator-chap-digests.pcap frame 12: the kernel's security-stage opener.
test('fixture kernel CHAP login: the security-stage opener selects CHAP with no other answers', () => {
  const text =
    'InitiatorName=iqn.2026-11.test:initiator\0InitiatorAlias=(none)\0TargetName=iqn.2026-11.example:disk1\0' +
    'SessionType=Normal\0AuthMethod=CHAP\0';
  const step = negotiator().processSecurity(parseText(Buffer.from(text)), true);
  assert.deepEqual(step.response, [['AuthMethod', 'CHAP']]); // frame 14 adds TargetPortalGroupTag=1 first
  assert.equal(step.error, undefined);
});

test('bad input never crashes: every known key with odd values gets an answer or a login status', () => {
  const values = [
    '',
    'Yes',
    'No',
    '0',
    '1',
    '512',
    '0x',
    '99999999999999999999',
    'None,CRC32C',
    'Reject',
    ',',
    '\u00e9',
  ];
  const names = [
    ...TARGET_PARAM_NAMES,
    'TaskReporting',
    'iSCSIProtocolLevel',
    'SendTargets',
    'CHAP_R',
    'X-a',
  ];
  for (const type of ['Normal', 'Discovery'] as const) {
    for (const name of names) {
      for (const value of values) {
        const n = negotiator({}, type);
        const step = n.processOperational([[name, value]]);
        assert.ok(step.error !== undefined || step.response.length <= 1, `${name}=${value}`);
        n.proposals();
        assert.doesNotThrow(() => n.result());
      }
    }
  }
});

test('rfc7143 13.19: ErrorRecoveryLevel > 0 with DataSequenceInOrder=Yes leaves MaxOutstandingR2T at 1', () => {
  const settings = { ErrorRecoveryLevel: '1', MaxOutstandingR2T: '8' };
  const erl1 = negotiator(settings);
  erl1.processOperational([
    ['ErrorRecoveryLevel', '1'],
    ['MaxOutstandingR2T', '8'],
    ['DataSequenceInOrder', 'Yes'],
  ]);
  assert.equal(erl1.result().errorRecoveryLevel, 1);
  assert.equal(erl1.result().maxOutstandingR2T, 1);
  const erl0 = negotiator(settings);
  erl0.processOperational([
    ['ErrorRecoveryLevel', '0'],
    ['MaxOutstandingR2T', '8'],
  ]);
  assert.equal(erl0.result().maxOutstandingR2T, 8, 'ERL 0: the negotiated value');
  // DataSequenceInOrder is ORed (13.19): both sides must say No
  const unordered = negotiator({ ...settings, DataSequenceInOrder: 'No' });
  unordered.processOperational([
    ['ErrorRecoveryLevel', '1'],
    ['MaxOutstandingR2T', '8'],
    ['DataSequenceInOrder', 'No'],
  ]);
  assert.equal(unordered.result().maxOutstandingR2T, 8, 'sequences in any order: every R2T recoverable');
});

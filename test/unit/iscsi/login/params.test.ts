import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KEY_TABLE,
  TARGET_PARAM_NAMES,
  TargetParams,
  isExtensionKey,
  lookupKey,
  lookupKeyIgnoreCase,
} from '../../../../src/iscsi/params.js';

// tgt 1.0.x `tgtadm --lld iscsi --mode target --op show --tid N` on a fresh target.
const TGT_DEFAULT_SHOW = `nop_interval=0
nop_count=0
MaxRecvDataSegmentLength=8192
HeaderDigest=None
DataDigest=None
InitialR2T=Yes
MaxOutstandingR2T=1
ImmediateData=Yes
FirstBurstLength=65536
MaxBurstLength=262144
DataPDUInOrder=Yes
DataSequenceInOrder=Yes
ErrorRecoveryLevel=0
IFMarker=No
OFMarker=No
DefaultTime2Wait=2
DefaultTime2Retain=20
OFMarkInt=Reject
IFMarkInt=Reject
MaxConnections=1
RDMAExtensions=Yes
TargetRecvDataSegmentLength=262144
InitiatorRecvDataSegmentLength=262144
MaxOutstandingUnexpectedPDUs=0
MaxXmitDataSegmentLength=8192
MaxQueueCmd=128
`;

test('tgt §2.6: target show --tid lists nop settings then every key in tgt order with tgt defaults', () => {
  assert.equal(new TargetParams().show(), TGT_DEFAULT_SHOW);
});

test('tgt §4.10: nop_interval/nop_count defaults come from tgtd --iscsi and are updatable', () => {
  const p = new TargetParams({ nopInterval: 5, nopCount: 3 });
  assert.match(p.show(), /^nop_interval=5\nnop_count=3\n/);
  assert.ok(p.set('nop_interval', '10'));
  assert.ok(p.set('nop_count', '0'));
  assert.equal(p.nopInterval, 10);
  assert.equal(p.nopCount, 0);
  assert.equal(p.set('nop_interval', '-1'), false);
  assert.equal(p.set('nop_count', 'many'), false);
});

test('tgt §2.5: target update accepts iSCSI key names case-insensitively and shows the new value', () => {
  const p = new TargetParams();
  assert.ok(p.set('maxrecvdatasegmentlength', '262144'));
  assert.ok(p.set('InitialR2T', 'No'));
  assert.ok(p.set('MaxQueueCmd', '256'));
  const show = p.show();
  assert.match(show, /\nMaxRecvDataSegmentLength=262144\n/);
  assert.match(show, /\nInitialR2T=No\n/);
  assert.match(show, /\nMaxQueueCmd=256\n/);
  assert.equal(p.get('MaxRecvDataSegmentLength'), 262144);
  assert.equal(p.getBool('InitialR2T'), false);
});

test('tgt §2.5: target update refuses out-of-range numbers (tgt silently clamps; we say no)', () => {
  const p = new TargetParams();
  const bad: [string, string][] = [
    ['MaxRecvDataSegmentLength', '511'],
    ['MaxRecvDataSegmentLength', '16777216'],
    ['MaxBurstLength', 'big'],
    ['MaxOutstandingR2T', '0'],
    ['ErrorRecoveryLevel', '3'],
    ['DefaultTime2Wait', '3601'],
    ['MaxConnections', '65536'],
    ['MaxQueueCmd', '513'],
    ['MaxQueueCmd', '0'],
    ['MaxOutstandingUnexpectedPDUs', '1'],
    ['FirstBurstLength', '1.5'],
  ];
  for (const [name, value] of bad) assert.equal(p.set(name, value), false, `${name}=${value}`);
  assert.equal(p.show(), TGT_DEFAULT_SHOW);
});

test('tgt §2.5: numeric values may be decimal or 0x hex', () => {
  const p = new TargetParams();
  assert.ok(p.set('MaxBurstLength', '0x100000'));
  assert.equal(p.get('MaxBurstLength'), 1048576);
});

test('tgt §2.5: booleans accept exactly Yes/No', () => {
  const p = new TargetParams();
  for (const v of ['yes', 'true', '1', '']) assert.equal(p.set('ImmediateData', v), false, v);
  assert.ok(p.set('ImmediateData', 'No'));
  assert.match(p.show(), /\nImmediateData=No\n/);
});

test('tgt §4.2: HeaderDigest=CRC32C offers CRC32C and still allows None; shows CRC32C', () => {
  const p = new TargetParams();
  assert.ok(p.set('HeaderDigest', 'CRC32C'));
  assert.deepEqual(p.digest('HeaderDigest'), { none: true, crc32c: true });
  assert.match(p.show(), /\nHeaderDigest=CRC32C\nDataDigest=None\n/);
  assert.ok(p.set('HeaderDigest', 'None'));
  assert.deepEqual(p.digest('HeaderDigest'), { none: true, crc32c: false });
  assert.equal(p.set('DataDigest', 'MD5'), false);
});

test('tgt §2.5: MaxOutstandingUnexpectedPDUs is 0 (no limit) or 2..2^32-1', () => {
  const p = new TargetParams();
  assert.ok(p.set('MaxOutstandingUnexpectedPDUs', '2'));
  assert.ok(p.set('MaxOutstandingUnexpectedPDUs', '4294967295'));
  assert.ok(p.set('MaxOutstandingUnexpectedPDUs', '0'));
  assert.equal(p.set('MaxOutstandingUnexpectedPDUs', '4294967296'), false);
});

test('tgt §2.5: unknown parameter names are refused', () => {
  const p = new TargetParams();
  assert.equal(p.set('NoSuchKey', '1'), false);
  assert.equal(p.set('CHAP_A', '5'), false);
});

test('tgt §2.6/§4.8: with a redirect configured, show prints only the Redirect lines', () => {
  const p = new TargetParams();
  assert.ok(p.set('RedirectAddress', '192.0.2.1'));
  assert.ok(p.set('RedirectPort', '3260'));
  assert.equal(p.show(), 'RedirectAddress=192.0.2.1\nRedirectPort=3260\nRedirectReason=Unknown\n');
  assert.ok(p.set('RedirectReason', 'Permanent'));
  assert.equal(p.set('RedirectReason', 'Sometimes'), false);
  assert.match(p.show(), /RedirectReason=Permanent\n$/);
  assert.ok(p.redirected);
  assert.ok(p.set('RedirectCallback', '/usr/local/bin/redir'));
  assert.equal(p.show(), 'RedirectCallback=/usr/local/bin/redir\n');
});

test('rfc7143 13: the key table carries RFC defaults, ranges and result functions', () => {
  const expect: [string, string | undefined, string][] = [
    ['HeaderDigest', 'None', 'list'],
    ['MaxConnections', '1', 'min'],
    ['InitialR2T', 'Yes', 'or'],
    ['ImmediateData', 'Yes', 'and'],
    ['MaxRecvDataSegmentLength', '8192', 'declarative'],
    ['MaxBurstLength', '262144', 'min'],
    ['FirstBurstLength', '65536', 'min'],
    ['DefaultTime2Wait', '2', 'max'],
    ['DefaultTime2Retain', '20', 'min'],
    ['MaxOutstandingR2T', '1', 'min'],
    ['DataPDUInOrder', 'Yes', 'or'],
    ['DataSequenceInOrder', 'Yes', 'or'],
    ['ErrorRecoveryLevel', '0', 'min'],
    ['SessionType', 'Normal', 'declarative'],
    ['TaskReporting', 'RFC3720', 'list'],
    ['iSCSIProtocolLevel', '1', 'min'],
    ['IFMarker', 'No', 'and'],
    ['RDMAExtensions', 'No', 'and'],
    ['MaxOutstandingUnexpectedPDUs', '0', 'minOrZero'],
    ['AuthMethod', 'None', 'list'],
  ];
  for (const [name, def, result] of expect) {
    const k = lookupKey(name);
    assert.ok(k, name);
    assert.equal(k.rfcDefault, def, name);
    assert.equal(k.result, result, name);
  }
  assert.equal(lookupKey('MaxRecvDataSegmentLength')!.max, 16777215);
  assert.equal(lookupKey('MaxRecvDataSegmentLength')!.scope, 'connection');
  assert.equal(lookupKey('MaxBurstLength')!.use, 'LO');
  assert.ok(lookupKey('DataSequenceInOrder')!.irrelevantInDiscovery);
  assert.ok(!lookupKey('DefaultTime2Wait')!.irrelevantInDiscovery);
  assert.equal(lookupKey('CHAP_A')!.stage, 'security');
});

test('rfc7143 6.1: wire lookup is case-sensitive, admin lookup is not', () => {
  assert.equal(lookupKey('headerdigest'), undefined);
  assert.equal(lookupKeyIgnoreCase('headerdigest')?.name, 'HeaderDigest');
});

test('rfc7143 13.22: X- and X# keys are extension keys', () => {
  assert.ok(isExtensionKey('X-com.example.Foo'));
  assert.ok(isExtensionKey('X#NodeArchitecture'));
  assert.ok(!isExtensionKey('MaxBurstLength'));
});

test('every settable wire key exists in the key table', () => {
  for (const name of TARGET_PARAM_NAMES) {
    if (name === 'MaxXmitDataSegmentLength' || name === 'MaxQueueCmd') continue;
    assert.ok(lookupKey(name), name);
  }
  assert.equal(new Set(KEY_TABLE.map((k) => k.name)).size, KEY_TABLE.length);
});

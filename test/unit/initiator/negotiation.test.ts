import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginNegotiator } from '../../../src/initiator/index.js';

test('rfc7143 6.2.2: answers to our proposals are taken (min, AND, OR, list)', () => {
  const n = new LoginNegotiator({ headerDigest: 'CRC32C,None', immediateData: true, initialR2T: false });
  const sent = new Map(n.initialKeys());
  assert.equal(sent.get('HeaderDigest'), 'CRC32C,None');
  assert.equal(sent.get('InitialR2T'), 'No');
  n.absorb([
    ['HeaderDigest', 'CRC32C'],
    ['ImmediateData', 'No'],
    ['InitialR2T', 'Yes'],
    ['MaxBurstLength', '65536'],
    ['MaxRecvDataSegmentLength', '16384'],
  ]);
  const p = n.result();
  assert.equal(p.headerDigest, true);
  assert.equal(p.immediateData, false);
  assert.equal(p.initialR2T, true);
  assert.equal(p.maxBurstLength, 65536);
  assert.equal(p.maxXmitDataSegmentLength, 16384, "the target's declared MRDSL is our send limit");
  assert.equal(p.maxRecvDataSegmentLength, 262144);
});

test('rfc7143 6.2.2: illegal answers are negotiation errors (AND turned on, list value not offered)', () => {
  const and = new LoginNegotiator({ immediateData: false });
  and.initialKeys();
  assert.throws(() => and.absorb([['ImmediateData', 'Yes']]), { code: 'TGT_ERR_INI_NEGOTIATION' });
  const list = new LoginNegotiator({ dataDigest: 'None' });
  list.initialKeys();
  assert.throws(() => list.absorb([['DataDigest', 'CRC32C']]), { code: 'TGT_ERR_INI_NEGOTIATION' });
  const max = new LoginNegotiator({ defaultTime2Wait: 5 });
  max.initialKeys();
  assert.throws(() => max.absorb([['DefaultTime2Wait', '1']]), { code: 'TGT_ERR_INI_NEGOTIATION' });
});

test('rfc7143 6.2: keys the target proposes are answered with the negotiated result; unknown -> NotUnderstood', () => {
  const n = new LoginNegotiator({ maxBurstLength: 100000 });
  // Nothing sent yet: every key below is a target proposal.
  const replies = n.absorb([
    ['MaxBurstLength', '262144'],
    ['InitialR2T', 'Yes'],
    ['HeaderDigest', 'CRC32C,None'],
    ['X-vendor.key', 'foo'],
    ['TargetAlias', 'disk1'],
  ]);
  assert.deepEqual(replies, [
    ['MaxBurstLength', '100000'],
    ['InitialR2T', 'Yes'],
    ['HeaderDigest', 'None'],
    ['X-vendor.key', 'NotUnderstood'],
  ]);
  assert.equal(n.result().targetAlias, 'disk1');
  assert.equal(n.result().maxBurstLength, 100000);
});

test('rfc7143 13: a discovery session proposes only keys relevant to discovery', () => {
  const keys = new LoginNegotiator({}, true).initialKeys().map(([k]) => k);
  assert.ok(keys.includes('HeaderDigest') && keys.includes('MaxRecvDataSegmentLength'));
  assert.ok(!keys.includes('InitialR2T') && !keys.includes('MaxBurstLength') && !keys.includes('IFMarker'));
});

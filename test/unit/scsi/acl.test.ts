import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  aclAllows,
  addressRuleMatches,
  isAclMatch,
  isValidAddressRule,
  parseIpv6,
} from '../../../src/scsi/acl.js';

test('tgt §4.6 ALL, exact IPv4 and IPv4/bits rules', () => {
  assert.ok(addressRuleMatches('ALL', '10.1.2.3'));
  assert.ok(addressRuleMatches('10.1.2.3', '10.1.2.3'));
  assert.ok(!addressRuleMatches('10.1.2.3', '10.1.2.4'));
  assert.ok(addressRuleMatches('10.1.0.0/16', '10.1.200.7'));
  assert.ok(!addressRuleMatches('10.1.0.0/16', '10.2.0.1'));
  assert.ok(addressRuleMatches('10.1.2.3', '::ffff:10.1.2.3')); // dual-stack listener
});

test('tgt §4.6 IPv6 rules, bare or bracketed, with prefix', () => {
  assert.ok(addressRuleMatches('fe80::1', 'fe80::1%eth0'));
  assert.ok(addressRuleMatches('[2001:db8::]/32', '2001:db8:1::5'));
  assert.ok(addressRuleMatches('2001:db8::/32', '2001:db8::5'));
  assert.ok(!addressRuleMatches('[2001:db8::]/32', '2001:db9::5'));
  assert.ok(!addressRuleMatches('2001:db8::1', '10.0.0.1'));
  assert.deepEqual([...parseIpv6('::ffff:1.2.3.4')!.subarray(10)], [0xff, 0xff, 1, 2, 3, 4]);
});

test('tgt §4.6 invalid rules: host bits set, /32, /128, garbage', () => {
  assert.ok(!isValidAddressRule('10.1.2.3/16'));
  assert.ok(!isValidAddressRule('10.1.2.3/32'));
  assert.ok(!isValidAddressRule('[::1]/128'));
  assert.ok(!isValidAddressRule('host.example'));
  assert.ok(!isValidAddressRule('1.2.3.256'));
  assert.ok(isValidAddressRule('0.0.0.0/0'));
});

test('tgt §4.6 a login passes if ANY address rule OR ANY name rule matches; empty = nobody', () => {
  const iqn = 'iqn.2024-01.x:init';
  assert.ok(!aclAllows({ addresses: [], names: [] }, '1.2.3.4', iqn));
  assert.ok(aclAllows({ addresses: ['5.5.5.5'], names: [iqn] }, '1.2.3.4', iqn));
  assert.ok(aclAllows({ addresses: ['1.2.3.0/24'], names: ['other'] }, '1.2.3.4', iqn));
  assert.ok(!aclAllows({ addresses: [], names: [iqn.toUpperCase()] }, '1.2.3.4', iqn)); // case-sensitive
});

test('tgt-ts acl_match=all: an address rule AND a name rule must match; an unbound kind does not restrict', () => {
  const iqn = 'iqn.2024-01.x:init';
  const both = { addresses: ['10.0.0.0/8'], names: [iqn] };
  assert.ok(aclAllows(both, '10.1.2.3', iqn, 'all'));
  assert.ok(!aclAllows(both, '10.1.2.3', 'iqn.2024-01.x:other', 'all'), 'name does not match');
  assert.ok(!aclAllows(both, '192.168.1.1', iqn, 'all'), 'address does not match');
  assert.ok(aclAllows(both, '192.168.1.1', iqn, 'any'), "tgt's OR lets the name alone in");
  assert.ok(aclAllows({ addresses: [], names: [iqn] }, '192.168.1.1', iqn, 'all'), 'names only');
  assert.ok(aclAllows({ addresses: ['ALL'], names: [iqn] }, '192.168.1.1', iqn, 'all'));
  assert.ok(!aclAllows({ addresses: ['ALL'], names: [iqn] }, '192.168.1.1', 'iqn.x:y', 'all'));
  assert.ok(!aclAllows({ addresses: [], names: [] }, '10.1.2.3', iqn, 'all'), 'empty ACL: nobody');
});

test('tgt-ts acl_match values are any and all only', () => {
  assert.ok(isAclMatch('any') && isAclMatch('all'));
  for (const v of ['AND', 'or', '', 'All']) assert.ok(!isAclMatch(v), v);
});

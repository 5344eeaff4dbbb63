import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHostPort, parsePortal } from '../../../../src/iscsi/portal.js';

test('tgt §1.7: portal=ADDR:PORT, IPv6 in brackets, port 3260 by default', () => {
  assert.deepEqual(parsePortal('127.0.0.1:3261'), { host: '127.0.0.1', port: 3261 });
  assert.deepEqual(parsePortal('127.0.0.1'), { host: '127.0.0.1', port: 3260 });
  assert.deepEqual(parsePortal('[::1]:3262'), { host: '::1', port: 3262 });
  assert.deepEqual(parsePortal('[::1]'), { host: '::1', port: 3260 });
  assert.deepEqual(parsePortal(':3263'), { host: '', port: 3263 });
  assert.deepEqual(parsePortal('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
});

test('malformed portals are refused', () => {
  assert.equal(parsePortal('127.0.0.1:99999'), null);
  assert.equal(parsePortal('127.0.0.1:abc'), null);
  assert.equal(parsePortal('[not-v6]:3260'), null);
  assert.equal(parsePortal('a b:3260'), null);
});

test('tgt §4.4: addresses print with IPv6 in brackets and without zone ids', () => {
  assert.equal(formatHostPort('10.0.0.1', 3260), '10.0.0.1:3260');
  assert.equal(formatHostPort('fe80::1%eth0', 3260), '[fe80::1]:3260');
});

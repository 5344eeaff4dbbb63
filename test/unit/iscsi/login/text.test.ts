import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_TEXT_LIMIT,
  TextAccumulator,
  TextFormatError,
  decodeBinary,
  decodeNumber,
  encodeBase64,
  encodeHex,
  encodeText,
  findKey,
  parseText,
  parseTextAllowRepeats,
  type TextPair,
} from '../../../../src/iscsi/text.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

test('rfc7143 6.1: parse key=value\\0 pairs in order', () => {
  const pairs = parseText(bytes('InitiatorName=iqn.2026-11.test:i\0HeaderDigest=CRC32C,None\0'));
  assert.deepEqual(pairs, [
    ['InitiatorName', 'iqn.2026-11.test:i'],
    ['HeaderDigest', 'CRC32C,None'],
  ]);
});

test('rfc7143 6.1: encode terminates every pair, the last included, with NUL; parse(encode(x)) = x', () => {
  const pairs: TextPair[] = [
    ['TargetPortalGroupTag', '1'],
    ['TargetAlias', 'disk \u00e9t\u00e9'],
    ['SendTargets', ''],
  ];
  const encoded = encodeText(pairs);
  assert.equal(encoded.at(-1), 0);
  assert.equal(
    encoded.toString('utf8'),
    'TargetPortalGroupTag=1\0TargetAlias=disk \u00e9t\u00e9\0SendTargets=\0',
  );
  assert.deepEqual(parseText(encoded), pairs);
});

test('rfc7143 6.1: a value may contain "=" (only the first one separates)', () => {
  assert.deepEqual(parseText(bytes('CHAP_R=0bAAE=\0')), [['CHAP_R', '0bAAE=']]);
});

test('rfc7143 6.1: a pair without "=" is a protocol error', () => {
  assert.throws(() => parseText(bytes('HeaderDigest\0')), TextFormatError);
});

test('rfc7143 6.1: an empty key name or an invalid key character is a protocol error', () => {
  assert.throws(() => parseText(bytes('=None\0')), TextFormatError);
  assert.throws(() => parseText(bytes('Header Digest=None\0')), TextFormatError);
});

test('rfc7143 6.1: key names longer than 63 characters are rejected', () => {
  assert.doesNotThrow(() => parseText(bytes(`X-${'a'.repeat(61)}=1\0`)));
  assert.throws(() => parseText(bytes(`X-${'a'.repeat(62)}=1\0`)), TextFormatError);
});

test('rfc7143 6.3: the same key twice in one text is a protocol error', () => {
  assert.throws(
    () => parseText(bytes('MaxBurstLength=512\0MaxBurstLength=512\0')),
    /duplicate key MaxBurstLength/,
  );
});

test('rfc7143 13.3: SendTargets responses repeat TargetName/TargetAddress (parseTextAllowRepeats)', () => {
  const text =
    'TargetName=iqn.a\0TargetAddress=127.0.0.1:3260,1\0TargetName=iqn.b\0TargetAddress=127.0.0.1:3260,1\0';
  assert.equal(parseTextAllowRepeats(bytes(text)).length, 4);
});

test('rfc7143 6.1: key names are case-sensitive (no folding)', () => {
  const pairs = parseText(bytes('HeaderDigest=None\0headerdigest=None\0'));
  assert.equal(pairs.length, 2);
  assert.equal(findKey(pairs, 'HeaderDigest'), 'None');
  assert.equal(findKey(pairs, 'HEADERDIGEST'), undefined);
});

test('rfc7143 6.1: values must be UTF-8', () => {
  const bad = Buffer.concat([bytes('InitiatorAlias='), Buffer.from([0xc3, 0x28]), Buffer.from([0])]);
  assert.throws(() => parseText(bad), /UTF-8/);
});

test('rfc7143 6.1: a simple value is at most 255 bytes', () => {
  assert.doesNotThrow(() => parseText(bytes(`InitiatorAlias=${'a'.repeat(255)}\0`)));
  assert.throws(() => parseText(bytes(`InitiatorAlias=${'a'.repeat(256)}\0`)), TextFormatError);
  // 255 counts bytes, not characters.
  assert.throws(() => parseText(bytes(`InitiatorAlias=${'\u00e9'.repeat(128)}\0`)), TextFormatError);
});

test('rfc7143 12.1.3: CHAP_C/CHAP_R may carry 1024 binary bytes, not more', () => {
  assert.doesNotThrow(() => parseText(bytes(`CHAP_C=0x${'ab'.repeat(1024)}\0`)));
  assert.throws(() => parseText(bytes(`CHAP_C=0x${'ab'.repeat(1025)}\0`)), TextFormatError);
});

test('empty entries (extra NULs) and a missing final NUL are tolerated', () => {
  assert.deepEqual(parseText(bytes('A=1\0\0B=2')), [
    ['A', '1'],
    ['B', '2'],
  ]);
  assert.deepEqual(parseText(Buffer.alloc(0)), []);
});

test('rfc7143 11.10.2: text continued over PDUs (C bit) is joined before parsing', () => {
  const acc = new TextAccumulator();
  const whole = bytes('InitiatorName=iqn.2026-11.test:i\0MaxRecvDataSegmentLength=262144\0');
  // Split in the middle of a key and in the middle of a value.
  assert.ok(acc.append(whole.subarray(0, 5)));
  assert.ok(acc.append(whole.subarray(5, 40)));
  assert.ok(acc.append(whole.subarray(40)));
  assert.equal(acc.length, whole.length);
  assert.deepEqual(parseText(acc.take()), parseText(whole));
  assert.equal(acc.length, 0);
});

test('text accumulation is bounded (default 64 KiB)', () => {
  assert.equal(DEFAULT_TEXT_LIMIT, 65536);
  const acc = new TextAccumulator(10);
  assert.ok(acc.append(Buffer.alloc(8)));
  assert.equal(acc.append(Buffer.alloc(3)), false);
  assert.equal(acc.length, 8);
});

test('text accumulation copies: later reuse of the receive buffer does not change collected text', () => {
  const acc = new TextAccumulator();
  const rx = bytes('A=1\0');
  acc.append(rx);
  rx.fill(0x41);
  assert.deepEqual(parseText(acc.take()), [['A', '1']]);
});

test('rfc7143 6.1: binary values decode from 0x hex and 0b base64', () => {
  assert.deepEqual(decodeBinary('0x0102ff'), Buffer.from([1, 2, 255]));
  assert.deepEqual(decodeBinary('0X0102FF'), Buffer.from([1, 2, 255]));
  assert.deepEqual(decodeBinary('0bAQL/'), Buffer.from([1, 2, 255]));
  assert.deepEqual(decodeBinary('0BAQI='), Buffer.from([1, 2]));
  assert.deepEqual(decodeBinary('0bAQI'), Buffer.from([1, 2]));
});

test('rfc7143 6.1: an odd number of hex digits implies a leading zero nibble', () => {
  assert.deepEqual(decodeBinary('0xabc'), Buffer.from([0x0a, 0xbc]));
});

test('rfc7143 6.1: malformed binary values are refused', () => {
  for (const v of ['', '0x', '0b', '1234', '0xzz', '0bA', '0bAQ=I', 'abcd', '0y12']) {
    assert.equal(decodeBinary(v), undefined, v);
  }
});

test('binary encoders: 0x lower-case hex and 0b base64 round-trip', () => {
  const data = Buffer.from([0, 0xde, 0xad, 0xbe, 0xef]);
  assert.equal(encodeHex(data), '0x00deadbeef');
  assert.deepEqual(decodeBinary(encodeHex(data)), data);
  assert.deepEqual(decodeBinary(encodeBase64(data)), data);
  // A view into a larger buffer encodes only its own bytes.
  assert.equal(encodeHex(Buffer.from([9, 1, 2, 9]).subarray(1, 3)), '0x0102');
});

test('rfc7143 6.1: numerical values are decimal or hex constants below 2^64', () => {
  assert.equal(decodeNumber('0'), 0);
  assert.equal(decodeNumber('262144'), 262144);
  assert.equal(decodeNumber('0x40000'), 262144);
  assert.equal(decodeNumber('18446744073709551615'), Infinity);
  for (const v of ['', '-1', '1.5', '012', ' 1', 'Yes', '0x', '18446744073709551616']) {
    assert.equal(decodeNumber(v), undefined, v);
  }
});

test('bad input never crashes: random bytes either parse or throw TextFormatError', () => {
  let seed = 0x2545f491;
  const next = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 16;
  };
  const alphabet = Buffer.from('AB=\0,x0\xff\xc3', 'latin1');
  for (let i = 0; i < 2000; i++) {
    const buf = Buffer.alloc(next() % 40);
    for (let j = 0; j < buf.length; j++) buf[j] = alphabet[next() % alphabet.length]!;
    try {
      for (const [k, v] of parseText(buf)) {
        assert.equal(typeof k, 'string');
        assert.equal(typeof v, 'string');
      }
    } catch (e) {
      assert.ok(e instanceof TextFormatError, String(e));
    }
  }
});

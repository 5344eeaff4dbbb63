// CRC32C digests (RFC 7143 13.1, Appendix B.4 test vectors) and their wire byte order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ZERO_PAD,
  crc32cOf,
  crc32cUpdate,
  dataDigest,
  headerDigest,
  readDigest,
  writeDigest,
} from '../../../../src/iscsi/digest.js';

// RFC 7143 Appendix B.4 lists each CRC as the bytes sent on the wire.
const vectors: [string, Buffer, string][] = [
  ['32 bytes of zeroes', Buffer.alloc(32, 0x00), 'aa36918a'],
  ['32 bytes of ones', Buffer.alloc(32, 0xff), '43aba862'],
  ['32 bytes of incrementing 00..1f', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), '4e79dd46'],
  ['32 bytes of decrementing 1f..00', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), '5cdb3f11'],
  [
    'an iSCSI SCSI Read (10) command PDU',
    Buffer.from(
      '01c00000000000000000000000000000' +
        '14000000000004000000001400000018' +
        '28000000000000000200000000000000',
      'hex',
    ),
    '563a96d9',
  ],
];

for (const [name, input, wire] of vectors) {
  test(`rfc7143 B.4: CRC32C of ${name} is ${wire} on the wire`, () => {
    const out = Buffer.alloc(4);
    writeDigest(out, 0, crc32cUpdate(0, input));
    assert.equal(out.toString('hex'), wire);
    assert.equal(readDigest(out, 0), crc32cUpdate(0, input));
  });
}

test('rfc7143 B.4: 32 zero bytes -> 0x8a9136aa and 32 0xff bytes -> 0x62a8ab43 as numbers', () => {
  assert.equal(crc32cUpdate(0, Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(crc32cUpdate(0, Buffer.alloc(32, 0xff)), 0x62a8ab43);
});

test('rfc7143 13.1: digests are incremental over pieces, at any split', () => {
  const data = Buffer.from(Array.from({ length: 301 }, (_, i) => (i * 37) & 0xff));
  const whole = crc32cUpdate(0, data);
  for (let k = 0; k <= data.length; k++) {
    assert.equal(crc32cOf([data.subarray(0, k), data.subarray(k)]), whole);
  }
  assert.equal(crc32cUpdate(whole, Buffer.alloc(0)), whole);
});

test('rfc7143 13.1: header digest covers BHS then AHS', () => {
  const bhs = Buffer.alloc(48, 1);
  const ahs = Buffer.alloc(8, 2);
  assert.equal(headerDigest(bhs, ahs), crc32cUpdate(0, Buffer.concat([bhs, ahs])));
  assert.equal(headerDigest(bhs, null), crc32cUpdate(0, bhs));
});

test('rfc7143 11.1 / 13.1: data digest covers the data and its zero padding', () => {
  const data = Buffer.from('SendTargets=All'); // 15 bytes -> 1 pad byte
  const padded = Buffer.concat([data, Buffer.alloc(1)]);
  assert.equal(dataDigest(data), crc32cUpdate(0, padded));
  assert.notEqual(dataDigest(data), crc32cUpdate(0, data));
  // Several views give the same digest as one buffer; `length` limits what counts.
  assert.equal(dataDigest([data.subarray(0, 4), data.subarray(4)]), dataDigest(data));
  assert.equal(dataDigest([data, Buffer.alloc(9, 0xee)], 15), dataDigest(data));
  assert.equal(dataDigest(Buffer.alloc(8, 3)), crc32cUpdate(0, Buffer.alloc(8, 3)));
  assert.deepEqual([...ZERO_PAD], [0, 0, 0, 0]);
});

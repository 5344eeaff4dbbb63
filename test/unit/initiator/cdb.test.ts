import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeLun,
  decodeSense,
  encodeLun,
  parseReadCapacity16,
  parseReportLuns,
  read16Cdb,
  write10Cdb,
  inquiryCdb,
} from '../../../src/initiator/index.js';

test('sam5 4.6: LUNs below 256 use peripheral addressing, below 16384 flat addressing', () => {
  assert.deepEqual(encodeLun(5), Buffer.from([0, 5, 0, 0, 0, 0, 0, 0]));
  assert.deepEqual(encodeLun(300), Buffer.from([0x41, 0x2c, 0, 0, 0, 0, 0, 0]));
  assert.equal(decodeLun(encodeLun(300)), 300n);
  assert.equal(decodeLun(encodeLun(7n)), 7n);
  assert.throws(() => encodeLun(-1), RangeError);
});

test('sbc3: READ(16) and WRITE(10) CDBs carry LBA, length and FUA where SBC puts them', () => {
  const r = read16Cdb(0x1_0000_0001n, 8, { fua: true });
  assert.equal(r[0], 0x88);
  assert.equal(r[1], 0x08);
  assert.equal(r.readBigUInt64BE(2), 0x1_0000_0001n);
  assert.equal(r.readUInt32BE(10), 8);
  const w = write10Cdb(1234, 16);
  assert.equal(w[0], 0x2a);
  assert.equal(w.readUInt32BE(2), 1234);
  assert.equal(w.readUInt16BE(7), 16);
  assert.deepEqual(inquiryCdb(true, 0x80, 252), Buffer.from([0x12, 1, 0x80, 0, 252, 0]));
});

test('spc4 4.5: fixed and descriptor sense decode to key/asc/ascq/information', () => {
  const fixed = Buffer.alloc(18);
  fixed[0] = 0xf0; // VALID + 0x70
  fixed.writeUInt32BE(77, 3);
  fixed[2] = 0x05;
  fixed[12] = 0x21;
  fixed[13] = 0x00;
  assert.deepEqual(decodeSense(fixed), { key: 5, asc: 0x21, ascq: 0, raw: fixed, information: 77n });
  const desc = Buffer.from([0x72, 0x06, 0x29, 0x00, 0, 0, 0, 12, 0x00, 10, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
  assert.deepEqual(decodeSense(desc), { key: 6, asc: 0x29, ascq: 0, raw: desc, information: 9n });
  assert.equal(decodeSense(Buffer.from([0x00])), undefined);
});

test('spc4 6.33 / sbc3 5.16: REPORT LUNS and READ CAPACITY(16) parameter data parse', () => {
  const luns = Buffer.alloc(24);
  luns.writeUInt32BE(16, 0);
  luns[9] = 0;
  luns[17] = 1;
  assert.deepEqual(parseReportLuns(luns), [0n, 1n]);
  const cap = Buffer.alloc(32);
  cap.writeBigUInt64BE(131071n, 0);
  cap.writeUInt32BE(512, 8);
  cap[13] = 3;
  cap[14] = 0xc0;
  assert.deepEqual(parseReadCapacity16(cap), {
    lastLba: 131071n,
    blockSize: 512,
    physicalExponent: 3,
    lbpme: true,
    lbprz: true,
    lowestAlignedLba: 0,
  });
});

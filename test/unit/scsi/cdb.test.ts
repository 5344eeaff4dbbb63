import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cdbControl,
  cdbFua,
  cdbLba,
  cdbLength,
  cdbProtect,
  cdbTransferLength,
} from '../../../src/scsi/cdb.js';
import { decodeLun, encodeLun, INVALID_LUN } from '../../../src/scsi/lun-address.js';

test('spc4 4.2.5.1 CDB length follows the opcode group code', () => {
  assert.equal(cdbLength(0x00), 6);
  assert.equal(cdbLength(0x28), 10);
  assert.equal(cdbLength(0x5a), 10);
  assert.equal(cdbLength(0x7f), 0); // variable length
  assert.equal(cdbLength(0x88), 16);
  assert.equal(cdbLength(0xa8), 12);
  assert.equal(cdbLength(0xc0), 0); // vendor specific
});

test('sbc4 5.15 READ(6): 21-bit LBA, transfer length 0 means 256 blocks', () => {
  const cdb = Buffer.from([0x08, 0x1f, 0xff, 0xfe, 0, 0]);
  assert.equal(cdbLba(cdb), 0x1ffffe);
  assert.equal(cdbTransferLength(cdb), 256);
  assert.equal(cdbTransferLength(Buffer.from([0x08, 0, 0, 0, 7, 0])), 7);
  assert.equal(cdbFua(Buffer.from([0x08, 0x08, 0, 0, 1, 0])), false); // no FUA in 6-byte forms
});

test('sbc4 READ(10)/WRITE(12)/READ(16): LBA and transfer length fields', () => {
  const r10 = Buffer.from([0x28, 0x08, 0x12, 0x34, 0x56, 0x78, 0, 0xab, 0xcd, 0]);
  assert.equal(cdbLba(r10), 0x12345678);
  assert.equal(cdbTransferLength(r10), 0xabcd);
  assert.equal(cdbFua(r10), true);
  const w12 = Buffer.from([0xaa, 0x20, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]);
  assert.equal(cdbLba(w12), 256);
  assert.equal(cdbTransferLength(w12), 65536);
  assert.equal(cdbProtect(w12), 1);
  const r16 = Buffer.alloc(16);
  r16[0] = 0x88;
  r16.writeBigUInt64BE(0x1_0000_0002n, 2);
  r16.writeUInt32BE(9, 10);
  assert.equal(cdbLba(r16), 0x1_0000_0002);
  assert.equal(cdbTransferLength(r16), 9);
});

test('sbc4 5.3 COMPARE AND WRITE: NUMBER OF LOGICAL BLOCKS is byte 13', () => {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x89;
  cdb.writeBigUInt64BE(5n, 2);
  cdb[13] = 3;
  cdb.writeUInt32BE(0xffffffff, 10 - 0); // garbage in bytes 10-12 must not matter
  cdb[13] = 3;
  assert.equal(cdbTransferLength(cdb), 3);
});

test('sam5 5.2 CONTROL byte is the last byte of the CDB', () => {
  assert.equal(cdbControl(Buffer.from([0x00, 0, 0, 0, 0, 0x04])), 0x04);
  assert.equal(cdbControl(Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0])), 0x01);
});

test('sam5 4.7 LUN field: peripheral and flat addressing, others invalid', () => {
  assert.equal(decodeLun(Buffer.from([0, 5, 0, 0, 0, 0, 0, 0])), 5);
  assert.equal(decodeLun(Buffer.from([0x41, 0x00, 0, 0, 0, 0, 0, 0])), 256);
  assert.equal(decodeLun(Buffer.from([0x01, 0x00, 0, 0, 0, 0, 0, 0])), INVALID_LUN); // bus id != 0
  assert.equal(decodeLun(Buffer.from([0x80, 0x00, 0, 0, 0, 0, 0, 0])), INVALID_LUN);
  const b = Buffer.alloc(16);
  encodeLun(7n, b, 0);
  encodeLun(300n, b, 8);
  assert.deepEqual([...b], [0, 7, 0, 0, 0, 0, 0, 0, 0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
});

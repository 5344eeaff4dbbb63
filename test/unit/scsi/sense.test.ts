import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSense, parseSense, SenseKey, SenseReason, senseCode } from '../../../src/scsi/sense.js';

test('spc4 4.5.3 fixed format: 0x70, 18 bytes, key at 2, ASC/ASCQ at 12/13', () => {
  const s = buildSense(SenseReason.PowerOnReset, false);
  assert.equal(s.length, 18);
  // tgt §4.14 observed bytes after login: 70 00 06 00000000 0a 00000000 29 00
  assert.deepEqual([...s.subarray(0, 14)], [0x70, 0, 6, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x29, 0]);
});

test('spc4 4.5.2 descriptor format: 0x72 header, key/asc/ascq in bytes 1-3', () => {
  const s = buildSense(SenseReason.LbaOutOfRange, true);
  assert.deepEqual([...s], [0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]);
});

test('spc4 4.5.2.1 INFORMATION: VALID bit in fixed format, information descriptor in descriptor format', () => {
  const f = buildSense(SenseReason.Miscompare, false, 513);
  assert.equal(f[0], 0xf0);
  assert.equal(f.readUInt32BE(3), 513);
  assert.deepEqual(parseSense(f), { key: SenseKey.Miscompare, asc: 0x1d, ascq: 0, information: 513 });
  const d = buildSense(SenseReason.Miscompare, true, 513);
  assert.equal(d[7], 12);
  assert.deepEqual([...d.subarray(8, 12)], [0x00, 0x0a, 0x80, 0]);
  assert.equal(parseSense(d).information, 513);
});

test('sense table: every reason has a code and the standard ASCs are right', () => {
  for (const v of Object.values(SenseReason)) if (typeof v === 'number') assert.ok(senseCode(v));
  assert.deepEqual(senseCode(SenseReason.InvalidOpcode), { key: 5, asc: 0x20, ascq: 0 });
  assert.deepEqual(senseCode(SenseReason.WriteProtected), { key: 7, asc: 0x27, ascq: 0 });
  assert.deepEqual(senseCode(SenseReason.UnrecoveredReadError), { key: 3, asc: 0x11, ascq: 0 });
  assert.deepEqual(senseCode(SenseReason.WriteError), { key: 3, asc: 0x0c, ascq: 0 });
  assert.deepEqual(senseCode(SenseReason.ReportedLunsDataChanged), { key: 6, asc: 0x3f, ascq: 0x0e });
});

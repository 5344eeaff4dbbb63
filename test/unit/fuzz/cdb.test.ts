/**
 * Property-based tests of the CDB decoders (src/scsi/cdb.ts, SPC-4 4.2, SBC-4 5) and of random
 * CDBs through the SCSI core: no decoder throws or returns a value outside its field's range,
 * and every random command completes exactly once with a defined status, never by a crash, a
 * giant allocation or a hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  cdbAllocationLength,
  cdbControl,
  cdbFua,
  cdbLba,
  cdbLength,
  cdbProtect,
  cdbTransferLength,
} from '../../../src/scsi/cdb.js';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { makeHarness, submit } from '../scsi/harness.js';

const cdbArb = fc.uint8Array({ minLength: 16, maxLength: 32 }).map((u) => Buffer.from(u));

test('spc4 4.2 fuzz: the CDB field decoders accept any CDB and stay within their field ranges', () => {
  fc.assert(
    fc.property(cdbArb, (cdb) => {
      const len = cdbLength(cdb[0]!);
      assert.ok([0, 6, 10, 12, 16].includes(len));
      const lba = cdbLba(cdb);
      assert.ok(Number.isFinite(lba) && lba >= 0 && lba < 2 ** 64);
      const tl = cdbTransferLength(cdb);
      assert.ok(Number.isInteger(tl) && tl >= 0 && tl <= 0xffffffff);
      const al = cdbAllocationLength(cdb);
      assert.ok(Number.isInteger(al) && al >= 0 && al <= 0xffffffff);
      assert.ok(cdbControl(cdb) >= 0 && cdbControl(cdb) <= 255);
      assert.ok(cdbProtect(cdb) >= 0 && cdbProtect(cdb) <= 7);
      assert.equal(typeof cdbFua(cdb), 'boolean');
    }),
    { numRuns: 2000 },
  );
});

const STATUSES = new Set<number>([
  ScsiStatus.Good,
  ScsiStatus.CheckCondition,
  ScsiStatus.ConditionMet,
  ScsiStatus.Busy,
  ScsiStatus.ReservationConflict,
  ScsiStatus.TaskSetFull,
]);

/** Opcodes the core implements for disks, weighted in so handlers (not just the opcode table) run. */
const DISK_OPCODES = [
  0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x2a, 0x2e, 0x2f, 0x35, 0x41, 0x42, 0x55,
  0x5a, 0x5e, 0x5f, 0x88, 0x89, 0x8a, 0x8e, 0x8f, 0x91, 0x93, 0x9e, 0xa0, 0xa3, 0xa8, 0xaa,
];

test('sbc4 / spc4 fuzz: random CDBs through the core complete once with a defined status', async () => {
  const h = await makeHarness({ size: 1024 * 1024 });
  await fc.assert(
    fc.asyncProperty(
      cdbArb,
      fc.constantFrom(...DISK_OPCODES),
      fc.boolean(),
      fc.integer({ min: 0, max: 4096 }),
      fc.integer({ min: 0, max: 8192 }),
      async (cdb, opcode, useKnown, readLength, writeLength) => {
        if (useKnown) cdb[0] = opcode;
        const dataOut = writeLength > 0 ? Buffer.alloc(writeLength, 0x5a) : undefined;
        const cmd = await submit(h.nexus, cdb, { readLength, ...(dataOut ? { dataOut } : {}) });
        assert.ok(STATUSES.has(cmd.status), `status 0x${cmd.status.toString(16)} for ${cdb.toString('hex')}`);
        if (cmd.status === ScsiStatus.CheckCondition)
          assert.ok(cmd.sense && cmd.sense.length >= 8, 'sense data');
        if (cmd.dataIn) assert.ok(cmd.dataIn.length <= Math.max(readLength, 1024 * 1024));
      },
    ),
    { numRuns: 1500 },
  );
  assert.equal(h.nexus.outstanding.size, 0, 'every command left the nexus');
});

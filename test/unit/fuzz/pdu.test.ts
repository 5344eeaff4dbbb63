/**
 * Property-based tests of the PDU decoders (src/iscsi/pdu.ts, RFC 7143 11): every view reads
 * any 48 bytes without throwing, the AHS walkers stay inside their buffer whatever the lengths
 * claim, and encode -> view round-trips the fields the target relies on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as pdu from '../../../src/iscsi/pdu.js';
import { AhsType, BHS_LENGTH } from '../../../src/iscsi/spec.js';

const RUNS = 500;
const bhsArb = fc.uint8Array({ minLength: BHS_LENGTH, maxLength: BHS_LENGTH }).map((u) => Buffer.from(u));

/** Every getter of every view class exported by pdu.ts. */
type ViewClass = new (bhs: Buffer) => object;
const viewClasses: ViewClass[] = (Object.values(pdu) as unknown[]).filter(
  (v): v is ViewClass => typeof v === 'function' && /View$/.test(v.name),
);

function readAllGetters(view: object): void {
  for (
    let proto = Object.getPrototypeOf(view);
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto)
  ) {
    for (const [name, desc] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
      if (desc.get) void (view as Record<string, unknown>)[name];
    }
  }
}

test('rfc7143 11 fuzz: every PDU view reads any 48-byte header without throwing', () => {
  assert.ok(viewClasses.length >= 15, `found ${viewClasses.length} view classes`);
  fc.assert(
    fc.property(bhsArb, (bhs) => {
      for (const View of viewClasses) readAllGetters(new View(bhs));
      assert.ok(pdu.bhsDataSegmentLength(bhs) <= 0xffffff);
      assert.ok(pdu.bhsTotalAhsLength(bhs) <= 255 * 4);
      assert.equal(pdu.bhsLun(bhs).length, 8);
    }),
    { numRuns: RUNS },
  );
});

test('rfc7143 11.2.2 fuzz: AHS walkers never read past the AHS, whatever AHSLength claims', () => {
  fc.assert(
    fc.property(
      bhsArb,
      fc
        .integer({ min: 0, max: 64 })
        .chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
      (bhs, ahsBytes) => {
        const ahs = ahsBytes.length ? Buffer.from(ahsBytes) : null;
        const wellFormed = pdu.ahsWellFormed(ahs);
        for (const type of [AhsType.ExtendedCdb, AhsType.BidiReadLength, 0, 0x3f]) {
          const found = pdu.findAhs(ahs, type);
          if (found) {
            assert.ok(ahs && found.buffer === ahs.buffer, 'a view of the AHS');
            assert.ok(found.byteOffset + found.length <= ahs.byteOffset + ahs.length);
          }
        }
        const cdb = pdu.scsiCommandCdb(bhs, ahs);
        assert.ok(cdb.length >= 16 && cdb.length <= 16 + 255 * 4);
        const bidi = pdu.bidiReadLength(ahs);
        assert.ok(bidi === null || (bidi >= 0 && bidi <= 0xffffffff));
        if (!wellFormed) assert.ok(ahs !== null);
      },
    ),
    { numRuns: RUNS },
  );
});

test('rfc7143 11.3 / 11.7 fuzz: SCSI Command and Data-Out fields round-trip through encode and view', () => {
  const u32 = fc.nat({ max: 0xffffffff });
  fc.assert(
    fc.property(
      fc.record({
        itt: u32,
        cmdSN: u32,
        expStatSN: u32,
        edtl: u32,
        read: fc.boolean(),
        write: fc.boolean(),
        final: fc.boolean(),
        immediate: fc.boolean(),
        attr: fc.integer({ min: 0, max: 7 }),
        cdb: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        ttt: u32,
        dataSN: u32,
        bufferOffset: u32,
      }),
      (f) => {
        const bhs = pdu.encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
          ...f,
          lun: Buffer.alloc(8),
          cdb: Buffer.from(f.cdb),
        });
        const v = new pdu.ScsiCommandView(bhs);
        assert.deepEqual(
          [v.itt, v.cmdSN, v.edtl, v.read, v.write, v.final, v.immediate, v.attr],
          [f.itt, f.cmdSN, f.edtl, f.read, f.write, f.final, f.immediate, f.attr],
        );
        assert.ok(pdu.scsiCommandCdb(bhs, null).equals(Buffer.from(f.cdb)));
        const out = pdu.encodeDataOut(Buffer.alloc(BHS_LENGTH), { ...f, lun: Buffer.alloc(8) });
        const d = new pdu.DataOutView(out);
        assert.deepEqual(
          [d.itt, d.ttt, d.dataSN, d.bufferOffset, d.final],
          [f.itt, f.ttt, f.dataSN, f.bufferOffset, f.final],
        );
      },
    ),
    { numRuns: RUNS },
  );
});

/**
 * Property-based tests of the PDU framer (src/iscsi/framer.ts, RFC 7143 11.1): any byte stream
 * cut anywhere never throws out of push() and ends in PDUs or one error; well-formed PDU
 * streams, with or without digests, come out exactly as they went in whatever the chunking.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { dataDigest, headerDigest, writeDigest } from '../../../src/iscsi/digest.js';
import { FramingError, PduFramer } from '../../../src/iscsi/framer.js';
import type { IncomingPdu } from '../../../src/iscsi/pdu.js';
import { BHS_LENGTH } from '../../../src/iscsi/spec.js';

const RUNS = 300;

/** Cut `stream` at the given fractions into chunks. */
function chunk(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * stream.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p > prev) out.push(stream.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  out.push(stream.subarray(prev));
  return out;
}

const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

test('rfc7143 11.1 fuzz: arbitrary bytes in arbitrary chunks never throw out of push()', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 4096 }),
      cutsArb,
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 0, max: 1 << 24 }),
      (bytes, cuts, hd, dd, mrdsl) => {
        let fatal = false;
        let pdus = 0;
        const framer = new PduFramer(
          (p) => {
            assert.ok(!fatal, 'a PDU after a fatal error');
            pdus++;
            assert.equal(p.bhs.length, BHS_LENGTH);
          },
          (e) => {
            assert.ok(e instanceof FramingError);
            assert.ok(!fatal, 'an error after a fatal error');
            fatal = e.fatal;
          },
          { headerDigest: hd, dataDigest: dd, maxDataSegmentLength: mrdsl },
        );
        for (const c of chunk(Buffer.from(bytes), cuts)) framer.push(c);
        // A fatal error stops the framer: nothing is delivered after it and nothing stays buffered.
        if (framer.stopped) assert.equal(framer.bufferedBytes, 0);
        assert.ok(framer.bufferedBytes <= bytes.length);
        assert.ok(pdus * BHS_LENGTH <= bytes.length);
      },
    ),
    { numRuns: RUNS },
  );
});

interface PduSpec {
  bhs: Uint8Array;
  ahsWords: number;
  ahsFill: number;
  data: Uint8Array;
}

const pduArb: fc.Arbitrary<PduSpec> = fc.record({
  bhs: fc.uint8Array({ minLength: BHS_LENGTH, maxLength: BHS_LENGTH }),
  ahsWords: fc.integer({ min: 0, max: 8 }),
  ahsFill: fc.integer({ min: 0, max: 255 }),
  data: fc.uint8Array({ maxLength: 1500 }),
});

/** Wire bytes of one PDU with its lengths fixed up and optional digests. */
function encode(
  p: PduSpec,
  hd: boolean,
  dd: boolean,
): { wire: Buffer; bhs: Buffer; ahs: Buffer; data: Buffer } {
  const bhs = Buffer.from(p.bhs);
  const ahs = Buffer.alloc(p.ahsWords * 4, p.ahsFill);
  const data = Buffer.from(p.data);
  bhs[4] = p.ahsWords;
  bhs.writeUIntBE(data.length, 5, 3);
  const parts: Buffer[] = [bhs, ahs];
  if (hd) {
    const d = Buffer.alloc(4);
    writeDigest(d, 0, headerDigest(bhs, ahs.length ? ahs : null));
    parts.push(d);
  }
  if (data.length > 0) {
    const padded = Buffer.alloc((data.length + 3) & ~3);
    data.copy(padded);
    parts.push(padded);
    if (dd) {
      const d = Buffer.alloc(4);
      writeDigest(d, 0, dataDigest(data));
      parts.push(d);
    }
  }
  return { wire: Buffer.concat(parts), bhs, ahs, data };
}

test('rfc7143 11.1 fuzz: well-formed PDU streams are reassembled exactly, whatever the chunking and digests', () => {
  fc.assert(
    fc.property(
      fc.array(pduArb, { minLength: 1, maxLength: 6 }),
      cutsArb,
      fc.boolean(),
      fc.boolean(),
      (specs, cuts, hd, dd) => {
        const encoded = specs.map((s) => encode(s, hd, dd));
        const got: IncomingPdu[] = [];
        const framer = new PduFramer(
          (p) =>
            got.push({
              bhs: Buffer.from(p.bhs),
              ahs: p.ahs ? Buffer.from(p.ahs) : null,
              data: Buffer.from(p.data),
            }),
          (e) => assert.fail(`unexpected framing error: ${e.message}`),
          { headerDigest: hd, dataDigest: dd, maxDataSegmentLength: 8192 },
        );
        for (const c of chunk(Buffer.concat(encoded.map((e) => e.wire)), cuts)) framer.push(c);
        assert.equal(got.length, encoded.length);
        encoded.forEach((e, i) => {
          assert.ok(got[i]!.bhs.equals(e.bhs), `bhs ${i}`);
          assert.ok((got[i]!.ahs ?? Buffer.alloc(0)).equals(e.ahs), `ahs ${i}`);
          assert.ok(got[i]!.data.equals(e.data), `data ${i}`);
        });
        assert.equal(framer.bufferedBytes, 0);
      },
    ),
    { numRuns: RUNS },
  );
});

test('rfc7143 7.8 fuzz: a flipped bit is caught by the digests (header: fatal, data: that PDU only)', () => {
  fc.assert(
    fc.property(pduArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (spec, where, bit) => {
      fc.pre(spec.data.length > 0);
      const e = encode(spec, true, true);
      const wire = Buffer.from(e.wire);
      const pos = where % wire.length;
      wire[pos]! ^= 1 << bit;
      const errors: FramingError[] = [];
      let delivered = 0;
      const framer = new PduFramer(
        () => delivered++,
        (err) => errors.push(err),
        { headerDigest: true, dataDigest: true, maxDataSegmentLength: 1 << 24 },
      );
      framer.push(wire);
      // A flip in the length fields may leave the framer waiting for bytes that never come.
      if (errors.length === 0) {
        assert.equal(delivered, 0, 'a corrupted PDU was delivered');
        return;
      }
      assert.equal(delivered, 0);
      const headerEnd = BHS_LENGTH + e.ahs.length + 4;
      if (pos < headerEnd) assert.ok(errors[0]!.kind === 'header-digest' || errors[0]!.kind === 'too-long');
      else
        assert.deepEqual(
          errors.map((x) => [x.kind, x.fatal]),
          [['data-digest', false]],
        );
    }),
    { numRuns: RUNS },
  );
});

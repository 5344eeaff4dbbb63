// PduFramer on synthetic streams: AHS, digests switched on mid-stream, limits, errors that never
// throw, backpressure and re-entrancy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FramingError, PduFramer, type PduFramerOptions } from '../../../../src/iscsi/framer.js';
import { encodePduToBuffer } from '../../../../src/iscsi/pdu-writer.js';
import {
  bhsItt,
  DataOutView,
  encodeDataOut,
  encodeExtendedCdbAhs,
  encodeLoginResponse,
  encodeNopOut,
  encodeScsiCommand,
  type IncomingPdu,
} from '../../../../src/iscsi/pdu.js';
import { LoginStage } from '../../../../src/iscsi/spec.js';

const noDigests = { headerDigest: false, dataDigest: false };
const allDigests = { headerDigest: true, dataDigest: true };

function nopOut(itt: number, data: Buffer | null = null, digests = noDigests): Buffer {
  const bhs = encodeNopOut(Buffer.alloc(48), { itt, ttt: 0xffffffff, cmdSN: itt, expStatSN: 0 });
  return encodePduToBuffer(bhs, null, data, digests);
}

function command(itt: number, cdbLength: number, data: Buffer, digests = noDigests): Buffer {
  const cdb = Buffer.alloc(cdbLength, 0x2a);
  const bhs = encodeScsiCommand(Buffer.alloc(48), {
    itt,
    write: true,
    edtl: data.length,
    cdb,
    cmdSN: 1,
    expStatSN: 1,
  });
  return encodePduToBuffer(bhs, encodeExtendedCdbAhs(cdb), data, digests);
}

function finalLoginResponse(itt: number): Buffer {
  const bhs = encodeLoginResponse(Buffer.alloc(48), {
    itt,
    transit: true,
    csg: LoginStage.LoginOperationalNegotiation,
    nsg: LoginStage.FullFeaturePhase,
    isid: Buffer.alloc(6),
    tsih: 1,
    status: 0,
    statSN: 0,
    expCmdSN: 1,
    maxCmdSN: 2,
  });
  return encodePduToBuffer(bhs, null, Buffer.from('HeaderDigest=CRC32C\0'), noDigests);
}

interface Run {
  pdus: IncomingPdu[];
  errors: FramingError[];
  framer: PduFramer;
}

function run(
  chunks: Iterable<Buffer>,
  options: PduFramerOptions = {},
  onPdu?: (p: IncomingPdu, r: Run) => void,
): Run {
  const r: Run = { pdus: [], errors: [], framer: undefined as unknown as PduFramer };
  r.framer = new PduFramer(
    (p) => {
      r.pdus.push(p);
      onPdu?.(p, r);
    },
    (e) => r.errors.push(e),
    options,
  );
  for (const c of chunks) r.framer.push(c);
  return r;
}

function* splitsOf(stream: Buffer): Generator<[string, Buffer[]]> {
  yield ['whole', [stream]];
  yield ['byte by byte', Array.from(stream, (_, i) => stream.subarray(i, i + 1))];
  for (let k = 1; k < stream.length; k++)
    yield [`split at ${k}`, [stream.subarray(0, k), stream.subarray(k)]];
}

function summary(pdus: IncomingPdu[]): string[] {
  return pdus.map(
    (p) => `${p.bhs.toString('hex')}|${p.ahs?.toString('hex') ?? '-'}|${p.data.toString('hex')}`,
  );
}

test('rfc7143 11.1: AHS, header digest, padded data and data digest frame identically however split', () => {
  for (const digests of [noDigests, allDigests, { headerDigest: true, dataDigest: false }]) {
    const stream = Buffer.concat([
      command(1, 32, Buffer.from('abcde'), digests), // AHS + 3 pad bytes
      nopOut(2, null, digests), // no data: no pad, no data digest
      command(3, 16, Buffer.alloc(12, 9), digests), // no AHS, no pad
      nopOut(4, Buffer.from('x'), digests),
    ]);
    const expected = run([stream], digests);
    assert.equal(expected.pdus.length, 4);
    assert.deepEqual(expected.errors, []);
    assert.equal(expected.pdus[0]!.ahs!.length, 20);
    assert.equal(expected.pdus[0]!.data.toString(), 'abcde');
    assert.equal(expected.pdus[1]!.ahs, null);
    assert.equal(expected.pdus[1]!.data.length, 0);
    for (const [how, chunks] of splitsOf(stream)) {
      const r = run(chunks, digests);
      assert.deepEqual(summary(r.pdus), summary(expected.pdus), how);
      assert.deepEqual(r.errors, [], how);
      assert.equal(r.framer.bufferedBytes, 0, how);
    }
  }
});

test('rfc7143 13.1: digests switched on inside the handler apply from the next PDU, however split', () => {
  // The final Login Response is the last PDU without digests; the next one has both.
  const stream = Buffer.concat([
    finalLoginResponse(7),
    nopOut(8, Buffer.from('ping'), allDigests),
    nopOut(9, null, allDigests),
  ]);
  for (const [how, chunks] of splitsOf(stream)) {
    const r = run(chunks, {}, (p, self) => {
      if (bhsItt(p.bhs) === 7) self.framer.setDigests(true, true);
    });
    assert.deepEqual(r.errors, [], how);
    assert.deepEqual(
      r.pdus.map((p) => bhsItt(p.bhs)),
      [7, 8, 9],
      how,
    );
    assert.equal(r.pdus[1]!.data.toString(), 'ping', how);
  }
});

test('rfc7143 13.12: a DataSegmentLength over the limit is a fatal FramingError, never an exception', () => {
  // Default limit during login is 8192.
  const ok = run([nopOut(1, Buffer.alloc(8192))]);
  assert.equal(ok.pdus.length, 1);
  assert.deepEqual(ok.errors, []);

  const stream = Buffer.concat([nopOut(1), nopOut(2, Buffer.alloc(8193)), nopOut(3)]);
  const r = run([stream]);
  assert.equal(r.pdus.length, 1);
  assert.equal(r.errors.length, 1);
  assert.ok(r.errors[0] instanceof FramingError);
  assert.equal(r.errors[0]!.kind, 'too-long');
  assert.equal(r.errors[0]!.fatal, true);
  assert.equal(bhsItt(r.errors[0]!.bhs!), 2);
  assert.equal(r.framer.stopped, true);
  // Once stopped, input is ignored.
  assert.equal(r.framer.push(nopOut(4)), false);
  assert.equal(r.pdus.length, 1);
  assert.equal(r.errors.length, 1);

  // After login the negotiated MaxRecvDataSegmentLength applies.
  const big = run([nopOut(1), nopOut(2, Buffer.alloc(65536))], {}, (p, self) => {
    if (bhsItt(p.bhs) === 1) self.framer.setMaxDataSegmentLength(65536);
  });
  assert.equal(big.pdus.length, 2);
  assert.equal(big.framer.maxDataSegmentLength, 65536);
});

test('rfc7143 7.8: a header digest error is fatal', () => {
  const good = nopOut(1, Buffer.from('abcd'), allDigests);
  const bad = Buffer.from(good);
  bad[48]! ^= 0xff; // the header digest
  const r = run([Buffer.concat([bad, good])], allDigests);
  assert.equal(r.pdus.length, 0);
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0]!.kind, 'header-digest');
  assert.equal(r.errors[0]!.fatal, true);
  assert.equal(r.framer.stopped, true);
});

test('rfc7143 7.8: a data digest error drops that PDU only (the target then sends Reject)', () => {
  const bad = nopOut(2, Buffer.from('hello'), allDigests);
  bad[bad.length - 1]! ^= 0x01;
  const stream = Buffer.concat([nopOut(1, Buffer.from('a'), allDigests), bad, nopOut(3, null, allDigests)]);
  for (const [how, chunks] of splitsOf(stream)) {
    const r = run(chunks, allDigests);
    assert.deepEqual(
      r.pdus.map((p) => bhsItt(p.bhs)),
      [1, 3],
      how,
    );
    assert.equal(r.errors.length, 1, how);
    assert.equal(r.errors[0]!.kind, 'data-digest');
    assert.equal(r.errors[0]!.fatal, false);
    assert.equal(bhsItt(r.errors[0]!.bhs!), 2);
  }
  // The connection may still decide to stop from the error handler.
  let delivered = 0;
  const framer = new PduFramer(
    () => delivered++,
    () => framer.stop(),
    allDigests,
  );
  framer.push(stream);
  assert.equal(delivered, 1);
  assert.equal(framer.stopped, true);
});

test('rfc7143 11.1: garbage in random pieces never throws out of push', () => {
  let seed = 12345;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let round = 0; round < 300; round++) {
    const bytes = Buffer.from(
      Array.from({ length: 1 + Math.floor(random() * 4000) }, () => (random() * 256) | 0),
    );
    // Keep DataSegmentLength plausible in some rounds so data and digest states are reached too.
    if (round % 2) bytes[5] = 0;
    const options = {
      headerDigest: round % 3 === 0,
      dataDigest: round % 4 === 0,
      maxDataSegmentLength: 1 << 16,
    };
    let errors = 0;
    const framer = new PduFramer(
      () => undefined,
      (e) => {
        if (e.fatal) errors++;
      },
      options,
    );
    for (let off = 0; off < bytes.length;) {
      const n = 1 + Math.floor(random() * 300);
      assert.doesNotThrow(() => framer.push(bytes.subarray(off, off + n)));
      off += n;
    }
    assert.ok(errors <= 1, 'at most one fatal error, then silence');
  }
});

test('backpressure: pause() in the handler holds delivery until resume(), in order', () => {
  const stream = Buffer.concat([1, 2, 3, 4, 5].map((i) => nopOut(i, Buffer.alloc(i))));
  const seen: number[] = [];
  const framer = new PduFramer(
    (p) => {
      seen.push(bhsItt(p.bhs));
      framer.pause();
    },
    (e) => assert.fail(e),
  );
  assert.equal(framer.push(stream), false, 'push says stop reading');
  assert.deepEqual(seen, [1]);
  assert.equal(framer.paused, true);
  assert.ok(framer.bufferedBytes > 0);
  assert.equal(framer.push(nopOut(6)), false, 'still buffering while paused');
  assert.deepEqual(seen, [1]);
  for (let i = 2; i <= 6; i++) {
    framer.resume();
    assert.deepEqual(seen.at(-1), i);
  }
  framer.resume();
  assert.equal(framer.bufferedBytes, 0);
  assert.equal(framer.push(Buffer.alloc(0)), true);
});

test('re-entrancy: push() and resume() from inside the handler never recurse', () => {
  const count = 100_000;
  const one = nopOut(0);
  let delivered = 0;
  const framer: PduFramer = new PduFramer(
    () => {
      delivered++;
      // Feed the next PDU and bounce pause/resume from inside the handler.
      if (delivered < count) framer.push(one);
      framer.pause();
      framer.resume();
    },
    (e) => assert.fail(e),
  );
  framer.push(one);
  assert.equal(delivered, count);
  assert.equal(framer.bufferedBytes, 0);
});

test('exceptions from the handler propagate, and framing resumes at the next PDU', () => {
  const stream = Buffer.concat([nopOut(1), nopOut(2)]);
  const seen: number[] = [];
  const framer = new PduFramer(
    (p) => {
      seen.push(bhsItt(p.bhs));
      if (seen.length === 1) throw new Error('handler bug');
    },
    (e) => assert.fail(e),
  );
  assert.throws(() => framer.push(stream), /handler bug/);
  framer.push(Buffer.alloc(0));
  assert.deepEqual(seen, [1, 2]);
});

test('hasBufferedInput: inside onPdu it tells whether more bytes were received behind the PDU', () => {
  const seen: boolean[] = [];
  const framer: PduFramer = new PduFramer(
    () => seen.push(framer.hasBufferedInput),
    (e) => assert.fail(e),
  );
  framer.push(Buffer.concat([nopOut(1), nopOut(2), nopOut(3)]));
  assert.deepEqual(seen, [true, true, false], 'the last PDU of a read has nothing behind it');
  const partial = nopOut(4, Buffer.alloc(8));
  framer.push(Buffer.concat([nopOut(5), partial.subarray(0, 20)]));
  assert.deepEqual(seen.slice(3), [true], 'part of the next PDU counts as received');
});

test('shared receive buffer: push(buffer, length) frames only the bytes read, leftovers of earlier reads never leak in', () => {
  const stream = Buffer.concat([1, 2, 3].map((i) => nopOut(i, Buffer.alloc(i * 5, i))));
  // One reused buffer, each read fills a prefix and leaves stale bytes (0xee) behind it.
  const shared = Buffer.alloc(stream.length + 64, 0xee);
  const seen: string[] = [];
  let pauseAt = 2;
  const framer = new PduFramer(
    (p) => {
      seen.push(`${bhsItt(p.bhs)}:${p.data.toString('hex')}`);
      if (bhsItt(p.bhs) === pauseAt) framer.pause();
    },
    (e) => assert.fail(e),
  );
  for (let at = 0; at < stream.length; at += 7) {
    const n = Math.min(7, stream.length - at);
    shared.fill(0xee);
    stream.copy(shared, 0, at, at + n);
    framer.push(shared, n);
  }
  pauseAt = -1;
  framer.resume();
  assert.deepEqual(
    seen,
    [1, 2, 3].map((i) => `${i}:${Buffer.alloc(i * 5, i).toString('hex')}`),
  );
  assert.equal(framer.bufferedBytes, 0);
});

test('transient headers: Data-Out headers (and PDU objects) are reused, every other PDU keeps its own', () => {
  const dataOut = (itt: number, dataSN: number): Buffer =>
    encodePduToBuffer(
      encodeDataOut(Buffer.alloc(48), {
        itt,
        ttt: 7,
        expStatSN: 0,
        dataSN,
        bufferOffset: dataSN * 8,
        final: false,
      }),
      null,
      Buffer.alloc(8, dataSN),
      noDigests,
    );
  const stream = Buffer.concat([command(1, 16, Buffer.alloc(4, 9)), dataOut(1, 0), dataOut(1, 1), nopOut(2)]);
  for (const [name, chunks] of [...splitsOf(stream)].filter((_, i) => i % 7 === 0)) {
    const seenDuringCall: string[] = [];
    const r = run(chunks, { transientHeader: (bhs) => bhs[0]! === 0x05 }, (p) =>
      seenDuringCall.push(p.bhs.toString('hex')),
    );
    assert.equal(r.pdus.length, 4, name);
    const [cmd, d0, d1, nop] = r.pdus;
    assert.equal(d0!.bhs, d1!.bhs, `${name}: the Data-Out headers are the one reused buffer`);
    assert.equal(d0, d1, `${name}: and the one reused PDU object`);
    assert.notEqual(cmd, nop);
    assert.notEqual(cmd!.bhs, d0!.bhs);
    assert.notEqual(nop!.bhs, d0!.bhs);
    // Headers of their own are intact after later PDUs were framed.
    assert.equal(cmd!.bhs.toString('hex'), seenDuringCall[0], `${name}: SCSI Command header kept`);
    assert.equal(nop!.bhs.toString('hex'), seenDuringCall[3]);
    // Each Data-Out header was right while its onPdu ran.
    assert.equal(new DataOutView(Buffer.from(seenDuringCall[1]!, 'hex')).dataSN, 0);
    assert.equal(new DataOutView(Buffer.from(seenDuringCall[2]!, 'hex')).dataSN, 1);
    assert.deepEqual(d1!.data, Buffer.alloc(8, 1));
  }
});

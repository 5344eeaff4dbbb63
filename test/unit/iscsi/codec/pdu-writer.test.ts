// PduWriter / pduBuffers: wire pieces without copies, padding and digests, batching under
// cork/uncork, the write() backpressure verdict, and a real socket round trip into PduFramer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { PduWriter, encodePduToBuffer, pduBuffers, type PduSink } from '../../../../src/iscsi/pdu-writer.js';
import { PduFramer } from '../../../../src/iscsi/framer.js';
import { crc32cUpdate, dataDigest, headerDigest, readDigest } from '../../../../src/iscsi/digest.js';
import {
  bhsDataSegmentLength,
  bhsItt,
  bhsTotalAhsLength,
  encodeDataIn,
  encodeExtendedCdbAhs,
  encodeScsiResponse,
  type IncomingPdu,
} from '../../../../src/iscsi/pdu.js';

function dataInHeader(itt: number, offset = 0): Buffer {
  return encodeDataIn(Buffer.alloc(48), { itt, expCmdSN: 1, maxCmdSN: 2, dataSN: 0, bufferOffset: offset });
}

/** A sink that records calls, with a scriptable write() verdict. */
class RecordingSink implements PduSink {
  calls: string[] = [];
  chunks: Buffer[] = [];
  verdict = true;
  cork(): void {
    this.calls.push('cork');
  }
  uncork(): void {
    this.calls.push('uncork');
  }
  write(chunk: Buffer): boolean {
    this.calls.push('write');
    this.chunks.push(chunk);
    return this.verdict;
  }
}

test('rfc7143 11.1: pieces are BHS, AHS, header digest, data views, pad, data digest', () => {
  const bhs = dataInHeader(1);
  const ahs = encodeExtendedCdbAhs(Buffer.alloc(20, 1))!;
  const a = Buffer.from('hello ');
  const b = Buffer.from('world'); // 11 bytes total -> 1 pad byte
  const pieces = pduBuffers([], bhs, ahs, [a, b], { headerDigest: true, dataDigest: true });
  assert.equal(pieces.length, 7);
  assert.equal(pieces[0], bhs);
  assert.equal(pieces[1], ahs);
  assert.equal(readDigest(pieces[2]!, 0), headerDigest(bhs, ahs));
  // The data segment goes out as the caller's own views: no copy.
  assert.equal(pieces[3], a);
  assert.equal(pieces[4], b);
  assert.deepEqual([...pieces[5]!], [0]);
  assert.equal(readDigest(pieces[6]!, 0), dataDigest(Buffer.from('hello world')));
  // The header's lengths are set from what is actually sent.
  assert.equal(bhsDataSegmentLength(bhs), 11);
  assert.equal(bhsTotalAhsLength(bhs), ahs.length);
});

test('rfc7143 11.1: no data segment means no padding and no data digest', () => {
  const bhs = encodeScsiResponse(Buffer.alloc(48), {
    itt: 1,
    status: 0,
    statSN: 1,
    expCmdSN: 1,
    maxCmdSN: 1,
  });
  const pieces = pduBuffers([], bhs, null, null, { headerDigest: true, dataDigest: true });
  assert.equal(pieces.length, 2);
  assert.equal(Buffer.concat(pieces).length, 52);
  assert.equal(pduBuffers([], bhs, null, [], { headerDigest: false, dataDigest: true }).length, 1);
  assert.equal(
    pduBuffers([], bhs, null, Buffer.alloc(0), { headerDigest: false, dataDigest: true }).length,
    1,
  );
});

test('encodePduToBuffer: one contiguous copy of the wire bytes', () => {
  const wire = encodePduToBuffer(dataInHeader(2), null, Buffer.from('abc'), {
    headerDigest: true,
    dataDigest: true,
  });
  assert.equal(wire.length, 48 + 4 + 4 + 4);
  assert.equal(wire.readUInt32LE(56), dataDigest(Buffer.from('abc')));
});

test('rfc7143 11.2.1.4: an AHS that is not whole words is refused', () => {
  assert.throws(() =>
    pduBuffers([], dataInHeader(1), Buffer.alloc(6), null, { headerDigest: false, dataDigest: false }),
  );
});

test('rfc7143 11.1: whatever the writer produces, the framer reads back (lengths 0..9, digests, AHS, views)', () => {
  for (const headerDigest of [false, true]) {
    for (const dataDigest of [false, true]) {
      const digests = { headerDigest, dataDigest };
      const stream: Buffer[] = [];
      const sent: string[] = [];
      for (let len = 0; len < 10; len++) {
        const data = Buffer.from(Array.from({ length: len }, (_, i) => i + 1));
        const ahs = len % 3 === 0 ? encodeExtendedCdbAhs(Buffer.alloc(16 + len, 7)) : null;
        const parts = len > 4 ? [data.subarray(0, 2), data.subarray(2)] : data;
        const bhs = dataInHeader(len);
        stream.push(...pduBuffers([], bhs, ahs, parts, digests));
        sent.push(`${bhs.toString('hex')}|${ahs?.toString('hex') ?? '-'}|${data.toString('hex')}`);
      }
      const got: string[] = [];
      const framer = new PduFramer(
        (p) =>
          got.push(`${p.bhs.toString('hex')}|${p.ahs?.toString('hex') ?? '-'}|${p.data.toString('hex')}`),
        (e) => assert.fail(e),
        digests,
      );
      for (const piece of stream) framer.push(piece);
      assert.deepEqual(got, sent);
    }
  }
});

test('PduWriter: a lone PDU is corked around its pieces; a batch is one cork/uncork', () => {
  const sink = new RecordingSink();
  const writer = new PduWriter(sink);
  assert.equal(writer.send(dataInHeader(1), Buffer.from('abc')), true);
  assert.deepEqual(sink.calls, ['cork', 'write', 'write', 'write', 'uncork']);

  sink.calls = [];
  const ok = writer.batch(() => {
    writer.send(dataInHeader(2), Buffer.alloc(8));
    writer.send(dataInHeader(3, 8), Buffer.alloc(8));
    writer.cork(); // nested: no extra syscall-level cork
    writer.send(
      encodeScsiResponse(Buffer.alloc(48), { itt: 3, status: 0, statSN: 1, expCmdSN: 1, maxCmdSN: 1 }),
    );
    return writer.uncork();
  });
  assert.equal(ok, true);
  assert.deepEqual(sink.calls, ['cork', 'write', 'write', 'write', 'write', 'write', 'uncork']);
});

test('PduWriter: write() backpressure is reported per PDU and per batch', () => {
  const sink = new RecordingSink();
  const writer = new PduWriter(sink);
  sink.verdict = false;
  assert.equal(writer.send(dataInHeader(1)), false);
  assert.equal(writer.needDrain, true);
  sink.verdict = true;
  assert.equal(writer.send(dataInHeader(2)), true);
  assert.equal(writer.needDrain, false);

  writer.cork();
  sink.verdict = false;
  writer.send(dataInHeader(3));
  sink.verdict = true;
  writer.send(dataInHeader(4));
  assert.equal(writer.uncork(), false, 'one refused write in the batch means wait for drain');
});

test('PduWriter: digests of PDUs still queued in the socket are not overwritten', () => {
  const sink = new RecordingSink();
  const writer = new PduWriter(sink, { headerDigest: true, dataDigest: true });
  const pdus = Array.from({ length: 2000 }, (_, i) => [dataInHeader(i), Buffer.from(`data ${i}`)] as const);
  writer.batch(() => {
    for (const [bhs, data] of pdus) writer.send(bhs, data);
  });
  // Re-frame everything the sink was handed only after all sends: every digest still verifies.
  const got: IncomingPdu[] = [];
  const framer = new PduFramer(
    (p) => got.push(p),
    (e) => assert.fail(e),
    { headerDigest: true, dataDigest: true },
  );
  for (const c of sink.chunks) framer.push(c);
  assert.equal(got.length, pdus.length);
  assert.equal(got[1999]!.data.toString(), 'data 1999');
});

test('PduWriter.setDigests: digests start with the first PDU after the switch', () => {
  const sink = new RecordingSink();
  const writer = new PduWriter(sink);
  writer.send(dataInHeader(1), Buffer.from('abcd'));
  writer.setDigests(true, false);
  writer.send(dataInHeader(2), Buffer.from('abcd'));
  const wire = Buffer.concat(sink.chunks);
  assert.equal(wire.length, 52 + 56);
  assert.equal(wire.readUInt32LE(52 + 48), crc32cUpdate(0, wire.subarray(52, 100)));
});

test(
  'PduWriter over a real TCP socket: a READ burst of Data-In plus status reaches the framer intact',
  { timeout: 10_000 },
  async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect(port, '127.0.0.1');
    await once(client, 'connect');
    const [peer] = await accepted;

    const digests = { headerDigest: true, dataDigest: true };
    const payload = Buffer.alloc(1 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 131) & 0xff;
    const segment = 65536;
    const received: IncomingPdu[] = [];
    let doneResolve: () => void;
    const done = new Promise<void>((resolve) => (doneResolve = resolve));
    const framer = new PduFramer(
      (p) => {
        received.push(p);
        if (bhsItt(p.bhs) === 0xbeef) doneResolve();
      },
      (e) => assert.fail(e),
      { ...digests, maxDataSegmentLength: segment },
    );
    peer.on('data', (chunk: Buffer) => framer.push(chunk));

    const writer = new PduWriter(client, digests);
    writer.batch(() => {
      for (let off = 0; off < payload.length; off += segment) {
        writer.send(dataInHeader(1, off), payload.subarray(off, off + segment));
      }
      writer.send(
        encodeScsiResponse(Buffer.alloc(48), { itt: 0xbeef, status: 0, statSN: 1, expCmdSN: 1, maxCmdSN: 1 }),
      );
    });
    await done;
    client.destroy();
    peer.destroy();
    server.close();

    assert.equal(received.length, payload.length / segment + 1);
    const reassembled = Buffer.concat(received.slice(0, -1).map((p) => p.data));
    assert.ok(reassembled.equals(payload));
  },
);

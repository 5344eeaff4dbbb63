// PduWriter with a direct writer (direct-write.ts): a batch goes to the kernel in one writev
// while the socket has nothing queued, and whatever the kernel does not take goes through the
// socket's stream from the exact byte where it stopped, so the wire bytes are never reordered,
// lost or doubled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { PduWriter, encodePduToBuffer, type PduSink } from '../../../../src/iscsi/pdu-writer.js';
import { directWritev, type DirectWritev } from '../../../../src/iscsi/direct-write.js';
import { encodeDataIn } from '../../../../src/iscsi/pdu.js';

const noDigests = { headerDigest: false, dataDigest: false };

function dataIn(itt: number, data: Buffer): { bhs: Buffer; data: Buffer } {
  const bhs = encodeDataIn(Buffer.alloc(48), { itt, expCmdSN: 1, maxCmdSN: 2, dataSN: 0, bufferOffset: 0 });
  return { bhs, data };
}

class StreamSink implements PduSink {
  bytes: Buffer[] = [];
  corks = 0;
  cork(): void {
    this.corks++;
  }
  uncork(): void {}
  write(chunk: Buffer): boolean {
    this.bytes.push(Buffer.from(chunk));
    return true;
  }
}

/** A direct writer that takes `limit` bytes of each batch (-1: refuses) and records them. */
function scriptedDirect(limit: number, taken: Buffer[]): DirectWritev {
  return (pieces) => {
    if (limit < 0) return -1;
    const all = Buffer.concat(pieces as Buffer[]);
    const n = Math.min(limit, all.length);
    taken.push(all.subarray(0, n));
    return n;
  };
}

function sendBatch(writer: PduWriter): Buffer {
  const pdus = [dataIn(1, Buffer.alloc(4096, 1)), dataIn(2, Buffer.alloc(3, 2)), dataIn(3, Buffer.alloc(0))];
  writer.cork();
  for (const p of pdus) assert.equal(writer.send(p.bhs, p.data.length ? p.data : null), true);
  writer.uncork();
  return Buffer.concat(
    pdus.map((p) => encodePduToBuffer(p.bhs, null, p.data.length ? p.data : null, noDigests)),
  );
}

test('direct write: a batch the kernel takes whole never goes through the stream', () => {
  const sink = new StreamSink();
  const taken: Buffer[] = [];
  const expected = sendBatch(new PduWriter(sink, {}, scriptedDirect(1 << 30, taken)));
  assert.deepEqual(Buffer.concat(taken), expected);
  assert.equal(sink.bytes.length, 0);
  assert.equal(sink.corks, 0);
});

test('direct write: after a partial write the stream gets the rest from the exact byte, in order', () => {
  for (const limit of [0, 1, 47, 48, 49, 4095, 4144, 4145, 4200]) {
    const sink = new StreamSink();
    const taken: Buffer[] = [];
    const expected = sendBatch(new PduWriter(sink, {}, scriptedDirect(limit, taken)));
    const wire = Buffer.concat([...taken, ...sink.bytes]);
    assert.deepEqual(wire, expected, `kernel took ${limit} bytes`);
    assert.equal(sink.corks, limit >= expected.length ? 0 : 1, 'the rest leaves in one corked batch');
  }
});

test('direct write: while the stream has data queued the whole batch goes through it', () => {
  const sink = new StreamSink();
  const expected = sendBatch(new PduWriter(sink, {}, scriptedDirect(-1, [])));
  assert.deepEqual(Buffer.concat(sink.bytes), expected);
});

test('direct write: a lone PDU outside a batch goes out at once', () => {
  const sink = new StreamSink();
  const taken: Buffer[] = [];
  const writer = new PduWriter(sink, {}, scriptedDirect(1 << 30, taken));
  const p = dataIn(9, Buffer.from('abcd'));
  assert.equal(writer.send(p.bhs, p.data), true);
  assert.deepEqual(Buffer.concat(taken), encodePduToBuffer(p.bhs, null, p.data, noDigests));
});

test('direct write: over real TCP with a reader that stalls, 64 MiB of batches arrive whole and in order', async () => {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const client = connect(port, '127.0.0.1');
  const [accepted] = (await once(server, 'connection')) as [Socket];
  await once(client, 'connect');
  const direct = directWritev(accepted);
  assert.ok(direct, 'an accepted socket exposes its descriptor');
  const outcomes = { whole: 0, partial: 0, refused: 0 };
  const counted: DirectWritev = (pieces) => {
    const n = direct(pieces);
    const size = pieces.reduce((a, b) => a + b.length, 0);
    if (n === size) outcomes.whole++;
    else if (n > 0) outcomes.partial++;
    else outcomes.refused++;
    return n;
  };
  const writer = new PduWriter(accepted, {}, counted);
  client.pause(); // the kernel buffers fill up: direct writes turn partial, then refused

  let received = 0;
  let mismatch = -1;
  let expectedByte = 0;
  const total = 64 * 1024 * 1024;
  const chunk = 256 * 1024 - 48;
  const pattern = (n: number): number => (n * 7 + (n >>> 12)) & 0xff;
  client.on('data', (b: Buffer) => {
    for (let i = 0; i < b.length && mismatch < 0; i++, expectedByte++) {
      const inPdu = expectedByte % (chunk + 48);
      if (inPdu >= 48 && b[i] !== pattern(expectedByte)) mismatch = expectedByte;
    }
    received += b.length;
  });
  let sent = 0;
  let index = 0;
  while (sent < total) {
    const data = Buffer.alloc(chunk);
    for (let i = 0; i < chunk; i++) data[i] = pattern(sent + 48 + i);
    writer.cork();
    writer.send(dataIn(index++, data).bhs, data);
    if (!writer.uncork()) {
      client.resume();
      await once(accepted, 'drain');
    }
    sent += chunk + 48;
    if (index === 8) client.resume();
  }
  while (received < sent) await once(client, 'data');
  assert.equal(mismatch, -1, `byte ${mismatch} is wrong`);
  assert.equal(received, sent);
  // The run went through every path: whole writes, and partial or refused ones handed over.
  assert.ok(outcomes.whole > 0, JSON.stringify(outcomes));
  assert.ok(outcomes.partial + outcomes.refused > 0, JSON.stringify(outcomes));
  client.destroy();
  accepted.destroy();
  server.close();
});

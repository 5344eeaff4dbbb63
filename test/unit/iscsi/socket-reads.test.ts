import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { kReceive, withSharedReads, type SharedReadSocket } from '../../../src/iscsi/socket-reads.js';

/** A loopback server whose accepted sockets go through withSharedReads. */
async function server(onSocket: (s: SharedReadSocket) => void): Promise<{ port: number; close: () => void }> {
  const srv = net.createServer({ pauseOnConnect: true }, (s) => onSocket(withSharedReads(s)));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}

/** `bytes` of a pattern unique to `seed`. */
function pattern(seed: number, bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

test('socket reads: concurrent connections sharing the receive buffer each get their own bytes intact, then end', async () => {
  const SIZE = 8 * 1024 * 1024;
  const received = new Map<number, Buffer[]>();
  const ended: Promise<unknown>[] = [];
  const srv = await server((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    ended.push(
      once(s, 'end').then(() => {
        const all = Buffer.concat(chunks);
        received.set(all.readUInt32LE(0), chunks);
        s.end();
      }),
    );
  });
  const clients = [1, 2, 3].map(async (seed) => {
    const c = net.connect(srv.port, '127.0.0.1');
    await once(c, 'connect');
    const head = Buffer.alloc(4);
    head.writeUInt32LE(seed);
    c.write(head);
    c.end(pattern(seed, SIZE));
    await once(c, 'close');
  });
  await Promise.all(clients);
  await Promise.all(ended);
  srv.close();
  for (const seed of [1, 2, 3]) {
    const all = Buffer.concat(received.get(seed) ?? []);
    assert.equal(all.length, 4 + SIZE, `connection ${seed}: every byte arrived`);
    assert.ok(
      all.subarray(4).equals(pattern(seed, SIZE)),
      `connection ${seed}: no byte of another connection`,
    );
  }
});

test('socket reads: a chunk keeps its bytes after later reads reuse the shared buffer', async () => {
  const kept: Buffer[] = [];
  const srv = await server((s) => {
    s.on('data', (c: Buffer) => kept.push(c));
    s.on('end', () => s.end());
  });
  const c = net.connect(srv.port, '127.0.0.1');
  await once(c, 'connect');
  const first = Buffer.alloc(1000, 0xaa);
  c.write(first);
  await new Promise((r) => setTimeout(r, 50));
  c.end(Buffer.alloc(300_000, 0x55));
  await once(c, 'close');
  srv.close();
  assert.ok(
    kept[0]!.subarray(0, 1000).equals(first),
    'the first chunk was not overwritten by the later reads',
  );
});

test('socket reads: pause() stops data events until resume() (backpressure still works)', async () => {
  let paused = false;
  let duringPause = 0;
  let total = 0;
  const done = new Promise<void>((resolve) => {
    void server((s) => {
      s.on('data', (c: Buffer) => {
        if (paused) duringPause += c.length;
        total += c.length;
        if (total >= 64 * 1024 && !paused && duringPause === 0) {
          paused = true;
          s.pause();
          setTimeout(() => {
            paused = false;
            s.resume();
          }, 100);
        }
      });
      s.on('end', () => {
        s.end();
        resolve();
      });
    }).then((srv) => {
      const c = net.connect(srv.port, '127.0.0.1', () => c.end(Buffer.alloc(2 * 1024 * 1024, 1)));
      c.on('close', () => srv.close());
    });
  });
  await done;
  assert.equal(duringPause, 0, 'no data while paused');
  assert.equal(total, 2 * 1024 * 1024, 'everything arrived after resume');
});

test('socket reads: a receiver set with kReceive gets every byte, in order, in the shared buffer it must copy from before returning', async () => {
  const SIZE = 4 * 1024 * 1024;
  const copies: Buffer[] = [];
  let views = 0;
  let sameMemory = true;
  let firstMemory: ArrayBufferLike | null = null;
  const ended = new Promise<void>((resolve) => {
    void server((s) => {
      s[kReceive] = (bytes: Buffer, length: number): void => {
        views++;
        firstMemory ??= bytes.buffer;
        if (bytes.buffer !== firstMemory) sameMemory = false;
        assert.ok(length > 0 && length <= bytes.length, 'the read filled part of the buffer');
        copies.push(Buffer.from(bytes.subarray(0, length)));
      };
      s.on('data', () => assert.fail('no data events once a receiver is set'));
      s.on('end', () => {
        s.end();
        resolve();
      });
    }).then((srv) => {
      const c = net.connect(srv.port, '127.0.0.1', () => c.end(pattern(7, SIZE)));
      c.on('close', () => srv.close());
    });
  });
  await ended;
  assert.ok(views > 1, 'several reads');
  assert.ok(sameMemory, 'every read lands in the one shared buffer (no allocation per read)');
  assert.ok(Buffer.concat(copies).equals(pattern(7, SIZE)), 'all bytes, in order');
});

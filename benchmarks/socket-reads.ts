/**
 * Receive cost of an accepted loopback connection, Node's default read path against
 * src/iscsi/socket-reads.ts (BENCHMARKS.md, "Socket reads", "Receive buffers"). A client in the
 * same process sends 1 GiB in 128 KiB writes; the figure is the process's CPU (both ends) per
 * 128 KiB received, so only differences between the two modes mean something. In the shared
 * mode the receiver copies each read into one reused 128 KiB buffer, as the framer copies
 * payload into pooled buffers.
 *   npx tsx benchmarks/socket-reads.ts [rounds]
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { kReceive, withSharedReads } from '../src/iscsi/socket-reads.js';

const TOTAL = 1024 ** 3;
const WRITE = 128 * 1024;

async function run(shared: boolean): Promise<number> {
  let received = 0;
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  const destination = Buffer.allocUnsafe(WRITE);
  const srv = net.createServer({ pauseOnConnect: shared }, (accepted) => {
    if (shared) {
      withSharedReads(accepted)[kReceive] = (bytes: Buffer): void => {
        for (let at = 0; at < bytes.length; at += WRITE) bytes.copy(destination, 0, at, at + WRITE);
        received += bytes.length;
        if (received >= TOTAL) finished();
      };
      return;
    }
    accepted.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= TOTAL) finished();
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const cpu = process.cpuUsage();
  const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  await once(c, 'connect');
  const block = Buffer.alloc(WRITE, 1);
  let sent = 0;
  const pump = (): void => {
    while (sent < TOTAL) {
      sent += WRITE;
      if (!c.write(block)) return void c.once('drain', pump);
    }
  };
  pump();
  await done;
  const used = process.cpuUsage(cpu);
  c.destroy();
  srv.close();
  return (used.user + used.system) / (TOTAL / WRITE);
}

const rounds = Number(process.argv[2] ?? 3);
for (let i = 0; i < rounds; i++) {
  const base = await run(false);
  const shared = await run(true);
  console.log(
    `round ${i + 1}: Node default ${base.toFixed(1)} us, withSharedReads ${shared.toFixed(1)} us per 128 KiB (ratio ${(shared / base).toFixed(2)})`,
  );
}

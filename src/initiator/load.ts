/**
 * A load generator on the in-repo initiator: `sessions` sessions with `queueDepth` commands
 * each in flight, READ(16)/WRITE(16) of `blockSize`-byte I/Os at random or sequential LBAs
 * within the first `rangeBytes` of a LUN, for `seconds`. Used by `npm run bench`, so targets can
 * be compared without any C tool installed.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { Session, type SessionOptions } from './session.js';
import { parseReadCapacity16 } from './cdb.js';

export type LoadPattern = 'randread' | 'randwrite' | 'read' | 'write';

export interface LoadOptions {
  host: string;
  port: number;
  targetName: string;
  lun: number;
  pattern: LoadPattern;
  /** Bytes per I/O (a multiple of the LUN's block size). */
  ioSize: number;
  queueDepth: number;
  sessions: number;
  seconds: number;
  /** Only this many bytes from LBA 0 are touched. */
  rangeBytes: number;
  /** Called about every 250 ms with the I/Os completed so far. */
  onProgress?: (completed: number) => void;
  session?: Partial<SessionOptions>;
}

export interface LoadResult {
  iops: number;
  mbPerSecond: number;
  /** Median and 99th percentile completion latency in microseconds. */
  p50us: number;
  p99us: number;
  errors: number;
}

/** Run one workload and report its throughput and latency. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const sessions = await Promise.all(
    Array.from({ length: o.sessions }, (_, i) =>
      Session.login({
        host: o.host,
        port: o.port,
        targetName: o.targetName,
        initiatorName: `iqn.2026-11.io.tgt-ts:bench-${i}`,
        ...o.session,
      }),
    ),
  );
  try {
    // The first command of a session meets the power-on unit attention: consume it.
    await Promise.all(sessions.map((s) => s.testUnitReady(o.lun)));
    const cap = parseReadCapacity16((await sessions[0]!.readCapacity16(o.lun)).data);
    if (!cap) throw new Error(`READ CAPACITY(16) of LUN ${o.lun} failed`);
    const blockLength = cap.blockSize;
    const blocksPerIo = Math.max(1, Math.floor(o.ioSize / blockLength));
    const ioBlocks = Math.max(1, Math.floor(o.rangeBytes / blockLength / blocksPerIo));
    const payload = Buffer.alloc(blocksPerIo * blockLength, 0xa5);
    const write = o.pattern === 'randwrite' || o.pattern === 'write';
    const random = o.pattern === 'randread' || o.pattern === 'randwrite';
    const latencies: number[] = [];
    let completed = 0;
    let errors = 0;
    let sequential = 0;
    const deadline = performance.now() + o.seconds * 1000;
    const progress = setInterval(() => o.onProgress?.(completed), 250);

    const worker = async (s: Session): Promise<void> => {
      while (performance.now() < deadline) {
        const slot = random ? Math.floor(Math.random() * ioBlocks) : sequential++ % ioBlocks;
        const lba = BigInt(slot * blocksPerIo);
        const start = performance.now();
        const r = write
          ? await s.write16(o.lun, lba, payload, blockLength)
          : await s.read16(o.lun, lba, blocksPerIo, blockLength);
        latencies.push(performance.now() - start);
        if (r.status !== 0) errors++;
        completed++;
      }
    };
    const started = performance.now();
    await Promise.all(sessions.flatMap((s) => Array.from({ length: o.queueDepth }, () => worker(s))));
    const elapsed = (performance.now() - started) / 1000;
    clearInterval(progress);
    latencies.sort((a, b) => a - b);
    const pick = (q: number): number =>
      Math.round((latencies[Math.floor(q * (latencies.length - 1))] ?? 0) * 1000);
    return {
      iops: Math.round(completed / elapsed),
      mbPerSecond: Math.round(((completed * payload.length) / elapsed / 1e6) * 10) / 10,
      p50us: pick(0.5),
      p99us: pick(0.99),
      errors,
    };
  } finally {
    await Promise.all(sessions.map((s) => s.logout().catch(() => s.destroy())));
  }
}

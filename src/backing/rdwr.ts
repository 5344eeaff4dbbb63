/**
 * "rdwr" store (tgt's default, bs_rdwr.c): a regular file or block device accessed with
 * positioned reads and vectored writes through the libuv thread pool.
 *
 * - Open: O_RDWR; on EACCES/EROFS it falls back to O_RDONLY and the LU becomes read-only (as
 *   tgt does). bsoflags sync -> O_SYNC (every write durable, so FUA is free); direct -> O_DIRECT.
 * - O_DIRECT needs sector-aligned memory, offsets and lengths. Node cannot allocate aligned
 *   Buffers, so a request the kernel refuses with EINVAL is retried through a second,
 *   buffered descriptor (and synced when FUA was asked for). Caveat, measured on Linux 6.x:
 *   Node Buffers are practically never sector-aligned in memory, so today most requests take
 *   the buffered path; true O_DIRECT would need a pool of aligned bounce buffers (found by
 *   probing offsets in a slab with a direct read), which costs one copy. Not done yet.
 * - FUA without bsoflags=sync goes through a second descriptor opened O_DSYNC, which makes
 *   that one write durable without flushing the whole file.
 * - Size: fstat for files; for block devices /sys/dev/block/MAJ:MIN/size (512-byte sectors),
 *   falling back to a binary search with 1-byte reads when sysfs is not mounted.
 * - Unmap: fallocate(2) PUNCH_HOLE|KEEP_SIZE through the fs-native-extensions binding on the
 *   thread pool (punch.ts; no fork per command; works for files and, since Linux 4.9, block
 *   devices; reads of the range then return zeroes). Without the binding unmap is not offered
 *   and the core emulates it; if punching fails at run time (filesystem without hole support)
 *   the range is overwritten with zeroes instead, so results stay correct.
 * - Allocation map (GET LBA STATUS): Node has no SEEK_DATA/SEEK_HOLE, so the store tracks what
 *   it wrote and punched in an AllocationMap at the filesystem block size. At open the map
 *   starts all deallocated when the file has no blocks allocated (a fresh sparse file), else
 *   all mapped: holes punched before this open, by us or anyone else, are reported as mapped,
 *   which SBC-4 allows (mapped is always a truthful answer for data that reads back right).
 * - Out of space: ENOSPC/EDQUOT from the kernel are passed through unchanged; the core answers
 *   SPACE ALLOCATION FAILED WRITE PROTECT.
 * - Prefetch: bounded read-ahead into a scratch buffer to warm the page cache (no fadvise in Node).
 * - Inline I/O (buffered descriptors only, requests up to INLINE_MAX_BYTES): a page-cache hit
 *   costs a few microseconds as a direct pread/pwritev, several times less than the libuv
 *   thread-pool round trip, so small requests run inline while they stay fast. One that takes
 *   longer than INLINE_SLOW_MS twice in a row (cache misses, writeback throttling, a slow disk)
 *   sends every request back to the thread pool for INLINE_BACKOFF_MS, so a slow medium stalls
 *   the event loop for at most two requests per back-off period, except a read that nothing
 *   else waits behind (the fabric received no other command, none is on the pool): it still
 *   runs inline, as a hand-off would only add thread wake-ups (QD 1 reads missing the page
 *   cache: about 12 % less CPU per read, BENCHMARKS.md). TGT_INLINE_IO=0 turns it off.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import {
  constants as fsc,
  promises as fsp,
  read as fsRead,
  readSync as fsReadSync,
  writev as fsWritev,
  writevSync as fsWritevSync,
} from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type {
  AllocationExtent,
  BackingStore,
  StoreCapabilities,
  StoreOpenOptions,
  StoreType,
} from './store.js';
import { AllocationMap } from './allocation-map.js';
import { checkRange, StoreError } from './errors.js';
import { punchHole, type PunchHole } from './punch.js';
import { IoWorker } from './io-worker.js';

const SECTOR = 512;
/** Zeroes written per writev when emulating a punch; shared, never written to. */
const ZERO_CHUNK = Buffer.alloc(1024 * 1024);
/** Upper bound of one PRE-FETCH read-ahead, so a huge request cannot tie up the thread pool. */
const PREFETCH_MAX = 16 * 1024 * 1024;
let prefetchScratch: Buffer | undefined;
/** Largest request done inline (one 128 KiB page-cache copy is well under INLINE_SLOW_MS). */
const INLINE_MAX_BYTES = 128 * 1024;
/** An inline request slower than this means the data is not in memory. */
const INLINE_SLOW_MS = 0.5;
/** How long the store stays on the thread pool after a slow inline request. */
const INLINE_BACKOFF_MS = 1000;
const INLINE_ENABLED = process.env.TGT_INLINE_IO !== '0';
/** Small buffered writes (and reads, with TGT_IO_WORKER_READS=1) go to the I/O worker thread. */
const WORKER_WRITES = process.env.TGT_IO_WORKER === '1';
const WORKER_READS = process.env.TGT_IO_WORKER_READS === '1';

/** Decides whether a request runs inline, from how long the last inline ones took (exported for tests). */
export class InlineIoGate {
  /** performance.now() before which everything goes to the thread pool. */
  private asyncUntil = 0;

  constructor(
    private readonly enabled: boolean,
    private readonly backoffMs = INLINE_BACKOFF_MS,
  ) {}

  /**
   * True when a request of `bytes` may run inline now. `alone`: nothing else waits behind it
   * (no other request received, none on the thread pool), so it runs inline even while backing
   * off: with nobody else to serve, a hand-off to the pool only adds two thread wake-ups.
   */
  allow(bytes: number, alone = false): boolean {
    return this.enabled && bytes <= INLINE_MAX_BYTES && (alone || this.asyncUntil === 0 || this.expired());
  }

  /** The previous inline request was slow too. */
  private lastSlow = false;

  /**
   * Note how long an inline request took (ms). Two slow ones in a row mean the medium is slow
   * (one alone is as likely the process being preempted on a busy machine).
   */
  record(elapsed: number): void {
    const slow = elapsed > INLINE_SLOW_MS;
    if (slow && this.lastSlow) this.asyncUntil = performance.now() + this.backoffMs;
    this.lastSlow = slow;
  }

  private expired(): boolean {
    if (performance.now() < this.asyncUntil) return false;
    this.asyncUntil = 0;
    return true;
  }
}

class RdwrStore implements BackingStore {
  readonly type = 'rdwr';
  readonly capabilities: StoreCapabilities;
  private punchWorks = true;
  readonly allocationGranularity: number;
  /** Inline reads; off with O_DIRECT (real device I/O every time). */
  private readonly inlineReads: InlineIoGate;
  /** Inline non-FUA writes; off with O_DIRECT or O_SYNC, where every write waits for the medium. */
  private readonly inlineWrites: InlineIoGate;

  constructor(
    readonly path: string,
    readonly size: number,
    private readonly handle: FileHandle,
    /** O_DSYNC twin for FUA writes (null when read-only or when O_SYNC already covers it). */
    private readonly fuaHandle: FileHandle | null,
    /** Buffered twin used when O_DIRECT refuses an unaligned request (null without direct). */
    private readonly bufferedHandle: FileHandle | null,
    private readonly punch: PunchHole | null,
    readonly: boolean,
    private readonly allocation: AllocationMap,
    syncWrites: boolean,
  ) {
    this.capabilities = {
      flush: !readonly,
      fua: !readonly,
      unmap: !readonly && punch !== null,
      readonly,
    };
    this.allocationGranularity = allocation.granule;
    this.inlineReads = new InlineIoGate(INLINE_ENABLED && bufferedHandle === null);
    this.inlineWrites = new InlineIoGate(INLINE_ENABLED && bufferedHandle === null && !syncWrites);
    this.worker =
      bufferedHandle === null && !syncWrites && (WORKER_WRITES || WORKER_READS) ? IoWorker.shared() : null;
  }

  /** The I/O worker for small buffered requests (null: inline/thread pool only). */
  private readonly worker: IoWorker | null;
  /** Reads and writes of this store on the thread pool now. */
  private poolRequests = 0;

  readNow(into: Buffer, offset: number, mayBlock: boolean): boolean {
    checkRange(offset, into.length, this.size);
    if (WORKER_READS && this.worker?.accepts(into.length)) return false;
    if (!this.inlineReads.allow(into.length, mayBlock && this.poolRequests === 0)) return false;
    const start = performance.now();
    readFullInline(this.handle.fd, into, offset);
    this.inlineReads.record(performance.now() - start);
    return true;
  }

  async read(into: Buffer, offset: number, mayBlock = false): Promise<void> {
    if (this.readNow(into, offset, mayBlock)) return;
    const worker = this.worker;
    if (WORKER_READS && worker?.accepts(into.length)) return worker.read(this.handle.fd, into, offset);
    this.poolRequests++;
    try {
      await readFull(this.handle, into, offset);
    } catch (err) {
      if (!this.bufferedHandle || errnoCode(err) !== 'EINVAL') throw err;
      await readFull(this.bufferedHandle, into, offset);
    } finally {
      this.poolRequests--;
    }
  }

  writeNow(segments: readonly Buffer[], offset: number): boolean {
    return this.writeInline(segments, offset, this.checkWrite(segments, offset));
  }

  /** Read-only and range checks of a write; its length. */
  private checkWrite(segments: readonly Buffer[], offset: number): number {
    this.assertWritable();
    let length = 0;
    for (const s of segments) length += s.length;
    checkRange(offset, length, this.size);
    return length;
  }

  /** A non-FUA write done at once when the inline gate allows it (see the file header). */
  private writeInline(segments: readonly Buffer[], offset: number, length: number): boolean {
    if (WORKER_WRITES && this.worker?.accepts(length)) return false;
    if (!this.inlineWrites.allow(length)) return false;
    const start = performance.now();
    writeFullInline(this.handle.fd, segments, offset);
    this.inlineWrites.record(performance.now() - start);
    this.allocation.markMapped(offset, length);
    return true;
  }

  async write(segments: readonly Buffer[], offset: number, fua: boolean): Promise<void> {
    const length = this.checkWrite(segments, offset);
    if (!fua && this.writeInline(segments, offset, length)) return;
    const handle = fua && this.fuaHandle ? this.fuaHandle : this.handle;
    const worker = this.worker;
    if (WORKER_WRITES && handle === this.handle && worker?.accepts(length)) {
      await worker.write(handle.fd, segments, offset);
      this.allocation.markMapped(offset, length);
      return;
    }
    this.poolRequests++;
    try {
      await writeFull(handle, segments, offset);
    } catch (err) {
      if (!this.bufferedHandle || errnoCode(err) !== 'EINVAL') throw err;
      await writeFull(this.bufferedHandle, segments, offset);
      if (fua) await this.bufferedHandle.datasync();
    } finally {
      this.poolRequests--;
    }
    this.allocation.markMapped(offset, length);
  }

  async flush(): Promise<void> {
    if (!this.capabilities.readonly) await this.handle.datasync();
  }

  async unmap(offset: number, length: number): Promise<void> {
    this.assertWritable();
    checkRange(offset, length, this.size);
    if (length === 0) return;
    if (this.punch && this.punchWorks) {
      try {
        await this.punch(this.handle.fd, offset, length);
        this.allocation.markUnmapped(offset, length);
        return;
      } catch (err) {
        if (!isUnsupported(err)) throw err;
        // EOPNOTSUPP and friends: remember, and emulate from now on.
        this.punchWorks = false;
      }
    }
    await this.writeZeroes(offset, length);
    this.allocation.markMapped(offset, length);
  }

  /** Mapped is a truthful answer for any data that reads back right (see the header). */
  writtenElsewhere(): void {
    this.allocation.markMapped(0, this.size);
  }

  async allocationAt(offset: number, maxLength: number): Promise<AllocationExtent> {
    checkRange(offset, 0, this.size);
    return this.allocation.extentAt(offset, maxLength);
  }

  async prefetch(offset: number, length: number): Promise<void> {
    checkRange(offset, length, this.size);
    if (this.bufferedHandle) return; // direct I/O: the page cache is not ours to warm
    prefetchScratch ??= Buffer.allocUnsafe(1024 * 1024);
    const scratch = prefetchScratch; // contents are discarded, so concurrent prefetches may share it
    const end = offset + Math.min(length, PREFETCH_MAX);
    for (let pos = offset; pos < end; pos += scratch.length) {
      const { bytesRead } = await this.handle.read(scratch, 0, Math.min(scratch.length, end - pos), pos);
      if (bytesRead === 0) break;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.handle.close(), this.fuaHandle?.close(), this.bufferedHandle?.close()]);
  }

  private async writeZeroes(offset: number, length: number): Promise<void> {
    const handle = this.bufferedHandle ?? this.handle;
    for (let pos = offset, end = offset + length; pos < end; pos += ZERO_CHUNK.length) {
      await writeFull(handle, [ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, end - pos))], pos);
    }
  }

  private assertWritable(): void {
    if (this.capabilities.readonly) {
      throw new StoreError('TGT_ERR_BS_READONLY', `${this.path} is open read-only`);
    }
  }
}

/*
 * The data path calls fs.read / fs.writev on the descriptor rather than FileHandle.read/writev:
 * the callback bindings are several times cheaper per call (measured here with 4 KiB page-cache
 * reads at queue depth 32: about 144k/s against 21k/s through FileHandle). The FileHandle still
 * owns the descriptor and closes it.
 */
function preadOnce(fd: number, into: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fsRead(fd, into, at, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function pwritevOnce(fd: number, segments: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fsWritev(fd, segments, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

/** Read until `into` is full; past end of file the rest is zero-filled (the file shrank). */
async function readFull(handle: FileHandle, into: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const bytesRead = await preadOnce(handle.fd, into, done, into.length - done, offset + done);
    if (bytesRead === 0) {
      into.fill(0, done);
      return;
    }
    done += bytesRead;
  }
}

/** readFull without the thread pool (see "Inline I/O" in the file header). */
function readFullInline(fd: number, into: Buffer, offset: number): void {
  let done = 0;
  while (done < into.length) {
    const bytesRead = fsReadSync(fd, into, done, into.length - done, offset + done);
    if (bytesRead === 0) {
      into.fill(0, done);
      return;
    }
    done += bytesRead;
  }
}

/** writeFull without the thread pool (see "Inline I/O" in the file header). */
function writeFullInline(fd: number, segments: readonly Buffer[], offset: number): void {
  let pending: readonly Buffer[] =
    segments.length === 1 && segments[0]!.length > 0 ? segments : segments.filter((s) => s.length > 0);
  let pos = offset;
  while (pending.length > 0) {
    const bytesWritten = fsWritevSync(fd, pending as Buffer[], pos);
    if (bytesWritten === 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    pos += bytesWritten;
    pending = dropBytes(pending, bytesWritten);
  }
}

/** writev all segments, resuming after partial writes (and past IOV_MAX, which libuv caps). */
async function writeFull(handle: FileHandle, segments: readonly Buffer[], offset: number): Promise<void> {
  let pending: readonly Buffer[] = segments.filter((s) => s.length > 0);
  let pos = offset;
  while (pending.length > 0) {
    const bytesWritten = await pwritevOnce(handle.fd, pending as Buffer[], pos);
    if (bytesWritten === 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    pos += bytesWritten;
    pending = dropBytes(pending, bytesWritten);
  }
}

/** The segments left after the first `n` bytes (views, no copy). */
function dropBytes(segments: readonly Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < segments.length && n >= segments[i]!.length) n -= segments[i++]!.length;
  const rest = segments.slice(i);
  if (n > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** Errors that mean "this file cannot have holes punched", as opposed to an I/O failure. */
function isUnsupported(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENOSYS' || code === 'EINVAL';
}

/** The filesystem's block size as allocation granule (a power of two in 512..1 MiB), else 4 KiB. */
function granuleOf(blksize: bigint): number {
  const n = Number(blksize);
  return n >= 512 && n <= 2 ** 20 && (n & (n - 1)) === 0 ? n : 4096;
}

/** Size of a block device in bytes. */
async function blockDeviceSize(path: string, rdev: bigint): Promise<number> {
  // glibc gnu_dev_major/gnu_dev_minor
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  try {
    const sectors = await fsp.readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
    const bytes = Number(sectors.trim()) * SECTOR;
    if (Number.isSafeInteger(bytes) && bytes >= 0) return bytes;
  } catch {
    // no sysfs (some containers): probe below
  }
  return probeSizeByReading(path);
}

/**
 * Binary search for the last readable sector: reads past the end of a block device return
 * 0 bytes. Exported for tests (it works the same on a regular file).
 */
export async function probeSizeByReading(path: string): Promise<number> {
  const handle = await fsp.open(path, fsc.O_RDONLY);
  try {
    const probe = Buffer.alloc(1);
    const readable = async (sector: number) =>
      (await handle.read(probe, 0, 1, sector * SECTOR)).bytesRead === 1;
    let hi = 1;
    while (await readable(hi - 1)) hi *= 2; // hi - 1 is now unreadable (or the device is empty)
    let lo = 0; // sectors [0, lo) known readable
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (await readable(mid)) lo = mid + 1;
      else hi = mid;
    }
    return lo * SECTOR;
  } finally {
    await handle.close();
  }
}

/** Open with `flags`, falling back to read-only on EACCES/EROFS unless read-only was asked anyway. */
async function openWithFallback(path: string, flags: number, readonly: boolean) {
  if (readonly) return { handle: await fsp.open(path, flags | fsc.O_RDONLY), readonly: true };
  try {
    return { handle: await fsp.open(path, flags | fsc.O_RDWR), readonly: false };
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EACCES' && code !== 'EROFS') throw err;
    // tgt bs_rdwr: "Could not open %s, %m" then retries O_RDONLY and marks the LU readonly.
    return { handle: await fsp.open(path, flags | fsc.O_RDONLY), readonly: true };
  }
}

/** Open an rdwr store on a regular file or block device. */
async function openRdwr(path: string, options: StoreOpenOptions): Promise<BackingStore> {
  const sync = options.sync === true;
  const direct = options.direct === true;
  const extra = (sync ? fsc.O_SYNC : 0) | (direct ? fsc.O_DIRECT : 0);
  const { handle, readonly } = await openWithFallback(path, extra, options.readonly === true);
  const others: FileHandle[] = [];
  try {
    const st = await handle.stat({ bigint: true });
    let size: number;
    if (st.isFile()) size = Number(st.size);
    else if (st.isBlockDevice()) size = await blockDeviceSize(path, st.rdev);
    else throw new StoreError('TGT_ERR_BS_BAD_FILE_TYPE', `${path} is not a regular file or block device`);

    const access = readonly ? fsc.O_RDONLY : fsc.O_RDWR;
    const fuaHandle = readonly || sync ? null : await fsp.open(path, access | fsc.O_DSYNC | extra);
    if (fuaHandle) others.push(fuaHandle);
    const bufferedHandle = direct ? await fsp.open(path, access | (sync ? fsc.O_SYNC : 0)) : null;
    if (bufferedHandle) others.push(bufferedHandle);
    // A regular file with no blocks at all is a fresh sparse file: everything is a hole.
    const allocation = new AllocationMap(size, granuleOf(st.blksize), !(st.isFile() && st.blocks === 0n));
    const punch = readonly ? null : punchHole;
    return new RdwrStore(path, size, handle, fuaHandle, bufferedHandle, punch, readonly, allocation, sync);
  } catch (err) {
    await Promise.allSettled([handle.close(), ...others.map((h) => h.close())]);
    throw err;
  }
}

export const rdwrStoreType: StoreType = {
  name: 'rdwr',
  supportedOflags: ['sync', 'direct'],
  open: openRdwr,
};

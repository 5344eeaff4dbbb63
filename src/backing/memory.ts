/**
 * "memory" store: a sparse RAM disk. The path is the size (syntax in size.ts: "64M", "1GiB",
 * "1048576"). Data lives in fixed-size chunks allocated on first write, so a large LUN costs
 * nothing until written; unwritten ranges read as zeroes; unmap frees whole chunks and zeroes
 * the partial ones at the edges (freeing those too once they hold only zeroes). A chunk that
 * exists is what GET LBA STATUS reports as mapped. When the process cannot allocate another
 * chunk, the write fails with ENOSPC (out of space), not a crash. Contents are lost when the
 * store is closed.
 */
import { Buffer } from 'node:buffer';
import type {
  AllocationExtent,
  BackingStore,
  StoreCapabilities,
  StoreOpenOptions,
  StoreType,
} from './store.js';
import { checkRange, StoreError } from './errors.js';
import { parseSize } from './size.js';

/** Allocation unit: small enough for sparse use and unmap, big enough to keep the map small. */
export const MEMORY_CHUNK_SIZE = 64 * 1024;

export class MemoryStore implements BackingStore {
  readonly type = 'memory';
  readonly capabilities: StoreCapabilities;
  readonly allocationGranularity = MEMORY_CHUNK_SIZE;
  private readonly chunks = new Map<number, Buffer>();

  constructor(
    readonly path: string,
    readonly size: number,
    readonly: boolean,
  ) {
    // Writes are as durable as RAM gets when they return: FUA is native, flush has nothing to do.
    this.capabilities = { flush: false, fua: true, unmap: !readonly, readonly };
  }

  /** Bytes of RAM currently holding data (for tests and `show`). */
  get allocatedBytes(): number {
    return this.chunks.size * MEMORY_CHUNK_SIZE;
  }

  async read(into: Buffer, offset: number): Promise<void> {
    this.readNow(into, offset);
  }

  readNow(into: Buffer, offset: number): boolean {
    checkRange(offset, into.length, this.size);
    let done = 0;
    while (done < into.length) {
      const pos = offset + done;
      const index = Math.floor(pos / MEMORY_CHUNK_SIZE);
      const within = pos - index * MEMORY_CHUNK_SIZE;
      const n = Math.min(MEMORY_CHUNK_SIZE - within, into.length - done);
      const chunk = this.chunks.get(index);
      if (chunk) chunk.copy(into, done, within, within + n);
      else into.fill(0, done, done + n);
      done += n;
    }
    return true;
  }

  async write(segments: readonly Buffer[], offset: number, _fua = false): Promise<void> {
    this.writeNow(segments, offset);
  }

  writeNow(segments: readonly Buffer[], offset: number): boolean {
    if (this.capabilities.readonly) throw new StoreError('TGT_ERR_BS_READONLY', 'memory store is read-only');
    let length = 0;
    for (const s of segments) length += s.length;
    checkRange(offset, length, this.size);
    let pos = offset;
    for (const segment of segments) {
      let done = 0;
      while (done < segment.length) {
        const index = Math.floor(pos / MEMORY_CHUNK_SIZE);
        const within = pos - index * MEMORY_CHUNK_SIZE;
        const n = Math.min(MEMORY_CHUNK_SIZE - within, segment.length - done);
        segment.copy(this.chunkForWrite(index), within, done, done + n);
        done += n;
        pos += n;
      }
    }
    return true;
  }

  async flush(): Promise<void> {}

  async unmap(offset: number, length: number): Promise<void> {
    if (this.capabilities.readonly) throw new StoreError('TGT_ERR_BS_READONLY', 'memory store is read-only');
    checkRange(offset, length, this.size);
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const index = Math.floor(pos / MEMORY_CHUNK_SIZE);
      const within = pos - index * MEMORY_CHUNK_SIZE;
      const n = Math.min(MEMORY_CHUNK_SIZE - within, end - pos);
      const chunk = this.chunks.get(index);
      if (chunk) {
        if (n !== MEMORY_CHUNK_SIZE) chunk.fill(0, within, within + n);
        if (n === MEMORY_CHUNK_SIZE || isAllZero(chunk)) this.chunks.delete(index);
      }
      pos += n;
    }
  }

  async allocationAt(offset: number, maxLength: number): Promise<AllocationExtent> {
    checkRange(offset, 0, this.size);
    const end = Math.min(this.size, offset + Math.max(1, maxLength));
    let index = Math.floor(offset / MEMORY_CHUNK_SIZE);
    const mapped = this.chunks.has(index);
    if (mapped) {
      // a run of allocated chunks: bounded by the number of chunks
      while ((index + 1) * MEMORY_CHUNK_SIZE < end && this.chunks.has(index + 1)) index++;
    } else {
      // a hole runs up to the next allocated chunk (one pass over the chunks, not over the hole)
      let next = Infinity;
      for (const k of this.chunks.keys()) if (k > index && k < next) next = k;
      index = Math.min(next, Math.ceil(end / MEMORY_CHUNK_SIZE)) - 1;
    }
    return { mapped, length: Math.max(1, Math.min(end, (index + 1) * MEMORY_CHUNK_SIZE) - offset) };
  }

  async close(): Promise<void> {
    this.chunks.clear();
  }

  private chunkForWrite(index: number): Buffer {
    let chunk = this.chunks.get(index);
    if (!chunk) {
      try {
        chunk = Buffer.alloc(MEMORY_CHUNK_SIZE);
      } catch {
        // RangeError "Array buffer allocation failed": the RAM disk is out of space.
        throw Object.assign(new Error('memory store: out of memory'), { code: 'ENOSPC' });
      }
      this.chunks.set(index, chunk);
    }
    return chunk;
  }
}

/** A chunk of zeroes to compare against (memcmp); never written. */
const ZERO_CHUNK = Buffer.alloc(MEMORY_CHUNK_SIZE);

function isAllZero(chunk: Buffer): boolean {
  return chunk.equals(ZERO_CHUNK);
}

export const memoryStoreType: StoreType = {
  name: 'memory',
  supportedOflags: [],
  async open(path: string, options: StoreOpenOptions): Promise<BackingStore> {
    return new MemoryStore(path, parseSize(path), options.readonly === true);
  },
};

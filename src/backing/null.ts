/**
 * "null" store: no I/O at all, for benchmarking the fabric and core. Reads return zeroes (tgt's
 * bs_null leaves the transfer buffer untouched, so initiators see stale memory; we clear it),
 * writes are discarded. Size is 1 TiB like tgt, or the path when it parses as a size ("4G"):
 * any other path is ignored, as tgt ignores it.
 */
import { Buffer } from 'node:buffer';
import type { BackingStore, StoreCapabilities, StoreOpenOptions, StoreType } from './store.js';
import { checkRange, StoreError } from './errors.js';
import { tryParseSize } from './size.js';

/** tgt's fixed null-store size: 1 TiB. */
export const NULL_DEFAULT_SIZE = 2 ** 40;

class NullStore implements BackingStore {
  readonly type = 'null';
  readonly capabilities: StoreCapabilities;

  constructor(
    readonly path: string,
    readonly size: number,
    readonly: boolean,
  ) {
    // Unmapped ranges read back as zeroes, which every range here does: unmap is native.
    this.capabilities = { flush: false, fua: true, unmap: !readonly, readonly };
  }

  async read(into: Buffer, offset: number): Promise<void> {
    checkRange(offset, into.length, this.size);
    into.fill(0);
  }

  async write(segments: readonly Buffer[], offset: number, _fua = false): Promise<void> {
    if (this.capabilities.readonly) throw new StoreError('TGT_ERR_BS_READONLY', 'null store is read-only');
    let length = 0;
    for (const s of segments) length += s.length;
    checkRange(offset, length, this.size);
  }

  async flush(): Promise<void> {}

  async unmap(offset: number, length: number): Promise<void> {
    checkRange(offset, length, this.size);
  }

  async close(): Promise<void> {}
}

export const nullStoreType: StoreType = {
  name: 'null',
  supportedOflags: [],
  async open(path: string, options: StoreOpenOptions): Promise<BackingStore> {
    const size = tryParseSize(path) ?? NULL_DEFAULT_SIZE;
    return new NullStore(path === '' ? 'None' : path, size, options.readonly === true);
  },
};

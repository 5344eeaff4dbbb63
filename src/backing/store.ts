/**
 * Backing stores: the small interface every store implements (tgt's backingstore_template,
 * nbdkit's plugin callbacks, LIO's exec_cmd_ops). A store only moves bytes; the SCSI core
 * decodes CDBs, checks ranges and emulates whatever a store lacks (FUA by write + flush,
 * WRITE SAME by repeated writes, UNMAP by writing zeroes when asked to).
 */
import { Buffer } from 'node:buffer';
import type { AllocationExtent } from './allocation-map.js';

export type { AllocationExtent };

/** What a store can do natively. The core emulates or refuses the rest. */
export interface StoreCapabilities {
  /** flush() makes earlier writes durable (fdatasync). If false, flush is a no-op success. */
  readonly flush: boolean;
  /** write(..., fua=true) is durable on return without a separate flush. */
  readonly fua: boolean;
  /** unmap() deallocates (hole punch / discard); reads of unmapped ranges return zeroes. */
  readonly unmap: boolean;
  /** The store was opened read-only (writes must be refused by the core with WRITE PROTECTED). */
  readonly readonly: boolean;
}

export interface BackingStore {
  /** Store type name as shown by tgtadm ("rdwr", "memory", "null"). */
  readonly type: string;
  /** Path shown by tgtadm ("None" when there is none). */
  readonly path: string;
  /** Size in bytes, fixed while open. */
  readonly size: number;
  readonly capabilities: StoreCapabilities;

  /**
   * Fill `into` with `into.length` bytes starting at byte `offset`. The buffer is the one that
   * goes on the wire; stores must not substitute their own. `mayBlock`: nothing else is known
   * to be waiting for the caller (no other command received), so a store may block its
   * thread on this read rather than pay a hand-off to another thread.
   */
  read(into: Buffer, offset: number, mayBlock?: boolean): Promise<void>;

  /**
   * Optional: do read() at once, without waiting for anything (a page-cache or memory copy),
   * and return true; or do nothing and return false, and the caller uses read(). Errors are
   * thrown. Saves the promise round trips of read() on the data path.
   */
  readNow?(into: Buffer, offset: number, mayBlock: boolean): boolean;

  /** Optional: write() without fua done at once (into the page cache), as readNow(). */
  writeNow?(segments: readonly Buffer[], offset: number): boolean;

  /**
   * Write the concatenation of `segments` at byte `offset`, straight from the caller's buffers.
   * With `fua` the data must be durable on return (the core only passes fua=true when
   * capabilities.fua is set; otherwise it calls flush() itself). The store must not keep
   * `segments` (nor views of them) once the promise settles: the fabric reuses those buffers.
   */
  write(segments: readonly Buffer[], offset: number, fua: boolean): Promise<void>;

  /** Make all completed writes durable. */
  flush(): Promise<void>;

  /** Deallocate a byte range (only called when capabilities.unmap). */
  unmap?(offset: number, length: number): Promise<void>;

  /**
   * Bytes per allocation unit: an unmap deallocates only the units it covers whole (the
   * rest is zeroed). Reported to initiators as the OPTIMAL UNMAP GRANULARITY.
   */
  readonly allocationGranularity?: number;

  /**
   * Provisioning state at byte `offset`: allocated (mapped) or not, and how many bytes from
   * `offset` (at most `maxLength`, at least 1) share that state. Stores without it are
   * reported as fully mapped.
   */
  allocationAt?(offset: number, maxLength: number): Promise<AllocationExtent>;

  /**
   * Optional: another process may have written anywhere in the store (a guest sharing the LU,
   * sharing/home.ts), so what this one knows to be deallocated may no longer be.
   */
  writtenElsewhere?(): void;

  /** Advisory read-ahead (PRE-FETCH); may be a no-op. */
  prefetch?(offset: number, length: number): Promise<void>;

  close(): Promise<void>;
}

/** Options given when opening a store (from tgtadm --backing-store/--bsopts/--bsoflags). */
export interface StoreOpenOptions {
  /** Open read-only (the LU is then write protected). */
  readonly?: boolean;
  /** O_SYNC: every write durable before completion. */
  sync?: boolean;
  /** O_DIRECT: bypass the page cache. */
  direct?: boolean;
  /** Store-specific options string (--bsopts). */
  bsopts?: string;
}

/** A registered store type (tgt's --bstype NAME). */
export interface StoreType {
  readonly name: string;
  /** bsoflags this type accepts (tgt rejects others with "invalid request"). */
  readonly supportedOflags: readonly ('sync' | 'direct')[];
  /** Open `path` (meaning is type-specific; memory takes a size, null ignores it). */
  open(path: string, options: StoreOpenOptions): Promise<BackingStore>;
}

/**
 * Fault-injection store filter (nbdkit's error and delay filters): a BackingStore that forwards
 * every call to the store underneath, after an optional delay, unless a rule says the call
 * fails. Failures look exactly like the operating system's (an Error whose `code` is the errno
 * name), so the SCSI core maps them to sense data as it maps real ones; `stall` hangs the call
 * until the store is closed, like an NFS server that went away.
 */
import { Buffer } from 'node:buffer';
import type { AllocationExtent, BackingStore, StoreOpenOptions, StoreType } from '../store.js';
import { isEmptySpec, parseFaultSpec, type FaultOp, type FaultRule, type FaultSpec } from './fault-spec.js';

/** Open options the filter understands on top of the store's (the LU's logical block size). */
export interface FilterOpenOptions extends StoreOpenOptions {
  /** Bytes per logical block, for `lba=` selectors (default 512). */
  blockSize?: number;
}

const DEFAULT_BLOCK_SIZE = 512;

/** An injected failure, shaped like Node's ErrnoException. */
function injectedError(code: string, op: FaultOp, offset: number): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected ${op} fault at byte ${offset}`);
  err.code = code;
  err.syscall = op;
  return err;
}

export class FaultStore implements BackingStore {
  readonly type: string;
  readonly path: string;
  readonly size: number;
  readonly capabilities: BackingStore['capabilities'];
  readonly allocationGranularity?: number;
  readonly unmap?: (offset: number, length: number) => Promise<void>;
  readonly allocationAt?: (offset: number, maxLength: number) => Promise<AllocationExtent>;
  readonly prefetch?: (offset: number, length: number) => Promise<void>;
  /** Calls seen per operation (for every=/after= selectors). */
  private readonly calls: Record<FaultOp, number> = { read: 0, write: 0, flush: 0, unmap: 0 };
  /** Rejecters of stalled calls, failed with EIO when the store closes. */
  private readonly stalled = new Set<(err: Error) => void>();

  constructor(
    private readonly inner: BackingStore,
    private readonly spec: FaultSpec,
    private readonly blockSize = DEFAULT_BLOCK_SIZE,
  ) {
    this.type = inner.type;
    this.path = inner.path;
    this.size = inner.size;
    this.capabilities = inner.capabilities;
    if (inner.allocationGranularity !== undefined) this.allocationGranularity = inner.allocationGranularity;
    // Optional calls exist only when the store has them, so the core sees the same abilities.
    if (inner.unmap) {
      const unmap = inner.unmap.bind(inner);
      this.unmap = (offset, length) => this.run('unmap', offset, length, () => unmap(offset, length));
    }
    if (inner.allocationAt) this.allocationAt = inner.allocationAt.bind(inner);
    if (inner.prefetch) this.prefetch = inner.prefetch.bind(inner);
  }

  /** Read through the filter. */
  read(into: Buffer, offset: number, mayBlock?: boolean): Promise<void> {
    return this.run('read', offset, into.length, () => this.inner.read(into, offset, mayBlock));
  }

  /** Write through the filter. */
  write(segments: readonly Buffer[], offset: number, fua: boolean): Promise<void> {
    let length = 0;
    for (const s of segments) length += s.length;
    return this.run('write', offset, length, () => this.inner.write(segments, offset, fua));
  }

  /** Flush through the filter. */
  flush(): Promise<void> {
    return this.run('flush', 0, 0, () => this.inner.flush());
  }

  /** Fail stalled calls, then close the store underneath. */
  async close(): Promise<void> {
    for (const reject of this.stalled) reject(injectedError('EIO', 'flush', 0));
    this.stalled.clear();
    await this.inner.close();
  }

  private async run(op: FaultOp, offset: number, length: number, call: () => Promise<void>): Promise<void> {
    const n = ++this.calls[op];
    let ms = 0;
    for (const d of this.spec.delays) if (d.ops.includes(op)) ms += d.ms;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    const rule = this.spec.faults.find((r) => r.ops.includes(op) && this.hits(r, n, offset, length));
    if (!rule) return call();
    if (rule.error !== 'stall') throw injectedError(rule.error, op, offset);
    await new Promise<void>((_resolve, reject) => this.stalled.add(reject));
  }

  private hits(rule: FaultRule, n: number, offset: number, length: number): boolean {
    const s = rule.selector;
    switch (s.kind) {
      case 'always':
        return true;
      case 'every':
        return n % s.n === 0;
      case 'after':
        return n > s.n;
      case 'lba': {
        // flush has no range: an LBA rule never hits it.
        if (length === 0) return false;
        const first = Math.floor(offset / this.blockSize);
        const last = Math.floor((offset + length - 1) / this.blockSize);
        return first <= s.last && last >= s.first;
      }
    }
  }
}

/**
 * Wrap a store type so that `open` honours the fault keys of --bsopts (fault-spec.ts) and
 * hands the other keys to the store; without fault keys the store is returned unwrapped.
 */
export function withFaultFilter(type: StoreType): StoreType {
  return {
    name: type.name,
    supportedOflags: type.supportedOflags,
    async open(path: string, options: FilterOpenOptions): Promise<BackingStore> {
      const spec = parseFaultSpec(options.bsopts);
      if (isEmptySpec(spec)) return type.open(path, options);
      const inner = await type.open(path, { ...options, bsopts: spec.rest });
      return new FaultStore(inner, spec, options.blockSize);
    },
  };
}

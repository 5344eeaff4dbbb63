/** Registry of the backing store types tgtadm can name with --bstype. */
import type { StoreType } from './store.js';
import { rdwrStoreType } from './rdwr.js';
import { memoryStoreType } from './memory.js';
import { nullStoreType } from './null.js';
import { withFaultFilter } from './filters/faults.js';

export type { BackingStore, StoreCapabilities, StoreOpenOptions, StoreType } from './store.js';
export { StoreError, type StoreErrorCode } from './errors.js';
export { parseSize, tryParseSize } from './size.js';
export { MemoryStore, MEMORY_CHUNK_SIZE } from './memory.js';
export { NULL_DEFAULT_SIZE } from './null.js';
export { rdwrStoreType, memoryStoreType, nullStoreType };
export { FaultStore, withFaultFilter, type FilterOpenOptions } from './filters/faults.js';
export { parseFaultSpec, FaultSpecError, type FaultSpec } from './filters/fault-spec.js';

/** The default --bstype, as in tgt. */
export const DEFAULT_STORE_TYPE = 'rdwr';

/**
 * All store types, keyed by name (rdwr first, as tgt lists it), each behind the fault-injection
 * filter, which only wraps a store whose --bsopts has fault=/delay= keys (docs/robustness.md).
 */
export const storeTypes: ReadonlyMap<string, StoreType> = new Map(
  [rdwrStoreType, memoryStoreType, nullStoreType].map((t) => [t.name, withFaultFilter(t)]),
);

/** Look up a store type by --bstype name; undefined when unknown. */
export function getStoreType(name: string): StoreType | undefined {
  return storeTypes.get(name);
}

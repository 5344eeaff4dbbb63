/**
 * Emptying reused arrays on the data path. `array.length = 0` is a call into V8's runtime that
 * also frees the array's storage, so the next push allocates it again; pop() is inlined and keeps
 * the storage (micro-benchmark, three entries: 11-15 ns against 75-84 ns, and no garbage).
 */

/** Remove every entry of `list`, keeping its storage for the next use. */
export function emptyArray<T>(list: T[]): void {
  while (list.length > 0) list.pop();
}

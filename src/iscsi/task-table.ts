/**
 * A connection's tasks by Initiator Task Tag (or Target Transfer Tag): a hash table on 32-bit
 * keys that allocates nothing while commands come and go.
 *
 * Why not a Map: V8's Map is an ordered table that leaves a hole for every deleted entry and
 * rebuilds itself (a new backing store) when the holes fill it or when it is a quarter full. With
 * one entry added and removed per command that was a new table every few commands, about 0.4 KiB
 * of garbage per QD 1 READ (BENCHMARKS.md, sixth session). Here deletion moves entries back into
 * place (linear probing with backward shift), so there are no holes, and the table only grows.
 *
 * values() returns the entries in insertion order, like a Map, for the rare walks (task
 * management, connection loss, timeouts) that may depend on command order.
 */

/** Initial number of slots (a power of two); the table doubles when half full. */
const INITIAL_SLOTS = 64;

export class TaskTable<T> {
  private keys = new Uint32Array(INITIAL_SLOTS);
  private vals: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS).fill(undefined);
  /** Insertion order of each slot's entry, for values(). */
  private order = new Float64Array(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  private shift = 32 - Math.log2(INITIAL_SLOTS);
  private count = 0;
  private inserted = 0;

  get size(): number {
    return this.count;
  }

  get(key: number): T | undefined {
    return this.vals[this.find(key >>> 0)];
  }

  has(key: number): boolean {
    return this.vals[this.find(key >>> 0)] !== undefined;
  }

  /** Add or replace the entry for `key`; `value` must not be undefined. */
  set(key: number, value: T): this {
    const k = key >>> 0;
    let i = this.find(k);
    if (this.vals[i] === undefined) {
      if ((this.count + 1) * 2 > this.vals.length) {
        this.grow();
        i = this.find(k);
      }
      this.count++;
      this.keys[i] = k;
      this.order[i] = this.inserted++;
    }
    this.vals[i] = value;
    return this;
  }

  delete(key: number): boolean {
    let hole = this.find(key >>> 0);
    if (this.vals[hole] === undefined) return false;
    this.vals[hole] = undefined;
    this.count--;
    // Backward shift: pull later entries of the probe run into the hole when their home slot
    // allows it, so a lookup never has to step over a deleted slot.
    const mask = this.mask;
    for (let j = (hole + 1) & mask; this.vals[j] !== undefined; j = (j + 1) & mask) {
      const home = this.home(this.keys[j]!);
      // Entry j may move to `hole` if its home is not in the cyclic range (hole, j].
      const stays = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (stays) continue;
      this.keys[hole] = this.keys[j]!;
      this.vals[hole] = this.vals[j];
      this.order[hole] = this.order[j]!;
      this.vals[j] = undefined;
      hole = j;
    }
    return true;
  }

  clear(): void {
    this.vals.fill(undefined);
    this.count = 0;
  }

  /** A snapshot of the entries in insertion order (changing the table does not affect it). */
  values(): T[] {
    const slots: number[] = [];
    for (let i = 0; i < this.vals.length; i++) if (this.vals[i] !== undefined) slots.push(i);
    slots.sort((a, b) => this.order[a]! - this.order[b]!);
    return slots.map((i) => this.vals[i]!);
  }

  /** Fibonacci hashing: ITTs are often sequential, and this spreads them over the slots. */
  private home(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.shift;
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  private find(key: number): number {
    const mask = this.mask;
    let i = this.home(key);
    while (this.vals[i] !== undefined && this.keys[i] !== key) i = (i + 1) & mask;
    return i;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const oldOrder = this.order;
    const slots = oldVals.length * 2;
    this.keys = new Uint32Array(slots);
    this.vals = new Array<T | undefined>(slots).fill(undefined);
    this.order = new Float64Array(slots);
    this.mask = slots - 1;
    this.shift--;
    for (let i = 0; i < oldVals.length; i++) {
      const v = oldVals[i];
      if (v === undefined) continue;
      const j = this.find(oldKeys[i]!);
      this.keys[j] = oldKeys[i]!;
      this.vals[j] = v;
      this.order[j] = oldOrder[i]!;
    }
  }
}

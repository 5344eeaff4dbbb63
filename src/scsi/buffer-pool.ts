/**
 * Payload buffers in power-of-two size classes (4 KiB to 256 KiB, the largest data segment
 * initiators usually negotiate), reused instead of allocated per command: READ Data-In that
 * stores read into, and received Data-Out that stores write from.
 *
 * Why: every fresh ArrayBuffer is external memory to V8, and hundreds of megabytes of it per
 * second (128 KiB writes at line rate) make V8 start a full mark-compact every ~150 ms for
 * "external memory pressure" although the JavaScript heap is small (BENCHMARKS.md, "Receive
 * buffers"). A buffer that goes back here is used again and costs neither malloc nor GC.
 *
 * Only buffers this pool handed out and that are still out can come back (each pooled
 * ArrayBuffer carries a flag saying so), so a foreign or twice-released buffer can never be
 * handed out to two owners. Idle buffers are bounded per size class; a class that is empty
 * allocates.
 */
import { Buffer } from 'node:buffer';

/** Smallest and largest pooled size (power-of-two classes in between). */
const MIN_SHIFT = 12;
const MAX_SHIFT = 18;
/** Bound on the idle bytes kept per size class (1024 of 4 KiB ... 16 of 256 KiB). */
const IDLE_BYTES_PER_CLASS = 4 * 1024 * 1024;

/** Set on a pooled ArrayBuffer while it is handed out (a property: cheaper than a WeakSet). */
const kOut = Symbol('tgt.pooled.out');
/** A Buffer over the whole ArrayBuffer, made once: a request of the class size gets it again. */
const kWhole = Symbol('tgt.pooled.whole');
interface PooledMemory extends ArrayBuffer {
  [kOut]?: boolean;
  [kWhole]?: Buffer;
}

const idle: PooledMemory[][] = [];
for (let shift = MIN_SHIFT; shift <= MAX_SHIFT; shift++) idle.push([]);

/** Largest request served from the pool; larger ones are plain allocations. */
export const POOLED_MAX_BYTES = 1 << MAX_SHIFT;

function sizeClass(bytes: number): number {
  return bytes <= 1 << MIN_SHIFT ? 0 : 32 - Math.clz32(bytes - 1) - MIN_SHIFT;
}

/** A buffer of `bytes` (uninitialised), pooled when 1 to POOLED_MAX_BYTES bytes. */
export function acquireBuffer(bytes: number): Buffer {
  if (bytes <= 0 || bytes > POOLED_MAX_BYTES) return Buffer.allocUnsafe(bytes);
  const cls = sizeClass(bytes);
  const size = 1 << (cls + MIN_SHIFT);
  const memory: PooledMemory = idle[cls]!.pop() ?? new ArrayBuffer(size);
  memory[kOut] = true;
  // 4 KiB reads, 8 KiB Data-Out segments, 128 KiB transfers: the size of their class, so
  // they are served with no new view object.
  if (bytes === size) return (memory[kWhole] ??= Buffer.from(memory, 0, size));
  return Buffer.from(memory, 0, bytes);
}

/**
 * Give back a buffer from acquireBuffer() (or any view of its memory); nothing may use it
 * afterwards. Buffers the pool did not hand out, or that are already back, are ignored.
 */
export function releaseBuffer(data: Buffer): void {
  const memory = data.buffer as PooledMemory;
  if (memory[kOut] !== true) return;
  memory[kOut] = false;
  const size = memory.byteLength;
  const free = idle[sizeClass(size)]!;
  if ((free.length + 1) * size <= IDLE_BYTES_PER_CLASS) free.push(memory);
}

/** Idle buffers per class, smallest first (tests and statistics). */
export function idleBufferCounts(): number[] {
  return idle.map((free) => free.length);
}

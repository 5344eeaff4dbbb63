/**
 * Which parts of a store hold allocated storage, kept in memory at a fixed granule size (the
 * filesystem block for rdwr). Node has no lseek(SEEK_DATA/SEEK_HOLE) and no FIEMAP, so a store
 * that punches holes records what it wrote and what it deallocated here instead of asking the
 * filesystem (see rdwr.ts for what that means at open time).
 *
 * Layout: granules are grouped in chunks of CHUNK_GRANULES; a chunk is either uniform (all
 * mapped / all deallocated, no memory) or a bitmap with a count of mapped granules, collapsed
 * back to uniform when the count reaches either end. Memory is bounded by size / granule / 8
 * bytes in the worst case and is nothing for the common all-mapped or all-hole files.
 */

/** Granules per chunk: a 4 KiB bitmap; with 4 KiB granules one chunk covers 128 MiB. */
const CHUNK_GRANULES = 32768;
const WORDS = CHUNK_GRANULES / 32;

const MAPPED = 1;
const UNMAPPED = 0;

interface Bitmap {
  readonly bits: Uint32Array;
  /** Granules of this chunk whose bit is set (mapped). */
  mapped: number;
}

type ChunkState = typeof MAPPED | typeof UNMAPPED | Bitmap;

/** The provisioning state of a run of bytes. */
export interface AllocationExtent {
  /** True when storage is allocated (SBC-4: mapped), false when deallocated. */
  readonly mapped: boolean;
  /** Bytes from the queried offset that share this state (at least 1). */
  readonly length: number;
}

export class AllocationMap {
  private readonly chunks: ChunkState[];
  private readonly granules: number;

  /** `size` bytes tracked in granules of `granule` bytes, all mapped or all deallocated at first. */
  constructor(
    readonly size: number,
    readonly granule: number,
    initiallyMapped: boolean,
  ) {
    if (!Number.isSafeInteger(granule) || granule <= 0) throw new RangeError(`bad granule ${granule}`);
    this.granules = Math.ceil(size / granule);
    this.chunks = new Array<ChunkState>(Math.ceil(this.granules / CHUNK_GRANULES)).fill(
      initiallyMapped ? MAPPED : UNMAPPED,
    );
  }

  /** A write touched [offset, offset+length): every granule it touches is now allocated. */
  markMapped(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / this.granule);
    const last = Math.min(this.granules, Math.ceil((offset + length) / this.granule));
    this.setRange(first, last, true);
  }

  /**
   * [offset, offset+length) was deallocated: only granules lying wholly inside are (the
   * filesystem zeroes the partial ones at the edges but keeps them allocated). The last granule
   * may be short when the size is not a multiple of the granule.
   */
  markUnmapped(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.ceil(offset / this.granule);
    const end = offset + length;
    const last = end >= this.size ? this.granules : Math.floor(end / this.granule);
    if (last > first) this.setRange(first, last, false);
  }

  /** The state at byte `offset` and how many bytes (at most `maxLength`) share it. */
  extentAt(offset: number, maxLength: number): AllocationExtent {
    const limit = Math.min(this.size, offset + Math.max(1, maxLength));
    let g = Math.floor(offset / this.granule);
    const mapped = this.isMapped(g);
    const lastGranule = Math.ceil(limit / this.granule);
    g++;
    while (g < lastGranule) {
      const c = Math.floor(g / CHUNK_GRANULES);
      const state = this.chunks[c]!;
      if (typeof state === 'number') {
        if ((state === MAPPED) !== mapped) break;
        g = (c + 1) * CHUNK_GRANULES; // the whole chunk agrees
        continue;
      }
      // skip whole words that agree
      const i = g - c * CHUNK_GRANULES;
      const word = state.bits[i >>> 5]!;
      if ((i & 31) === 0 && word === (mapped ? 0xffffffff : 0)) {
        g += 32;
        continue;
      }
      if ((((word >>> (i & 31)) & 1) === 1) !== mapped) break;
      g++;
    }
    const runEnd = Math.min(limit, g * this.granule);
    return { mapped, length: Math.max(1, runEnd - offset) };
  }

  /** Bytes currently recorded as allocated (granules x granule size, the last one clipped). */
  get mappedBytes(): number {
    let n = 0;
    this.chunks.forEach((state, c) => {
      const inChunk = Math.min(CHUNK_GRANULES, this.granules - c * CHUNK_GRANULES);
      n += state === MAPPED ? inChunk : state === UNMAPPED ? 0 : state.mapped;
    });
    const tail = this.granules * this.granule - this.size; // bytes past the end in the last granule
    return Math.max(0, n * this.granule - (this.isMapped(this.granules - 1) ? tail : 0));
  }

  private isMapped(g: number): boolean {
    const state = this.chunks[Math.floor(g / CHUNK_GRANULES)];
    if (state === undefined) return false;
    if (typeof state === 'number') return state === MAPPED;
    const i = g % CHUNK_GRANULES;
    return ((state.bits[i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  /** Set granules [first, last) to `mapped`, chunk by chunk. */
  private setRange(first: number, last: number, mapped: boolean): void {
    const want = mapped ? MAPPED : UNMAPPED;
    for (let g = first; g < last;) {
      const c = Math.floor(g / CHUNK_GRANULES);
      const chunkStart = c * CHUNK_GRANULES;
      const inChunk = Math.min(CHUNK_GRANULES, this.granules - chunkStart);
      const to = Math.min(last, chunkStart + inChunk);
      const state = this.chunks[c]!;
      if (state !== want) {
        if (g === chunkStart && to === chunkStart + inChunk) {
          this.chunks[c] = want; // the whole chunk
        } else {
          const bitmap = typeof state === 'number' ? newBitmap(state === MAPPED, inChunk) : state;
          setBits(bitmap, g - chunkStart, to - chunkStart, mapped);
          this.chunks[c] = bitmap.mapped === 0 ? UNMAPPED : bitmap.mapped === inChunk ? MAPPED : bitmap;
        }
      }
      g = to;
    }
  }
}

function newBitmap(mapped: boolean, inChunk: number): Bitmap {
  const bits = new Uint32Array(WORDS);
  if (mapped) {
    bits.fill(0xffffffff);
    return { bits, mapped: inChunk };
  }
  return { bits, mapped: 0 };
}

/** Set or clear bits [from, to) and keep the mapped count right. */
function setBits(b: Bitmap, from: number, to: number, on: boolean): void {
  for (let i = from; i < to; i++) {
    const w = i >>> 5;
    const mask = 1 << (i & 31);
    const was = (b.bits[w]! & mask) !== 0;
    if (was === on) continue;
    b.bits[w] = on ? b.bits[w]! | mask : b.bits[w]! & ~mask;
    b.mapped += on ? 1 : -1;
  }
}

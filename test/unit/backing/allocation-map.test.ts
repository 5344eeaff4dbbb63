import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllocationMap } from '../../../src/backing/allocation-map.js';

const G = 4096;

test('allocation map: a fresh sparse store is one deallocated extent; a full one one mapped extent', () => {
  const holes = new AllocationMap(10 * G, G, false);
  assert.deepEqual(holes.extentAt(0, 10 * G), { mapped: false, length: 10 * G });
  assert.equal(holes.mappedBytes, 0);
  const full = new AllocationMap(10 * G, G, true);
  assert.deepEqual(full.extentAt(3 * G + 5, 100 * G), { mapped: true, length: 7 * G - 5 });
  assert.equal(full.mappedBytes, 10 * G);
});

test('allocation map: a write maps every granule it touches, even partially', () => {
  const m = new AllocationMap(16 * G, G, false);
  m.markMapped(G + 100, 10); // touches granule 1 only
  assert.deepEqual(m.extentAt(0, 16 * G), { mapped: false, length: G });
  assert.deepEqual(m.extentAt(G, 16 * G), { mapped: true, length: G });
  assert.deepEqual(m.extentAt(2 * G, 16 * G), { mapped: false, length: 14 * G });
  m.markMapped(4 * G - 1, 2); // straddles granules 3 and 4
  assert.deepEqual(m.extentAt(3 * G, 16 * G), { mapped: true, length: 2 * G });
});

test('allocation map: an unmap deallocates only the granules it covers whole', () => {
  const m = new AllocationMap(16 * G, G, true);
  m.markUnmapped(100, G); // no whole granule
  assert.equal(m.mappedBytes, 16 * G);
  m.markUnmapped(G - 1, 3 * G + 2); // granules 1..3 whole
  assert.deepEqual(m.extentAt(0, 16 * G), { mapped: true, length: G });
  assert.deepEqual(m.extentAt(G, 16 * G), { mapped: false, length: 3 * G });
  assert.deepEqual(m.extentAt(4 * G, 16 * G), { mapped: true, length: 12 * G });
  // the short last granule of a store whose size is not a multiple is deallocated by an unmap to the end
  const odd = new AllocationMap(2 * G + 512, G, true);
  odd.markUnmapped(2 * G, 512);
  assert.deepEqual(odd.extentAt(2 * G, 512), { mapped: false, length: 512 });
  assert.equal(odd.mappedBytes, 2 * G);
});

test('allocation map: extents are clipped to maxLength and the store size', () => {
  const m = new AllocationMap(8 * G, G, false);
  assert.deepEqual(m.extentAt(G, 10), { mapped: false, length: 10 });
  assert.deepEqual(m.extentAt(7 * G, 100 * G), { mapped: false, length: G });
});

test('allocation map: runs spanning chunk bitmaps and uniform chunks are reported whole', () => {
  const granules = 3 * 32768 + 7; // three full chunks and a partial one
  const m = new AllocationMap(granules * G, G, false);
  m.markMapped(10 * G, 32768 * 2 * G); // from inside chunk 0 to inside chunk 2
  assert.deepEqual(m.extentAt(0, granules * G), { mapped: false, length: 10 * G });
  assert.deepEqual(m.extentAt(10 * G, granules * G), { mapped: true, length: 65536 * G });
  assert.deepEqual(m.extentAt((10 + 65536) * G, granules * G), {
    mapped: false,
    length: (granules - 10 - 65536) * G,
  });
  assert.equal(m.mappedBytes, 65536 * G);
  // mapping the rest collapses every chunk back to uniform: one extent for the whole store
  m.markMapped(0, granules * G);
  assert.deepEqual(m.extentAt(0, granules * G), { mapped: true, length: granules * G });
  m.markUnmapped(0, granules * G);
  assert.deepEqual(m.extentAt(0, granules * G), { mapped: false, length: granules * G });
});

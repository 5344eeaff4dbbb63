// TaskTable: the connection's ITT/TTT index behaves like a Map (lookups, sizes, insertion
// order) through growth and any order of deletions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskTable } from '../../../src/iscsi/task-table.js';

/** Deterministic pseudo-random numbers (xorshift32). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function assertSame(table: TaskTable<string>, model: Map<number, string>, keys: number[]): void {
  assert.equal(table.size, model.size);
  for (const k of keys) {
    assert.equal(table.get(k), model.get(k), `get(0x${k.toString(16)})`);
    assert.equal(table.has(k), model.has(k));
  }
  assert.deepEqual(table.values(), [...model.values()], 'values in insertion order');
}

test('rfc7143 11.2.1.8 ITT lookup: a random mix of adds, replacements and deletes matches a Map, through growth', () => {
  for (const seed of [1, 7, 42, 2024]) {
    const next = rng(seed);
    const table = new TaskTable<string>();
    const model = new Map<number, string>();
    // Keys from a small range collide and replace; sequential ITTs like an initiator's, and
    // the reserved tag's neighbourhood.
    const pool = [...Array.from({ length: 300 }, (_, i) => i), 0xfffffffe, 0x80000000, 0x12345678];
    for (let step = 0; step < 20000; step++) {
      const k = pool[next() % pool.length]!;
      const op = next() % 3;
      if (op === 0) assert.equal(table.delete(k), model.delete(k));
      else {
        const v = `${k}:${step}`;
        table.set(k, v);
        model.set(k, v);
      }
      if (step % 997 === 0) assertSame(table, model, pool);
    }
    assertSame(table, model, pool);
  }
});

test('ITT lookup: many tasks outstanding at once (table grows) then all completed leaves it empty and usable', () => {
  const table = new TaskTable<number>();
  for (let itt = 0; itt < 5000; itt++) table.set(itt * 0x10001, itt);
  assert.equal(table.size, 5000);
  for (let itt = 0; itt < 5000; itt++) assert.equal(table.get(itt * 0x10001), itt);
  for (let itt = 0; itt < 5000; itt += 2) assert.ok(table.delete(itt * 0x10001));
  for (let itt = 0; itt < 5000; itt++) assert.equal(table.get(itt * 0x10001), itt % 2 ? itt : undefined);
  for (let itt = 1; itt < 5000; itt += 2) assert.ok(table.delete(itt * 0x10001));
  assert.equal(table.size, 0);
  assert.deepEqual(table.values(), []);
  table.set(7, 1);
  assert.equal(table.get(7), 1);
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.get(7), undefined);
});

test('ITT lookup: keys are 32-bit tags (a negative int32 and its unsigned value are the same tag)', () => {
  const table = new TaskTable<string>();
  table.set(-1 >>> 0, 'a');
  assert.equal(table.get(-1), 'a');
  assert.equal(table.get(0xffffffff), 'a');
  assert.equal(table.delete(-1), true);
  assert.equal(table.size, 0);
});

/**
 * Data integrity through a real tgtd: what one session writes another reads back, across the
 * rdwr (file) and memory stores, and across a tgtd restart on the same backing file
 * (SBC-3 4.x: a write that returned GOOD is readable afterwards; tgt-behaviour.md §1.4).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Session } from '../../src/initiator/index.js';
import { TgtDaemon } from '../helpers/daemon.js';
import { BLOCK, closeSession, GOOD, IQN, loginReady, sha256 } from './util.js';

const FILE_TARGET = `${IQN}:integrity-rdwr`;
const MEMORY_TARGET = `${IQN}:integrity-memory`;
const LUN = 1;
const SIZE = 64 * 1024 * 1024;

/** Writes spread over the LUN: start, a misaligned middle, a large one, and the last blocks. */
function writePlan(): { lba: number; data: Buffer; fua: boolean }[] {
  const last = SIZE / BLOCK;
  return [
    { lba: 0, data: randomBytes(BLOCK), fua: false },
    { lba: 7, data: randomBytes(13 * BLOCK), fua: true },
    { lba: 1000, data: randomBytes(1024 * 1024), fua: false },
    { lba: 50_001, data: randomBytes(300 * BLOCK), fua: true },
    { lba: last - 16, data: randomBytes(16 * BLOCK), fua: false },
  ];
}

async function writeAll(s: Session, plan: ReturnType<typeof writePlan>): Promise<void> {
  for (const w of plan) {
    const r = await s.write16(LUN, w.lba, w.data, BLOCK, { fua: w.fua });
    assert.equal(r.status, GOOD, `WRITE(16) at LBA ${w.lba}: status ${r.status}`);
  }
}

async function verifyAll(s: Session, plan: ReturnType<typeof writePlan>, who: string): Promise<void> {
  for (const w of plan) {
    const r = await s.read16(LUN, w.lba, w.data.length / BLOCK, BLOCK);
    assert.equal(r.status, GOOD, `${who}: READ(16) at LBA ${w.lba}`);
    assert.equal(sha256(r.data), sha256(w.data), `${who}: data at LBA ${w.lba}`);
  }
}

describe('data integrity', () => {
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'tgt-ts-integrity-'));
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function backingFile(name: string): Promise<string> {
    const path = join(work, name);
    const fh = await open(path, 'w');
    await fh.truncate(SIZE);
    await fh.close();
    return path;
  }

  for (const store of ['rdwr', 'memory'] as const) {
    test(`sbc3: data written through one session reads back identical through another (${store} store)`, async () => {
      const d = await TgtDaemon.start();
      let a: Session | undefined;
      let b: Session | undefined;
      try {
        const name = store === 'rdwr' ? FILE_TARGET : MEMORY_TARGET;
        const path = store === 'rdwr' ? await backingFile('two-sessions.img') : '64M';
        await d.addTarget({ tid: 1, name, luns: [{ lun: LUN, path, bstype: store }] });
        a = await loginReady(d, name, LUN, { initiatorName: `${IQN}:writer` });
        b = await loginReady(d, name, LUN, { initiatorName: `${IQN}:reader` });
        const plan = writePlan();
        await writeAll(a, plan);
        await verifyAll(b, plan, 'second session');
        // And the other way round, overwriting part of what the first session wrote.
        const back = { lba: 1100, data: randomBytes(64 * BLOCK), fua: false };
        await writeAll(b, [back]);
        await verifyAll(a, [back], 'first session');
        // Blocks never written read as zeroes.
        const zeros = await a.read16(LUN, 40_000, 8, BLOCK);
        assert.ok(zeros.data.equals(Buffer.alloc(8 * BLOCK)), 'unwritten blocks are zero');
        await closeSession(a);
        await closeSession(b);
        await d.stopChecked();
      } finally {
        a?.destroy();
        b?.destroy();
        await d.cleanup();
      }
    });
  }

  test("sam5: 8 sessions writing disjoint regions at once all read back each other's data", async () => {
    const d = await TgtDaemon.start();
    const sessions: Session[] = [];
    try {
      const path = await backingFile('eight-sessions.img');
      await d.addTarget({ tid: 1, name: FILE_TARGET, luns: [{ lun: LUN, path }] });
      for (let i = 0; i < 8; i++) {
        sessions.push(await loginReady(d, FILE_TARGET, LUN, { initiatorName: `${IQN}:parallel-${i}` }));
      }
      // Each session owns 32 regions of 16 blocks, interleaved with the others' regions.
      const plans = sessions.map((_, i) =>
        Array.from({ length: 32 }, (_, j) => ({
          lba: (j * 8 + i) * 16,
          data: randomBytes(16 * BLOCK),
          fua: false,
        })),
      );
      await Promise.all(
        sessions.map(async (s, i) => {
          const results = await Promise.all(plans[i]!.map((w) => s.write16(LUN, w.lba, w.data, BLOCK)));
          for (const r of results) assert.equal(r.status, GOOD, `session ${i} write`);
        }),
      );
      // Session i reads what session i+1 wrote.
      await Promise.all(sessions.map((s, i) => verifyAll(s, plans[(i + 1) % 8]!, `session ${i}`)));
      // Again with new data: received Data-Out buffers are reused from a pool once written
      // (buffer-pool.ts), so a buffer given back too early would show up here as wrong data.
      for (const plan of plans) for (const w of plan) w.data = randomBytes(16 * BLOCK);
      await Promise.all(
        sessions.map(async (s, i) => {
          const results = await Promise.all(plans[i]!.map((w) => s.write16(LUN, w.lba, w.data, BLOCK)));
          for (const r of results) assert.equal(r.status, GOOD, `session ${i} second write`);
        }),
      );
      await Promise.all(sessions.map((s, i) => verifyAll(s, plans[(i + 3) % 8]!, `session ${i} again`)));
      for (const s of sessions) await closeSession(s);
      await d.stopChecked();
    } finally {
      for (const s of sessions) s.destroy();
      await d.cleanup();
    }
  });

  test('tgt §1.1: acknowledged writes survive a tgtd restart (SIGTERM, start again on the same file)', async () => {
    const path = await backingFile('restart.img');
    const plan = writePlan();
    const first = await TgtDaemon.start();
    try {
      await first.addTarget({ tid: 1, name: FILE_TARGET, luns: [{ lun: LUN, path }] });
      const s = await loginReady(first, FILE_TARGET, LUN);
      await writeAll(s, plan);
      // No logout: SIGTERM with the session still open must not lose acknowledged writes.
      await first.stopChecked();
      s.destroy();
    } finally {
      await first.cleanup();
    }

    const onDisk = await readFile(path);
    assert.equal(onDisk.length, SIZE, 'the backing file keeps its size');
    for (const w of plan) {
      const at = w.lba * BLOCK;
      assert.equal(
        sha256(onDisk.subarray(at, at + w.data.length)),
        sha256(w.data),
        `file bytes at LBA ${w.lba}`,
      );
    }

    const second = await TgtDaemon.start();
    try {
      await second.addTarget({ tid: 1, name: FILE_TARGET, luns: [{ lun: LUN, path }] });
      const s = await loginReady(second, FILE_TARGET, LUN);
      try {
        await verifyAll(s, plan, 'after restart');
      } finally {
        await closeSession(s);
      }
      await second.stopChecked();
    } finally {
      await second.cleanup();
    }
  });
});

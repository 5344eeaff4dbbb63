/**
 * Stopping and killing tgtd (issue 5 item 8). SIGTERM: logins are refused, every session gets
 * an Async Message asking it to log out (RFC 7143 11.9.1), commands keep completing during the
 * grace period, the stores are flushed and closed, exit 0. SIGKILL at random moments of a
 * verified FUA write load (or a plain one with WCE=0), restart on the same backing file: every
 * acknowledged write is there.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Session } from '../../src/initiator/index.js';
import { AsyncEvent } from '../../src/iscsi/spec.js';
import { delay, TgtDaemon } from '../helpers/daemon.js';
import { BLOCK, closeSession, GOOD, IQN, login, loginReady, pattern } from './util.js';

const TARGET = `${IQN}:shutdown`;
const LUN = 1;
const FILE_SIZE = 1 << 20;
/** Caching mode page (SBC-4 6.5.5) with WCE cleared, as tgt's `--params mode_page=`. */
const WCE0_PARAMS = [
  '--lld',
  'iscsi',
  '--mode',
  'logicalunit',
  '--op',
  'update',
  '--tid',
  '1',
  '--lun',
  String(LUN),
  '--params',
  'mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0',
];

async function startOn(file: string): Promise<TgtDaemon> {
  const d = await TgtDaemon.start();
  await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: LUN, path: file }] });
  return d;
}

async function makeFile(dir: string): Promise<string> {
  const path = join(dir, 'disk.img');
  const fh = await open(path, 'w');
  await fh.truncate(FILE_SIZE);
  await fh.close();
  return path;
}

describe('shutdown and restart', () => {
  const dirs: string[] = [];
  const daemons: TgtDaemon[] = [];
  after(async () => {
    for (const d of daemons) await d.cleanup();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test('rfc7143 11.9.1: SIGTERM asks sessions to log out, refuses logins, completes commands, flushes, exits 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tgt-ts-shutdown-'));
    dirs.push(dir);
    const file = await makeFile(dir);
    const d = await startOn(file);
    daemons.push(d);
    const s = await loginReady(d, TARGET, LUN);
    const before = pattern(BLOCK * 8, 1);
    assert.equal((await s.write10(LUN, 0, before, BLOCK)).status, GOOD);

    d.proc.kill('SIGTERM');
    for (let i = 0; i < 100 && s.asyncMessages.length === 0; i++) await delay(20);
    const msg = s.asyncMessages[0];
    assert.ok(msg, 'an Async Message arrived');
    assert.equal(msg.bhs[36], AsyncEvent.LogoutRequest, 'AsyncEvent 1: logout requested');
    assert.ok(msg.bhs.readUInt16BE(42) >= 1, 'Parameter3: seconds to log out within');

    // During the grace period the session still works; a new login does not.
    const during = pattern(BLOCK * 8, 2);
    assert.equal((await s.write10(LUN, 8, during, BLOCK)).status, GOOD);
    await assert.rejects(login(d, TARGET, { timeoutMs: 2000 }), 'a login after SIGTERM fails');

    await closeSession(s);
    await d.waitExit(15_000);
    assert.equal(d.exitCode, 0, d.output);
    const disk = await readFile(file);
    assert.ok(disk.subarray(0, BLOCK * 8).equals(before));
    assert.ok(disk.subarray(BLOCK * 8, BLOCK * 16).equals(during));
  });

  /**
   * Three rounds of: start on `file`, read back every acknowledged write, run the load, SIGKILL
   * at a random moment. `fua`: FUA writes with the default WCE=1; `wce0`: plain writes with the
   * caching page's WCE cleared (every write must then be durable when acknowledged).
   */
  async function killNineRounds(mode: 'fua' | 'wce0'): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'tgt-ts-kill9-'));
    dirs.push(dir);
    const file = await makeFile(dir);
    const WRITERS = 4;
    const SLOTS = 32; // per writer
    const BLOCKS = 8; // per write
    const slotLba = (w: number, slot: number): number => (w * SLOTS + slot) * BLOCKS;
    /** Per slot: the seed of the last acknowledged write (0 = never written: zeroes). */
    const acked = new Map<number, number>();
    /** Per slot: the seed of a write in flight when tgtd was killed (it may or may not be there). */
    const inFlight = new Map<number, number>();
    let seed = 1;

    for (let round = 0; round < 3; round++) {
      const d = await startOn(file);
      daemons.push(d);
      if (mode === 'wce0') await d.adm(...WCE0_PARAMS);
      const s: Session = await loginReady(d, TARGET, LUN);
      if (mode === 'wce0') {
        const caching = await s.modeSense6(LUN, { page: 0x08, dbd: true });
        assert.equal(caching.data[4 + 2]! & 0x04, 0, 'caching page: WCE = 0');
      }

      // Everything acknowledged before the last kill reads back.
      for (let w = 0; w < WRITERS; w++) {
        for (let slot = 0; slot < SLOTS; slot++) {
          const lba = slotLba(w, slot);
          const r = await s.read10(LUN, lba, BLOCKS, BLOCK);
          assert.equal(r.status, GOOD);
          const want = acked.get(lba);
          const expected = want ? pattern(BLOCK * BLOCKS, want) : Buffer.alloc(BLOCK * BLOCKS);
          const maybe = inFlight.get(lba);
          if (maybe !== undefined && r.data.equals(pattern(BLOCK * BLOCKS, maybe))) {
            acked.set(lba, maybe); // the unacknowledged write made it: it is the state now
            continue;
          }
          assert.ok(r.data.equals(expected), `round ${round}: LBA ${lba} holds the last acknowledged write`);
        }
      }
      inFlight.clear();

      // Writers own disjoint slots and write one at a time, so "last acknowledged" is exact
      // and each writer has at most one unacknowledged write when tgtd dies.
      let killed = false;
      let acknowledged = 0;
      const writers = Array.from({ length: WRITERS }, async (_, w) => {
        for (let n = 0; !killed; n++) {
          const lba = slotLba(w, (n * 7 + round) % SLOTS);
          const mySeed = seed++;
          let r;
          inFlight.set(lba, mySeed);
          try {
            r = await s.write10(LUN, lba, pattern(BLOCK * BLOCKS, mySeed), BLOCK, { fua: mode === 'fua' });
          } catch {
            return;
          }
          if (r.status !== GOOD) assert.fail(`write at LBA ${lba}: status ${r.status}`);
          acked.set(lba, mySeed);
          inFlight.delete(lba);
          acknowledged++;
        }
      });
      await delay(150 + Math.floor(Math.random() * 350));
      d.proc.kill('SIGKILL');
      killed = true;
      await d.waitExit(5000);
      await Promise.all(writers);
      s.destroy();
      assert.equal(d.exitSignal, 'SIGKILL');
      assert.ok(acknowledged > 0, `round ${round}: the load acknowledged writes before the kill`);
    }

    // Final check on the file itself.
    const disk = await readFile(file);
    for (const [lba, want] of acked)
      if (!inFlight.has(lba))
        assert.ok(disk.subarray(lba * BLOCK, (lba + BLOCKS) * BLOCK).equals(pattern(BLOCK * BLOCKS, want)));
  }

  test('kill -9 under a FUA write load, restart on the same file: no acknowledged write is lost', () =>
    killNineRounds('fua'));

  test('sbc4 6.5.5: with WCE=0, kill -9 under a plain write load loses no acknowledged write', () =>
    killNineRounds('wce0'));
});

/**
 * tgtd --spread sessions (the default with workers; src/mgmt/workers/sharing.ts,
 * src/scsi/sharing): the sessions of a target tgtd serves are spread over tgtd and its
 * workers, so one target uses more than one core. What an admin relies on: each session
 * sees every other's writes at once, reservations and unit attentions hold across them,
 * tgtadm shows one target with all its sessions and counts their commands, and losing a
 * worker loses its sessions only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Session } from '../../src/initiator/index.js';
import { TgtDaemon, run, TGTD_BIN } from '../helpers/daemon.js';
import { childrenOf, holders } from '../helpers/proc.js';
import { BLOCK, clearUnitAttention, closeSession, GOOD, IQN, login, loginReady, pattern } from './util.js';

const TARGET = `${IQN}:shared`;
const LUN = 1;
const RESERVATION_CONFLICT = 0x18;

/** SPC-2 RESERVE(6) / RELEASE(6). */
const reserve = (s: Session) => s.command({ lun: LUN, cdb: Buffer.from([0x16, 0, 0, 0, 0, 0]) });
const release = (s: Session) => s.command({ lun: LUN, cdb: Buffer.from([0x17, 0, 0, 0, 0, 0]) });

/** PERSISTENT RESERVE OUT with a 24-byte parameter list. */
function prOut(s: Session, action: number, key: bigint, sark: bigint, type = 0) {
  const list = Buffer.alloc(24);
  list.writeBigUInt64BE(key, 0);
  list.writeBigUInt64BE(sark, 8);
  return s.command({ lun: LUN, cdb: Buffer.from([0x5f, action, type, 0, 0, 0, 0, 0, 24, 0]), dataOut: list });
}

describe('tgtd --spread sessions', () => {
  let d: TgtDaemon;

  before(async () => {
    d = await TgtDaemon.start({ args: ['--workers', '1'] });
    await d.addTarget({
      tid: 1,
      name: TARGET,
      luns: [{ lun: LUN, path: await d.sparseFile('shared.img', 32 << 20) }],
    });
  });

  after(async () => {
    await d.stop();
    await d.cleanup();
  });

  /** Two sessions of the one target, one in tgtd and one in its worker (checked). */
  async function pair(tag: string): Promise<[Session, Session]> {
    const a = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:${tag}-a` });
    const b = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:${tag}-b` });
    const pids = [d.proc.pid!, ...childrenOf(d.proc.pid!)];
    const where = [holders(d, a, pids), holders(d, b, pids)];
    assert.deepEqual(
      where.map((h) => h.length),
      [1, 1],
      `one process per connection: ${JSON.stringify(where)}`,
    );
    assert.notEqual(where[0]![0], where[1]![0], 'the two sessions are served by different processes');
    return [a, b];
  }

  /** Run `body` with a pair of sessions (see pair), logged out afterwards whatever happens. */
  async function withPair(tag: string, body: (a: Session, b: Session) => Promise<void>): Promise<void> {
    const [a, b] = await pair(tag);
    try {
      await body(a, b);
    } finally {
      await closeSession(a);
      await closeSession(b);
    }
  }

  test('two sessions of one target go to two processes; each reads what the other wrote, at once', () =>
    withPair('data', async (a, b) => {
      for (let i = 0; i < 20; i++) {
        const [writer, reader] = i % 2 === 0 ? [a, b] : [b, a];
        const data = pattern(8 * BLOCK, i);
        assert.equal((await writer.write10(LUN, 64 + (i % 4) * 8, data, BLOCK)).status, GOOD);
        const r = await reader.read10(LUN, 64 + (i % 4) * 8, 8, BLOCK);
        assert.equal(r.status, GOOD);
        assert.deepEqual(r.data, data, `round ${i}: the other process's write is visible`);
      }
    }));

  test('tgtadm shows one target with both sessions, connections of both, and counts both sessions commands', () =>
    withPair('views', async (_a, b) => {
      for (let i = 0; i < 10; i++) assert.equal((await b.read10(LUN, i, 1, BLOCK)).status, GOOD);
      const show = await d.adm('--lld', 'iscsi', '--op', 'show', '--mode', 'target');
      assert.match(show, new RegExp(`Initiator: ${IQN}:views-a alias`));
      assert.match(show, new RegExp(`Initiator: ${IQN}:views-b alias`));
      assert.equal((show.match(/^Target \d+:/gm) ?? []).length, 1, 'one target');
      const conns = await d.adm('--lld', 'iscsi', '--op', 'show', '--mode', 'conn', '--tid', '1');
      assert.match(conns, new RegExp(`Initiator: ${IQN}:views-a`));
      assert.match(conns, new RegExp(`Initiator: ${IQN}:views-b`));
      const stat = await d.adm('--lld', 'iscsi', '--op', 'stat', '--mode', 'target', '--tid', '1');
      const rows = stat
        .trim()
        .split('\n')
        .slice(1)
        .filter((l) => l.trim().split(/\s+/)[1] === String(LUN));
      assert.equal(rows.length, 2, stat);
      // The worker's session read 10 blocks (and its unit attention TEST UNIT READY): it counts them.
      const readCmds = rows.map((l) => Number(l.trim().split(/\s+/)[6]));
      assert.ok(
        readCmds.some((n) => n >= 10),
        stat,
      );
    }));

  test('spc2 RESERVE by one process holds the other off until RELEASE', () =>
    withPair('reserve', async (a, b) => {
      // b first runs under its lease; a's RESERVE takes it back
      assert.equal((await b.read10(LUN, 0, 1, BLOCK)).status, GOOD);
      assert.equal((await reserve(a)).status, GOOD);
      assert.equal((await b.read10(LUN, 0, 1, BLOCK)).status, RESERVATION_CONFLICT);
      assert.equal((await b.write10(LUN, 0, Buffer.alloc(BLOCK), BLOCK)).status, RESERVATION_CONFLICT);
      assert.equal((await release(a)).status, GOOD);
      assert.equal((await b.read10(LUN, 0, 1, BLOCK)).status, GOOD);
      // and the other way round
      assert.equal((await reserve(b)).status, GOOD);
      assert.equal((await a.write10(LUN, 0, Buffer.alloc(BLOCK), BLOCK)).status, RESERVATION_CONFLICT);
      assert.equal((await release(b)).status, GOOD);
    }));

  test('spc4 5.13 PREEMPT by one process: the other gets REGISTRATIONS PREEMPTED and then conflicts', () =>
    withPair('pr', async (a, b) => {
      assert.equal((await prOut(a, 0, 0n, 0xan)).status, GOOD); // REGISTER
      assert.equal((await prOut(b, 0, 0n, 0xbn)).status, GOOD);
      assert.equal((await prOut(b, 1, 0xbn, 0n, 1)).status, GOOD); // RESERVE, WRITE EXCLUSIVE
      assert.equal((await a.write10(LUN, 0, Buffer.alloc(BLOCK), BLOCK)).status, RESERVATION_CONFLICT);
      assert.equal((await prOut(a, 4, 0xan, 0xbn, 1)).status, GOOD); // PREEMPT b
      const r = await b.testUnitReady(LUN);
      assert.equal(r.sense?.key, 0x06);
      assert.equal(r.sense?.asc, 0x2a);
      assert.equal(r.sense?.ascq, 0x05, 'REGISTRATIONS PREEMPTED');
      assert.equal((await b.write10(LUN, 0, Buffer.alloc(BLOCK), BLOCK)).status, RESERVATION_CONFLICT);
      assert.equal((await prOut(a, 3, 0xan, 0n)).status, GOOD); // CLEAR
    }));

  test('spc4 5.14 a LUN added by tgtadm: both sessions are told, and both use it', () =>
    withPair('addlu', async (a, b) => {
      await d.addLu(1, { lun: 2, path: await d.sparseFile('second.img', 4 << 20) });
      for (const s of [a, b]) {
        const r = await s.testUnitReady(LUN);
        assert.equal(r.sense?.asc, 0x3f, 'REPORTED LUNS DATA HAS CHANGED');
        await clearUnitAttention(s, 2);
      }
      const data = pattern(BLOCK, 9);
      assert.equal((await b.write10(2, 1, data, BLOCK)).status, GOOD);
      assert.deepEqual((await a.read10(2, 1, 1, BLOCK)).data, data);
      await d.adm('--lld', 'iscsi', '--op', 'delete', '--mode', 'logicalunit', '--tid', '1', '--lun', '2');
    }));

  test('an LU deleted while the worker session writes to it, then added again on another file: both sessions use the new one', () =>
    withPair('lu-race', async (a, b) => {
      const worker = childrenOf(d.proc.pid!)[0]!;
      const guest = holders(d, b, [worker]).length === 1 ? b : a;
      const local = guest === b ? a : b;
      await d.addLu(1, { lun: 3, path: await d.sparseFile('race-1.img', 4 << 20) });
      await clearUnitAttention(guest, 3);
      let writing = true;
      // Several writes in flight at a time: some are on their way to or from tgtd at the delete.
      const writes = Promise.all(
        Array.from({ length: 8 }, async (_, k) => {
          for (let i = k; writing; i += 8)
            await guest.write10(3, i % 64, pattern(BLOCK, i), BLOCK).catch(() => undefined);
        }),
      );
      await new Promise((r) => setTimeout(r, 200));
      await d.adm('--lld', 'iscsi', '--op', 'delete', '--mode', 'logicalunit', '--tid', '1', '--lun', '3');
      writing = false;
      await writes;
      await d.addLu(1, { lun: 3, path: await d.sparseFile('race-2.img', 4 << 20) });
      const data = pattern(BLOCK, 77);
      await clearUnitAttention(local, 3);
      assert.equal((await local.write10(3, 5, data, BLOCK)).status, GOOD);
      await clearUnitAttention(guest, 3);
      for (let i = 0; i < 3; i++) assert.deepEqual((await guest.read10(3, 5, 1, BLOCK)).data, data);
      assert.doesNotMatch(d.output, /refused a change/, 'the worker took every change');
      await d.adm('--lld', 'iscsi', '--op', 'delete', '--mode', 'logicalunit', '--tid', '1', '--lun', '3');
    }));

  test('tgtadm ends a session served by the worker (conn delete)', () =>
    withPair('delete', async (a, b) => {
      const show = await d.adm('--lld', 'iscsi', '--op', 'show', '--mode', 'conn', '--tid', '1');
      const sid = new RegExp(
        `Session: (\\d+)\\n    Connection: (\\d+)\\n        Initiator: ${IQN}:delete-b`,
      ).exec(show);
      assert.ok(sid, show);
      await d.adm(
        '--lld',
        'iscsi',
        '--op',
        'delete',
        '--mode',
        'conn',
        '--tid',
        '1',
        '--sid',
        sid[1]!,
        '--cid',
        sid[2]!,
      );
      await assert.rejects(b.read10(LUN, 0, 1, BLOCK));
      assert.equal((await a.read10(LUN, 0, 1, BLOCK)).status, GOOD);
    }));

  test('a worker that dies takes its sessions (and their reservation) only; a new worker serves again', async () => {
    const [a, b] = await pair('death');
    const worker = childrenOf(d.proc.pid!)[0]!;
    const inWorker = holders(d, b, [worker]).length === 1 ? b : a;
    const inTgtd = inWorker === b ? a : b;
    try {
      assert.equal((await reserve(inWorker)).status, GOOD);
      process.kill(worker, 'SIGKILL');
      await assert.rejects(inWorker.read10(LUN, 0, 1, BLOCK));
      // Its nexus is gone with it: the reservation too (I_T nexus loss, SPC-2 5.5.1).
      for (let i = 0; i < 50; i++) {
        if ((await inTgtd.read10(LUN, 0, 1, BLOCK)).status === GOOD) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal((await inTgtd.read10(LUN, 0, 1, BLOCK)).status, GOOD);
      for (let i = 0; i < 100 && childrenOf(d.proc.pid!).length === 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      assert.equal(childrenOf(d.proc.pid!).length, 1, 'a new worker');
      // Once it holds its copy of the target, new sessions go there again.
      let spread = false;
      for (let i = 0; i < 50 && !spread; i++) {
        const c = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:after-death-${i}` });
        spread = holders(d, c, childrenOf(d.proc.pid!)).length === 1;
        await closeSession(c);
        if (!spread) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(spread, 'a session in the new worker');
    } finally {
      await closeSession(a);
      await closeSession(b);
    }
  });
});

test('tgtd --state with a shared target: restored at start, shared again, its data intact', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'tgt-ts-sharing-state-'));
  const statePath = join(stateDir, 'state.json');
  const args = ['--workers', '1', '--state', statePath];
  const d = await TgtDaemon.start({ args });
  let again: TgtDaemon | null = null;
  try {
    const file = await d.sparseFile('state.img', 8 << 20);
    await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: LUN, path: file }] });
    const data = pattern(8 * BLOCK, 5);
    const first = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:state-a` });
    const second = await loginReady(d, TARGET, LUN, { initiatorName: `${IQN}:state-b` });
    const inWorker = holders(d, second, childrenOf(d.proc.pid!)).length === 1 ? second : first;
    assert.equal(
      (await inWorker.write10(LUN, 16, data, BLOCK)).status,
      GOOD,
      'written by the worker session',
    );
    await closeSession(first);
    await closeSession(second);
    assert.equal(await d.stop(), 0);
    again = await TgtDaemon.start({ args });
    const a = await loginReady(again, TARGET, LUN, { initiatorName: `${IQN}:state-c` });
    const b = await loginReady(again, TARGET, LUN, { initiatorName: `${IQN}:state-d` });
    const workers = childrenOf(again.proc.pid!);
    assert.equal(workers.length, 1, 'the worker started for the restored shared target');
    assert.equal(
      holders(again, a, workers).length + holders(again, b, workers).length,
      1,
      'one session in it',
    );
    for (const s of [a, b]) assert.deepEqual((await s.read10(LUN, 16, 8, BLOCK)).data, data);
    await closeSession(a);
    await closeSession(b);
  } finally {
    await d.stop().catch(() => undefined);
    await again?.stop();
    await d.cleanup();
    await again?.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  }
});

test('tgtd --spread targets keeps every session of a target in tgtd', async () => {
  const d = await TgtDaemon.start({ args: ['--workers', '1', '--spread', 'targets'] });
  try {
    await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: LUN, bstype: 'memory', path: '4M' }] });
    const a = await login(d, TARGET, { initiatorName: `${IQN}:only-a` });
    const b = await login(d, TARGET, { initiatorName: `${IQN}:only-b` });
    assert.deepEqual(childrenOf(d.proc.pid!), [], 'no worker for one target');
    await closeSession(a);
    await closeSession(b);
  } finally {
    await d.stop();
    await d.cleanup();
  }
});

test('tgtd: --spread takes targets or sessions', async () => {
  const r = await run(process.execPath, [TGTD_BIN, '-f', '--spread', 'luns'], {});
  assert.equal(r.code, 22);
  assert.match(r.stderr, /--spread argument value 'luns' invalid/);
});

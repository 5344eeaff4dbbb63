/**
 * Live reconfiguration against a real tgtd (issue 3 item 3): unit attentions for LUN and
 * capacity changes (SPC-4 5.14, SBC-4 4.6), target delete --force with an Async Message logout
 * request (RFC 7143 11.9.1), and random configuration changes while a verified load runs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { truncate } from 'node:fs/promises';
import type { Session } from '../../src/initiator/index.js';
import { AsyncEvent } from '../../src/iscsi/spec.js';
import { delay, TgtDaemon } from '../helpers/daemon.js';
import { BLOCK, closeSession, GOOD, IQN, loginReady, pattern } from './util.js';

const LUNS = `${IQN}:live-luns`;
const RESIZE = `${IQN}:live-resize`;
const DOOMED = `${IQN}:live-doomed`;
const LOADED = `${IQN}:live-loaded`;
const GRACE_SECONDS = 1;
const CHECK_CONDITION = 0x02;

/** The next command on `lun` reports this unit attention (then it is gone). */
async function expectUnitAttention(s: Session, lun: number, asc: number, ascq: number): Promise<void> {
  const r = await s.testUnitReady(lun);
  assert.equal(r.status, CHECK_CONDITION, `expected a unit attention on LUN ${lun}`);
  assert.equal(r.sense?.key, 0x06);
  assert.deepEqual([r.sense?.asc, r.sense?.ascq], [asc, ascq]);
  assert.equal((await s.testUnitReady(lun)).status, GOOD);
}

async function waitFor(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(20);
  }
}

describe('live reconfiguration', () => {
  let d: TgtDaemon;

  before(async () => {
    d = await TgtDaemon.start({ args: ['--iscsi', `logout_grace=${GRACE_SECONDS}`] });
  });

  after(async () => {
    await d.stopChecked();
    await d.cleanup();
  });

  test('spc4 5.14: LUN add/remove raises REPORTED LUNS DATA HAS CHANGED (3F/0E) on the other LUs', async () => {
    await d.addTarget({ tid: 1, name: LUNS, luns: [{ lun: 1, bstype: 'memory', path: '4M' }] });
    const s = await loginReady(d, LUNS, 1);
    try {
      await d.adm(
        '--mode',
        'logicalunit',
        '--op',
        'new',
        '--tid',
        '1',
        '--lun',
        '2',
        '-E',
        'memory',
        '-b',
        '4M',
      );
      await expectUnitAttention(s, 1, 0x3f, 0x0e);
      const luns = await s.reportLuns();
      assert.equal(luns.data.readUInt32BE(0), 3 * 8, 'REPORT LUNS lists LUN 0, 1 and 2');
      await d.adm('--mode', 'logicalunit', '--op', 'delete', '--tid', '1', '--lun', '2');
      await expectUnitAttention(s, 1, 0x3f, 0x0e);
    } finally {
      await closeSession(s);
    }
  });

  test('sbc4 4.6: grown backing file + --params resize=1 -> CAPACITY DATA HAS CHANGED (2A/09), new READ CAPACITY', async () => {
    const file = await d.sparseFile('resize.img', 4 << 20);
    await d.addTarget({ tid: 2, name: RESIZE, luns: [{ lun: 1, path: file }] });
    const a = await loginReady(d, RESIZE, 1);
    const b = await loginReady(d, RESIZE, 1);
    try {
      const data = pattern(BLOCK * 8, 7);
      assert.equal((await a.write16(1, 100, data, BLOCK)).status, GOOD);
      await truncate(file, 8 << 20);
      await d.adm(
        '--mode',
        'logicalunit',
        '--op',
        'update',
        '--tid',
        '2',
        '--lun',
        '1',
        '--params',
        'resize=1',
      );
      for (const s of [a, b]) {
        await expectUnitAttention(s, 1, 0x2a, 0x09);
        const cap = await s.readCapacity16(1);
        assert.equal(cap.data.readBigUInt64BE(0), BigInt((8 << 20) / BLOCK - 1), 'last LBA after resize');
      }
      // The data written before the resize is intact, and the new blocks are usable.
      assert.deepEqual((await b.read16(1, 100, 8, BLOCK)).data, data);
      const tail = pattern(BLOCK, 9);
      assert.equal((await a.write16(1, (8 << 20) / BLOCK - 1, tail, BLOCK)).status, GOOD);
      assert.deepEqual((await b.read16(1, (8 << 20) / BLOCK - 1, 1, BLOCK)).data, tail);
      // Same size again: no unit attention.
      await d.adm(
        '--mode',
        'logicalunit',
        '--op',
        'update',
        '--tid',
        '2',
        '--lun',
        '1',
        '--params',
        'resize=1',
      );
      assert.equal((await a.testUnitReady(1)).status, GOOD);
      const shown = await d.adm('--mode', 'target', '--op', 'show');
      assert.match(shown, /Size: 8 MB, Block size: 512/);
    } finally {
      await closeSession(a);
      await closeSession(b);
    }
  });

  test('tgt-ts: resize=1 is refused for a memory LU (its medium cannot be reopened)', async () => {
    const r = await d.tgtadm([
      '--mode',
      'logicalunit',
      '--op',
      'update',
      '--tid',
      '1',
      '--lun',
      '1',
      '--params',
      'resize=1',
    ]);
    assert.equal(r.code, 22);
    assert.equal(r.stderr, 'tgtadm: invalid request\n');
  });

  test('rfc7143 11.9.1: target delete needs --force; --force sends AsyncEvent 1 (Parameter3 = grace) then closes', async () => {
    await d.addTarget({ tid: 3, name: DOOMED, luns: [{ lun: 1, bstype: 'memory', path: '4M' }] });
    const polite = await loginReady(d, DOOMED, 1);
    const stubborn = await loginReady(d, DOOMED, 1);
    try {
      const refused = await d.tgtadm(['--mode', 'target', '--op', 'delete', '--tid', '3']);
      assert.equal(refused.code, 22);
      assert.equal(refused.stderr, 'tgtadm: this target is still active\n');

      await d.adm('--mode', 'target', '--op', 'delete', '--tid', '3', '--force');
      assert.doesNotMatch(await d.adm('--mode', 'target', '--op', 'show'), /live-doomed/);

      for (const s of [polite, stubborn]) {
        await waitFor('the Async Message', () => s.asyncMessages.length > 0, 5000);
        const bhs = s.asyncMessages[0]!.bhs;
        assert.equal(bhs[36], AsyncEvent.LogoutRequest, 'AsyncEvent 1: logout requested');
        assert.equal(bhs.readUInt16BE(42), GRACE_SECONDS, 'Parameter3: seconds to log out within');
      }
      assert.equal(await polite.logout(), 0, 'the requested logout succeeds');
      const started = Date.now();
      await waitFor('the stubborn session to be closed', () => stubborn.state === 'closed', 5000);
      assert.ok(Date.now() - started < GRACE_SECONDS * 1000 + 2000);
    } finally {
      await closeSession(polite);
      await closeSession(stubborn);
    }
  });

  test('issue 3: random live changes on other targets while a verified read/write load runs', async () => {
    const seconds = Number(process.env.TGT_TS_LIVE_SECONDS ?? 20);
    const blocks = (16 << 20) / BLOCK;
    const file = await d.sparseFile('loaded.img', blocks * BLOCK);
    await d.addTarget({ tid: 10, name: LOADED, luns: [{ lun: 1, path: file }] });
    const s = await loginReady(d, LOADED, 1);
    const expected = new Map<number, number>(); // lba -> seed of the data written there
    let stop = false;
    let ios = 0;
    const worker = async (w: number): Promise<void> => {
      // Each worker owns its own stripe of 8-block extents: no two writes race on a block.
      let seed = w * 1_000_000;
      while (!stop) {
        const extent = w + 4 * Math.floor(Math.random() * (blocks / 8 / 4));
        const lba = extent * 8;
        if (Math.random() < 0.6 || !expected.has(lba)) {
          const data = pattern(8 * BLOCK, ++seed);
          const r = await s.write16(1, lba, data, BLOCK);
          assert.equal(r.status, GOOD, `WRITE(16) at ${lba}: status ${r.status}`);
          expected.set(lba, seed);
        } else {
          const r = await s.read16(1, lba, 8, BLOCK);
          assert.equal(r.status, GOOD, `READ(16) at ${lba}: status ${r.status}`);
          assert.ok(r.data.equals(pattern(8 * BLOCK, expected.get(lba)!)), `corrupted extent at LBA ${lba}`);
        }
        ios++;
      }
    };
    const changes = async (): Promise<number> => {
      let n = 0;
      let users = 0;
      const adm = async (...args: string[]): Promise<void> => {
        const r = await d.tgtadm(args);
        // Refusals are fine (a random op may not apply); only a dead daemon is not.
        assert.ok(r.code === 0 || r.code === 22, `tgtadm ${args.join(' ')}: exit ${r.code} ${r.stderr}`);
        n++;
      };
      while (!stop) {
        const tid = String(20 + Math.floor(Math.random() * 5));
        switch (Math.floor(Math.random() * 9)) {
          case 0:
            await adm('--mode', 'target', '--op', 'new', '--tid', tid, '-T', `${IQN}:churn-${tid}`);
            break;
          case 1:
            await adm('--mode', 'target', '--op', 'delete', '--tid', tid, '--force');
            break;
          case 2:
            await adm(
              '--mode',
              'logicalunit',
              '--op',
              'new',
              '--tid',
              tid,
              '--lun',
              '1',
              '-E',
              'memory',
              '-b',
              '1M',
            );
            break;
          case 3:
            await adm('--mode', 'logicalunit', '--op', 'delete', '--tid', tid, '--lun', '1');
            break;
          case 4:
            await adm('--mode', 'target', '--op', 'bind', '--tid', tid, '-I', `10.1.${tid}.0/24`);
            break;
          case 5:
            await adm('--mode', 'target', '--op', 'unbind', '--tid', tid, '-I', `10.1.${tid}.0/24`);
            break;
          case 6: {
            const user = `churn${users++ % 3}`;
            await adm('--mode', 'account', '--op', 'new', '--user', user, '--password', 'churn-password');
            await adm('--mode', 'account', '--op', 'bind', '--tid', tid, '--user', user);
            break;
          }
          case 7:
            await adm(
              '--mode',
              'account',
              '--op',
              'delete',
              '--user',
              `churn${Math.floor(Math.random() * 3)}`,
            );
            break;
          default: {
            const portal = `127.0.0.1:${40000 + Math.floor(Math.random() * 20000)}`;
            await adm('--mode', 'portal', '--op', 'new', '--param', `portal=${portal}`);
            await adm('--mode', 'portal', '--op', 'delete', '--param', `portal=${portal}`);
          }
        }
        // The loaded target is never touched: a change elsewhere must not raise a UA on it.
      }
      return n;
    };
    try {
      const load = Promise.all([0, 1, 2, 3].map(worker));
      const churn = changes();
      await delay(seconds * 1000);
      stop = true;
      await load;
      const changed = await churn;
      assert.ok(ios > 100 && changed > 10, `${ios} I/Os, ${changed} changes`);
      // Final pass: every extent ever written reads back as last written.
      for (const [lba, seed] of expected) {
        const r = await s.read16(1, lba, 8, BLOCK);
        assert.equal(r.status, GOOD);
        assert.ok(r.data.equals(pattern(8 * BLOCK, seed)), `corrupted extent at LBA ${lba}`);
      }
    } finally {
      stop = true;
      await closeSession(s);
    }
  });
});

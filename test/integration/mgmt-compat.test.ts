/**
 * Management compatibility (tgt-behaviour.md §2): Debian's /usr/sbin/tgtadm drives our tgtd
 * over the same control socket, prints the same `show` output as our tgtadm, and both report
 * errors with tgt's messages and exit codes; tgtd's lifecycle (system delete, SIGTERM).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Session } from '../../src/initiator/index.js';
import { DEBIAN_TGTADM, type RunResult, TgtDaemon } from '../helpers/daemon.js';
import { BLOCK, closeSession, GOOD, IQN, loginReady } from './util.js';

const TARGET = `${IQN}:mgmt-debian`;
const SECOND = `${IQN}:mgmt-second`;
const INITIATOR = `${IQN}:mgmt-initiator`;
const IN_USER = 'deb-in-user';
const IN_SECRET = 'deb-in-secret-1';
const OUT_USER = 'deb-out-user';
const OUT_SECRET = 'deb-out-secret-1';
const noDebian = existsSync(DEBIAN_TGTADM) ? false : `${DEBIAN_TGTADM} not installed (Debian package tgt)`;

/** What a user sees from one tgtadm run. */
function seen(r: RunResult): { code: number | null; stdout: string; stderr: string } {
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

describe('management compatibility with Debian tgtadm', { skip: noDebian }, () => {
  let d: TgtDaemon;
  let session: Session | undefined;

  /** Run a command with Debian's tgtadm and fail with its output unless it exits 0. */
  async function debian(...args: string[]): Promise<string> {
    const r = await d.debianTgtadm(args);
    assert.equal(r.code, 0, `Debian tgtadm ${args.join(' ')} -> exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  before(async () => {
    d = await TgtDaemon.start();
  });

  after(async () => {
    try {
      await closeSession(session);
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  test('tgt §2.3: Debian tgtadm creates a target, a LUN, ACL rules and accounts on our tgtd', async () => {
    const backing = await d.sparseFile('debian-lun.img', 32 * 1024 * 1024);
    await debian('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', TARGET);
    await debian(
      '--lld',
      'iscsi',
      '--mode',
      'logicalunit',
      '--op',
      'new',
      '--tid',
      '1',
      '--lun',
      '1',
      '-b',
      backing,
    );
    await debian(
      '--lld',
      'iscsi',
      '--mode',
      'logicalunit',
      '--op',
      'update',
      '--tid',
      '1',
      '--lun',
      '1',
      '--params',
      'vendor_id=ACME,product_id=COMPAT',
    );
    await debian('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '-I', '127.0.0.1');
    await debian('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '-Q', INITIATOR);
    await debian(
      '--lld',
      'iscsi',
      '--mode',
      'account',
      '--op',
      'new',
      '--user',
      IN_USER,
      '--password',
      IN_SECRET,
    );
    await debian(
      '--lld',
      'iscsi',
      '--mode',
      'account',
      '--op',
      'new',
      '--user',
      OUT_USER,
      '--password',
      OUT_SECRET,
    );
    await debian('--lld', 'iscsi', '--mode', 'account', '--op', 'bind', '--tid', '1', '--user', IN_USER);
    await debian(
      '--lld',
      'iscsi',
      '--mode',
      'account',
      '--op',
      'bind',
      '--tid',
      '1',
      '--user',
      OUT_USER,
      '--outgoing',
    );
    await debian(
      '--lld',
      'iscsi',
      '--mode',
      'target',
      '--op',
      'update',
      '--tid',
      '1',
      '--name',
      'MaxRecvDataSegmentLength',
      '--value',
      '65536',
    );
    await debian('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '2', '-T', SECOND);

    const show = await debian('--lld', 'iscsi', '--mode', 'target', '--op', 'show');
    assert.match(show, new RegExp(`^Target 1: ${TARGET}$`, 'm'));
    assert.match(show, new RegExp(`^Target 2: ${SECOND}$`, 'm'));
    assert.match(show, new RegExp(`^ {12}Backing store path: ${backing}$`, 'm'));
    assert.match(show, new RegExp(`^ {8}${IN_USER}\n {8}${OUT_USER} \\(outgoing\\)$`, 'm'));
    assert.match(show, new RegExp(`^ {8}127\\.0\\.0\\.1\n {8}${INITIATOR}$`, 'm'));
    const params = await debian('--lld', 'iscsi', '--mode', 'target', '--op', 'show', '--tid', '1');
    assert.match(params, /^MaxRecvDataSegmentLength=65536$/m);

    // What Debian's tgtadm configured works for an initiator: mutual CHAP, the ACL, the LUN.
    session = await loginReady(d, TARGET, 1, {
      initiatorName: INITIATOR,
      auth: {
        method: 'CHAP',
        user: IN_USER,
        secret: IN_SECRET,
        targetUser: OUT_USER,
        targetSecret: OUT_SECRET,
      },
    });
    const inquiry = await session.inquiry(1);
    assert.equal(inquiry.status, GOOD);
    assert.equal(inquiry.data.toString('latin1', 8, 16).trimEnd(), 'ACME');
    assert.equal(inquiry.data.toString('latin1', 16, 32).trimEnd(), 'COMPAT');
    assert.equal((await session.read10(1, 0, 1, BLOCK)).status, GOOD);
  });

  test('tgt §2.6: every show/stat output of Debian tgtadm equals ours, byte for byte', async () => {
    assert.ok(session, 'needs the session of the previous test');
    const commands: string[][] = [
      ['--lld', 'iscsi', '--mode', 'target', '--op', 'show'],
      ['--lld', 'iscsi', '--mode', 'target', '--op', 'show', '--tid', '1'],
      ['--lld', 'iscsi', '--mode', 'target', '--op', 'show', '--tid', '2'],
      ['--lld', 'iscsi', '--mode', 'account', '--op', 'show'],
      ['--lld', 'iscsi', '--mode', 'system', '--op', 'show'],
      ['--lld', 'iscsi', '--mode', 'portal', '--op', 'show'],
      ['--lld', 'iscsi', '--mode', 'connection', '--op', 'show', '--tid', '1'],
      ['--lld', 'iscsi', '--mode', 'lld', '--op', 'show'],
      ['--mode', 'target', '--op', 'show'],
      ['--mode', 'target', '--op', 'stat', '--tid', '1'],
      ['--mode', 'system', '--op', 'stat'],
      ['--mode', 'session', '--op', 'stat', '--tid', '1', '--sid', String(session.tsih)],
    ];
    for (const args of commands) {
      const theirs = seen(await d.debianTgtadm(args));
      const ours = seen(await d.tgtadm(args));
      assert.deepEqual(ours, theirs, `tgtadm ${args.join(' ')}`);
      assert.equal(theirs.code, 0, `tgtadm ${args.join(' ')}: ${theirs.stderr}`);
    }
    const connections = await debian('--lld', 'iscsi', '--mode', 'connection', '--op', 'show', '--tid', '1');
    assert.match(
      connections,
      new RegExp(
        `Session: ${session.tsih}\n {4}Connection: 0\n {8}Initiator: ${INITIATOR}\n {8}IP Address: 127\\.0\\.0\\.1`,
      ),
    );
  });

  test('tgt §2.1: error messages and exit codes of both tgtadms agree with tgt', async () => {
    const cases: { args: string[]; stderr?: string; code?: number }[] = [
      {
        args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', `${IQN}:dup`],
        stderr: 'tgtadm: this target already exists\n',
        code: 22,
      },
      { args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '3', '-T', TARGET] },
      {
        args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--tid', '99'],
        stderr: "tgtadm: can't find the target\n",
        code: 22,
      },
      {
        args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--tid', '1'],
        stderr: 'tgtadm: this target is still active\n',
        code: 22,
      },
      {
        args: [
          '--lld',
          'iscsi',
          '--mode',
          'logicalunit',
          '--op',
          'new',
          '--tid',
          '1',
          '--lun',
          '1',
          '-b',
          '/dev/null',
        ],
        stderr: 'tgtadm: this logical unit number already exists\n',
        code: 22,
      },
      {
        args: ['--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'delete', '--tid', '1', '--lun', '7'],
        stderr: "tgtadm: can't find the logical unit\n",
        code: 22,
      },
      { args: ['--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'delete', '--tid', '1', '--lun', '0'] },
      {
        args: ['--lld', 'iscsi', '--mode', 'account', '--op', 'new', '--user', IN_USER, '--password', 'x'],
        stderr: 'tgtadm: this account already exists\n',
        code: 22,
      },
      {
        args: ['--lld', 'iscsi', '--mode', 'account', '--op', 'bind', '--tid', '1', '--user', 'no-such-user'],
        stderr: "tgtadm: can't find the account\n",
        code: 22,
      },
      {
        args: [
          '--lld',
          'iscsi',
          '--mode',
          'account',
          '--op',
          'bind',
          '--tid',
          '1',
          '--user',
          IN_USER,
          '--outgoing',
        ],
        stderr: 'tgtadm: this target already has an outgoing account\n',
        code: 22,
      },
      {
        args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '-I', '127.0.0.1'],
        stderr: 'tgtadm: this access control rule already exists\n',
        code: 22,
      },
      {
        args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'unbind', '--tid', '1', '-I', '127.0.0.9'],
        stderr: 'tgtadm: this access control rule does not exist\n',
        code: 22,
      },
      {
        args: ['--lld', 'iscsi', '--mode', 'system', '--op', 'delete'],
        stderr: 'tgtadm: invalid request\n',
        code: 22,
      },
      {
        args: [
          '--lld',
          'iscsi',
          '--mode',
          'target',
          '--op',
          'new',
          '--tid',
          '4',
          '-T',
          'iqn.2026-01.bad_name:x',
        ],
      },
      {
        args: [
          '--lld',
          'iscsi',
          '--mode',
          'target',
          '--op',
          'update',
          '--tid',
          '1',
          '--name',
          'MaxRecvDataSegmentLength',
          '--value',
          '100',
        ],
      },
      {
        args: [
          '--lld',
          'iscsi',
          '--mode',
          'target',
          '--op',
          'update',
          '--tid',
          '1',
          '--name',
          'NoSuchKey',
          '--value',
          '1',
        ],
      },
      {
        args: [
          '--lld',
          'iscsi',
          '--mode',
          'logicalunit',
          '--op',
          'update',
          '--tid',
          '1',
          '--lun',
          '1',
          '--params',
          'bogus=1',
        ],
      },
      { args: ['--lld', 'iscsi', '--mode', 'session', '--op', 'show'] },
      // Client-side validation.
      { args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '-T', `${IQN}:no-tid`] },
      { args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '0', '-T', `${IQN}:tid0`] },
      { args: ['--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1'] },
      { args: ['--lld', 'iscsi', '--mode', 'account', '--op', 'new', '--user', 'only-user'] },
      { args: ['--lld', 'iscsi', '--mode', 'bogus', '--op', 'show'] },
      { args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'bogus'] },
      { args: ['--lld', 'nosuchlld', '--mode', 'target', '--op', 'show'] },
    ];
    for (const c of cases) {
      const what = `tgtadm ${c.args.join(' ')}`;
      const theirs = seen(await d.debianTgtadm(c.args));
      const ours = seen(await d.tgtadm(c.args));
      assert.deepEqual(ours, theirs, `${what}: our tgtadm differs from Debian's`);
      if (c.stderr !== undefined) assert.equal(theirs.stderr, c.stderr, what);
      if (c.code !== undefined) assert.equal(theirs.code, c.code, what);
      assert.ok(d.alive, `${what}: tgtd died`);
    }
    // Nothing above changed the configuration.
    const show = await d.adm('--lld', 'iscsi', '--mode', 'target', '--op', 'show');
    assert.doesNotMatch(show, /^Target [34]:/m);
    assert.match(show, /^ {8}LUN: 1$/m);
  });

  test('tgt §2.3: system delete fails while targets exist, then stops tgtd (exit 0) once they are gone', async () => {
    const refused = await d.debianTgtadm(['--mode', 'system', '--op', 'delete']);
    assert.equal(refused.code, 22);
    assert.ok(d.alive);
    await closeSession(session);
    session = undefined;
    await d.adm('--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', '1');
    await d.adm('--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--tid', '2');
    const stopped = await d.debianTgtadm(['--mode', 'system', '--op', 'delete']);
    assert.equal(stopped.code, 0, `system delete: ${stopped.stderr}`);
    await d.waitExit(10_000);
    assert.equal(d.exitCode, 0, `tgtd exit code after system delete:\n${d.output}`);
  });
});

describe('tgtd lifecycle', () => {
  let d: TgtDaemon;

  before(async () => {
    d = await TgtDaemon.start();
  });

  after(async () => {
    await d.cleanup();
  });

  test('tgtd: SIGTERM with a logged-in session stops the daemon with exit code 0', async () => {
    await d.addTarget({ tid: 1, name: `${IQN}:lifecycle`, luns: [{ lun: 1, bstype: 'memory', path: '8M' }] });
    const s = await loginReady(d, `${IQN}:lifecycle`, 1);
    assert.equal((await s.read10(1, 0, 1, BLOCK)).status, GOOD);
    await d.stopChecked();
    await s.connection.waitClosed(5000);
    assert.equal(s.connection.closed, true, 'the session connection is closed on shutdown');
  });

  test('tgt §2.1: tgtadm against a stopped tgtd fails with exit 107', async () => {
    assert.equal(d.alive, false);
    const ours = await d.tgtadm(['--mode', 'target', '--op', 'show']);
    assert.equal(ours.code, 107, ours.stderr);
    assert.match(ours.stderr, /^tgtadm: failed to send request hdr to tgt daemon, /);
    if (!noDebian)
      assert.deepEqual(seen(ours), seen(await d.debianTgtadm(['--mode', 'target', '--op', 'show'])));
  });
});

/**
 * Login redirection and offline states against a real tgtd (RFC 7143 11.13.5 class 1, 13.8;
 * tgt-behaviour.md §4.8, §2.5, §3.5).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { LoginFailedError } from '../../src/initiator/index.js';
import { LoginStatus } from '../../src/iscsi/spec.js';
import { TgtDaemon } from '../helpers/daemon.js';
import { closeSession, expectLoginStatus, IQN, login, loginReady } from './util.js';

const STATIC = `${IQN}:redirect-static`;
const CALLBACK = `${IQN}:redirect-callback`;
const BROKEN = `${IQN}:redirect-broken`;
const OFFLINE = `${IQN}:offline`;

/** The TargetAddress of a redirected login. */
async function redirectedTo(d: TgtDaemon, target: string): Promise<{ status: number; address?: string }> {
  try {
    const s = await login(d, target);
    await closeSession(s);
    return { status: 0 };
  } catch (e) {
    assert.ok(e instanceof LoginFailedError, String(e));
    return e.targetAddress === undefined
      ? { status: e.status }
      : { status: e.status, address: e.targetAddress };
  }
}

/** Resolves true when the daemon closes a fresh TCP connection without a word. */
function closedAtOnce(d: TgtDaemon): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(d.port, d.host);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, 2000);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    sock.on('error', () => {});
  });
}

describe('login redirect and offline states', () => {
  let d: TgtDaemon;

  before(async () => {
    d = await TgtDaemon.start();
    let tid = 1;
    for (const name of [STATIC, CALLBACK, BROKEN, OFFLINE])
      await d.addTarget({ tid: tid++, name, luns: [{ lun: 1, bstype: 'memory', path: '8M' }] });
  });

  after(async () => {
    await d.stopChecked();
    await d.cleanup();
  });

  test('rfc7143 11.13.5: static RedirectReason Temporary -> 0x0101 with TargetAddress=addr:port', async () => {
    await d.updateTarget(1, 'RedirectAddress', '192.0.2.7');
    await d.updateTarget(1, 'RedirectPort', '3261');
    await d.updateTarget(1, 'RedirectReason', 'Temporary');
    assert.deepEqual(await redirectedTo(d, STATIC), {
      status: LoginStatus.TargetMovedTemporarily,
      address: '192.0.2.7:3261',
    });
    await d.updateTarget(1, 'RedirectReason', 'Permanent');
    assert.deepEqual(await redirectedTo(d, STATIC), {
      status: LoginStatus.TargetMovedPermanently,
      address: '192.0.2.7:3261',
    });
  });

  test('tgt §4.8: no redirect when the initiator is already at the redirect address', async () => {
    await d.updateTarget(1, 'RedirectAddress', d.host);
    assert.deepEqual(await redirectedTo(d, STATIC), { status: 0 });
  });

  test('tgt §4.8: RedirectCallback gets <targetname> <initiator-ip> and its answer is sent', async () => {
    const script = join(d.dir, 'redirect.sh');
    await writeFile(
      script,
      `#!/bin/sh\necho "$1 $2" >> ${d.dir}/callback.log\necho '[2001:db8::5]:3262:Permanent'\n`,
    );
    await chmod(script, 0o755);
    await d.updateTarget(2, 'RedirectCallback', script);
    assert.deepEqual(await redirectedTo(d, CALLBACK), {
      status: LoginStatus.TargetMovedPermanently,
      address: '[2001:db8::5]:3262',
    });
    const { readFile } = await import('node:fs/promises');
    assert.equal(await readFile(join(d.dir, 'callback.log'), 'utf8'), `${CALLBACK} ${d.host}\n`);
  });

  test('tgt §4.8: a failing callback fails the login with a target error (0x0300)', async () => {
    const script = join(d.dir, 'broken.sh');
    await writeFile(script, '#!/bin/sh\necho nonsense\n');
    await chmod(script, 0o755);
    await d.updateTarget(3, 'RedirectCallback', script);
    await expectLoginStatus(login(d, BROKEN), LoginStatus.TargetError, 'broken callback');
  });

  test('tgt §2.5: an offline target refuses logins with a target error; sessions get BUSY; ready restores', async () => {
    const s = await loginReady(d, OFFLINE, 1);
    try {
      await d.updateTarget(4, 'state', 'offline');
      await expectLoginStatus(login(d, OFFLINE), LoginStatus.ServiceUnavailable, 'offline target');
      const r = await s.testUnitReady(1);
      assert.equal(r.status, 0x08, 'BUSY on an offline target');
      await d.updateTarget(4, 'state', 'ready');
      assert.equal((await s.testUnitReady(1)).status, 0x00);
      await closeSession(await login(d, OFFLINE));
    } finally {
      await closeSession(s);
    }
  });

  test('tgt §3.5: while the system is offline new connections are accepted and closed', async () => {
    const s = await loginReady(d, OFFLINE, 1);
    try {
      await d.adm('--mode', 'system', '--op', 'update', '--name', 'State', '--value', 'offline');
      assert.equal(await closedAtOnce(d), true, 'connection closed while offline');
      assert.match(await d.adm('--mode', 'system', '--op', 'show'), /State: offline/);
      assert.equal((await s.testUnitReady(1)).status, 0x00, 'existing sessions keep working');
      await d.adm('--mode', 'system', '--op', 'update', '--name', 'State', '--value', 'ready');
      assert.equal(await closedAtOnce(d), false, 'connections accepted again');
    } finally {
      await closeSession(s);
    }
  });
});

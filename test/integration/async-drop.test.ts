/**
 * `tgtadm --op delete --mode connection` drops a connection the standard way (RFC 7143 11.9.1):
 * an Asynchronous Message announcing the drop (AsyncEvent 2 for one connection of a session,
 * 3 when it is the session's last), with the CID and the session's DefaultTime2Wait and
 * DefaultTime2Retain, before the connection closes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncMessageView } from '../../src/iscsi/pdu.js';
import { AsyncEvent } from '../../src/iscsi/spec.js';
import type { Session } from '../../src/initiator/index.js';
import { TgtDaemon, delay } from '../helpers/daemon.js';
import { closeSession, GOOD, IQN, login, loginReady } from './util.js';

const TARGET = `${IQN}:async-drop`;
const LUN = 1;

/** Wait until `s` has received an Asynchronous Message and its connection has closed. */
async function announcedAndClosed(s: Session): Promise<AsyncMessageView> {
  for (let i = 0; i < 100 && (s.asyncMessages.length === 0 || s.state !== 'closed'); i++) await delay(20);
  assert.equal(s.asyncMessages.length, 1, 'one Asynchronous Message before the close');
  assert.equal(s.state, 'closed', 'then the connection is closed');
  return new AsyncMessageView(s.asyncMessages[0]!.bhs);
}

describe('connection delete announces the drop', () => {
  let d: TgtDaemon;

  before(async () => {
    d = await TgtDaemon.start();
    await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: LUN, bstype: 'memory', path: '16M' }] });
    await d.updateTarget(1, 'MaxConnections', '2');
  });

  after(async () => {
    try {
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  const deleteConnection = (sid: number, cid: number) =>
    d.adm(
      '--lld',
      'iscsi',
      '--mode',
      'connection',
      '--op',
      'delete',
      '--tid',
      '1',
      '--sid',
      String(sid),
      '--cid',
      String(cid),
    );

  test('rfc7143 11.9.1: the last connection of a session: AsyncEvent 3 (session drop), CID, Time2Wait, Time2Retain', async () => {
    const s = await loginReady(d, TARGET, LUN);
    try {
      await deleteConnection(s.tsih, 0);
      const m = await announcedAndClosed(s);
      assert.equal(m.asyncEvent, AsyncEvent.SessionDrop);
      assert.equal(m.parameter1, 0, 'CID');
      assert.equal(m.parameter2, s.params.defaultTime2Wait, 'DefaultTime2Wait');
      assert.equal(m.parameter3, s.params.defaultTime2Retain, 'DefaultTime2Retain');
    } finally {
      await closeSession(s);
    }
  });

  test('rfc7143 11.9.1: one connection of two: AsyncEvent 2 (connection drop) on it; the other goes on', async () => {
    const initiatorName = `${IQN}:async-drop-mcs`;
    const first = await loginReady(d, TARGET, LUN, { initiatorName, proposals: { maxConnections: 2 } });
    let second: Session | undefined;
    try {
      assert.equal(first.params.maxConnections, 2);
      second = await login(d, TARGET, { initiatorName, isid: first.isid, tsih: first.tsih, cid: 1 });
      await deleteConnection(first.tsih, 1);
      const m = await announcedAndClosed(second);
      assert.equal(m.asyncEvent, AsyncEvent.ConnectionDrop);
      assert.equal(m.parameter1, 1, 'CID of the dropped connection');
      assert.equal(first.asyncMessages.length, 0, 'nothing on the other connection');
      assert.equal((await first.testUnitReady(LUN)).status, GOOD, 'the session goes on');
    } finally {
      await closeSession(second);
      await closeSession(first);
    }
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryStoreType, nullStoreType } from '../../../src/backing/index.js';
import { type DispatchResult, dispatch } from '../../../src/mgmt/dispatch.js';
import { planTgtadm } from '../../../src/mgmt/tgtadm-cli.js';
import { MgmtMode, MgmtOp, defaultRequest, parsePayload } from '../../../src/mgmt/wire.js';
import { AdminError } from '../../../src/scsi/admin-error.js';
import { TargetSystem } from '../../../src/scsi/system.js';
import { StubDriver } from './harness.js';

function setup() {
  const system = new TargetSystem({ storeTypes: [memoryStoreType, nullStoreType] });
  const driver = new StubDriver();
  system.registerDriver(driver);
  let deleted = 0;
  const ctx = { system, onSystemDelete: () => deleted++ };
  /** Run a tgtadm command line through dispatch (as the server would). */
  const adm = async (...args: string[]): Promise<DispatchResult> => {
    const plan = planTgtadm(args);
    if (plan.kind !== 'request') throw new Error(`bad command line: ${plan.stderr}`);
    return dispatch(ctx, plan.req, parsePayload(plan.payload));
  };
  return { system, driver, adm, deleted: () => deleted };
}

test("tgt §2.3 target new creates the target on the request's driver; duplicates are refused", async () => {
  const { system, driver, adm } = setup();
  assert.equal(
    (await adm('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b')).err,
    0,
  );
  assert.deepEqual(driver.calls, ['created 1']);
  assert.equal(system.targets.get(1)?.lld, 'iscsi');
  assert.equal(
    (await adm('--mode', 'target', '--op', 'new', '--tid', '2', '-T', 'iqn.a:b')).err,
    AdminError.TargetExist,
  );
  assert.equal(
    (await adm('--mode', 'target', '--op', 'new', '--tid', '2', '-T', 'iqn_a')).err,
    AdminError.InvalidRequest,
  );
});

test('tgt §2.1: a named driver that is not ready answers "can\'t find the driver" (except lld mode)', async () => {
  const { driver, adm } = setup();
  driver.state = 'error';
  assert.equal((await adm('--lld', 'iscsi', '--mode', 'target', '--op', 'show')).err, AdminError.NoDriver);
  assert.equal((await adm('--lld', 'iscsi', '--mode', 'lld', '--op', 'show')).err, 0);
  assert.equal((await adm('--lld', 'iser', '--mode', 'target', '--op', 'show')).err, AdminError.NoDriver);
});

test('tgt §2.3 target bind with -I and -Q binds both rules (tgt glued them into one address)', async () => {
  const { system, adm } = setup();
  await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b');
  assert.equal(
    (await adm('--mode', 'target', '--op', 'bind', '--tid', '1', '-I', '192.168.0.1', '-Q', 'iqn.x:y')).err,
    0,
  );
  assert.deepEqual(system.targets.get(1)!.acl, { addresses: ['192.168.0.1'], names: ['iqn.x:y'] });
  assert.equal(
    (await adm('--mode', 'target', '--op', 'bind', '--tid', '1', '-I', '192.168.0.1')).err,
    AdminError.AclExist,
  );
  assert.equal((await adm('--mode', 'target', '--op', 'unbind', '--tid', '1', '-Q', 'iqn.x:y')).err, 0);
  assert.equal(
    (await adm('--mode', 'target', '--op', 'unbind', '--tid', '1', '-Q', 'iqn.x:y')).err,
    AdminError.AclNoExist,
  );
  // legacy --host binding (no payload) is refused rather than silently accepted
  assert.equal(
    (await adm('--mode', 'target', '--op', 'bind', '--tid', '1', '--host', '3')).err,
    AdminError.UnsupportedOperation,
  );
});

test('tgt §2.5 target update: "state" is the core\'s, other names go to the driver', async () => {
  const { system, driver, adm } = setup();
  await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b');
  assert.equal(
    (await adm('--mode', 'target', '--op', 'update', '--tid', '1', '--name', 'state', '--value', 'offline'))
      .err,
    0,
  );
  assert.equal(system.targets.get(1)!.state, 'offline');
  assert.equal(
    (await adm('--mode', 'target', '--op', 'update', '--tid', '1', '--name', 'state', '--value', 'x')).err,
    AdminError.InvalidRequest,
  );
  assert.equal(
    (await adm('--mode', 'target', '--op', 'update', '--tid', '1', '--name', 'nop_interval', '--value', '5'))
      .err,
    0,
  );
  // the value is the rest of the payload, commas included (tgt's update parsing)
  await adm(
    '--mode',
    'target',
    '--op',
    'update',
    '--tid',
    '1',
    '--name',
    'MaxRecvDataSegmentLength',
    '--value',
    '1,2',
  );
  assert.equal(driver.calls.at(-1), 'update 1 MaxRecvDataSegmentLength=1,2');
  assert.equal(
    (await adm('--mode', 'target', '--op', 'update', '--tid', '2', '--name', 'x', '--value', '1')).err,
    AdminError.NoTarget,
  );
  assert.deepEqual(await adm('--mode', 'target', '--op', 'show', '--tid', '1'), {
    err: 0,
    text: 'nop_interval=5\nnop_count=0\n',
  });
});

test('tgt §2.3 portal new/delete hand the portal= value to the driver; failures are "invalid request"', async () => {
  const { driver, adm } = setup();
  assert.equal((await adm('--mode', 'portal', '--op', 'new', '--param', 'portal=127.0.0.1:3270')).err, 0);
  assert.equal(driver.calls.at(-1), 'portal+ 127.0.0.1:3270');
  assert.equal(
    (await adm('--mode', 'portal', '--op', 'new', '--param', 'portal=junk')).err,
    AdminError.InvalidRequest,
  );
  assert.equal(
    (await adm('--mode', 'portal', '--op', 'new', '--param', 'foo=bar')).err,
    AdminError.InvalidRequest,
  );
  assert.deepEqual(await adm('--mode', 'portal', '--op', 'show'), {
    err: 0,
    text: 'Portal: 127.0.0.1:3260,1\nPortal: 127.0.0.1:3270,1\n',
  });
});

test("tgt §2.4 logicalunit new/update/delete reach the core with tgtadm's options", async () => {
  const { system, adm } = setup();
  await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b');
  const created = await adm(
    '--mode',
    'lu',
    '--op',
    'new',
    '--tid',
    '1',
    '--lun',
    '2',
    '-E',
    'memory',
    '-b',
    '1M',
    '--blocksize',
    '4096',
  );
  assert.equal(created.err, 0);
  const lu = system.targets.get(1)!.findLu(2n)!;
  assert.equal(lu.blockSize, 4096);
  assert.equal(
    (
      await adm(
        '--mode',
        'lu',
        '--op',
        'update',
        '--tid',
        '1',
        '--lun',
        '2',
        '--params',
        'readonly=1,vendor_id=ACME',
      )
    ).err,
    0,
  );
  assert.equal(lu.readonly, true);
  assert.equal(lu.identity.vendorId, 'ACME');
  assert.equal(
    (await adm('--mode', 'lu', '--op', 'delete', '--tid', '1', '--lun', '0')).err,
    AdminError.InvalidRequest,
  );
  assert.equal((await adm('--mode', 'lu', '--op', 'delete', '--tid', '1', '--lun', '2')).err, 0);
  assert.equal((await adm('--mode', 'lu', '--op', 'stat', '--tid', '1', '--lun', '2')).err, AdminError.NoLun);
});

test('tgt §2.3 account new keeps commas in the password (it is the last item)', async () => {
  const { system, adm } = setup();
  assert.equal(
    (await adm('--mode', 'account', '--op', 'new', '--user', 'bob', '--password', 'a,b=c')).err,
    0,
  );
  assert.equal(system.accounts.get('bob'), 'a,b=c');
  assert.equal((await adm('--mode', 'account', '--op', 'bind', '--user', 'bob')).err, 0);
  assert.deepEqual(system.discoveryAccounts.incoming, ['bob']);
  assert.equal((await adm('--mode', 'account', '--op', 'bind', '--user', 'nobody')).err, AdminError.NoUser);
  const raw = defaultRequest(MgmtMode.Account, MgmtOp.New);
  assert.equal(
    (await dispatch({ system, onSystemDelete: () => {} }, raw, parsePayload('user=x'))).err,
    AdminError.InvalidRequest,
  );
});

test('tgt §2.3 system update: debug and State in the core, other names to the driver', async () => {
  const { system, driver, adm } = setup();
  assert.equal((await adm('--mode', 'system', '--op', 'update', '--name', 'debug', '--value', 'on')).err, 0);
  assert.equal(system.debug, true);
  assert.equal(
    (await adm('--mode', 'system', '--op', 'update', '--name', 'debug', '--value', 'maybe')).err,
    AdminError.InvalidRequest,
  );
  assert.equal(
    (await adm('--mode', 'system', '--op', 'update', '--name', 'State', '--value', 'offline')).err,
    0,
  );
  assert.equal(system.state, 'offline');
  await adm('--mode', 'system', '--op', 'update', '--name', 'iSNS', '--value', 'On');
  assert.equal(driver.calls.at(-1), 'sys iSNS=On');
});

test('tgt §2.3 system delete only without targets, and the exit hook runs after the answer', async () => {
  const { adm, deleted } = setup();
  await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b');
  assert.equal((await adm('--mode', 'system', '--op', 'delete')).err, AdminError.InvalidRequest);
  await adm('--mode', 'target', '--op', 'delete', '--tid', '1');
  const res = await adm('--mode', 'system', '--op', 'delete');
  assert.equal(res.err, 0);
  assert.equal(deleted(), 0, 'not before the response is written');
  res.afterResponse!();
  assert.equal(deleted(), 1);
});

test('tgt §2.3 session show lists the sessions (tgt answers "invalid request"); session stat by sid', async () => {
  const { system, driver, adm } = setup();
  await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b');
  system.targets.get(1)!.createNexus(7, 'iqn.i:1', '');
  driver.connections.push({ tid: 1, sid: 7, cid: 0, initiator: 'iqn.i:1', address: '127.0.0.1' });
  const show = await adm('--mode', 'session', '--op', 'show', '--tid', '1');
  assert.deepEqual(show, {
    err: 0,
    text: 'Session: 7\n    Connection: 0\n        Initiator: iqn.i:1\n        IP Address: 127.0.0.1\n',
  });
  const stat = await adm('--mode', 'session', '--op', 'stat', '--tid', '1', '--sid', '7');
  assert.equal(stat.err, 0);
  assert.match(stat.text!, /^tgt lun sid .*\n {2}1 {3}0 {3}7 .*\n\nsid cid .*\n {2}7 {3}0 {13}1 {13}2 /);
  assert.equal(
    (await adm('--mode', 'session', '--op', 'stat', '--tid', '1', '--sid', '8')).err,
    AdminError.NoSession,
  );
  assert.equal((await adm('--mode', 'connection', '--op', 'show', '--tid', '2')).err, AdminError.NoTarget);
  assert.equal(
    (await adm('--mode', 'session', '--op', 'update', '--tid', '1')).err,
    AdminError.InvalidRequest,
  );
});

test('tgt §2.3 lld stop is refused while the driver has targets', async () => {
  const { driver, adm } = setup();
  await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b');
  assert.equal((await adm('--lld', 'iscsi', '--mode', 'lld', '--op', 'stop')).err, AdminError.DriverActive);
  await adm('--mode', 'target', '--op', 'delete', '--tid', '1');
  assert.equal((await adm('--lld', 'iscsi', '--mode', 'lld', '--op', 'stop')).err, 0);
  assert.equal(driver.calls.at(-1), 'shutdown');
});

test('tgt §2.6 target show goes through the core objects (LUN 0 controller, accounts, ACLs)', async () => {
  const { adm } = setup();
  await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b');
  await adm('--mode', 'account', '--op', 'new', '--user', 'u', '--password', 'p');
  await adm('--mode', 'account', '--op', 'bind', '--tid', '1', '--user', 'u', '--outgoing');
  await adm('--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL');
  const { text } = await adm('--mode', 'target', '--op', 'show');
  assert.match(text!, /^Target 1: iqn\.a:b\n/);
  assert.match(
    text!,
    /LUN: 0\n {12}Type: controller\n {12}SCSI ID: IET {5}00010000\n {12}SCSI SN: beaf10\n {12}Size: 0 MB, Block size: 1\n/,
  );
  assert.match(
    text!,
    /Backing store type: null\n {12}Backing store path: None\n {12}Backing store flags: \n/,
  );
  assert.match(text!, /Account information:\n {8}u \(outgoing\)\n {4}ACL information:\n {8}ALL\n$/);
});

test('tgt-ts target update acl_match any|all: stored on the target, listed by show --tid only when all', async () => {
  const { system, adm } = setup();
  await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.a:b');
  const upd = (v: string) =>
    adm('--mode', 'target', '--op', 'update', '--tid', '1', '--name', 'acl_match', '--value', v);
  const show = async () => (await adm('--mode', 'target', '--op', 'show', '--tid', '1')).text ?? '';
  const tgtLayout = await show();
  assert.doesNotMatch(tgtLayout, /acl_match/, "tgt's layout while the default is in force");
  assert.equal((await upd('all')).err, 0);
  assert.equal(system.targets.get(1)!.aclMatch, 'all');
  assert.equal(await show(), `${tgtLayout}acl_match=all\n`);
  assert.equal((await upd('AND')).err, AdminError.InvalidRequest);
  assert.equal(system.targets.get(1)!.aclMatch, 'all', 'a refused value changes nothing');
  assert.equal((await upd('any')).err, 0);
  assert.equal(await show(), tgtLayout);
});

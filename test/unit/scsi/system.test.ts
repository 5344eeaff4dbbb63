import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminError, GLOBAL_TID } from '../../../src/scsi/admin-error.js';
import { TargetSystem } from '../../../src/scsi/system.js';
import { ScsiStatus } from '../../../src/scsi/command.js';
import { makeCommand, makeHarness, stubDriver, submit, testStoreType } from './harness.js';

function system(): TargetSystem {
  const s = new TargetSystem({ storeTypes: [testStoreType()] });
  s.registerDriver(stubDriver());
  return s;
}

test('tgt §2.3 target new: unknown driver, tid <= 0, bad names, duplicates', () => {
  const s = system();
  assert.equal(s.createTarget('iser', 1, 'iqn.a:b'), AdminError.NoDriver);
  assert.equal(s.createTarget('iscsi', 0, 'iqn.a:b'), AdminError.InvalidRequest);
  assert.equal(s.createTarget('iscsi', 1, 'iqn.a:b_c'), AdminError.InvalidRequest); // no '_' (tgt)
  assert.equal(s.createTarget('iscsi', 1, ''), AdminError.InvalidRequest);
  assert.equal(s.createTarget('iscsi', 1, 'iqn.2024-01.Example:disk.1'), AdminError.Success);
  assert.equal(s.createTarget('iscsi', 1, 'iqn.other:x'), AdminError.TargetExist);
  assert.equal(s.createTarget('iscsi', 2, 'iqn.2024-01.Example:disk.1'), AdminError.TargetExist);
  assert.equal(s.findTargetByName('iqn.2024-01.Example:disk.1')?.tid, 1);
});

test('tgt §1.5 a new target has LUN 0, a controller with the default identity', () => {
  const s = system();
  s.createTarget('iscsi', 3, 'iqn.a:b');
  const lu = s.targets.get(3)!.luns[0]!;
  assert.equal(lu.lun, 0n);
  assert.equal(lu.deviceType.name, 'controller');
  assert.equal(lu.identity.productId, 'Controller');
  assert.equal(lu.identity.scsiId, 'IET     00030000');
  assert.equal(lu.identity.scsiSn, 'beaf30');
  assert.equal(lu.path, 'None');
  assert.equal(lu.backing.storeType, 'null');
});

test('tgt §2.3 targetsInOrder is ascending by tid', () => {
  const s = system();
  s.createTarget('iscsi', 5, 'iqn.a:5');
  s.createTarget('iscsi', 2, 'iqn.a:2');
  assert.deepEqual(
    s.targetsInOrder().map((t) => t.tid),
    [2, 5],
  );
});

test('tgt §2.3 logicalunit new/delete: errors and default identity', async () => {
  const s = system();
  assert.equal(await s.createLu(1, 1n, { path: '65536' }), AdminError.NoTarget);
  s.createTarget('iscsi', 1, 'iqn.a:b');
  assert.equal(await s.createLu(1, 0n, { path: '65536' }), AdminError.LunExist);
  assert.equal(await s.createLu(1, 1n, { path: '65536', bstype: 'nope' }), AdminError.InvalidRequest);
  assert.equal(await s.createLu(1, 1n, { path: 'not-a-size' }), AdminError.InvalidRequest);
  assert.equal(await s.createLu(1, 1n, { path: '65536', bsoflags: 'bogus' }), AdminError.InvalidRequest);
  assert.equal(await s.createLu(1, 1n, { path: '65536', deviceType: 0x05 }), AdminError.InvalidRequest);
  assert.equal(await s.createLu(1, 18n, { path: '65536', blocksize: 4096 }), AdminError.Success);
  assert.equal(await s.createLu(1, 18n, { path: '65536' }), AdminError.LunExist);
  const lu = s.targets.get(1)!.findLu(18n)!;
  assert.equal(lu.identity.scsiId, 'IET     00010012');
  assert.equal(lu.identity.scsiSn, 'beaf118');
  assert.equal(lu.identity.productId, 'VIRTUAL-DISK');
  assert.equal(lu.blockSize, 4096);
  assert.equal(lu.size, 65536);
  assert.equal(await s.deleteLu(1, 0n), AdminError.InvalidRequest); // LUN 0 cannot be deleted
  assert.equal(await s.deleteLu(1, 7n), AdminError.NoLun);
  assert.equal(await s.deleteLu(1, 18n), AdminError.Success);
  assert.equal(s.targets.get(1)!.luns.length, 1);
});

test('tgt §2.3 an invalid block size is ignored (512 used)', async () => {
  const s = system();
  s.createTarget('iscsi', 1, 'iqn.a:b');
  assert.equal(await s.createLu(1, 1n, { path: '65536', blocksize: 1000 }), AdminError.Success);
  assert.equal(s.targets.get(1)!.findLu(1n)!.blockSize, 512);
});

test('tgt §1.5 a disk without a backing store is removable and offline', async () => {
  const s = system();
  s.createTarget('iscsi', 1, 'iqn.a:b');
  assert.equal(await s.createLu(1, 1n, {}), AdminError.Success);
  const lu = s.targets.get(1)!.findLu(1n)!;
  assert.equal(lu.removable, true);
  assert.equal(lu.online, false);
  // path= loads media only while offline; then the LU is online
  assert.equal(await s.updateLu(1, 1n, { path: '65536' }), AdminError.Success);
  assert.equal(lu.online, true);
  assert.equal(lu.size, 65536);
  assert.equal(await s.updateLu(1, 1n, { path: '65536' }), AdminError.InvalidRequest);
});

test('tgt §2.3 logicalunit delete is refused while commands are active', async () => {
  const { system: s, nexus } = await makeHarness();
  const lu = s.targets.get(1)!.findLu(1n)!;
  const done = new Promise<void>((resolve) =>
    nexus.submit(makeCommand([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], {}, () => resolve())),
  );
  assert.equal(lu.activeCommands, 1);
  assert.equal(await s.deleteLu(1, 1n), AdminError.LunActive);
  await done;
  assert.equal(await s.deleteLu(1, 1n), AdminError.Success);
});

test('tgt §2.4 logicalunit update --params: each key, unknown keys and bad values', async () => {
  const { system: s, nexus } = await makeHarness();
  const lu = s.targets.get(1)!.findLu(1n)!;
  const ok = await s.updateLu(1, 1n, {
    vendor_id: 'ACME',
    product_id: 'FASTDISK',
    product_rev: '2.0',
    scsi_id: 'my-id',
    scsi_sn: 'SN42',
    readonly: '1',
    removable: '1',
    thin_provisioning: '1',
    sense_format: '1',
    rotation_rate: '1',
    lbppbe: '3',
    la_lba: '0',
    optimal_xfer_gran: '8',
    optimal_xfer_len: '2048',
    mode_page: '0x19:0:2:0x06:0',
  });
  assert.equal(ok, AdminError.Success);
  assert.deepEqual(lu.identity, {
    vendorId: 'ACME',
    productId: 'FASTDISK',
    productRev: '2.0',
    scsiId: 'my-id',
    scsiSn: 'SN42',
  });
  assert.equal(lu.readonly, true);
  assert.equal(lu.descriptorSense, true);
  assert.equal(lu.lbppbe, 3);
  assert.deepEqual([...lu.modePages.get(0x19, 0)!.current], [0x19, 2, 6, 0]);
  // another nexus learns about mode_page through MODE PARAMETERS CHANGED
  assert.ok(nexus.luInfo(lu).unitAttentions.length > 0);
  assert.equal(await s.updateLu(1, 1n, { colour: 'blue' }), AdminError.InvalidRequest);
  assert.equal(await s.updateLu(1, 1n, { vendor_id: 'TOO-LONG-VENDOR' }), AdminError.InvalidRequest);
  assert.equal(await s.updateLu(1, 1n, { readonly: 'yes' }), AdminError.InvalidRequest);
  assert.equal(await s.updateLu(1, 1n, { path: '4096' }), AdminError.InvalidRequest); // online
  // nothing changes when one key is bad
  assert.equal(await s.updateLu(1, 1n, { vendor_id: 'X', bogus: '1' }), AdminError.InvalidRequest);
  assert.equal(lu.identity.vendorId, 'ACME');
  assert.equal(await s.updateLu(1, 9n, {}), AdminError.NoLun);
  assert.equal(await s.updateLu(9, 1n, {}), AdminError.NoTarget);
});

test('tgt §2.4 online=0 is refused while PREVENT ALLOW MEDIUM REMOVAL is held', async () => {
  const { system: s, nexus } = await makeHarness();
  const r = await submit(nexus, [0x1e, 0, 0, 0, 1, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  assert.equal(await s.updateLu(1, 1n, { online: '0' }), AdminError.PreventRemoval);
  await submit(nexus, [0x1e, 0, 0, 0, 0, 0]);
  assert.equal(await s.updateLu(1, 1n, { online: '0' }), AdminError.Success);
});

test('tgt §2.3 target delete is refused with an I_T nexus unless forced', async () => {
  const { system: s } = await makeHarness();
  assert.equal(s.deleteTarget(1, false), AdminError.TargetActive);
  assert.equal(s.deleteTarget(1, true), AdminError.Success);
  assert.equal(s.targets.size, 0);
  assert.equal(s.deleteTarget(1, true), AdminError.NoTarget);
});

test('tgt §2.3 ACL bind/unbind: duplicates and missing rules', () => {
  const s = system();
  s.createTarget('iscsi', 1, 'iqn.a:b');
  assert.equal(s.bindAcl(2, 'address', 'ALL'), AdminError.NoTarget);
  assert.equal(s.bindAcl(1, 'address', 'ALL'), AdminError.Success);
  assert.equal(s.bindAcl(1, 'address', 'ALL'), AdminError.AclExist);
  assert.equal(s.bindAcl(1, 'address', '10.0.0.1/8'), AdminError.InvalidRequest);
  assert.equal(s.bindAcl(1, 'name', 'iqn.x:y'), AdminError.Success);
  assert.equal(s.unbindAcl(1, 'name', 'iqn.x:z'), AdminError.AclNoExist);
  assert.equal(s.unbindAcl(1, 'name', 'iqn.x:y'), AdminError.Success);
  assert.deepEqual(s.targets.get(1)!.acl, { addresses: ['ALL'], names: [] });
});

test('tgt §2.3 accounts: new/delete/bind/unbind incl. discovery and one outgoing per target', () => {
  const s = system();
  s.createTarget('iscsi', 1, 'iqn.a:b');
  assert.equal(s.accountNew('alice', 'secret12'), AdminError.Success);
  assert.equal(s.accountNew('alice', 'x'), AdminError.UserExist);
  assert.equal(s.accountNew('bob', 'secret34'), AdminError.Success);
  assert.equal(s.accountBind(1, 'carol', false), AdminError.NoUser);
  assert.equal(s.accountBind(9, 'alice', false), AdminError.NoTarget);
  assert.equal(s.accountBind(1, 'alice', false), AdminError.Success);
  assert.equal(s.accountBind(1, 'alice', false), AdminError.UserExist);
  assert.equal(s.accountBind(1, 'alice', true), AdminError.Success);
  assert.equal(s.accountBind(1, 'bob', true), AdminError.OutAccountExist);
  assert.equal(s.accountBind(GLOBAL_TID, 'bob', false), AdminError.Success);
  assert.deepEqual(s.discoveryAccounts.incoming, ['bob']);
  assert.equal(s.lookupAccount('alice'), 'secret12');
  assert.equal(s.accountUnbind(1, 'bob', false), AdminError.NoUser);
  assert.equal(s.accountDelete('alice'), AdminError.Success);
  assert.deepEqual(s.targets.get(1)!.accounts, { incoming: [] });
  assert.equal(s.accountDelete('alice'), AdminError.NoUser);
  assert.deepEqual([...s.accounts.keys()], ['bob']);
});

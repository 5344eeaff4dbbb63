/**
 * Fixtures captured from Debian's tgt 1.0.85 (/usr/sbin/tgtadm, /usr/sbin/tgtd), on loopback with a
 * private control socket (TGT_IPC_SOCKET, -C 7).
 *
 * REQUESTS: the exact bytes tgtadm wrote to the control socket for each command line (captured
 * with a small unix-socket server answering err=0).
 * OUTPUTS: tgtadm's stdout / stderr / exit status for commands run against the reference tgtd.
 */

export interface RequestFixture {
  /** tgtadm arguments (shell words). */
  args: string[];
  /** Request header + payload, hex. */
  hex: string;
}

export const REQUESTS: Record<string, RequestFixture> = {
  target_show: {
    args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'show'],
    hex: '01000000020000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  target_show_tid: {
    args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'show', '--tid', '1'],
    hex: '01000000020000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000010000000000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  target_new: {
    args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.2024-01.test:t1'],
    hex: '01000000000000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000097000000010000000000000000000000ffffffffffffffff0000000000000000000000000000000000000000000000007461726765746e616d653d69716e2e323032342d30312e746573743a743100',
  },
  target_new_noLld: {
    args: ['--mode', 'target', '--op', 'new', '--tid=2', '--targetname=iqn.2024-01.test:t2'],
    hex: '01000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000097000000020000000000000000000000ffffffffffffffff0000000000000000000000000000000000000000000000007461726765746e616d653d69716e2e323032342d30312e746573743a743200',
  },
  target_delete_force: {
    args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', '1'],
    hex: '01000000010000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000010000000000000000000000ffffffffffffffff000000000000000000000000000000000000000001000000',
  },
  target_bind_all: {
    args: ['--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL'],
    hex: '0100000003000000697363736900000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000008e000000010000000000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000696e69746961746f722d616464726573733d414c4c00',
  },
  target_bind_addr_name: {
    args: [
      '--lld',
      'iscsi',
      '--mode',
      'target',
      '--op',
      'bind',
      '--tid',
      '1',
      '-I',
      '10.0.0.0/8',
      '-Q',
      'iqn.1994-05.test:ini',
    ],
    hex: '010000000300000069736373690000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000b9000000010000000000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000696e69746961746f722d616464726573733d31302e302e302e302f382c696e69746961746f722d6e616d653d69716e2e313939342d30352e746573743a696e6900',
  },
  target_unbind_name: {
    args: [
      '--lld',
      'iscsi',
      '--mode',
      'target',
      '--op',
      'unbind',
      '--tid',
      '1',
      '--initiator-name',
      'iqn.1994-05.test:ini',
    ],
    hex: '0100000004000000697363736900000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000009c000000010000000000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000696e69746961746f722d6e616d653d69716e2e313939342d30352e746573743a696e6900',
  },
  target_update: {
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
      '65536',
    ],
    hex: '01000000050000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000097000000010000000000000000000000ffffffffffffffff0000000000000000000000000000000000000000000000004d617852656376446174615365676d656e744c656e6774683d363535333600',
  },
  target_update_state: {
    args: ['--mode', 'target', '--op', 'update', '--tid', '1', '--name', 'state', '--value', 'offline'],
    hex: '01000000050000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000086000000010000000000000000000000ffffffffffffffff00000000000000000000000000000000000000000000000073746174653d6f66666c696e6500',
  },
  target_stat: {
    args: ['--mode', 'target', '--op', 'stat', '--tid', '1'],
    hex: '01000000060000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000010000000000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  lu_new_full: {
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
      '/tmp/disk.img',
      '--bstype',
      'rdwr',
      '--bsopts',
      'foo=bar',
      '--bsoflags',
      'sync:direct',
      '--blocksize',
      '4096',
    ],
    hex: '020000000000000069736373690000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000ca0000000100000000000000000000000100000000000000000000000000000000000000000000000000000000000000706174683d2f746d702f6469736b2e696d672c6273747970653d726477722c62736f7074733d666f6f3d6261722c62736f666c6167733d73796e633a6469726563742c626c6f636b73697a653d3430393600',
  },
  lu_new_tape: {
    args: [
      '--mode',
      'lu',
      '--op',
      'new',
      '--tid',
      '1',
      '--lun',
      '2',
      '--device-type',
      'tape',
      '-b',
      '/tmp/tape.img',
    ],
    hex: '020000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000960000000100000000000000000000000200000000000000000000000000000001000000000000000000000000000000706174683d2f746d702f746170652e696d672c6273747970653d73736300',
  },
  lu_new_cd: {
    args: ['--mode', 'lu', '--op', 'new', '--tid', '1', '--lun', '3', '-Y', 'cd'],
    hex: '020000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000780000000100000000000000000000000300000000000000000000000000000005000000000000000000000000000000',
  },
  lu_update_params: {
    args: [
      '--mode',
      'logicalunit',
      '--op',
      'update',
      '--tid',
      '1',
      '--lun',
      '1',
      '--params',
      'readonly=1,vendor_id=ACME',
    ],
    hex: '0200000005000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000009d00000001000000000000000000000001000000000000000000000000000000000000000000000000000000000000007461726765744f707320726561646f6e6c793d312c76656e646f725f69643d41434d452c00',
  },
  lu_delete: {
    args: ['--mode', 'logicalunit', '--op', 'delete', '--tid', '1', '--lun', '1'],
    hex: '020000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000780000000100000000000000000000000100000000000000000000000000000000000000000000000000000000000000',
  },
  account_new: {
    args: ['--mode', 'account', '--op', 'new', '--user', 'bob', '--password', 'secret'],
    hex: '07000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000091000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000757365723d626f622c70617373776f72643d73656372657400',
  },
  account_bind_global: {
    args: ['--mode', 'account', '--op', 'bind', '--user', 'bob'],
    hex: '07000000030000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000081000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000757365723d626f6200',
  },
  account_bind_out: {
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
      'bob',
      '--outgoing',
    ],
    hex: '07000000030000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000081000000010000000000000000000000ffffffffffffffff000000000000000000000000010000000000000000000000757365723d626f6200',
  },
  account_unbind: {
    args: ['--mode', 'account', '--op', 'unbind', '--tid', '1', '--user', 'bob'],
    hex: '07000000040000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000081000000010000000000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000757365723d626f6200',
  },
  account_show: {
    args: ['--mode', 'account', '--op', 'show'],
    hex: '07000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  account_delete: {
    args: ['--mode', 'account', '--op', 'delete', '--user', 'bob'],
    hex: '07000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000081000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000757365723d626f6200',
  },
  portal_new: {
    args: ['--lld', 'iscsi', '--mode', 'portal', '--op', 'new', '--param', 'portal=127.0.0.1:3268'],
    hex: '03000000000000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000099000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000706f7274616c4f707320706f7274616c3d3132372e302e302e313a333236382c00',
  },
  portal_delete: {
    args: ['--mode', 'portal', '--op', 'delete', '--params', 'portal=[::1]:3269'],
    hex: '03000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000095000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000706f7274616c4f707320706f7274616c3d5b3a3a315d3a333236392c00',
  },
  portal_show: {
    args: ['--mode', 'portal', '--op', 'show'],
    hex: '03000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  conn_show: {
    args: ['--mode', 'conn', '--op', 'show', '--tid', '1'],
    hex: '06000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000010000000000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  conn_delete: {
    args: ['--mode', 'connection', '--op', 'delete', '--tid', '1', '--sid', '2', '--cid', '0'],
    hex: '06000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000010000000200000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  conn_stat: {
    args: ['--mode', 'connection', '--op', 'stat', '--sid', '2', '--cid', '1'],
    hex: '06000000060000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0200000000000000ffffffffffffffff010000000000000000000000000000000000000000000000',
  },
  sess_show: {
    args: ['--mode', 'session', '--op', 'show', '--tid', '1', '--sid', '2'],
    hex: '05000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000010000000200000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  sess_stat: {
    args: ['--mode', 'sess', '--op', 'stat', '--tid', '1', '--sid', '2'],
    hex: '05000000060000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000010000000200000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  sys_show: {
    args: ['--mode', 'system', '--op', 'show'],
    hex: '00000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  sys_update_debug: {
    args: ['--mode', 'sys', '--op', 'update', '--name', 'debug', '--value', 'on'],
    hex: '00000000050000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000081000000ffffffff0000000000000000ffffffffffffffff00000000000000000000000000000000000000000000000064656275673d6f6e00',
  },
  sys_update_state: {
    args: ['--mode', 'system', '--op', 'update', '--name', 'State', '--value', 'offline'],
    hex: '00000000050000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000086000000ffffffff0000000000000000ffffffffffffffff00000000000000000000000000000000000000000000000053746174653d6f66666c696e6500',
  },
  sys_stat: {
    args: ['--mode', 'system', '--op', 'stat'],
    hex: '00000000060000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  lld_show: {
    args: ['--mode', 'lld', '--op', 'show'],
    hex: '04000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  lld_start: {
    args: ['--lld', 'iser', '--mode', 'lld', '--op', 'start'],
    hex: '04000000070000006973657200000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  lld_stop: {
    args: ['-L', 'iscsi', '-m', 'lld', '-o', 'stop'],
    hex: '04000000080000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000078000000ffffffff0000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000',
  },
  short_opts: {
    args: ['-L', 'iscsi', '-m', 'target', '-o', 'bind', '-t', '5', '-I', '192.168.1.0/24'],
    hex: '01000000030000006973637369000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000099000000050000000000000000000000ffffffffffffffff000000000000000000000000000000000000000000000000696e69746961746f722d616464726573733d3139322e3136382e312e302f323400',
  },
};

export interface OutputFixture {
  args: string[];
  rc: number;
  stdout: string;
  stderr: string;
}

export const OUTPUTS: Record<string, OutputFixture> = {
  sys_show_empty: {
    args: ['--mode', 'system', '--op', 'show'],
    rc: 0,
    stdout:
      'System:\n    State: ready\n    debug: off\nLLDs:\n    iscsi: ready\n    iser: error\nBacking stores:\n    sheepdog\n    bsg\n    sg\n    null\n    ssc\n    smc (bsoflags sync:direct)\n    mmc (bsoflags sync:direct)\n    rdwr (bsoflags sync:direct)\n    aio\nDevice types:\n    disk\n    cd/dvd\n    osd\n    controller\n    changer\n    tape\n    passthrough\niSNS:\n    iSNS=Off\n    iSNSServerIP=\n    iSNSServerPort=3205\n    iSNSAccessControl=Off\n',
    stderr: '',
  },
  err_target_exist_tid: {
    args: ['--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.2024-01.test:other'],
    rc: 22,
    stdout: '',
    stderr: 'tgtadm: this target already exists\n',
  },
  err_target_badname: {
    args: ['--mode', 'target', '--op', 'new', '--tid', '4', '-T', 'iqn.2024-01.test_bad'],
    rc: 22,
    stdout: '',
    stderr: 'tgtadm: invalid request\n',
  },
  err_acct_out_exist: {
    args: ['--mode', 'account', '--op', 'bind', '--tid', '1', '--user', 'dave', '--outgoing'],
    rc: 22,
    stdout: '',
    stderr: 'tgtadm: this target already has an outgoing account\n',
  },
  err_acl_noexist: {
    args: ['--mode', 'target', '--op', 'unbind', '--tid', '1', '-I', '1.2.3.4'],
    rc: 22,
    stdout: '',
    stderr: 'tgtadm: this access control rule does not exist\n',
  },
  target_show_full: {
    args: ['--mode', 'target', '--op', 'show'],
    rc: 0,
    stdout:
      'Target 1: iqn.2024-01.test:t1\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n    LUN information:\n        LUN: 0\n            Type: controller\n            SCSI ID: IET     00010000\n            SCSI SN: beaf10\n            Size: 0 MB, Block size: 1\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: None\n            Backing store flags: \n        LUN: 1\n            Type: disk\n            SCSI ID: IET     00010001\n            SCSI SN: beaf11\n            Size: 67 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: Yes\n            SWP: No\n            Thin-provisioning: Yes\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk64.img\n            Backing store flags: \n        LUN: 2\n            Type: disk\n            SCSI ID: IET     00010002\n            SCSI SN: beaf12\n            Size: 1074 MB, Block size: 4096\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk1g.img\n            Backing store flags: sync\n        LUN: 3\n            Type: disk\n            SCSI ID: IET     00010003\n            SCSI SN: beaf13\n            Size: 10 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/odd.img\n            Backing store flags: sync:direct\n        LUN: 4\n            Type: disk\n            SCSI ID: IET     00010004\n            SCSI SN: beaf14\n            Size: 0 MB, Block size: 512\n            Online: No\n            Removable media: Yes\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: None\n            Backing store flags: \n        LUN: 5\n            Type: cd/dvd\n            SCSI ID: IET     00010005\n            SCSI SN: beaf15\n            Size: 0 MB, Block size: 1\n            Online: No\n            Removable media: Yes\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: mmc\n            Backing store path: None\n            Backing store flags: \n        LUN: 6\n            Type: disk\n            SCSI ID: IET     00010006\n            SCSI SN: beaf16\n            Size: 1099512 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: /dev/null\n            Backing store flags: \n        LUN: 7\n            Type: disk\n            SCSI ID: IET     00010007\n            SCSI SN: beaf17\n            Size: 67 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk64.img\n            Backing store flags: direct\n    Account information:\n        bob\n        alice\n        carol (outgoing)\n    ACL information:\n        ALL\n        10.0.0.0/8\n        iqn.1994-05.test:other\nTarget 2: iqn.2024-01.test:t2\n    System information:\n        Driver: iscsi\n        State: ready\n        Nop interval: 5\n        Nop count: 3\n    I_T nexus information:\n    LUN information:\n        LUN: 0\n            Type: controller\n            SCSI ID: IET     00020000\n            SCSI SN: beaf20\n            Size: 0 MB, Block size: 1\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: None\n            Backing store flags: \n        LUN: 9\n            Type: disk\n            SCSI ID: IET     00020009\n            SCSI SN: beaf29\n            Size: 67 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk64.img\n            Backing store flags: \n    Account information:\n    ACL information:\n        192.168.0.1,initiator-name=iqn.1994-05.test:ini\n        iqn.1994-05.test:ini\nTarget 3: iqn.2024-01.test:t3\n    System information:\n        Driver: iscsi\n        State: offline\n    I_T nexus information:\n    LUN information:\n        LUN: 0\n            Type: controller\n            SCSI ID: IET     00030000\n            SCSI SN: beaf30\n            Size: 0 MB, Block size: 1\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: None\n            Backing store flags: \n    Account information:\n    ACL information:\n',
    stderr: '',
  },
  target_show_tid1: {
    args: ['--mode', 'target', '--op', 'show', '--tid', '1'],
    rc: 0,
    stdout:
      'nop_interval=0\nnop_count=0\nMaxRecvDataSegmentLength=8192\nHeaderDigest=None\nDataDigest=None\nInitialR2T=Yes\nMaxOutstandingR2T=1\nImmediateData=Yes\nFirstBurstLength=65536\nMaxBurstLength=262144\nDataPDUInOrder=Yes\nDataSequenceInOrder=Yes\nErrorRecoveryLevel=0\nIFMarker=No\nOFMarker=No\nDefaultTime2Wait=2\nDefaultTime2Retain=20\nOFMarkInt=Reject\nIFMarkInt=Reject\nMaxConnections=1\nRDMAExtensions=Yes\nTargetRecvDataSegmentLength=262144\nInitiatorRecvDataSegmentLength=262144\nMaxOutstandingUnexpectedPDUs=0\nMaxXmitDataSegmentLength=8192\nMaxQueueCmd=128\n',
    stderr: '',
  },
  sys_show_full: {
    args: ['--mode', 'system', '--op', 'show'],
    rc: 0,
    stdout:
      'System:\n    State: ready\n    debug: off\nLLDs:\n    iscsi: ready\n    iser: error\nBacking stores:\n    sheepdog\n    bsg\n    sg\n    null\n    ssc\n    smc (bsoflags sync:direct)\n    mmc (bsoflags sync:direct)\n    rdwr (bsoflags sync:direct)\n    aio\nDevice types:\n    disk\n    cd/dvd\n    osd\n    controller\n    changer\n    tape\n    passthrough\n    Account information:\n\n    alice\n    dave (outgoing)\niSNS:\n    iSNS=Off\n    iSNSServerIP=\n    iSNSServerPort=3205\n    iSNSAccessControl=Off\n',
    stderr: '',
  },
  account_show_full: {
    args: ['--mode', 'account', '--op', 'show'],
    rc: 0,
    stdout: 'Account list:\n    dave\n    carol\n    bob\n    alice\n',
    stderr: '',
  },
  lld_show_full: {
    args: ['--mode', 'lld', '--op', 'show'],
    rc: 0,
    stdout:
      'LLDs:\n    iscsi: ready\n        Target 1: iqn.2024-01.test:t1\n        Target 3: iqn.2024-01.test:t3\n        Target 2: iqn.2024-01.test:t2\n    iser: error\n',
    stderr: '',
  },
  err_sess_show: {
    args: ['--mode', 'session', '--op', 'show', '--tid', '1', '--sid', '1'],
    rc: 22,
    stdout: '',
    stderr: 'tgtadm: invalid request\n',
  },
  err_sys_delete_busy: {
    args: ['--mode', 'system', '--op', 'delete'],
    rc: 22,
    stdout: '',
    stderr: 'tgtadm: invalid request\n',
  },
  portal_show2: {
    args: ['--mode', 'portal', '--op', 'show'],
    rc: 0,
    stdout: 'Portal: 127.0.0.1:3266,1\nPortal: 127.0.0.1:3267,1\n',
    stderr: '',
  },
  err_lld_bogus: {
    args: ['--lld', 'bogus', '--mode', 'target', '--op', 'show'],
    rc: 22,
    stdout: '',
    stderr: "tgtadm: can't find the driver\n",
  },
  sess_target_show: {
    args: ['--mode', 'target', '--op', 'show'],
    rc: 0,
    stdout:
      'Target 1: iqn.2024-01.test:t1\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n    LUN information:\n        LUN: 0\n            Type: controller\n            SCSI ID: IET     00010000\n            SCSI SN: beaf10\n            Size: 0 MB, Block size: 1\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: None\n            Backing store flags: \n        LUN: 1\n            Type: disk\n            SCSI ID: IET     00010001\n            SCSI SN: beaf11\n            Size: 67 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: Yes\n            SWP: No\n            Thin-provisioning: Yes\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk64.img\n            Backing store flags: \n        LUN: 2\n            Type: disk\n            SCSI ID: IET     00010002\n            SCSI SN: beaf12\n            Size: 1074 MB, Block size: 4096\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk1g.img\n            Backing store flags: sync\n        LUN: 3\n            Type: disk\n            SCSI ID: IET     00010003\n            SCSI SN: beaf13\n            Size: 10 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/odd.img\n            Backing store flags: sync:direct\n        LUN: 4\n            Type: disk\n            SCSI ID: IET     00010004\n            SCSI SN: beaf14\n            Size: 0 MB, Block size: 512\n            Online: No\n            Removable media: Yes\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: None\n            Backing store flags: \n        LUN: 5\n            Type: cd/dvd\n            SCSI ID: IET     00010005\n            SCSI SN: beaf15\n            Size: 0 MB, Block size: 1\n            Online: No\n            Removable media: Yes\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: mmc\n            Backing store path: None\n            Backing store flags: \n        LUN: 6\n            Type: disk\n            SCSI ID: IET     00010006\n            SCSI SN: beaf16\n            Size: 1099512 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: /dev/null\n            Backing store flags: \n        LUN: 7\n            Type: disk\n            SCSI ID: IET     00010007\n            SCSI SN: beaf17\n            Size: 67 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk64.img\n            Backing store flags: direct\n    Account information:\n        bob\n        alice\n        carol (outgoing)\n    ACL information:\n        ALL\n        10.0.0.0/8\n        iqn.1994-05.test:other\nTarget 2: iqn.2024-01.test:t2\n    System information:\n        Driver: iscsi\n        State: ready\n        Nop interval: 5\n        Nop count: 3\n    I_T nexus information:\n    LUN information:\n        LUN: 0\n            Type: controller\n            SCSI ID: IET     00020000\n            SCSI SN: beaf20\n            Size: 0 MB, Block size: 1\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: None\n            Backing store flags: \n        LUN: 9\n            Type: disk\n            SCSI ID: IET     00020009\n            SCSI SN: beaf29\n            Size: 67 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk64.img\n            Backing store flags: \n    Account information:\n    ACL information:\n        192.168.0.1,initiator-name=iqn.1994-05.test:ini\n        iqn.1994-05.test:ini\nTarget 3: iqn.2024-01.test:t3\n    System information:\n        Driver: iscsi\n        State: offline\n    I_T nexus information:\n    LUN information:\n        LUN: 0\n            Type: controller\n            SCSI ID: IET     00030000\n            SCSI SN: beaf30\n            Size: 0 MB, Block size: 1\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: None\n            Backing store flags: \n    Account information:\n    ACL information:\nTarget 4: iqn.2024-01.test:t4\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n        I_T nexus: 1\n            Initiator: iqn.1994-05.test:ini alias: testhost\n            Connection: 0\n                IP Address: 127.0.0.1\n        I_T nexus: 2\n            Initiator: iqn.1994-05.test:ini alias: testhost\n            Connection: 0\n                IP Address: 127.0.0.1\n    LUN information:\n        LUN: 0\n            Type: controller\n            SCSI ID: IET     00040000\n            SCSI SN: beaf40\n            Size: 0 MB, Block size: 1\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: null\n            Backing store path: None\n            Backing store flags: \n        LUN: 1\n            Type: disk\n            SCSI ID: IET     00040001\n            SCSI SN: beaf41\n            Size: 67 MB, Block size: 512\n            Online: Yes\n            Removable media: No\n            Prevent removal: No\n            Readonly: No\n            SWP: No\n            Thin-provisioning: No\n            Backing store type: rdwr\n            Backing store path: /tmp/tgtref7/disk64.img\n            Backing store flags: \n    Account information:\n    ACL information:\n        ALL\n',
    stderr: '',
  },
  sess_conn_show: {
    args: ['--mode', 'connection', '--op', 'show', '--tid', '4'],
    rc: 0,
    stdout:
      'Session: 2\n    Connection: 0\n        Initiator: iqn.1994-05.test:ini\n        IP Address: 127.0.0.1\nSession: 1\n    Connection: 0\n        Initiator: iqn.1994-05.test:ini\n        IP Address: 127.0.0.1\n',
    stderr: '',
  },
  sess_session_stat: {
    args: ['--mode', 'session', '--op', 'stat', '--tid', '4', '--sid', '1'],
    rc: 0,
    stdout:
      'tgt lun sid rd_subm(bytes,cmds) rd_done(bytes,cmds) wr_subm(bytes,cmds) wr_done(bytes,cmds) errs\n  4   1   1            0      0            0      0            0      0            0      0    0\n  4   0   1            0      0            0      0            0      0            0      0    0\n\nsid cid rxdata_octets txdata_octets dataout_pdus datain_pdus cmd_pdus rsp_pdus\n  1   0           260           172            0           0        0        0\n',
    stderr: '',
  },
  sess_conn_stat: {
    args: ['--mode', 'connection', '--op', 'stat', '--sid', '2', '--cid', '0'],
    rc: 0,
    stdout:
      'sid cid rxdata_octets txdata_octets dataout_pdus datain_pdus cmd_pdus rsp_pdus\n  2   0           260           172            0           0        0        0\n',
    stderr: '',
  },
  sess_target_stat: {
    args: ['--mode', 'target', '--op', 'stat', '--tid', '4'],
    rc: 0,
    stdout:
      'tgt lun sid rd_subm(bytes,cmds) rd_done(bytes,cmds) wr_subm(bytes,cmds) wr_done(bytes,cmds) errs\n  4   0   1            0      0            0      0            0      0            0      0    0\n  4   0   2            0      0            0      0            0      0            0      0    0\n  4   1   1            0      0            0      0            0      0            0      0    0\n  4   1   2            0      0            0      0            0      0            0      0    0\n',
    stderr: '',
  },
  sys_show_global2: {
    args: ['--mode', 'system', '--op', 'show'],
    rc: 0,
    stdout:
      'System:\n    State: ready\n    debug: off\nLLDs:\n    iscsi: ready\n    iser: error\nBacking stores:\n    sheepdog\n    bsg\n    sg\n    null\n    ssc\n    smc (bsoflags sync:direct)\n    mmc (bsoflags sync:direct)\n    rdwr (bsoflags sync:direct)\n    aio\nDevice types:\n    disk\n    cd/dvd\n    osd\n    controller\n    changer\n    tape\n    passthrough\n    Account information:\n\n    bob\n    carol (outgoing)\niSNS:\n    iSNS=Off\n    iSNSServerIP=\n    iSNSServerPort=3205\n    iSNSAccessControl=Off\n',
    stderr: '',
  },
};

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { confValue, renderDump, snapshotFromShow } from '../../../../src/mgmt/config/dump.js';
import { parseConfigString, toPlain } from '../../../../src/mgmt/config/general.js';
import { validateConfig } from '../../../../src/mgmt/config/directives.js';
import { parseTargetShow } from '../../../../src/mgmt/config/show-parse.js';
import type { ConfigSnapshot } from '../../../../src/mgmt/config/snapshot.js';

test('dump: values survive a Config::General round trip (#, quotes, backslashes, $, blanks)', async () => {
  for (const v of [
    'plain',
    'a#b',
    '"quoted"',
    'back\\slash',
    '$HOME',
    ' lead',
    'trail ',
    'in side',
    '',
    'x"y',
  ]) {
    const conf = await parseConfigString(`k ${confValue(v)}\n`);
    assert.deepEqual(toPlain(conf), { k: v }, JSON.stringify(v));
  }
});

const SNAP: ConfigSnapshot = {
  version: 1,
  exact: true,
  accounts: [
    { user: 'bob', password: 'pw#1' },
    { user: 'disco', password: 'dpw' },
    { user: 'spare', password: 'spw' },
  ],
  discovery: { incoming: ['disco'] },
  targets: [
    {
      tid: 3,
      name: 'iqn.2024-01.test:a',
      lld: 'iscsi',
      state: 'offline',
      params: {
        nop_interval: '0',
        MaxRecvDataSegmentLength: '65536',
        HeaderDigest: 'None',
        OFMarkInt: 'Irrelevant',
      },
      luns: [
        {
          lun: '2',
          deviceType: 'disk',
          path: '/srv/a b.img',
          bstype: 'rdwr',
          bsopts: '',
          bsoflags: 'sync',
          blockSize: 4096,
          params: [
            ['mode_page', '8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0'],
            ['vendor_id', 'AC ME'],
            ['thin_provisioning', '1'],
          ],
        },
      ],
      accounts: { incoming: ['bob'] },
      acl: { addresses: ['10.0.0.0/8'], names: ['iqn.x:ini'], match: 'all' },
    },
  ],
};

test('dump: a lossless targets.conf (tids, LUN blocks, LU params, write-cache, keys, state, ACL kinds, accounts)', async () => {
  const text = renderDump(SNAP, { withPasswords: true });
  assert.equal(
    text,
    [
      'default-driver iscsi',
      '',
      'incomingdiscoveryuser disco dpw',
      'account spare spw',
      '',
      '<target iqn.2024-01.test:a>',
      '\tcontroller_tid 3',
      '\t<backing-store /srv/a b.img>',
      '\t\tlun 2',
      '\t\tbsoflags sync',
      '\t\tblock-size 4096',
      '\t\twrite-cache off',
      '\t\tvendor_id AC ME',
      '\t\tparams thin_provisioning=1',
      '\t</backing-store>',
      '\tincominguser bob pw\\#1',
      '\tinitiator-address 10.0.0.0/8',
      '\tinitiator-name iqn.x:ini',
      '\tacl_match all',
      '\tMaxRecvDataSegmentLength 65536',
      '\tstate offline',
      '</target>',
      '',
      '',
    ].join('\n'),
  );
  // and it reads back as the config it claims to be
  const conf = await parseConfigString(text);
  assert.deepEqual(validateConfig(conf).warnings, []);
  const t = toPlain(conf) as { target: Record<string, Record<string, unknown>> };
  assert.deepEqual(t.target['iqn.2024-01.test:a']!['incominguser'], 'bob pw#1');
  assert.deepEqual(Object.keys(t.target['iqn.2024-01.test:a']!['backing-store'] as object), ['/srv/a b.img']);
  assert.equal(t.target['iqn.2024-01.test:a']!['acl_match'], 'all');
});

test('tgt §3.1 --dump without --with-passwords writes PLEASE_CORRECT_THE_PASSWORD', () => {
  const text = renderDump(SNAP, { withPasswords: false });
  assert.match(text, /\tincominguser bob PLEASE_CORRECT_THE_PASSWORD\n/);
  assert.doesNotMatch(text, /pw#1|dpw|spw/);
});

test('dump from show output (tgt tgtd): ACL entries told apart by form, LU flags kept, default ids dropped', () => {
  const show = `Target 1: iqn.a
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: custom
            Size: 67 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: Yes
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /srv/a.img
            Backing store flags: 
    Account information:
        bob
        out (outgoing)
    ACL information:
        192.168.0.0/16
        [fe80::1]/64
        iqn.1994-05.test:ini
`;
  const snap = snapshotFromShow(parseTargetShow(show), new Map(), ['out', 'bob'], { incoming: [] });
  const t = snap.targets[0]!;
  assert.deepEqual(t.acl, { addresses: ['192.168.0.0/16', '[fe80::1]/64'], names: ['iqn.1994-05.test:ini'] });
  assert.deepEqual(t.accounts, { incoming: ['bob'], outgoing: 'out' });
  assert.deepEqual(t.luns[0]!.params, [
    ['scsi_sn', 'custom'],
    ['readonly', '1'],
  ]);
  assert.match(renderDump(snap, { withPasswords: false }), /^# Rebuilt from tgtadm show output/);
});

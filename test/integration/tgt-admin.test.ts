/**
 * tgt-admin against our tgtd (tgt-behaviour.md §3): -e from a config using every directive the
 * daemon implements, --dump fed to a second empty daemon reproducing the same show output,
 * --update/--delete/--offline/--ready, and Debian's Perl tgt-admin driving our tgtd.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Session } from '../../src/initiator/index.js';
import { DEBIAN_TGTADM, REPO_ROOT, type RunResult, TgtDaemon, run } from '../helpers/daemon.js';

const TGT_ADMIN_BIN = join(REPO_ROOT, 'bin', 'tgt-admin');
const DEBIAN_TGT_ADMIN = '/usr/sbin/tgt-admin';

/**
 * A config with every directive our daemon can carry out (no iSNS, no direct-store device).
 * `memory`: add tgt-ts-only parts: a LUN on the memory store (Debian's tgt-admin skips it: no
 * such file) and `acl_match all` (a key Debian's tgt-admin does not pass on).
 */
function fullConfig(dir: string, memory = true, plainExtra = ''): string {
  const memoryLun = memory
    ? `
	<backing-store 32M>
		bs-type memory
		online 1
		la_lba 0
	</backing-store>`
    : '';
  return `default-driver iscsi
incomingdiscoveryuser disco discopass12
outgoingdiscoveryuser discoout discopass34

<target iqn.2024-04.test:full>
	controller_tid 5
	MaxRecvDataSegmentLength 65536
	MaxXmitDataSegmentLength 131072
	HeaderDigest CRC32C
	InitialR2T No
	ImmediateData No
	FirstBurstLength 131072
	MaxBurstLength 524288
	DefaultTime2Wait 4
	DefaultTime2Retain 30
	MaxOutstandingR2T 1
	MaxConnections 1
	ErrorRecoveryLevel 0
	vendor_id TGTTS
	write-cache off
	params rotation_rate=1
	<backing-store ${dir}/disk2.img>
		lun 4
		product_id "Big Disk"
		product_rev 0042
		scsi_id my-scsi-id
		scsi_sn SN1234
		block-size 4096
		bsoflags sync
		write-cache on
		removable 1
		readonly 1
		sense_format 1
		lbppbe 3
		optimal_xfer_gran 8
		optimal_xfer_len 128
		mode_page 0x1c:0:10:0:0:0:0:0:0:0:0:0:0
		params thin_provisioning=1
	</backing-store>
	<backing-store ${dir}/disk1.img>
	</backing-store>${memoryLun}
	incominguser bob bobpassword1
	incominguser carol carolpassword
	outgoinguser tgtout outpassword12
	initiator-address 127.0.0.1
	initiator-address 192.168.1.0/24
	initiator-name iqn.1994-05.test:ini${memory ? '\n\tacl_match all' : ''}
	state ready
</target>

<target iqn.2024-04.test:plain>
	backing-store ${dir}/disk3.img${plainExtra}
</target>
`;
}

async function tgtAdmin(d: TgtDaemon, args: readonly string[]): Promise<RunResult> {
  return run(process.execPath, [TGT_ADMIN_BIN, ...args], { env: d.env, cwd: d.dir });
}

async function ok(d: TgtDaemon, args: readonly string[]): Promise<string> {
  const r = await tgtAdmin(d, args);
  assert.equal(r.code, 0, `tgt-admin ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Everything `show` tells about a daemon's configuration. */
async function shows(d: TgtDaemon): Promise<string> {
  const all = await d.adm('--mode', 'target', '--op', 'show');
  let text = all;
  for (const m of all.matchAll(/^Target (\d+):/gm))
    text += await d.adm('--mode', 'target', '--op', 'show', '--tid', m[1]!);
  text += await d.adm('--mode', 'account', '--op', 'show');
  text += (await d.adm('--mode', 'system', '--op', 'show')).replace(/^.*\nDevice types:/s, 'Device types:');
  return text;
}

async function files(d: TgtDaemon): Promise<void> {
  for (const f of ['disk1.img', 'disk2.img', 'disk3.img']) await d.sparseFile(f, 64 << 20);
}

describe('tgt-admin against tgt-ts tgtd', () => {
  let a: TgtDaemon;
  let b: TgtDaemon;
  before(async () => {
    a = await TgtDaemon.start();
    b = await TgtDaemon.start();
    await files(a);
    await files(b);
  });
  after(async () => {
    await a?.cleanup();
    await b?.cleanup();
  });

  test('tgt §3.1 -e: every directive applied; --dump --with-passwords -> -e on an empty tgtd gives the same show', async () => {
    const conf = join(a.dir, 'targets.conf');
    await writeFile(conf, fullConfig(a.dir));
    await ok(a, ['-e', '-c', conf]);
    const show = await a.adm('--mode', 'target', '--op', 'show');
    assert.match(show, /^Target 5: iqn\.2024-04\.test:full$/m);
    assert.match(show, /^Target 6: iqn\.2024-04\.test:plain$/m);
    assert.match(
      show,
      /SCSI ID: my-scsi-id\n\s+SCSI SN: SN1234\n\s+Size: 67 MB, Block size: 4096\n\s+Online: Yes\n\s+Removable media: Yes/,
    );
    assert.match(
      show,
      /Account information:\n\s+bob\n\s+carol\n\s+tgtout \(outgoing\)\n\s+ACL information:\n\s+127\.0\.0\.1\n\s+192\.168\.1\.0\/24\n\s+iqn\.1994-05\.test:ini\n/,
    );
    const params = await a.adm('--mode', 'target', '--op', 'show', '--tid', '5');
    assert.match(params, /^HeaderDigest=CRC32C$/m);
    assert.match(params, /^MaxRecvDataSegmentLength=65536$/m);
    assert.match(params, /^acl_match=all$/m);

    const dump = await ok(a, ['--dump', '--with-passwords']);
    assert.match(dump, /incominguser bob bobpassword1/);
    assert.match(
      dump,
      /\t\tmode_page 0x1c:0:10:0:0:0:0:0:0:0:0:0:0|\t\tmode_page 28:0:10:0:0:0:0:0:0:0:0:0:0/,
    );
    const dumped = join(b.dir, 'dumped.conf');
    await writeFile(dumped, dump);
    // -f: the image files are held open by the first daemon (tgt-admin's in-use check)
    await ok(b, ['-e', '-f', '-c', dumped]);
    assert.equal(await shows(b), await shows(a));

    // -e again changes nothing (tgt binds discovery accounts again and fails)
    await ok(a, ['-e', '-c', conf]);
    assert.equal(await a.adm('--mode', 'target', '--op', 'show'), show);
    assert.doesNotMatch(await ok(a, ['--dump']), /bobpassword1/);
  });

  test('tgt §3.1 --offline/--ready, --update (in use: skipped unless -f), --delete', async () => {
    const conf = join(a.dir, 'targets.conf');
    await ok(a, ['--offline', 'tid=6']);
    assert.match(
      await a.adm('--mode', 'target', '--op', 'show'),
      /Target 6: iqn\.2024-04\.test:plain\n\s+System information:\n\s+Driver: iscsi\n\s+State: offline/,
    );
    await ok(a, ['--ready', 'iqn.2024-04.test:plain']);
    assert.match(
      await a.adm('--mode', 'target', '--op', 'show'),
      /Target 6: iqn\.2024-04\.test:plain\n\s+System information:\n\s+Driver: iscsi\n\s+State: ready/,
    );

    await writeFile(conf, fullConfig(a.dir, true, '\n\tMaxConnections 4'));
    const session = await Session.login({
      host: a.host,
      port: a.port,
      targetName: 'iqn.2024-04.test:plain',
      timeoutMs: 10_000,
    });
    try {
      const skipped = await ok(a, ['--update', 'ALL', '-v', '-c', conf]);
      assert.match(
        skipped,
        /# Target with tid 6 \(iqn\.2024-04\.test:plain\) is in use, it won't be updated\./,
      );
      assert.match(await a.adm('--mode', 'target', '--op', 'show', '--tid', '6'), /^MaxConnections=1$/m);
      await ok(a, ['--update', 'tid=6', '-f', '-c', conf]);
    } finally {
      session.destroy();
    }
    assert.match(await a.adm('--mode', 'target', '--op', 'show', '--tid', '6'), /^MaxConnections=4$/m);
    assert.doesNotMatch(await a.adm('--mode', 'target', '--op', 'show'), /I_T nexus: /);

    await ok(a, ['--delete', 'iqn.2024-04.test:plain']);
    await ok(a, ['--delete', 'tid=5']);
    assert.equal(await a.adm('--mode', 'target', '--op', 'show'), '');
    // an empty config removes nothing with -e (as tgt), --update ALL -c /dev/null removes all
    await ok(a, ['-e', '-c', conf]);
    await ok(a, ['--update', 'ALL', '-f', '-c', '/dev/null']);
    assert.equal(await a.adm('--mode', 'target', '--op', 'show'), '');
  });
});

const perlReady =
  existsSync(DEBIAN_TGT_ADMIN) &&
  existsSync(DEBIAN_TGTADM) &&
  spawnSync('perl', ['-MConfig::General', '-e', '1']).status === 0;

describe(
  'Debian tgt-admin drives tgt-ts tgtd',
  { skip: perlReady ? false : 'Debian tgt-admin or Config::General missing' },
  () => {
    let ours: TgtDaemon;
    let theirs: TgtDaemon;
    before(async () => {
      ours = await TgtDaemon.start();
      theirs = await TgtDaemon.start();
      await files(ours);
      await files(theirs);
    });
    after(async () => {
      await ours?.cleanup();
      await theirs?.cleanup();
    });

    test('tgt §3 Debian tgt-admin -e configures our tgtd exactly as our tgt-admin -e does', async () => {
      const conf = join(ours.dir, 'targets.conf');
      await writeFile(conf, fullConfig(ours.dir, false));
      await ok(ours, ['-e', '-c', conf]);
      // Debian's tgt-admin runs the tgtadm found in PATH: Debian's, talking to our daemon
      const env = { ...theirs.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin` };
      const r = await run(DEBIAN_TGT_ADMIN, ['-e', '-f', '-c', conf], { env, cwd: theirs.dir });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await shows(theirs), await shows(ours));
    });
  },
);

/**
 * tgtd --state FILE (issue 3 item 4): the configuration survives kill -9; the file is 0600 and
 * written atomically; a corrupt or unreadable file stops tgtd with exit 1 instead of an empty
 * start. Also the control socket's protection and secrets kept out of logs and `show` (item 5).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Session } from '../../src/initiator/index.js';
import { fetchSnapshot } from '../../src/mgmt/config/snapshot.js';
import { REPO_ROOT, run, TGTD_BIN, TgtDaemon } from '../helpers/daemon.js';
import { closeSession, IQN } from './util.js';

const T1 = `${IQN}:state-one`;
const T2 = `${IQN}:state-two`;
const SECRET_IN = 'in-secret-4711,x';
const SECRET_OUT = 'out-secret-0815';
const SECRET_DISC = 'disc-secret-2342';

/** Every show a script might compare, with the command-line portal's random port masked. */
async function shows(d: TgtDaemon): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const cmds: string[][] = [
    ['--mode', 'target', '--op', 'show'],
    ['--mode', 'target', '--op', 'show', '--tid', '1'],
    ['--mode', 'target', '--op', 'show', '--tid', '2'],
    ['--mode', 'account', '--op', 'show'],
    ['--mode', 'system', '--op', 'show'],
    ['--mode', 'portal', '--op', 'show'],
  ];
  for (const c of cmds)
    out[c.join(' ')] = (await d.adm(...c)).replace(`127.0.0.1:${d.port},`, '127.0.0.1:PORT,');
  return out;
}

describe('tgtd --state', () => {
  let dir: string;
  let statePath: string;
  let extraPort: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tgt-ts-state-'));
    statePath = join(dir, 'state.json');
    extraPort = 40000 + Math.floor(Math.random() * 20000);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('issue 3: configure, kill -9, restart with --state: every show is identical', async () => {
    const a = await TgtDaemon.start({ args: ['--state', statePath, '-d', '1'] });
    let b: TgtDaemon | undefined;
    try {
      const img = await a.sparseFile('disk.img', 8 << 20);
      // The backing file must outlive the first daemon's temp dir.
      const disk = join(dir, 'disk.img');
      await writeFile(disk, await readFile(img));
      await a.addTarget({
        tid: 1,
        name: T1,
        luns: [
          { lun: 1, path: disk, blocksize: 4096, bsoflags: 'sync' },
          { lun: 3, bstype: 'memory', path: '16M' },
        ],
        addresses: ['192.168.7.0/24', '10.0.0.1'],
        names: [`${IQN}:some-initiator`],
      });
      await a.addTarget({ tid: 2, name: T2, luns: [{ lun: 1, bstype: 'memory', path: '4M' }] });
      const lu = (tid: string, lun: string, params: string): Promise<string> =>
        a.adm('--mode', 'logicalunit', '--op', 'update', '--tid', tid, '--lun', lun, '--params', params);
      await lu('1', '1', 'vendor_id=ACME,product_id=Vault,scsi_sn=SN-42,thin_provisioning=1,rotation_rate=1');
      await lu(
        '1',
        '3',
        'readonly=1,mode_page=8:0:18:0x14:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0',
      );
      await lu('2', '1', 'removable=1,sense_format=1');
      await a.updateTarget(1, 'MaxRecvDataSegmentLength', '65536');
      await a.updateTarget(1, 'HeaderDigest', 'CRC32C');
      await a.updateTarget(1, 'nop_interval', '5');
      await a.updateTarget(1, 'nop_count', '3');
      await a.updateTarget(2, 'RedirectAddress', '192.0.2.9');
      await a.updateTarget(2, 'RedirectPort', '3261');
      await a.updateTarget(2, 'RedirectReason', 'Permanent');
      await a.updateTarget(2, 'state', 'offline');
      await a.addAccount('alice', SECRET_IN, 1);
      await a.addAccount('target-out', SECRET_OUT, 1, true);
      await a.addAccount('disco', SECRET_DISC);
      await a.adm('--mode', 'account', '--op', 'new', '--user', 'spare', '--password', 'spare-pw');
      await a.adm('--mode', 'portal', '--op', 'new', '--param', `portal=127.0.0.1:${extraPort}`);
      const before = await shows(a);
      // What `show` leaves out (vendor_id, mode pages, passwords...) is compared on the snapshot.
      const snapBefore = await fetchSnapshot(`${a.socketPrefix}.0`, true);
      assert.ok(snapBefore);

      assert.equal((await stat(statePath)).mode & 0o777, 0o600, 'the state file holds secrets: 0600');
      a.proc.kill('SIGKILL');
      await a.waitExit();

      b = await TgtDaemon.start({ args: ['--state', statePath, '-d', '1'] });
      assert.deepEqual(await shows(b), before);
      assert.deepEqual(await fetchSnapshot(`${b.socketPrefix}.0`, true), snapBefore);
      // The runtime portal is back, the offline target refuses, CHAP works with the saved secret.
      const s = await Session.login({
        host: '127.0.0.1',
        port: extraPort,
        targetName: T1,
        initiatorName: `${IQN}:some-initiator`,
        auth: { method: 'CHAP', user: 'alice', secret: SECRET_IN },
        timeoutMs: 10_000,
      });
      await closeSession(s);
      const wrong = Session.login({
        host: '127.0.0.1',
        port: extraPort,
        targetName: T1,
        initiatorName: `${IQN}:some-initiator`,
        auth: { method: 'CHAP', user: 'alice', secret: 'not-the-secret' },
        timeoutMs: 10_000,
      });
      await assert.rejects(wrong);

      // Secrets are never shown, nor logged at debug level (item 5).
      for (const text of [...Object.values(before), a.output, b.output]) {
        for (const secret of [SECRET_IN, SECRET_OUT, SECRET_DISC, 'spare-pw'])
          assert.ok(!text.includes(secret));
      }
    } finally {
      await a.cleanup();
      if (b) {
        await b.stopChecked();
        await b.cleanup();
      }
    }
  });

  test('issue 3: a change through tgtadm is saved before tgtadm returns', async () => {
    const d = await TgtDaemon.start({ args: ['--state', statePath] });
    try {
      await d.adm('--mode', 'target', '--op', 'new', '--tid', '7', '-T', `${IQN}:state-seven`);
      assert.match(await readFile(statePath, 'utf8'), /state-seven/);
      await d.adm('--mode', 'target', '--op', 'delete', '--tid', '7');
      assert.doesNotMatch(await readFile(statePath, 'utf8'), /state-seven/);
    } finally {
      await d.stopChecked();
      await d.cleanup();
    }
  });

  test('issue 3: a corrupt or unreadable state file stops tgtd with exit 1 and a clear message', async () => {
    const env = { ...process.env, TGT_IPC_SOCKET: join(dir, 'sock') };
    const tgtd = (state: string) =>
      run(process.execPath, [TGTD_BIN, '-f', '-C', '7', '--iscsi', 'portal=127.0.0.1:0', '--state', state], {
        env,
        cwd: REPO_ROOT,
        timeoutMs: 20_000,
      });
    const corrupt = join(dir, 'corrupt.json');
    await writeFile(corrupt, '{"format":"tgt-ts-state","version":1,"accounts":[');
    let r = await tgtd(corrupt);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tgtd: state file .*corrupt\.json is corrupt/m);

    const aDir = join(dir, 'is-a-directory');
    await mkdir(aDir);
    r = await tgtd(aDir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tgtd: can't read state file .*is-a-directory: EISDIR/m);

    const foreign = join(dir, 'foreign.json');
    await writeFile(foreign, JSON.stringify({ targets: [] }));
    r = await tgtd(foreign);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not a tgt-ts state file/);

    // A saved LUN whose backing file has gone: refuse rather than drop it from the state.
    const missing = join(dir, 'missing.json');
    await writeFile(
      missing,
      JSON.stringify({
        format: 'tgt-ts-state',
        version: 1,
        accounts: [],
        discovery: { incoming: [] },
        portals: {},
        targets: [
          {
            tid: 1,
            name: `${IQN}:gone`,
            lld: 'iscsi',
            state: 'ready',
            params: [],
            acl: { addresses: [], names: [] },
            accounts: { incoming: [] },
            luns: [
              {
                lun: '1',
                deviceType: 'disk',
                path: join(dir, 'no-such.img'),
                bstype: 'rdwr',
                bsopts: '',
                bsoflags: '',
                blockSize: 512,
                params: [],
              },
            ],
          },
        ],
      }),
    );
    r = await tgtd(missing);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /can't restore target 1 .* lun 1 \(backing store .*no-such\.img\): InvalidRequest/,
    );
  });

  test('tgt §2.1: the control socket is 0600 and its directory is not writable by others', async () => {
    const d = await TgtDaemon.start();
    try {
      const sock = await stat(`${d.socketPrefix}.0`);
      assert.ok(sock.isSocket());
      assert.equal(sock.mode & 0o777, 0o600);
      assert.equal((await stat(dirname(d.socketPrefix))).mode & 0o002, 0);
    } finally {
      await d.stopChecked();
      await d.cleanup();
    }
  });

  test('tgt-ts: tgtd refuses a control socket directory writable by everyone (no sticky bit)', async () => {
    const open = join(dir, 'open');
    await mkdir(open);
    const { chmod } = await import('node:fs/promises');
    await chmod(open, 0o777);
    const r = await run(process.execPath, [TGTD_BIN, '-f', '-C', '3', '--iscsi', 'portal=127.0.0.1:0'], {
      env: { ...process.env, TGT_IPC_SOCKET: join(open, 'socket') },
      timeoutMs: 20_000,
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /control socket directory .*open is writable by everyone/);
  });
});

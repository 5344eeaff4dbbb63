import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AdminHost, AdminExit, TgtAdmin, parseSelector } from '../../../../src/mgmt/config/admin.js';
import { parseConfigString } from '../../../../src/mgmt/config/general.js';
import { parseArgs, runTgtAdmin } from '../../../../src/mgmt/tgt-admin.js';
import { REPO_ROOT } from '../../../helpers/daemon.js';

/** A daemon and machine as tgt-admin sees them: show outputs, files, lsof, sg3_utils. */
class FakeHost implements AdminHost {
  output = '';
  errors = '';
  ran: string[][] = [];
  targetShow = '';
  accountShow = 'Account list:\n';
  sysShow = 'System:\n    State: ready\niSNS:\n    iSNS=Off\n';
  files = new Set<string>();
  openedByOthers = new Set<string>();
  busy = new Set<string>();
  failOn: RegExp | undefined;
  programs = new Set(['lsof', 'sg_inq', 'sg_readcap']);
  sgOutput: Record<string, string> = {};

  async tgtadm(argv: readonly string[]): Promise<number> {
    this.ran.push([...argv]);
    return this.failOn?.test(argv.join(' ')) ? 22 : 0;
  }
  async query(argv: readonly string[]): Promise<string> {
    const mode = argv[argv.indexOf('--mode') + 1];
    return mode === 'target' ? this.targetShow : mode === 'account' ? this.accountShow : this.sysShow;
  }
  out(t: string): void {
    this.output += t;
  }
  err(t: string): void {
    this.errors += t;
  }
  async pathExists(p: string): Promise<boolean> {
    return this.files.has(p);
  }
  async isDirectory(): Promise<boolean> {
    return false;
  }
  async deviceBusy(p: string): Promise<boolean> {
    return this.busy.has(p);
  }
  async inPath(c: string): Promise<boolean> {
    return this.programs.has(c);
  }
  async runProgram(c: string, args: readonly string[]): Promise<{ code: number; stdout: string }> {
    if (c === 'lsof') return { code: this.openedByOthers.has(args[0]!) ? 0 : 1, stdout: '' };
    return { code: 0, stdout: this.sgOutput[`${c} ${args.join(' ')}`] ?? '' };
  }
}

const settings = (over: Partial<TgtAdmin['settings']> = {}): TgtAdmin['settings'] => ({
  controlPort: '0',
  pretend: true,
  force: false,
  verbose: false,
  ignoreErrors: false,
  ...over,
});

async function pretendExecute(text: string, host = new FakeHost(), over = {}): Promise<string[]> {
  const admin = new TgtAdmin(host, settings(over));
  await admin.execute(await parseConfigString(text, 't.conf'));
  return host.output.split('\n');
}

/** A `target show` block for a running target. */
function shownTarget(tid: number, name: string, opts: { session?: boolean; acl?: string[] } = {}): string {
  const nexus = opts.session
    ? '        I_T nexus: 3\n            Initiator: iqn.x alias: none\n            Connection: 0\n                IP Address: 127.0.0.1\n'
    : '';
  const acl = (opts.acl ?? ['ALL']).map((a) => `        ${a}\n`).join('');
  return `Target ${tid}: ${name}\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n${nexus}    LUN information:\n        LUN: 0\n            Type: controller\n    Account information:\n    ACL information:\n${acl}`;
}

test('tgt §3.4: line-form LUNs are numbered 1,2,... in sorted path order; block LUN numbers are reserved', async () => {
  const host = new FakeHost();
  for (const f of ['/b', '/a', '/c', '/d']) host.files.add(f);
  const lines = await pretendExecute(
    '<target t>\n<backing-store /b>\nlun 1\n</backing-store>\n<backing-store /c>\n</backing-store>\n<backing-store /a>\n</backing-store>\n</target>\n<target u>\nbacking-store /d\nbacking-store /a\n</target>\n',
    host,
  );
  const luns = lines
    .filter((l) => /--op new --mode logicalunit/.test(l))
    .map((l) => /--tid (\d+) --lun (\d+) -b "([^"]+)"/.exec(l)!.slice(1).join(' '));
  assert.deepEqual(luns, ['1 2 /a', '1 1 /b', '1 3 /c', '2 1 /a', '2 2 /d']);
});

test('tgt §3.4: target-level LUN directives are defaults, block-level ones override; mode pages first', async () => {
  const host = new FakeHost();
  host.files.add('/a');
  const lines = await pretendExecute(
    '<target t>\nvendor_id V1\nwrite-cache off\nparams thin_provisioning=1\n<backing-store /a>\nvendor_id V2\nmode_page 2:0:2:0:0\n</backing-store>\n</target>\n',
    host,
  );
  const start = lines.findIndex((l) => l.includes('--op new --mode logicalunit'));
  assert.deepEqual(lines.slice(start, start + 5), [
    'tgtadm -C 0 --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "/a"     ',
    'tgtadm -C 0 --lld iscsi --op update --mode logicalunit --tid 1 --lun=1 --params mode_page="2:0:2:0:0"',
    'tgtadm -C 0 --lld iscsi --op update --mode logicalunit --tid 1 --lun=1 --params mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0',
    'tgtadm -C 0 --lld iscsi --op update --mode logicalunit --tid 1 --lun=1 --params vendor_id="V2"',
    'tgtadm -C 0 --lld iscsi --op update --mode logicalunit --tid 1 --lun=1 --params "thin_provisioning=1"',
  ]);
});

test('tgt §7 #2 fix: -I ALL only when the target has neither initiator-address nor initiator-name', async () => {
  const lines = await pretendExecute(
    '<target a>\ninitiator-name iqn.x:i\n</target>\n<target b>\n</target>\n<target c>\ninitiator-address 10.0.0.1\n</target>\n',
  );
  const binds = lines.filter((l) => l.includes('--op bind --mode target'));
  assert.deepEqual(binds, [
    'tgtadm -C 0 --lld iscsi --op bind --mode target --tid 1 -Q iqn.x:i',
    'tgtadm -C 0 --lld iscsi --op bind --mode target --tid 2 -I ALL',
    'tgtadm -C 0 --lld iscsi --op bind --mode target --tid 3 -I 10.0.0.1',
  ]);
});

test('tgt-admin -e: running targets are kept, new ones get max tid + 1 (or controller_tid), others are deleted', async () => {
  const host = new FakeHost();
  host.targetShow = shownTarget(3, 'keep') + shownTarget(4, 'gone');
  const lines = await pretendExecute(
    '<target keep>\n</target>\n<target new1>\n</target>\n<target new2>\ncontroller_tid 10\n</target>\n',
    host,
  );
  assert.ok(lines.includes('# Target keep already exists!'));
  assert.ok(lines.includes('tgtadm -C 0 --lld iscsi --op new --mode target --tid 5 -T new1'));
  assert.ok(lines.includes('tgtadm -C 0 --lld iscsi --op new --mode target --tid 10 -T new2'));
  const del = lines.indexOf('# Removing target: gone');
  assert.deepEqual(lines.slice(del, del + 3), [
    '# Removing target: gone',
    'tgtadm -C 0 --mode target --op delete --tid=4',
    '',
  ]);
});

test('tgt-admin: a target with connected initiators is not deleted without -f; with -f: unbind, drop connections, delete', async () => {
  const host = new FakeHost();
  host.targetShow = shownTarget(2, 'busy', { session: true, acl: ['10.0.0.0/8', 'fe80::1', 'iqn.x:name'] });
  const admin = new TgtAdmin(host, settings());
  await admin.delete(parseSelector('busy'));
  assert.equal(host.output, "# Target with tid 2 (busy) is in use, it won't be deleted.\n");

  const forced = new FakeHost();
  forced.targetShow = host.targetShow;
  await new TgtAdmin(forced, settings({ force: true })).delete(parseSelector('tid=2'));
  assert.deepEqual(forced.output.split('\n'), [
    '# Removing target: busy',
    'tgtadm -C 0 --op unbind --mode target --tid 2 -I 10.0.0.0/8',
    'tgtadm -C 0 --op unbind --mode target --tid 2 -I fe80::1',
    'tgtadm -C 0 --op unbind --mode target --tid 2 -Q iqn.x:name',
    'tgtadm -C 0 --op delete --mode conn --tid 2 --sid 3 --cid 0',
    'tgtadm -C 0 --mode target --op delete --force --tid=2',
    '',
    '',
  ]);
});

test('tgt-admin --delete: unknown tid / name are reported as comments', async () => {
  const host = new FakeHost();
  await new TgtAdmin(host, settings()).delete(parseSelector('tid=9'));
  await new TgtAdmin(host, settings()).delete(parseSelector('iqn.none'));
  assert.equal(
    host.output,
    '# Target with tid 9 does not exist!\n# Target with name iqn.none does not exist!\n',
  );
});

test('tgt-admin --update: in-use targets are skipped, others deleted and re-created with the same tid', async () => {
  const conf = await parseConfigString(
    '<target a>\nMaxConnections 2\n</target>\n<target b>\n</target>\n',
    't.conf',
  );
  const host = new FakeHost();
  host.targetShow = shownTarget(1, 'a') + shownTarget(2, 'b', { session: true }) + shownTarget(3, 'old');
  await new TgtAdmin(host, settings()).update(parseSelector('ALL'), conf);
  const lines = host.output.split('\n');
  assert.ok(lines.includes('# Removing target: old'));
  assert.ok(lines.includes('tgtadm -C 0 --lld iscsi --op new --mode target --tid 1 -T a'));
  assert.ok(
    lines.includes(
      'tgtadm -C 0 --lld iscsi --mode target --op update --tid 1 --name MaxConnections --value 2',
    ),
  );
  assert.ok(lines.includes("# Target with tid 2 (b) is in use, it won't be updated."));
  assert.ok(!lines.some((l) => l.includes('-T b')));

  const missing = new FakeHost();
  await assert.rejects(
    new TgtAdmin(missing, settings()).update(parseSelector('tid=4'), conf),
    (e) => e instanceof AdminExit && e.code === 1,
  );
  assert.equal(missing.output, "There is no target with tid 4, can't continue!\n");
});

test('tgt-admin --offline/--ready: state updates by ALL, tid and name', async () => {
  const host = new FakeHost();
  host.targetShow = shownTarget(1, 'a') + shownTarget(2, 'b');
  await new TgtAdmin(host, settings()).setState(parseSelector('ALL'), 'offline');
  await new TgtAdmin(host, settings()).setState(parseSelector('tid=2'), 'ready');
  await new TgtAdmin(host, settings()).setState(parseSelector('b'), 'ready');
  assert.deepEqual(host.output.split('\n'), [
    'tgtadm -C 0 --op update --mode target --tid=1 -n state -v offline',
    'tgtadm -C 0 --op update --mode target --tid=2 -n state -v offline',
    'tgtadm -C 0 --op update --mode target --tid=2 -n state -v ready',
    'tgtadm -C 0 --op update --mode target --tid=2 --name="b" -n state -v ready',
    '',
  ]);
  await assert.rejects(new TgtAdmin(host, settings()).setState(parseSelector('zz'), 'ready'), AdminExit);
});

test('tgt §3.4: devices in use are skipped (O_EXCL EBUSY, lsof) unless -f or allow-in-use yes', async () => {
  const host = new FakeHost();
  for (const f of ['/mounted', '/opened', '/allowed']) host.files.add(f);
  host.busy.add('/mounted');
  host.openedByOthers.add('/opened');
  host.openedByOthers.add('/allowed');
  const lines = await pretendExecute(
    '<target t>\nbacking-store /mounted\nbacking-store /opened\n<backing-store /allowed>\nallow-in-use yes\n</backing-store>\n</target>\n'.replace(
      'backing-store /mounted\nbacking-store /opened\n',
      '<backing-store /mounted>\n</backing-store>\n<backing-store /opened>\n</backing-store>\n',
    ),
    host,
  );
  assert.ok(lines.includes('# Device /mounted is used by the system (mounted, used by swap?).'));
  assert.ok(lines.includes('# Device /opened is used (already tgtd target?).'));
  assert.ok(lines.includes('# Skipping device /opened - it is in use.'));
  assert.ok(lines.some((l) => l.includes('-b "/allowed"')));
  const forced = await pretendExecute('<target t>\nbacking-store /opened\n</target>\n', host, {
    force: true,
  });
  assert.ok(forced.some((l) => l.includes('-b "/opened"')));
});

test('tgt §3.3 direct-store: vendor, product, serial, transfer lengths and geometry come from sg_inq/sg_readcap', async () => {
  const host = new FakeHost();
  host.files.add('/dev/sdx');
  host.sgOutput['sg_inq /dev/sdx'] =
    ' Vendor identification: ACME    \n Product identification: Disk9\n Product revision level: 1.0\n Unit serial number: S123\n';
  host.sgOutput['sg_inq -p 0xb0 /dev/sdx'] =
    '  Optimal transfer length granularity: 8 blocks\n  Maximum transfer length: 0 blocks\n  Optimal transfer length: 256 blocks\n';
  host.sgOutput['sg_readcap -16 /dev/sdx'] =
    '   Logical block length=4096 bytes\n   Logical blocks per physical block exponent=0\n   Lowest aligned logical block address=0\n';
  const lines = await pretendExecute('<target t>\ndirect-store /dev/sdx\nvendor_id MINE\n</target>\n', host);
  const lu = lines.filter((l) => l.includes('--tid 1 --lun'));
  assert.equal(
    lu[0],
    'tgtadm -C 0 --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "/dev/sdx"     --blocksize 4096',
  );
  const params = lu.slice(1).map((l) => /--params (.*)$/.exec(l)![1]);
  assert.deepEqual(params, [
    'vendor_id="MINE"',
    'product_id="Disk9"',
    'product_rev="1.0"',
    'scsi_sn="S123"',
    'lbppbe="0"',
    'la_lba="0"',
    'optimal_xfer_gran="8"',
    'optimal_xfer_len="256"',
  ]);
  host.programs.delete('sg_inq');
  const admin = new TgtAdmin(host, settings());
  await assert.rejects(
    admin.preflight(await parseConfigString('<target t>\ndirect-store /dev/sdx\n</target>\n')),
    AdminExit,
  );
});

test('tgt-admin: a failing tgtadm stops the run with its exit code unless --ignore-errors', async () => {
  const host = new FakeHost();
  host.failOn = /-T b$/;
  const conf = await parseConfigString(
    '<target a>\n</target>\n<target b>\n</target>\n<target c>\n</target>\n',
  );
  await assert.rejects(
    new TgtAdmin(host, settings({ pretend: false })).execute(conf),
    (e) => e instanceof AdminExit && e.code === 22,
  );
  assert.equal(
    host.output,
    'Command:\n\ttgtadm -C 0 --lld iscsi --op new --mode target --tid 2 -T b\nexited with code: 22.\n',
  );
  assert.ok(!host.ran.some((a) => a.includes('c')));

  const lenient = new FakeHost();
  lenient.failOn = /-T b$/;
  await new TgtAdmin(lenient, settings({ pretend: false, ignoreErrors: true })).execute(conf);
  assert.ok(lenient.ran.some((a) => a.at(-1) === 'c'));
  assert.deepEqual(lenient.ran[0], [
    '-C',
    '0',
    '--lld',
    'iscsi',
    '--op',
    'new',
    '--mode',
    'target',
    '--tid',
    '1',
    '-T',
    'a',
  ]);
});

test('tgt-admin: discovery accounts are created once and not bound again when already bound', async () => {
  const host = new FakeHost();
  host.accountShow = 'Account list:\n    disco\n';
  host.sysShow =
    'System:\n    State: ready\nDevice types:\n    disk\n    Account information:\n\n    disco\niSNS:\n    iSNS=Off\n';
  const lines = await pretendExecute(
    'incomingdiscoveryuser disco pass12345678\noutgoingdiscoveryuser out pass12345678\n<target t>\n</target>\n',
    host,
  );
  assert.deepEqual(
    lines.filter((l) => l.includes('--mode account')),
    [
      'tgtadm -C 0 --mode account --op new --user=out --password=pass12345678',
      'tgtadm -C 0 --mode account --op bind --user=out  --outgoing',
    ],
  );
});

test('tgt §3.1 command line: Getopt::Long forms, unique prefixes, errors', () => {
  assert.deepEqual(parseArgs(['-e', '--conf=/x', '-C', '3', '--del', 'ALL']).args, {
    ...parseArgs([]).args,
    execute: true,
    conf: '/x',
    controlPort: '3',
    delete: 'ALL',
  });
  assert.deepEqual(parseArgs(['--d', 'x']).errors, ['Option d is ambiguous (delete, dump)']);
  assert.deepEqual(parseArgs(['--bogus']).errors, ['Unknown option: bogus']);
  assert.deepEqual(parseArgs(['--update']).errors, ['Option update requires an argument']);
});

test('tgt §3.1: help texts and "No action specified."', async () => {
  const out: string[] = [];
  const io = { stdout: (t: string) => out.push(t), stderr: (t: string) => out.push(t), env: {} };
  assert.equal(await runTgtAdmin([], io), 0);
  assert.match(out.join(''), /^Usage:\ntgt-admin \[OPTION\]\.\.\./);
  out.length = 0;
  assert.equal(await runTgtAdmin(['--delete', 'help'], io), 0);
  assert.match(out.join(''), /--delete tid=4\t      - delete target 4 \(target with tid 4\)/);
  out.length = 0;
  assert.equal(await runTgtAdmin(['-f'], io), 0);
  assert.equal(out.join(''), 'No action specified.\n');
  out.length = 0;
  assert.equal(await runTgtAdmin(['-e', '-c', '/nonexistent/targets.conf'], io), 2);
  assert.equal(out.join(''), 'Config file /nonexistent/targets.conf not found. Exiting...\n');
});

/** tgt-admin's output with each LUN's --params run sorted (Perl lists a block's options in hash order). */
function normalize(text: string): string {
  const out: string[] = [];
  let run: string[] = [];
  const flush = (): void => {
    run.sort(
      (a, b) =>
        Number(!a.includes('params mode_page')) - Number(!b.includes('params mode_page')) ||
        (a < b ? -1 : a > b ? 1 : 0),
    );
    out.push(...run);
    run = [];
  };
  for (const line of text.split('\n')) {
    if (
      /--op update --mode logicalunit .*--lun=\d+ --params/.test(line) ||
      line.startsWith('# Write cache is enabled')
    )
      run.push(line);
    else {
      flush();
      out.push(line);
    }
  }
  flush();
  return out.join('\n');
}

const FIXTURE = join(REPO_ROOT, 'test', 'unit', 'mgmt', 'config', 'fixtures', 'every-directive');
const toolsPresent = ['lsof', 'sg_inq'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);

test(
  "tgt §3.4: -p -e on a config using every directive prints Debian tgt-admin 1.0.85's commands (fixture)",
  { skip: toolsPresent ? false : 'lsof or sg_inq missing: the output would carry their absence comments' },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tgt-admin-p-'));
    const cwd = process.cwd();
    try {
      await cp(FIXTURE, dir, { recursive: true });
      for (const f of ['disk1.img', 'disk2.img', 'disk3.img', 'disk4.img', 'dev1.img']) {
        await writeFile(join(dir, f), '');
        await truncate(join(dir, f), 1 << 20);
      }
      process.chdir(dir);
      let stdout = '';
      const io = {
        stdout: (t: string) => (stdout += t),
        stderr: () => {},
        env: { ...process.env, TGT_IPC_SOCKET: join(dir, 'none') },
      };
      assert.equal(await runTgtAdmin(['-p', '-e', '-c', 'targets.conf'], io), 0);
      const debian = await readFile(join(FIXTURE, 'debian-tgt-admin-p.txt'), 'utf8');
      assert.equal(normalize(stdout), normalize(debian));
    } finally {
      process.chdir(cwd);
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test('tgt §3.2 control-port: used for every command when -C is absent; a different -C is an error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tgt-admin-port-'));
  try {
    const conf = join(dir, 't.conf');
    await writeFile(conf, 'control-port 7\n<target t>\n</target>\n');
    let stdout = '';
    const io = {
      stdout: (t: string) => (stdout += t),
      stderr: () => {},
      env: { ...process.env, TGT_IPC_SOCKET: join(dir, 'none') },
    };
    assert.equal(await runTgtAdmin(['-p', '-e', '-c', conf], io), 0);
    const commands = stdout.split('\n').filter((l) => l.startsWith('tgtadm'));
    assert.ok(commands.length > 0);
    assert.ok(
      commands.every((l) => l.startsWith('tgtadm -C 7 ')),
      stdout,
    );
    stdout = '';
    assert.equal(await runTgtAdmin(['-p', '-e', '-C', '3', '-c', conf], io), 1);
    assert.match(
      stdout,
      /\nMultiple control-port definitions are not allowed!\nCheck your config file for errors\.\n$/,
    );
    assert.doesNotMatch(stdout, /^tgtadm/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeDaemon, sendRequest } from '../../../src/mgmt/client.js';
import { type MgmtSystem } from '../../../src/mgmt/dispatch.js';
import { ControlServerError, ensurePrivateDirectory, startControlServer } from '../../../src/mgmt/server.js';
import { MgmtMode, MgmtOp, defaultRequest, encodeRequest } from '../../../src/mgmt/wire.js';
import { AdminError } from '../../../src/scsi/admin-error.js';
import { TargetSystem } from '../../../src/scsi/system.js';
import { ourTgtadm, startTestDaemon } from './harness.js';

const DEBIAN_TGTADM = '/usr/sbin/tgtadm';

/** Run a command asynchronously (the daemon under test lives in this process). */
function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { env });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('latin1').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('latin1').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Send raw bytes, collect whatever comes back until the server closes. */
function rawExchange(path: string, bytes: Buffer, end = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(path, () => {
      sock.write(bytes);
      if (end) sock.end();
    });
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('close', () => resolve(Buffer.concat(chunks)));
    sock.on('error', reject);
  });
}

test('TargetSystem satisfies the management contract (MgmtSystem)', () => {
  const system: MgmtSystem = new TargetSystem();
  assert.equal(system.targets.size, 0);
});

test('tgt §2.1: garbage on the control socket never crashes the server', async () => {
  const d = await startTestDaemon();
  try {
    const path = d.server.path;
    // short header, then EOF: closed without an answer
    assert.equal((await rawExchange(path, Buffer.alloc(10))).length, 0);
    // len smaller than the header itself: dropped
    const small = encodeRequest(defaultRequest(MgmtMode.Target, MgmtOp.Show));
    small.writeUInt32LE(4, 72);
    assert.equal((await rawExchange(path, small)).length, 0);
    // payload over 8 KiB: dropped (tgt's MAX_MGT_BUFSIZE)
    const big = encodeRequest(defaultRequest(MgmtMode.Target, MgmtOp.Show), 'x'.repeat(9000));
    assert.equal((await rawExchange(path, big)).length, 0);
    // header announcing a payload that never comes, then EOF: closed
    const hdr = encodeRequest(defaultRequest(MgmtMode.Target, MgmtOp.Show), 'targetname=x').subarray(0, 125);
    assert.equal((await rawExchange(path, hdr)).length, 0);
    // unknown mode and op: answered "invalid request"
    assert.equal((await sendRequest(path, defaultRequest(99, MgmtOp.Show))).err, AdminError.InvalidRequest);
    assert.equal(
      (await sendRequest(path, defaultRequest(MgmtMode.Target, 42))).err,
      AdminError.InvalidRequest,
    );
    // unknown driver name
    const req = defaultRequest(MgmtMode.Target, MgmtOp.Show);
    req.lld = 'bogus';
    assert.equal((await sendRequest(path, req)).err, AdminError.NoDriver);
    // and the server still works
    const ok = await sendRequest(path, defaultRequest(MgmtMode.Lld, MgmtOp.Show));
    assert.deepEqual(ok, { err: 0, text: 'LLDs:\n    iscsi: ready\n' });
  } finally {
    await d.stop();
  }
});

test('tgt §2.1: a request split across many writes is reassembled', async () => {
  const d = await startTestDaemon();
  try {
    const bytes = encodeRequest(defaultRequest(MgmtMode.Account, MgmtOp.New), 'user=bob,password=secret');
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const sock = net.createConnection(d.server.path, async () => {
        for (let i = 0; i < bytes.length; i += 7) {
          sock.write(bytes.subarray(i, i + 7));
          await new Promise((r) => setTimeout(r, 1));
        }
      });
      const chunks: Buffer[] = [];
      sock.on('data', (c) => chunks.push(c));
      sock.on('close', () => resolve(Buffer.concat(chunks)));
      sock.on('error', reject);
    });
    assert.equal(answer.readUInt32LE(0), 0);
    assert.equal(d.system.accounts.get('bob'), 'secret');
  } finally {
    await d.stop();
  }
});

test('tgt §2.1: the socket is owner-only (mode 0600) since peer credentials are not checked', async () => {
  const d = await startTestDaemon();
  try {
    assert.equal((await stat(d.server.path)).mode & 0o777, 0o600);
  } finally {
    await d.stop();
  }
});

test('issue 3 item 5: the default socket directory is made 0700, even when it already exists as 0755', async () => {
  const root = await mkdtemp(join(tmpdir(), 'sockdir-'));
  try {
    const fresh = join(root, 'run', 'tgtd');
    await ensurePrivateDirectory(fresh);
    assert.equal((await stat(fresh)).mode & 0o777, 0o700);
    const old = join(root, 'old');
    await mkdir(old);
    await chmod(old, 0o755); // as tgt (or an older tgt-ts) left it
    await ensurePrivateDirectory(old);
    assert.equal((await stat(old)).mode & 0o777, 0o700);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('tgt §2.1: a second daemon on the same control port refuses to start', async () => {
  const d = await startTestDaemon();
  try {
    await assert.rejects(
      startControlServer(new TargetSystem(), { controlPort: 0, env: d.env, onSystemDelete: () => {} }),
      (e: Error) =>
        e instanceof ControlServerError && /another tgtd is using .*socket\.0\.lock/.test(e.message),
    );
    // the first one is unharmed
    assert.equal((await sendRequest(d.server.path, defaultRequest(MgmtMode.Lld, MgmtOp.Show))).err, 0);
  } finally {
    await d.stop();
  }
});

test('tgt §2.1: a stale lock file (dead pid, or empty as tgt leaves it) is taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tgt-lock-'));
  const env = { TGT_IPC_SOCKET: join(dir, 'socket') };
  try {
    for (const content of ['2147483646\n', '']) {
      await writeFile(join(dir, 'socket.3.lock'), content);
      const s = await startControlServer(new TargetSystem(), {
        controlPort: 3,
        env,
        onSystemDelete: () => {},
      });
      assert.equal(s.path, join(dir, 'socket.3'));
      await s.close();
      assert.equal(existsSync(join(dir, 'socket.3.lock')), false);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tgt §2.1: after close the socket path stays and refuses connections (tgtadm waits for ECONNREFUSED)', async () => {
  const d = await startTestDaemon();
  await d.server.close();
  try {
    assert.equal(existsSync(d.server.path), true);
    assert.equal(await probeDaemon(d.server.path), 'refused');
  } finally {
    await d.stop();
  }
});

test('tgt §1.1: system delete is refused while targets exist, then answered before the daemon exits', async () => {
  const d = await startTestDaemon();
  try {
    assert.equal(d.system.createTarget('iscsi', 1, 'iqn.2024-01.test:t1'), AdminError.Success);
    const del = defaultRequest(MgmtMode.System, MgmtOp.Delete);
    assert.equal((await sendRequest(d.server.path, del)).err, AdminError.InvalidRequest);
    assert.equal(d.deleted(), false);
    assert.equal(d.system.deleteTarget(1, false), AdminError.Success);
    assert.deepEqual(await sendRequest(d.server.path, del), { err: 0, text: '' });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(d.deleted(), true);
  } finally {
    await d.stop();
  }
});

test(
  'tgt §2.1: Debian tgtadm `system delete` returns once our daemon is gone',
  { skip: !existsSync(DEBIAN_TGTADM) },
  async () => {
    const d = await startTestDaemon();
    try {
      const child = new Promise<number | null>((resolve) => {
        const p = spawn(DEBIAN_TGTADM, ['--mode', 'system', '--op', 'delete'], {
          env: d.env,
          stdio: 'ignore',
        });
        p.on('exit', (code) => resolve(code));
      });
      // emulate tgtd: exit (close the server) shortly after the callback fires
      while (!d.deleted()) await new Promise((r) => setTimeout(r, 10));
      await d.server.close();
      assert.equal(await child, 0);
    } finally {
      await d.stop();
    }
  },
);

/**
 * Differential test: the same command sequence through Debian's tgtadm and through ours, each
 * against its own fresh daemon; stdout, stderr and exit status must match.
 */
test(
  'tgt §2.2: our tgtadm and Debian tgtadm print the same against our daemon',
  { skip: !existsSync(DEBIAN_TGTADM) },
  async () => {
    const a = await startTestDaemon();
    const b = await startTestDaemon();
    const disk = join(a.dir, 'disk.img');
    await writeFile(disk, '');
    await truncate(disk, 64 * 1024 * 1024);
    const ours = ourTgtadm();
    const script: string[][] = [
      ['--mode', 'target', '--op', 'show'],
      ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.2024-01.test:t1'],
      ['--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.2024-01.test:t2'],
      ['--mode', 'target', '--op', 'new', '--tid', '2', '-T', 'bad_name'],
      ['--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '1', '-b', disk, '--bsoflags', 'sync'],
      ['--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '1', '-b', disk],
      [
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
      ['--mode', 'logicalunit', '--op', 'update', '--tid', '1', '--lun', '1', '--params', 'bogus=1'],
      ['--mode', 'logicalunit', '--op', 'delete', '--tid', '1', '--lun', '0'],
      ['--mode', 'account', '--op', 'new', '--user', 'alice', '--password', 'alicepass'],
      ['--mode', 'account', '--op', 'new', '--user', 'bob', '--password', 'bob,pass'],
      ['--mode', 'account', '--op', 'bind', '--tid', '1', '--user', 'alice'],
      ['--mode', 'account', '--op', 'bind', '--tid', '1', '--user', 'bob', '--outgoing'],
      ['--mode', 'account', '--op', 'bind', '--tid', '1', '--user', 'alice', '--outgoing'],
      ['--mode', 'account', '--op', 'bind', '--user', 'bob'],
      ['--mode', 'account', '--op', 'show'],
      ['--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL'],
      ['--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL'],
      ['--mode', 'target', '--op', 'bind', '--tid', '1', '-Q', 'iqn.1994-05.test:ini'],
      ['--mode', 'target', '--op', 'unbind', '--tid', '1', '-I', '10.0.0.1'],
      ['--mode', 'target', '--op', 'update', '--tid', '1', '--name', 'nop_interval', '--value', '5'],
      ['--mode', 'target', '--op', 'update', '--tid', '1', '--name', 'state', '--value', 'bogus'],
      ['--mode', 'target', '--op', 'show'],
      ['--mode', 'target', '--op', 'show', '--tid', '1'],
      ['--mode', 'target', '--op', 'show', '--tid', '9'],
      ['--mode', 'target', '--op', 'stat', '--tid', '1'],
      ['--mode', 'system', '--op', 'show'],
      ['--mode', 'system', '--op', 'update', '--name', 'debug', '--value', 'on'],
      ['--mode', 'system', '--op', 'delete'],
      ['--mode', 'portal', '--op', 'new', '--param', 'portal=127.0.0.1:3270'],
      ['--mode', 'portal', '--op', 'new', '--param', 'portal=nonsense'],
      ['--mode', 'portal', '--op', 'show'],
      ['--mode', 'lld', '--op', 'show'],
      ['--lld', 'iser', '--mode', 'target', '--op', 'show'],
      ['--mode', 'connection', '--op', 'show', '--tid', '1'],
      ['--mode', 'session', '--op', 'stat', '--tid', '1', '--sid', '5'],
      ['--mode', 'target', '--op', 'delete', '--tid', '1'],
      ['--mode', 'account', '--op', 'delete', '--user', 'alice'],
    ];
    try {
      for (const args of script) {
        const ref = await run(DEBIAN_TGTADM, args, a.env);
        const got = await run(ours.command, [...ours.args, ...args], b.env);
        const what = args.join(' ');
        assert.equal(got.stderr, ref.stderr, `stderr of: ${what}`);
        assert.equal(got.stdout, ref.stdout, `stdout of: ${what}`);
        assert.equal(got.status, ref.status, `status of: ${what}`);
      }
    } finally {
      await a.stop();
      await b.stop();
    }
  },
);

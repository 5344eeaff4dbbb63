/**
 * Issue 3 "Done when" (tgt-behaviour.md §2): one scripted sequence of tgtadm commands prints
 * exactly what it prints against the reference tgt 1.0.85 (Debian's /usr/sbin/tgtd): same
 * stdout, stderr and exit code at every step, with Debian's tgtadm and with ours.
 *
 * Three daemons run side by side, each with its own control socket and a loopback portal:
 *   ref  - Debian's tgtd, driven by Debian's tgtadm (the expected output);
 *   debA - our tgtd, driven by Debian's tgtadm;
 *   ourB - our tgtd, driven by our bin/tgtadm.
 * Each step mutates state, so each tool gets its own daemon; all three use the same backing
 * file paths (sparse files in one temp dir, never read or written) so `show` output can match.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../../src/initiator/index.js';
import { DEBIAN_TGTADM, delay, run, type RunResult, TgtDaemon } from '../helpers/daemon.js';
import { closeSession, IQN } from './util.js';

const REFERENCE_TGTD = '/usr/sbin/tgtd';
const missing = [REFERENCE_TGTD, DEBIAN_TGTADM].filter((p) => !existsSync(p));
const skip = missing.length ? `${missing.join(', ')} not installed (Debian package tgt 1.0.85)` : false;

const T1 = `${IQN}:cmp-one`;
const T2 = `${IQN}:cmp-two`;
const T3 = `${IQN}:cmp-live`;
const INITIATOR = `${IQN}:cmp-initiator`;

/** What a user sees from one tgtadm run. */
interface Seen {
  code: number | null;
  stdout: string;
  stderr: string;
}

function seen(r: RunResult): Seen {
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** A free loopback TCP port (bound then released; tgtd binds it right after). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Debian's tgtd on loopback with a private control socket (`<dir>/ref-socket.0`). */
class ReferenceTgtd {
  output = '';
  private exited = false;
  private readonly exit: Promise<void>;

  private constructor(
    readonly proc: ChildProcess,
    readonly socketPrefix: string,
    readonly port: number,
  ) {
    proc.stdout?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    this.exit = new Promise((resolve) =>
      proc.on('exit', () => {
        this.exited = true;
        resolve();
      }),
    );
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, TGT_IPC_SOCKET: this.socketPrefix };
  }

  /** Start it and wait until `system show` answers. */
  static async start(dir: string): Promise<ReferenceTgtd> {
    const port = await freePort();
    const socketPrefix = join(dir, 'ref-socket');
    const proc = spawn(REFERENCE_TGTD, ['-f', '-C', '0', '--iscsi', `portal=127.0.0.1:${port}`], {
      env: { ...process.env, TGT_IPC_SOCKET: socketPrefix },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const ref = new ReferenceTgtd(proc, socketPrefix, port);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (ref.exited) throw new Error(`reference tgtd exited during startup: ${ref.output}`);
      if (existsSync(`${socketPrefix}.0`)) {
        const r = await ref.tgtadm(['--mode', 'system', '--op', 'show']);
        if (r.code === 0) return ref;
      }
      await delay(50);
    }
    await ref.kill();
    throw new Error(`reference tgtd not ready after 10 s: ${ref.output}`);
  }

  /** Debian's tgtadm against the reference daemon. */
  tgtadm(args: readonly string[]): Promise<RunResult> {
    return run(DEBIAN_TGTADM, args, { env: this.env });
  }

  /** SIGKILL this process only (it keeps no state worth a clean shutdown) and wait for it. */
  async kill(): Promise<void> {
    if (this.exited) return;
    this.proc.kill('SIGKILL');
    await Promise.race([this.exit, delay(5000)]);
  }
}

/** One scripted tgtadm call (arguments after the program name). */
interface Step {
  args: string[];
}

const lld = ['--lld', 'iscsi'];
const target = (op: string, ...rest: string[]): Step => ({
  args: [...lld, '--mode', 'target', '--op', op, ...rest],
});
const lu = (op: string, ...rest: string[]): Step => ({
  args: [...lld, '--mode', 'logicalunit', '--op', op, ...rest],
});
const account = (op: string, ...rest: string[]): Step => ({
  args: [...lld, '--mode', 'account', '--op', op, ...rest],
});
const params = (tid: string, lun: string, value: string): Step =>
  lu('update', '--tid', tid, '--lun', lun, '--params', value);
const key = (name: string, value: string): Step =>
  target('update', '--tid', '1', '--name', name, '--value', value);

/** The scripted sequence (no live session), run in order on each daemon. */
function script(files: { one: string; two: string; three: string; live: string }): Step[] {
  return [
    // Targets: creation, duplicate tid and name, '_' rejected by tgt's name check (§7 #13).
    target('new', '--tid', '1', '-T', T1),
    target('new', '--tid', '1', '-T', T2),
    target('new', '--tid', '2', '-T', T1),
    target('new', '--tid', '4', '-T', `${IQN}:bad_name`),
    target('new', '--tid', '2', '-T', T2),
    target('new', '-T', `${IQN}:no-tid`),
    // Logical units: default store, explicit rdwr + block size, duplicates, missing target/file.
    lu('new', '--tid', '1', '--lun', '1', '-b', files.one),
    lu('new', '--tid', '1', '--lun', '2', '-b', files.two, '--bstype', 'rdwr', '--blocksize', '4096'),
    lu('new', '--tid', '1', '--lun', '1', '-b', files.one),
    lu('new', '--tid', '9', '--lun', '1', '-b', files.one),
    lu('new', '--tid', '2', '--lun', '1', '-b', join(files.one, '..', 'no-such-file.img')),
    lu('new', '--tid', '2', '--lun', '1', '-b', files.three, '--bstype', 'rdwr'),
    // LU parameters (README.lu_configuration), then an unknown key.
    params('1', '1', 'vendor_id=ACME,product_id=CMPDISK,product_rev=0042'),
    params('1', '1', 'scsi_id=cmp-scsi-id,scsi_sn=CMPSN0001'),
    params('1', '1', 'removable=1'),
    params('1', '1', 'readonly=1'),
    params('1', '1', 'online=0'),
    params('1', '1', 'online=1'),
    params('1', '1', 'sense_format=1'),
    params('1', '2', 'thin_provisioning=1'),
    params('1', '1', 'no_such_key=5'),
    params('1', '7', 'removable=1'),
    // ACL rules: ALL, IPv4, CIDR, IPv6, initiator name; duplicates; unbind of missing rules.
    target('bind', '--tid', '1', '-I', 'ALL'),
    target('bind', '--tid', '1', '-I', 'ALL'),
    target('bind', '--tid', '1', '-I', '192.168.10.20'),
    target('bind', '--tid', '1', '-I', '10.0.0.0/8'),
    target('bind', '--tid', '1', '-I', 'fe80::1'),
    target('bind', '--tid', '1', '-Q', INITIATOR),
    target('bind', '--tid', '1', '-Q', INITIATOR),
    target('bind', '--tid', '9', '-I', 'ALL'),
    target('unbind', '--tid', '1', '-I', '172.16.0.1'),
    target('unbind', '--tid', '1', '-I', '192.168.10.20'),
    target('unbind', '--tid', '1', '-Q', `${IQN}:nobody`),
    // Accounts: in and out, duplicates, a second outgoing, unknown users.
    account('new', '--user', 'cmp-in', '--password', 'cmp-in-secret'),
    account('new', '--user', 'cmp-in', '--password', 'cmp-in-secret'),
    account('new', '--user', 'cmp-out', '--password', 'cmp-out-secret'),
    account('new', '--user', 'cmp-out2', '--password', 'cmp-out2-secret'),
    account('bind', '--tid', '1', '--user', 'cmp-in'),
    account('bind', '--tid', '1', '--user', 'cmp-in'),
    account('bind', '--tid', '1', '--user', 'cmp-out', '--outgoing'),
    account('bind', '--tid', '1', '--user', 'cmp-out2', '--outgoing'),
    account('bind', '--tid', '1', '--user', 'nobody'),
    account('show'),
    account('unbind', '--tid', '1', '--user', 'cmp-out2', '--outgoing'),
    account('unbind', '--tid', '1', '--user', 'cmp-out', '--outgoing'),
    account('delete', '--user', 'nobody'),
    account('delete', '--user', 'cmp-out2'),
    account('show'),
    // iSCSI keys: valid values, out of range, unknown key.
    key('MaxRecvDataSegmentLength', '65536'),
    key('MaxRecvDataSegmentLength', '1'),
    key('HeaderDigest', 'CRC32C'),
    key('MaxBurstLength', '262144'),
    key('FirstBurstLength', '99999999'),
    key('NoSuchKey', '1'),
    // Shows.
    target('show'),
    target('show', '--tid', '1'),
    target('show', '--tid', '9'),
    // Deletes and errors.
    lu('delete', '--tid', '1', '--lun', '2'),
    lu('delete', '--tid', '1', '--lun', '0'),
    lu('delete', '--tid', '1', '--lun', '7'),
    target('delete', '--tid', '2'),
    target('delete', '--tid', '2'),
    target('delete'),
    { args: [...lld, '--mode', 'bogus', '--op', 'show'] },
    { args: [...lld, '--mode', 'target', '--op', 'bogus'] },
    target('show'),
    // Left out on purpose (known legitimate differences):
    // - `system show`: the list of backing stores differs (tgt lists sheepdog, bsg, sg, aio...).
    // - `portal show`: each daemon listens on its own port.
    // - `session show`: tgt 1.0.85 answers "invalid request" (it routes show to update); we list
    //   the sessions (docs/errors.md, tgt-behaviour.md §7 #13).
    // - `target bind -I ADDR -Q NAME` in one call: tgt binds the rule "ADDR,initiator-name=NAME"
    //   (string search bug); we bind ADDR and NAME (docs/errors.md).
    // - `target bind/unbind --host N` (tgt: success; we: unsupported) and
    //   `system update --name debug --value onion` (tgt: prefix match; we: invalid request).
    // The target the live session logs in to (ACL ALL, no accounts).
    target('new', '--tid', '3', '-T', T3),
    lu('new', '--tid', '3', '--lun', '1', '-b', files.live),
    target('bind', '--tid', '3', '-I', 'ALL'),
  ];
}

async function sparseFile(dir: string, name: string, size: number): Promise<string> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
  return path;
}

describe('tgtadm against tgt 1.0.85 and against tgt-ts', { skip }, () => {
  let dir: string;
  let ref: ReferenceTgtd | undefined;
  let debA: TgtDaemon | undefined;
  let ourB: TgtDaemon | undefined;
  const sessions: Session[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tgt-ts-vs-tgt-'));
    [ref, debA, ourB] = await Promise.all([ReferenceTgtd.start(dir), TgtDaemon.start(), TgtDaemon.start()]);
  });

  after(async () => {
    for (const s of sessions) await closeSession(s);
    await ref?.kill();
    await debA?.cleanup();
    await ourB?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** Run one step with the three tools; return a description of every mismatch. */
  async function compare(step: Step, label: string): Promise<string[]> {
    const expected = seen(await ref!.tgtadm(step.args));
    const results: [string, Seen][] = [
      ['Debian tgtadm -> tgt-ts', seen(await debA!.debianTgtadm(step.args))],
      ['our tgtadm -> tgt-ts', seen(await ourB!.tgtadm(step.args))],
    ];
    const problems: string[] = [];
    for (const [who, got] of results) {
      try {
        assert.deepEqual(got, expected);
      } catch {
        problems.push(
          `${label} tgtadm ${step.args.join(' ')}\n  ${who}: ${JSON.stringify(got)}\n  tgt 1.0.85: ${JSON.stringify(expected)}`,
        );
      }
    }
    return problems;
  }

  test('tgt §2: a scripted tgtadm sequence prints the same stdout, stderr and exit code as tgt 1.0.85', async () => {
    const files = {
      one: await sparseFile(dir, 'one.img', 64 * 1024 * 1024),
      two: await sparseFile(dir, 'two.img', 32 * 1024 * 1024),
      three: await sparseFile(dir, 'three.img', 16 * 1024 * 1024),
      live: await sparseFile(dir, 'live.img', 8 * 1024 * 1024),
    };
    const problems: string[] = [];
    const steps = script(files);
    for (const [i, step] of steps.entries()) problems.push(...(await compare(step, `step ${i + 1}`)));
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  test('tgt §2.6: `target show` with a live session matches tgt 1.0.85 as it is', async () => {
    // The same InitiatorName on every daemon, so the Initiator lines compare as they are.
    for (const port of [ref!.port, debA!.port, ourB!.port]) {
      const options = {
        host: '127.0.0.1',
        port,
        targetName: T3,
        initiatorName: INITIATOR,
        timeoutMs: 10_000,
      };
      sessions.push(await Session.login(options));
    }
    const problems: string[] = [];
    for (const step of [
      // No normalisation is needed: "I_T nexus: N" is the session's TSIH, which tgt and tgt-ts
      // both hand out from 1 on a fresh daemon, and the IP address is 127.0.0.1 everywhere.
      target('show'),
      target('show', '--tid', '3'),
      { args: [...lld, '--mode', 'connection', '--op', 'show', '--tid', '3'] },
      // tgt refuses to delete a target with a session unless forced (errors.md TargetActive).
      target('delete', '--tid', '3'),
    ]) {
      problems.push(...(await compare(step, 'live')));
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });
});

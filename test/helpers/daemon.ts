/**
 * Start and stop a real tgtd for integration tests: a private temp dir holding the control
 * socket (TGT_IPC_SOCKET=<dir>/socket, -C 0), an ephemeral loopback portal, and helpers that
 * configure it with our bin/tgtadm (or Debian's /usr/sbin/tgtadm).
 *
 *   const d = await TgtDaemon.start();
 *   await d.addTarget({ tid: 1, name: IQN, luns: [{ lun: 1, bstype: 'memory', path: '64M' }] });
 *   ... Session.login({ host: d.host, port: d.port, targetName: IQN }) ...
 *   await d.stopChecked();   // SIGTERM, exit code 0, no uncaught exception logged
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTgtadm } from '../../src/mgmt/tgtadm-cli.js';
import { tgtdNodeFlags } from '../../src/bin/tgtd-options.cjs';

/** The repository root, found from this file whether it runs from test/ (tsx) or dist/test/. */
export const REPO_ROOT: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

export const TGTD_BIN = join(REPO_ROOT, 'bin', 'tgtd');
export const TGTADM_BIN = join(REPO_ROOT, 'bin', 'tgtadm');
/** Debian's tgtadm (package tgt), used by the compatibility tests when installed. */
export const DEBIAN_TGTADM = '/usr/sbin/tgtadm';

function findRepoRoot(from: string): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'bin', 'tgtd')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`repository root not found above ${from}`);
    dir = up;
  }
}

/** Result of running a command to completion. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a program to completion, collecting its output (never rejects on a non-zero exit). */
export function run(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env ?? process.env,
      cwd: options.cwd ?? REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A LUN to create with `logicalunit new`. */
export interface LunSpec {
  lun: number;
  /** Backing store path (rdwr: a file; memory: a size such as "64M"). */
  path: string;
  bstype?: string;
  blocksize?: number;
  bsoflags?: string;
  /** `--bsopts` (e.g. the fault-injection filter's "fault=...;delay=..."). */
  bsopts?: string;
}

/** A target to create with `target new` + LUNs + ACL bindings. */
export interface TargetSpec {
  tid: number;
  name: string;
  luns?: readonly LunSpec[];
  /** initiator-address rules to bind (default ["ALL"]; [] binds none). */
  addresses?: readonly string[];
  /** initiator-name rules to bind. */
  names?: readonly string[];
}

export interface StartOptions {
  /** Extra tgtd arguments (after -f -C 0 --iscsi portal=127.0.0.1:0). */
  args?: readonly string[];
  /** Milliseconds to wait for the control socket and portal (default 20 s). */
  readyTimeoutMs?: number;
}

/** A running tgtd with its own control socket and portal. */
export class TgtDaemon {
  readonly host = '127.0.0.1';
  port = 0;
  /** Everything tgtd wrote to stderr (and stdout) so far. */
  output = '';
  exitCode: number | null | undefined = undefined;
  exitSignal: NodeJS.Signals | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    /** Private temp dir: the control socket lives here; tests may put backing files here too. */
    readonly dir: string,
    readonly proc: ChildProcess,
  ) {
    proc.stdout?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        resolve();
      });
    });
  }

  /** TGT_IPC_SOCKET prefix; tgtd listens on `<prefix>.0`. */
  get socketPrefix(): string {
    return join(this.dir, 'socket');
  }

  /** Environment for tgtadm (ours or Debian's) talking to this daemon. */
  get env(): NodeJS.ProcessEnv {
    return { ...process.env, TGT_IPC_SOCKET: this.socketPrefix };
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  /** Start tgtd in the foreground and wait until `tgtadm --mode portal --op show` answers. */
  static async start(options: StartOptions = {}): Promise<TgtDaemon> {
    const dir = await mkdtemp(join(tmpdir(), 'tgt-ts-it-'));
    const env = { ...process.env, TGT_IPC_SOCKET: join(dir, 'socket') };
    const proc = spawn(
      process.execPath,
      [
        ...tgtdNodeFlags(TGTD_BIN),
        TGTD_BIN,
        '-f',
        '-C',
        '0',
        '--iscsi',
        'portal=127.0.0.1:0',
        ...(options.args ?? []),
      ],
      { env, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const d = new TgtDaemon(dir, proc);
    try {
      d.port = await d.waitReady(options.readyTimeoutMs ?? 20_000);
    } catch (e) {
      await d.kill();
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    return d;
  }

  private async waitReady(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.alive) {
        throw new Error(`tgtd exited during startup (code ${this.exitCode}): ${this.output}`);
      }
      if (existsSync(`${this.socketPrefix}.0`)) {
        const r = await this.tgtadm(['--mode', 'portal', '--op', 'show']);
        last = r.stdout + r.stderr;
        const m = /^Portal: 127\.0\.0\.1:(\d+),1$/m.exec(r.stdout);
        if (r.code === 0 && m) return Number(m[1]);
      }
      await delay(50);
    }
    throw new Error(
      `tgtd not ready after ${timeoutMs} ms; last tgtadm output: ${last}; tgtd: ${this.output}`,
    );
  }

  /** Run our bin/tgtadm against this daemon (never rejects on a non-zero exit). */
  tgtadm(args: readonly string[]): Promise<RunResult> {
    return run(process.execPath, [TGTADM_BIN, ...args], { env: this.env });
  }

  /** Run Debian's /usr/sbin/tgtadm against this daemon (-C 0 is its default too). */
  debianTgtadm(args: readonly string[]): Promise<RunResult> {
    return run(DEBIAN_TGTADM, args, { env: this.env });
  }

  /** Run our tgtadm and fail with its output unless it exits 0; returns stdout. */
  async adm(...args: string[]): Promise<string> {
    const r = await this.tgtadm(args);
    if (r.code !== 0) {
      throw new Error(
        `tgtadm ${args.join(' ')} -> exit ${r.code}: ${r.stderr}${r.stdout}\ntgtd: ${this.output}`,
      );
    }
    return r.stdout;
  }

  /** Create a target, its LUNs and its ACL rules. */
  async addTarget(spec: TargetSpec): Promise<void> {
    const tid = String(spec.tid);
    await this.adm('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', tid, '-T', spec.name);
    for (const lun of spec.luns ?? []) await this.addLu(spec.tid, lun);
    for (const address of spec.addresses ?? ['ALL']) {
      await this.adm('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', tid, '-I', address);
    }
    for (const name of spec.names ?? []) {
      await this.adm('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', tid, '-Q', name);
    }
  }

  /** `logicalunit new` on target `tid` (through bin/tgtadm, or in this process: see admInProcess). */
  async addLu(tid: number, lun: LunSpec, inProcess = false): Promise<void> {
    const args = ['--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', String(tid)];
    args.push('--lun', String(lun.lun), '-b', lun.path);
    if (lun.bstype) args.push('--bstype', lun.bstype);
    if (lun.blocksize) args.push('--blocksize', String(lun.blocksize));
    if (lun.bsoflags) args.push('--bsoflags', lun.bsoflags);
    if (lun.bsopts) args.push('--bsopts', lun.bsopts);
    await (inProcess ? this.admInProcess(...args) : this.adm(...args));
  }

  /**
   * Our tgtadm's code run in this process against this daemon's control socket: the same
   * request as bin/tgtadm without a Node start-up per call (scale tests make thousands). Returns
   * stdout; a non-zero exit throws with stderr.
   */
  async admInProcess(...argv: string[]): Promise<string> {
    let out = '';
    let err = '';
    const args = argv.includes('--lld') ? argv : ['--lld', 'iscsi', ...argv];
    const code = await runTgtadm(args, {
      env: this.env,
      stdout: (t) => (out += t),
      stderr: (t) => (err += t),
    });
    if (code !== 0) throw new Error(`tgtadm ${argv.join(' ')} -> exit ${code}: ${err}`);
    return out;
  }

  /** `logicalunit update --tid <tid> --lun <lun> --params <params>`. */
  async updateLu(tid: number, lun: number, params: string): Promise<void> {
    await this.adm(
      ...['--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'update', '--tid', String(tid)],
      ...['--lun', String(lun), '--params', params],
    );
  }

  /** `target update --tid <tid> --name <name> --value <value>` (iSCSI keys, nop_interval, state...). */
  async updateTarget(tid: number, name: string, value: string): Promise<void> {
    await this.adm(
      '--lld',
      'iscsi',
      '--mode',
      'target',
      '--op',
      'update',
      '--tid',
      String(tid),
      '--name',
      name,
      '--value',
      value,
    );
  }

  /** Create a global account and bind it to a target (or, without tid, to discovery). */
  async addAccount(user: string, password: string, tid?: number, outgoing = false): Promise<void> {
    await this.adm(
      '--lld',
      'iscsi',
      '--mode',
      'account',
      '--op',
      'new',
      '--user',
      user,
      '--password',
      password,
    );
    const bind = ['--lld', 'iscsi', '--mode', 'account', '--op', 'bind', '--user', user];
    if (tid !== undefined) bind.push('--tid', String(tid));
    if (outgoing) bind.push('--outgoing');
    await this.adm(...bind);
  }

  /** A sparse file of `size` bytes in the daemon's temp dir (for rdwr LUNs). */
  async sparseFile(name: string, size: number): Promise<string> {
    const path = join(this.dir, name);
    const fh = await open(path, 'w');
    try {
      await fh.truncate(size);
    } finally {
      await fh.close();
    }
    return path;
  }

  /** Resolves when tgtd has exited (or rejects after timeoutMs). */
  async waitExit(timeoutMs = 15_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`tgtd still running after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, then wait for the exit; returns the exit code (null if killed by a signal). */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (this.alive) this.proc.kill('SIGTERM');
    try {
      await this.waitExit(timeoutMs);
    } catch (e) {
      await this.kill();
      throw e;
    }
    return this.exitCode ?? null;
  }

  /**
   * Stop with SIGTERM and throw (with tgtd's output) unless it exits 0 and never logged an
   * uncaught exception or unhandled rejection. Keeps the temp dir (call cleanup()).
   */
  async stopChecked(): Promise<void> {
    const code = await this.stop();
    const problems: string[] = [];
    if (code !== 0) problems.push(`exit code ${code} (signal ${this.exitSignal})`);
    if (/uncaught exception|unhandled rejection/.test(this.output)) problems.push('logged an internal error');
    if (problems.length) throw new Error(`tgtd: ${problems.join(', ')}\n--- tgtd output ---\n${this.output}`);
  }

  /** SIGKILL (for teardown after a failure). */
  async kill(): Promise<void> {
    if (!this.alive) return;
    this.proc.kill('SIGKILL');
    await this.waitExit(5000).catch(() => {});
  }

  /** Kill if still running and remove the temp dir. */
  async cleanup(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Wait `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

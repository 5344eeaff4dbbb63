/**
 * scripts/tgtd.service run step by step as systemd would (tgt-behaviour.md §3.5): Type=forking
 * readiness (the first tgtd process exits once the socket and portals are up, so the very first
 * ExecStartPost tgtadm succeeds), PIDFile, the offline -> configure -> ready start, reload, and
 * the stop sequence that ends the daemon.
 */
import { tgtdNodeFlags } from '../../src/bin/tgtd-options.cjs';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, run, type RunResult } from '../helpers/daemon.js';
import { Session } from '../../src/initiator/index.js';
import { closeSession, IQN } from './util.js';

const UNIT = join(REPO_ROOT, 'scripts', 'tgtd.service');
const BINARIES: Record<string, string> = {
  '/usr/sbin/tgtd': join(REPO_ROOT, 'bin', 'tgtd'),
  '/usr/sbin/tgtadm': join(REPO_ROOT, 'bin', 'tgtadm'),
  '/usr/sbin/tgt-admin': join(REPO_ROOT, 'bin', 'tgt-admin'),
};

/** The unit's directives, in order (repeated keys kept). */
function parseUnit(text: string): Array<[string, string]> {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('['))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('scripts/tgtd.service', () => {
  let dir: string;
  let unit: Array<[string, string]>;
  let vars: Record<string, string>;
  let env: NodeJS.ProcessEnv;
  let pid = 0;
  let port = 0;

  /** Run one Exec line: systemd's $VAR/${VAR} expansion, our binaries for /usr/sbin/*. */
  const exec = (line: string): Promise<RunResult> => {
    const command = line.replace(/^-/, '').replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a, b) => vars[a ?? b] ?? '');
    const [program, ...args] = command.split(/\s+/).filter((w) => w !== '');
    const bin = BINARIES[program!];
    assert.ok(bin, `unexpected program ${program}`);
    // As installed, bin/tgtd starts node with the flags on its #! line.
    const flags = program === '/usr/sbin/tgtd' ? tgtdNodeFlags(bin) : [];
    return run(process.execPath, [...flags, bin, ...args], { env, timeoutMs: 60_000 });
  };
  const values = (key: string): string[] => unit.filter(([k]) => k === key).map(([, v]) => v);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tgt-ts-svc-'));
    unit = parseUnit(await readFile(UNIT, 'utf8'));
    port = 40000 + Math.floor(Math.random() * 20000);
    const pidFile = join(dir, 'tgtd.pid');
    unit = unit.map(([k, v]) => [k, v.replaceAll('/run/tgtd.pid', pidFile)]);
    vars = {
      TGTD_CONFIG: join(dir, 'targets.conf'),
      TGTD_OPTS: `--iscsi portal=127.0.0.1:${port}`,
    };
    env = { ...process.env, TGT_IPC_SOCKET: join(dir, 'socket') };
    await writeFile(join(dir, 'disk.img'), Buffer.alloc(1 << 20));
    await writeFile(
      vars.TGTD_CONFIG!,
      `<target ${IQN}:svc-a>\n    backing-store ${join(dir, 'disk.img')}\n    initiator-address ALL\n</target>\n`,
    );
  });

  after(async () => {
    if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  test('tgt §3.5: Type=forking with PIDFile; offline -> tgt-admin -e -> ready after start', () => {
    assert.deepEqual(values('Type'), ['forking']);
    assert.equal(values('PIDFile').length, 1);
    assert.match(values('ExecStart')[0]!, new RegExp(`-p ${values('PIDFile')[0]}`));
    const post = values('ExecStartPost');
    assert.equal(post.length, 3);
    assert.match(post[0]!, /State -v offline$/);
    assert.match(post[1]!, /tgt-admin -e -c/);
    assert.match(post[2]!, /State -v ready$/);
  });

  test('systemd start: the daemon is ready (socket and portal up) when ExecStart returns', async () => {
    const start = await exec(values('ExecStart')[0]!);
    assert.equal(start.code, 0, start.stderr);
    pid = Number((await readFile(join(dir, 'tgtd.pid'), 'utf8')).trim());
    assert.ok(isAlive(pid), 'PIDFile names the running daemon');
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    assert.ok(
      cmdline.includes('--initial-old-space-size=64'),
      `the daemonized tgtd keeps bin/tgtd's heap flag: ${cmdline.join(' ')}`,
    );
    for (const line of values('ExecStartPost')) {
      const r = await exec(line);
      assert.equal(r.code, 0, `${line}: ${r.stderr}`);
    }
    const s = await Session.login({ host: '127.0.0.1', port, targetName: `${IQN}:svc-a`, timeoutMs: 10_000 });
    await closeSession(s);
  });

  test('systemd reload: tgt-admin --update ALL applies the changed targets.conf', async () => {
    await writeFile(
      vars.TGTD_CONFIG!,
      (await readFile(vars.TGTD_CONFIG!, 'utf8')) +
        `<target ${IQN}:svc-b>\n    initiator-address ALL\n</target>\n`,
    );
    const r = await exec(values('ExecReload')[0]!);
    assert.equal(r.code, 0, r.stderr);
    const show = await exec('/usr/sbin/tgtadm --mode target --op show');
    assert.match(show.stdout, /svc-a/);
    assert.match(show.stdout, /svc-b/);
  });

  test('systemd stop: the ExecStop sequence deletes everything and tgtd exits', async () => {
    for (const line of values('ExecStop')) {
      const r = await exec(line);
      assert.equal(r.code, 0, `${line}: ${r.stderr}`);
    }
    const deadline = Date.now() + 10_000;
    while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(isAlive(pid), false, 'tgtd has exited');
  });
});

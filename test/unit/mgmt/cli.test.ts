import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strtoull, strToInt } from '../../../src/mgmt/cstr.js';
import { TGTADM_USAGE, planTgtadm, runTgtadm } from '../../../src/mgmt/tgtadm-cli.js';
import { MgmtMode, MgmtOp } from '../../../src/mgmt/wire.js';
import { ourTgtadm, startTestDaemon } from './harness.js';

const TRY = "Try `tgtadm --help' for more information.\n";

/** Expected (exit status, stderr) for tgtadm command lines, observed with Debian's tgtadm 1.0.85. */
const CLIENT_CHECKS: Array<[string[], number, string]> = [
  [[], 22, 'tgtadm: specify the operation type\n'],
  [['--op', 'show'], 22, 'tgtadm: specify the mode\n'],
  [['--mode', 'foo', '--op', 'show'], 1, 'tgtadm: unknown mode: foo\n'],
  [['--mode', 'target', '--op', 'foo'], 1, 'tgtadm: unknown operation: foo\n'],
  [['--op', 'foo', '--mode', 'bar'], 1, 'tgtadm: unknown operation: foo\n'],
  [['--mode', ''], 1, 'tgtadm: unknown mode: \n'],
  [['--mode', 'system', '--op', 'new'], 22, 'tgtadm: operation new not supported in system mode\n'],
  [
    ['--mode', 'system', '--op', 'update', '--name', 'debug'],
    22,
    "tgtadm: update operation requires 'name' and 'value' options\n",
  ],
  [
    ['-m', 'sys', '-o', 'update', '-n', 'a', '-v', 'b', '-t', '1'],
    22,
    "tgtadm: system mode: option '-t' is not allowed/supported\n",
  ],
  [['--mode', 'target', '--op', 'new'], 22, "tgtadm: 'tid' option is necessary\n"],
  [['--mode', 'target', '--op', 'new', '--tid', '0'], 22, "tgtadm: 'tid' cannot be 0\n"],
  [
    ['--mode', 'target', '--op', 'new', '--tid', '1'],
    22,
    'tgtadm: creating new target requires a name, use --targetname\n',
  ],
  [
    ['--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'x', '--lun', '1'],
    22,
    "tgtadm: target mode: option '-l' is not allowed/supported\n",
  ],
  [
    ['--mode', 'target', '--op', 'bind', '--tid', '1'],
    22,
    'tgtadm: bind operation requires initiator-address, initiator-nameor bus\n',
  ],
  [
    ['--mode', 'target', '--op', 'start', '--tid', '1'],
    22,
    'tgtadm: operation start not supported in target mode\n',
  ],
  [
    ['--mode', 'account', '--op', 'new', '--user', 'bob'],
    22,
    "tgtadm: 'user' and 'password' options are required\n",
  ],
  [['--mode', 'account', '--op', 'bind', '--tid', '1'], 22, "tgtadm: 'user' option is necessary\n"],
  [['--mode', 'account', '--op', 'update'], 22, 'tgtadm: operation update not supported in account mode\n'],
  [['--mode', 'logicalunit', '--op', 'new', '--tid', '0', '--lun', '1'], 22, "tgtadm: 'tid' must not be 0\n"],
  [['--mode', 'logicalunit', '--op', 'new', '--tid', '1'], 22, "tgtadm: 'lun' option is necessary\n"],
  [
    ['--mode', 'lu', '--op', 'new', '--tid', '1', '--lun', '1', '-Y', 'changer'],
    22,
    "tgtadm: 'backing-store' option is necessary\n",
  ],
  [
    ['--mode', 'lu', '--op', 'new', '--tid', '1', '--lun', '1', '-Y', 'floppy'],
    22,
    'tgtadm: unknown target type: floppy\n',
  ],
  [
    ['--mode', 'lu', '--op', 'update', '--tid', '1', '--lun', '1', '-b', '/x'],
    22,
    "tgtadm: option '-b' not supported in logicalunit mode\n",
  ],
  [
    ['--mode', 'lu', '--op', 'stat', '--tid', '1', '--lun', '1', '--sid', '2'],
    22,
    "tgtadm: logicalunit mode: option '-s' is not allowed/supported\n",
  ],
  [['--mode', 'portal', '--op', 'new'], 22, 'tgtadm: you must specify --param portal=<portal>\n'],
  [
    ['--mode', 'portal', '--op', 'show', '--tid', '1'],
    22,
    "tgtadm: option '-t' not supported in portal mode\n",
  ],
  [['--mode', 'lld', '--op', 'new'], 22, 'tgtadm: option 0 not supported in lld mode\n'],
  // getopt_long diagnostics (glibc wording)
  [['--bogus=3'], 22, `tgtadm: unrecognized option '--bogus=3'\n${TRY}`],
  [['-z'], 22, `tgtadm: invalid option -- 'z'\n${TRY}`],
  [['--mode'], 22, `tgtadm: option '--mode' requires an argument\n${TRY}`],
  [['-m'], 22, `tgtadm: option requires an argument -- 'm'\n${TRY}`],
  [['--t', '1'], 22, `tgtadm: option '--t' is ambiguous; possibilities: '--tid' '--targetname'\n${TRY}`],
  [['--forc=1'], 22, `tgtadm: option '--force' doesn't allow an argument\n${TRY}`],
  [['--mode', 'target', '--op', 'show', 'extra'], 22, `tgtadm: unrecognized option 'extra'\n${TRY}`],
  [['--', '--mode', 'target'], 22, `tgtadm: unrecognized option '--mode'\n${TRY}`],
  // number parsing: strtoull base 0 + tgt's range checks
  [['--mode', 'target', '--op', 'show', '--tid', '-1'], 22, `-t argument value '-1' invalid\n${TRY}`],
  [
    ['--mode', 'target', '--op', 'show', '--tid', '2147483648'],
    22,
    `-t argument value '2147483648' out of range\n${TRY}`,
  ],
  [['--mode', 'target', '--op', 'show', '--tid', ''], 22, `-t argument value '' invalid\n${TRY}`],
  [
    ['--mode', 'connection', '--op', 'stat', '--cid', '-5'],
    22,
    `-c argument value '-5' out of range\n${TRY}`,
  ],
  [['-C', '32768', '--mode', 'target', '--op', 'show'], 22, `-C argument value '32768' out of range\n${TRY}`],
  [
    ['--mode', 'lu', '--op', 'new', '--tid', '1', '--lun', '18446744073709551615'],
    22,
    `-l argument value '18446744073709551615' invalid\n${TRY}`,
  ],
];

for (const [args, code, stderr] of CLIENT_CHECKS) {
  test(`tgt §2.3 client check: tgtadm ${args.join(' ') || '(no arguments)'} -> ${code}`, () => {
    assert.deepEqual(planTgtadm(args), { kind: 'exit', code, stdout: '', stderr });
  });
}

test('tgt §2.2: --help prints the usage on stdout and exits 0, even after other options', () => {
  assert.deepEqual(planTgtadm(['--mode', 'target', '-h', '--mode', 'bogus']), {
    kind: 'exit',
    code: 0,
    stdout: TGTADM_USAGE,
    stderr: '',
  });
  // an earlier bad mode wins: options are processed in order
  assert.deepEqual(planTgtadm(['--mode', 'foo', '-h']), {
    kind: 'exit',
    code: 1,
    stdout: '',
    stderr: 'tgtadm: unknown mode: foo\n',
  });
});

test('tgt §2.2: long-option prefixes, --opt=value, and short clusters are accepted', () => {
  const plan = planTgtadm(['--mod=target', '-oshow', '-dt0x10']);
  assert.equal(plan.kind, 'request');
  if (plan.kind !== 'request') return;
  assert.equal(plan.req.mode, MgmtMode.Target);
  assert.equal(plan.req.op, MgmtOp.Show);
  assert.equal(plan.req.tid, 16);
  assert.equal(plan.debug, true);
});

test('tgt §2.2: -F and -O swallow an argument (tgt declares them with ":"), --force/--outgoing do not', () => {
  const a = planTgtadm(['--mode', 'target', '--op', 'delete', '--tid', '1', '-F', 'x']);
  assert.equal(a.kind === 'request' && a.req.force, 1);
  const b = planTgtadm(['--mode', 'target', '--op', 'delete', '--tid', '1', '-F']);
  assert.equal(b.kind === 'exit' && b.stderr, `tgtadm: option requires an argument -- 'F'\n${TRY}`);
});

test('tgt §2.1: --params goes to portalOps only when --mode portal came first', () => {
  const portal = planTgtadm(['--mode', 'portal', '--op', 'new', '-P', 'portal=1.2.3.4:3260']);
  assert.equal(portal.kind === 'request' && portal.payload, 'portalOps portal=1.2.3.4:3260,');
  const late = planTgtadm(['--op', 'new', '-P', 'portal=1.2.3.4:3260', '--mode', 'portal']);
  assert.equal(late.kind === 'exit' && late.stderr, 'tgtadm: you must specify --param portal=<portal>\n');
});

test('tgt §2.1: update with --name but no --value sends "name=(null)" like glibc printf', () => {
  const p = planTgtadm(['--mode', 'session', '--op', 'show', '--name', 'foo']);
  assert.equal(p.kind === 'request' && p.payload, 'foo=(null)');
});

test('tgt util.h str_to_int: strtoull base 0 semantics', () => {
  assert.deepEqual(strtoull(' +0x1fz'), { value: 31n, consumed: 6 });
  assert.deepEqual(strtoull('010'), { value: 8n, consumed: 3 });
  assert.deepEqual(strtoull('08'), { value: 0n, consumed: 1 });
  assert.deepEqual(strtoull('0x'), { value: 0n, consumed: 1 });
  assert.deepEqual(strtoull('-2'), { value: 2n ** 64n - 2n, consumed: 2 });
  assert.deepEqual(strtoull('x1'), { value: 0n, consumed: 0 });
  assert.deepEqual(strToInt('99999999999999999999', 'uint64'), { ok: false, reason: 'invalid' });
  assert.deepEqual(strToInt('7x', 'int32', 0n), { ok: true, value: 7n });
  assert.deepEqual(strToInt('-5', 'int32', 0n), { ok: false, reason: 'range' });
  assert.deepEqual(strToInt('-5', 'uint64'), { ok: true, value: 2n ** 64n - 5n });
});

function runChild(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const cmd = ourTgtadm();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd.command, [...cmd.args, ...args], { env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('tgt §2.1: no daemon -> "failed to send request hdr..." and exit 107 (bin/tgtadm process)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tgt-cli-'));
  try {
    const r = await runChild(['--mode', 'target', '--op', 'show'], {
      ...process.env,
      TGT_IPC_SOCKET: join(dir, 'none'),
    });
    assert.equal(r.status, 107);
    assert.equal(
      r.stderr,
      'tgtadm: failed to send request hdr to tgt daemon, Transport endpoint is not connected\n',
    );
    assert.equal(r.stdout, '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tgt §2.1: daemon errors print "tgtadm: <message>" and exit 22; text is printed verbatim', async () => {
  const d = await startTestDaemon();
  try {
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t), env: d.env };
    assert.equal(await runTgtadm(['--mode', 'target', '--op', 'show', '--tid', '4'], io), 22);
    assert.deepEqual(err, ["tgtadm: can't find the target\n"]);
    assert.equal(await runTgtadm(['--mode', 'lld', '--op', 'show'], io), 0);
    assert.deepEqual(out, ['LLDs:\n    iscsi: ready\n']);
  } finally {
    await d.stop();
  }
});

test('tgt §2.1: -C N selects <prefix>.N', async () => {
  const d = await startTestDaemon();
  try {
    const io = { stdout: () => {}, stderr: () => {}, env: d.env };
    assert.equal(await runTgtadm(['-C', '0', '--mode', 'lld', '--op', 'show'], io), 0);
    assert.equal(await runTgtadm(['-C', '1', '--mode', 'lld', '--op', 'show'], io), 107);
  } finally {
    await d.stop();
  }
});

test('tgt §2.1: system delete waits until the daemon has exited', async () => {
  const d = await startTestDaemon();
  try {
    const io = { stdout: () => {}, stderr: () => {}, env: d.env };
    let closedAt = 0;
    const closer = (async () => {
      while (!d.deleted()) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 250));
      closedAt = Date.now();
      await d.server.close();
    })();
    assert.equal(await runTgtadm(['--mode', 'system', '--op', 'delete'], io), 0);
    assert.ok(closedAt > 0 && Date.now() >= closedAt, 'tgtadm returned before the daemon closed');
    await closer;
  } finally {
    await d.stop();
  }
});

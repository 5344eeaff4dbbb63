#!/usr/bin/env node
// libiscsi conformance: starts our tgtd on an ephemeral loopback port with a private control
// socket, configures a plain 1 GiB disk LUN with our tgtadm, runs ../shared/conformance/libiscsi-suite
// (iscsi-test-cu -t ALL, scored pass/skip/fail) and compares with the committed expectations
// test/conformance/expected.json: any failure, or any test that passed there and does not pass now,
// fails the run. `--update` rewrites the expectations from this run.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, ftruncateSync, closeSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const suite = process.env.LIBISCSI_SUITE ?? resolve(root, '../shared/conformance/libiscsi-suite');
const expected = resolve(root, 'test/conformance/expected.json');
const update = process.argv.includes('--update');
const tests = process.env.CONFORMANCE_TESTS ?? 'ALL';

if (spawnSync('which', ['iscsi-test-cu']).status !== 0) {
  console.error('conformance: iscsi-test-cu not found (apt-get install libiscsi-bin)');
  process.exit(1);
}
if (!existsSync(suite)) {
  console.error(`conformance: ${suite} not found (set LIBISCSI_SUITE)`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'tgt-ts-conf-'));
const env = { ...process.env, TGT_IPC_SOCKET: join(work, 'socket') };
const disk = join(work, 'disk.img');
const fd = openSync(disk, 'w');
ftruncateSync(fd, 1024 * 1024 * 1024);
closeSync(fd);

const tgtd = spawn(process.execPath, [resolve(root, 'bin/tgtd'), '-f', '-C', '0', '--iscsi', 'portal=127.0.0.1:0'], {
  env,
  stdio: ['ignore', 'ignore', 'pipe'],
});
let daemonLog = '';
tgtd.stderr.on('data', (d) => (daemonLog += d));

/**
 * A regression is a test that passed in the expectations and does not pass now, or any failure
 * the expectations do not already record (a test failing now that was skipped or absent).
 */
function compare(result, expectedResult) {
  const was = expectedResult.tests ?? {};
  const now = result.tests ?? {};
  const problems = [];
  for (const [name, r] of Object.entries(now)) {
    const before = was[name]?.status;
    if (before === 'pass' && r.status !== 'pass') problems.push(`${name}: was pass, now ${r.status} ${r.why}`);
    else if (r.status === 'fail' && before !== 'fail') problems.push(`${name}: new failure ${r.why}`);
  }
  for (const [name, r] of Object.entries(was)) {
    if (r.status === 'pass' && !(name in now)) problems.push(`${name}: was pass, now missing`);
  }
  const gained = Object.entries(now).filter(([n, r]) => r.status === 'pass' && was[n]?.status !== 'pass');
  for (const [name] of gained) console.log(`conformance: newly passing: ${name} (run with --update to record)`);
  for (const p of problems) console.error(`conformance: REGRESSION ${p}`);
  return problems.length ? 1 : 0;
}

function tgtadm(...args) {
  return spawnSync(process.execPath, [resolve(root, 'bin/tgtadm'), ...args], { env, encoding: 'utf8' });
}

async function waitForDaemon() {
  for (let i = 0; i < 100; i++) {
    const r = tgtadm('--mode', 'portal', '--op', 'show');
    if (r.status === 0) return r.stdout;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error('tgtd did not come up:\n' + daemonLog);
}

let code = 1;
try {
  const portals = await waitForDaemon();
  const m = /Portal: ([^,\n]+),/.exec(portals);
  if (!m) throw new Error('no portal in: ' + portals);
  const iqn = 'iqn.2026-11.io.tgt-ts:conformance';
  for (const args of [
    ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', iqn],
    ['--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '1', '-b', disk],
    ['--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL'],
  ]) {
    const r = tgtadm(...args);
    if (r.status !== 0) throw new Error(`tgtadm ${args.join(' ')}: ${r.stderr}`);
  }
  const url = `iscsi://${m[1]}/${iqn}/1`;
  const json = join(work, 'result.json');
  const args = [suite, '--tests', tests, '--json', json, '--log', join(root, 'conformance.log'), url];
  console.log(`conformance: ${args.slice(1).join(' ')}`);
  spawnSync('python3', args, { stdio: 'inherit' });
  if (!existsSync(json)) throw new Error('the suite wrote no results');
  const result = JSON.parse(readFileSync(json, 'utf8'));
  if (update) {
    writeFileSync(expected, JSON.stringify(result, null, 1) + '\n');
    console.log(`conformance: expectations written to ${expected}`);
    code = 0;
  } else {
    code = compare(result, existsSync(expected) ? JSON.parse(readFileSync(expected, 'utf8')) : { tests: {} });
  }
} catch (e) {
  console.error(`conformance: ${e.message}`);
} finally {
  tgtd.kill('SIGTERM');
  await new Promise((ok) => {
    const t = setTimeout(ok, 3000);
    tgtd.on('exit', () => {
      clearTimeout(t);
      ok();
    });
  });
  if (tgtd.exitCode === null) {
    console.error('conformance: tgtd did not stop on SIGTERM');
    tgtd.kill('SIGKILL');
    code = code || 1;
  } else if (tgtd.exitCode !== 0) {
    console.error(`conformance: tgtd exited with ${tgtd.exitCode}\n${daemonLog.slice(-4000)}`);
    code = code || 1;
  }
  rmSync(work, { recursive: true, force: true });
}
process.exit(code);

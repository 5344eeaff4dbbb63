#!/usr/bin/env node
// libiscsi conformance matrix (issue 4 item 8). Starts our tgtd on an ephemeral loopback port with
// a private control socket, creates one target per LU configuration with our tgtadm, runs
// ../shared/conformance/libiscsi-suite (iscsi-test-cu, scored pass/skip/fail) on each, and
// compares every configuration with its committed expectations test/conformance/<name>.json:
// any failure the expectations do not record, or any test that passed there and does not pass
// now, fails the run. `--update` rewrites the expectations of the configurations that ran.
//
// Environment: CONFORMANCE_CONFIGS=plain,thin (subset of configurations), CONFORMANCE_TESTS=ALL.Unmap
// (override every configuration's test selection; --update is refused then), LIBISCSI_SUITE.
// Logs: ./conformance-<name>.log per configuration, ./conformance.log for the last one run.
import { spawn, spawnSync } from 'node:child_process';
import {
  mkdtempSync,
  openSync,
  ftruncateSync,
  closeSync,
  readFileSync,
  writeFileSync,
  existsSync,
  rmSync,
  copyFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const suite = process.env.LIBISCSI_SUITE ?? resolve(root, '../shared/conformance/libiscsi-suite');
const expectDir = resolve(root, 'test/conformance');
const update = process.argv.includes('--update');
const testsOverride = process.env.CONFORMANCE_TESTS;

/**
 * The matrix. Each configuration is one target with a 1 GiB sparse rdwr disk at LUN 1 and the
 * given `logicalunit update --params`; `tests` is iscsi-test-cu's -t selection, restricted where
 * only a few suites depend on the configuration (keeps the whole matrix near two minutes).
 */
const CONFIGS = [
  { name: 'plain', tests: 'ALL', params: {} },
  { name: 'thin', tests: 'ALL', params: { thin_provisioning: '1' } },
  {
    // A second session to the same thin LU (MultipathIO), with 4 KiB physical blocks (LBPPB 8)
    // so that the tests needing LBPPB > 1 run. Only those suites: a session kept open through
    // the whole run collects every unit attention the other one causes, which the remaining
    // suites (written for a fresh second login) do not expect; and libiscsi 1.19's
    // GetLBAStatus.UnmapSingle assumes LBPPB 1 (the thin configuration runs it).
    name: 'multipath',
    tests: [
      'ALL.MultipathIO',
      'ALL.Unmap',
      'ALL.WriteSame10',
      'ALL.WriteSame16',
      'ALL.CompareAndWrite',
      'ALL.Inquiry',
      'ALL.ReadCapacity16',
    ].join(','),
    params: { thin_provisioning: '1', lbppbe: '3' },
    multipath: true,
  },
  {
    // Each PreventAllow test in its own iscsi-test-cu process: libiscsi 1.19's ITNexusLoss and
    // Logout tests replace the shared session with one made by iscsi_context_login, which (unlike
    // the suite's own) does not swallow unit attentions when it reconnects. ColdReset, which
    // reconnects, then sees the POWER ON unit attention every new session gets (RFC 7143 11.5.1:
    // a cold reset is a power-on event) and fails, depending only on what ran before it.
    name: 'removable',
    tests: [
      ...['Simple', 'Eject', 'ITNexusLoss', 'Logout', 'WarmReset', 'ColdReset', 'LUNReset', '2ITNexuses'].map(
        (t) => `ALL.PreventAllow.${t}`,
      ),
      'ALL.StartStopUnit,ALL.TestUnitReady,ALL.ReadCapacity10,ALL.ReadCapacity16',
    ],
    params: { removable: '1' },
  },
  // thin as well, so that UNMAP and WRITE SAME UNMAP exist and must answer WRITE PROTECTED
  { name: 'readonly', tests: 'ALL.ReadOnly', params: { readonly: '1', thin_provisioning: '1' } },
  { name: 'sanitize', tests: 'ALL.Sanitize', params: { thin_provisioning: '1' }, sanitize: true },
];

const selected = (process.env.CONFORMANCE_CONFIGS ?? CONFIGS.map((c) => c.name).join(','))
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const n of selected)
  if (!CONFIGS.some((c) => c.name === n)) {
    console.error(`conformance: unknown configuration ${n} (have ${CONFIGS.map((c) => c.name).join(', ')})`);
    process.exit(2);
  }
if (update && testsOverride) {
  console.error('conformance: --update with CONFORMANCE_TESTS would record a partial run; refusing');
  process.exit(2);
}

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

const tgtd = spawn(
  process.execPath,
  [resolve(root, 'bin/tgtd'), '-f', '-C', '0', '--iscsi', 'portal=127.0.0.1:0'],
  {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  },
);
let daemonLog = '';
tgtd.stderr.on('data', (d) => (daemonLog = (daemonLog + d).slice(-64 * 1024)));

/**
 * A regression is a test that passed in the expectations and does not pass now, or any failure
 * the expectations do not already record (a test failing now that was skipped or absent).
 */
function compare(name, result, expectedResult, partial) {
  const was = expectedResult.tests ?? {};
  const now = result.tests ?? {};
  const problems = [];
  for (const [test, r] of Object.entries(now)) {
    const before = was[test]?.status;
    if (before === 'pass' && r.status !== 'pass')
      problems.push(`${test}: was pass, now ${r.status} ${r.why}`);
    else if (r.status === 'fail' && before !== 'fail') problems.push(`${test}: new failure ${r.why}`);
  }
  if (!partial)
    for (const [test, r] of Object.entries(was))
      if (r.status === 'pass' && !(test in now)) problems.push(`${test}: was pass, now missing`);
  const gained = Object.entries(now).filter(([t, r]) => r.status === 'pass' && was[t]?.status !== 'pass');
  for (const [test] of gained)
    console.log(`conformance[${name}]: newly passing: ${test} (run with --update to record)`);
  for (const p of problems) console.error(`conformance[${name}]: REGRESSION ${p}`);
  return problems.length;
}

function tgtadm(...args) {
  return spawnSync(process.execPath, [resolve(root, 'bin/tgtadm'), ...args], { env, encoding: 'utf8' });
}

function mustTgtadm(...args) {
  const r = tgtadm(...args);
  if (r.status !== 0) throw new Error(`tgtadm ${args.join(' ')}: ${r.stderr}`);
}

async function waitForDaemon() {
  for (let i = 0; i < 100; i++) {
    const r = tgtadm('--mode', 'portal', '--op', 'show');
    if (r.status === 0) return r.stdout;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error('tgtd did not come up:\n' + daemonLog);
}

/** Create target `tid` for a configuration: a fresh 1 GiB sparse disk at LUN 1 with its params. */
function createTarget(tid, config) {
  const disk = join(work, `${config.name}.img`);
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, 1024 * 1024 * 1024);
  closeSync(fd);
  const iqn = `iqn.2026-11.io.tgt-ts:conformance-${config.name}`;
  const t = ['--lld', 'iscsi', '--tid', String(tid)];
  mustTgtadm(...t, '--mode', 'target', '--op', 'new', '-T', iqn);
  mustTgtadm(...t, '--mode', 'logicalunit', '--op', 'new', '--lun', '1', '-b', disk);
  const params = Object.entries(config.params).map(([k, v]) => `${k}=${v}`);
  if (params.length > 0)
    mustTgtadm(...t, '--mode', 'logicalunit', '--op', 'update', '--lun', '1', '--params', params.join(','));
  mustTgtadm(...t, '--mode', 'target', '--op', 'bind', '-I', 'ALL');
  return iqn;
}

/** Results of the configurations run so far, by name. */
const results = new Map();

/**
 * The matrix as issue 4 judges it: a test counts when it passes in at least one configuration
 * and fails in none. Prints the tests that fail somewhere and those that pass nowhere.
 */
function summarize() {
  const all = new Map(); // test -> { pass: [], fail: [] }
  for (const [name, result] of results)
    for (const [test, r] of Object.entries(result.tests ?? {})) {
      const e = all.get(test) ?? { pass: [], fail: [] };
      if (r.status === 'pass') e.pass.push(name);
      if (r.status === 'fail') e.fail.push(name);
      all.set(test, e);
    }
  const good = [...all.values()].filter((e) => e.pass.length > 0 && e.fail.length === 0).length;
  console.log(
    `conformance: matrix: ${good} of ${all.size} tests pass in some configuration and fail in none`,
  );
  for (const [test, e] of [...all].sort())
    if (e.fail.length > 0) console.log(`conformance: matrix: fails in ${e.fail.join(', ')}: ${test}`);
  for (const [test, e] of [...all].sort())
    if (e.pass.length === 0 && e.fail.length === 0)
      console.log(`conformance: matrix: passes nowhere: ${test}`);
}

/** Run the suite on one configuration; returns the number of regressions. */
function runConfig(portal, tid, config) {
  const iqn = createTarget(tid, config);
  const url = `iscsi://${portal}/${iqn}/1`;
  const log = join(root, `conformance-${config.name}.log`);
  // `tests` is one selection, or a list of selections each run in its own iscsi-test-cu process.
  const runs = testsOverride ? [testsOverride] : [config.tests].flat();
  const started = Date.now();
  const merged = { counts: { pass: 0, fail: 0, skip: 0 }, tests: {} };
  let logText = '';
  runs.forEach((tests, i) => {
    const json = join(work, `${config.name}-${i}.json`);
    const runLog = join(work, `${config.name}-${i}.log`);
    const args = [suite, '--tests', tests, '--json', json, '--log', runLog, '--quiet'];
    if (config.sanitize) args.push('--allow-sanitize');
    args.push(url);
    if (config.multipath) args.push(url);
    console.log(`conformance[${config.name}]: ${args.slice(1).join(' ')}`);
    spawnSync('python3', args, { stdio: 'inherit' });
    if (existsSync(runLog)) logText += readFileSync(runLog, 'utf8');
    if (!existsSync(json)) throw new Error(`${config.name}: the suite wrote no results for ${tests}`);
    const part = JSON.parse(readFileSync(json, 'utf8'));
    for (const k of ['pass', 'fail', 'skip']) merged.counts[k] += part.counts[k];
    Object.assign(merged.tests, part.tests);
  });
  writeFileSync(log, logText);
  copyFileSync(log, join(root, 'conformance.log'));
  merged.tests = Object.fromEntries(Object.entries(merged.tests).sort(([a], [b]) => (a < b ? -1 : 1)));
  const result = merged;
  results.set(config.name, result);
  const c = result.counts;
  console.log(
    `conformance[${config.name}]: ${c.pass} pass, ${c.fail} fail, ${c.skip} skip (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  );
  const expected = join(expectDir, `${config.name}.json`);
  if (update) {
    writeFileSync(expected, JSON.stringify(result, null, 1) + '\n');
    console.log(`conformance[${config.name}]: expectations written to ${expected}`);
    return 0;
  }
  const before = existsSync(expected) ? JSON.parse(readFileSync(expected, 'utf8')) : { tests: {} };
  return compare(config.name, result, before, testsOverride !== undefined);
}

let code = 1;
try {
  const portals = await waitForDaemon();
  const m = /Portal: ([^,\n]+),/.exec(portals);
  if (!m) throw new Error('no portal in: ' + portals);
  let regressions = 0;
  CONFIGS.forEach((config, i) => {
    if (selected.includes(config.name)) regressions += runConfig(m[1], i + 1, config);
  });
  if (results.size === CONFIGS.length && testsOverride === undefined) summarize();
  if (regressions > 0) console.error(`conformance: ${regressions} regression(s)`);
  code = regressions > 0 ? 1 : 0;
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

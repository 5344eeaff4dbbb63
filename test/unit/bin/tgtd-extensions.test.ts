import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTgtdArgs } from '../../../src/bin/tgtd-options.cjs';

test('tgt-ts: --state FILE and --iscsi logout_grace=N', () => {
  const r = parseTgtdArgs(['-f', '--state', '/var/lib/tgtd/state.json', '--iscsi', 'logout_grace=2']);
  assert.equal(r.kind, 'run');
  if (r.kind !== 'run') return;
  assert.equal(r.options.stateFile, '/var/lib/tgtd/state.json');
  assert.equal(r.options.logoutGraceSeconds, 2);
  const d = parseTgtdArgs(['-f']);
  assert.ok(d.kind === 'run' && d.options.stateFile === null && d.options.logoutGraceSeconds === null);
  assert.equal(parseTgtdArgs(['--iscsi', 'logout_grace=x']).kind, 'exit');
  assert.equal(parseTgtdArgs(['--state']).kind, 'exit');
});

test('tgt-ts: --iscsi dataout_timeout=N (seconds, 0 = never, at most 3600)', () => {
  const r = parseTgtdArgs(['-f', '--iscsi', 'portal=127.0.0.1:3260,dataout_timeout=5']);
  assert.ok(r.kind === 'run' && r.options.dataOutTimeoutSeconds === 5);
  const d = parseTgtdArgs(['-f']);
  assert.ok(d.kind === 'run' && d.options.dataOutTimeoutSeconds === null, 'unset: the default applies');
  assert.equal(parseTgtdArgs(['--iscsi', 'dataout_timeout=3601']).kind, 'exit');
  assert.equal(parseTgtdArgs(['--iscsi', 'dataout_timeout=-1']).kind, 'exit');
});

test('tgt-ts: --iscsi busy_poll=USEC (0 = never, at most 1 s, unset = the machine default)', () => {
  const r = parseTgtdArgs(['-f', '--iscsi', 'portal=127.0.0.1:3260,busy_poll=50']);
  assert.ok(r.kind === 'run' && r.options.busyPollUs === 50);
  const off = parseTgtdArgs(['-f', '--iscsi', 'busy_poll=0']);
  assert.ok(off.kind === 'run' && off.options.busyPollUs === 0);
  const d = parseTgtdArgs(['-f']);
  assert.ok(d.kind === 'run' && d.options.busyPollUs === null, 'unset: the default applies');
  const big = parseTgtdArgs(['--iscsi', 'busy_poll=1000001']);
  assert.ok(big.kind === 'exit' && big.code === 22 && /invalid busy_poll '1000001'/.test(big.stderr ?? ''));
  assert.equal(parseTgtdArgs(['--iscsi', 'busy_poll=fast']).kind, 'exit');
});

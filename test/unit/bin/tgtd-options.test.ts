import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  threadPoolSize,
  foregroundThreadPoolWarning,
  parseTgtdArgs,
  type TgtdOptions,
} from '../../../src/bin/tgtd-options.cjs';

function runOptions(argv: string[]): TgtdOptions {
  const r = parseTgtdArgs(argv);
  assert.equal(r.kind, 'run');
  if (r.kind !== 'run') throw new Error('not run');
  return r.options;
}

test('tgt §1.7: defaults are control port 0, 16 I/O threads, no portal (wildcard:3260)', () => {
  const r = parseTgtdArgs([]);
  assert.equal(r.kind, 'run');
  if (r.kind !== 'run') return;
  assert.equal(r.options.controlPort, 0);
  assert.equal(r.options.ioThreads, 16);
  assert.deepEqual(r.options.portals, []);
  assert.equal(r.options.foreground, false);
});

test('tgt §1.7: -f -C N -d 1 and repeatable --iscsi portal with nop settings', () => {
  const r = parseTgtdArgs([
    '-f',
    '-C',
    '7',
    '-d',
    '1',
    '--iscsi',
    'portal=127.0.0.1:3261,portal=[::1]:3262,nop_interval=5,nop_count=3',
  ]);
  assert.equal(r.kind, 'run');
  if (r.kind !== 'run') return;
  assert.equal(r.options.foreground, true);
  assert.equal(r.options.controlPort, 7);
  assert.equal(r.options.debug, true);
  assert.deepEqual(r.options.portals, ['127.0.0.1:3261', '[::1]:3262']);
  assert.equal(r.options.nopInterval, 5);
  assert.equal(r.options.nopCount, 3);
});

test('long options accept --opt=value', () => {
  const r = parseTgtdArgs(['--control-port=3', '--foreground']);
  assert.equal(r.kind, 'run');
  if (r.kind === 'run') assert.equal(r.options.controlPort, 3);
});

test("tgt's messages: bad -C value exits 22, unknown option exits 1, -h and -V exit 0", () => {
  const bad = parseTgtdArgs(['-C', 'abc']);
  assert.deepEqual(bad.kind === 'exit' && [bad.code, bad.stderr?.split('\n')[0]], [
    22,
    "-C argument value 'abc' invalid",
  ]);
  const unknown = parseTgtdArgs(['--bogus']);
  assert.deepEqual(unknown.kind === 'exit' && [unknown.code, unknown.stderr?.split('\n')[0]], [
    1,
    "'bogus' is an unknown option",
  ]);
  const help = parseTgtdArgs(['-h']);
  assert.ok(help.kind === 'exit' && help.code === 0 && help.stdout?.includes('--control-port'));
  const version = parseTgtdArgs(['-V']);
  assert.ok(version.kind === 'exit' && version.code === 0);
});

test('a malformed --iscsi option is refused', () => {
  const r = parseTgtdArgs(['--iscsi', 'portal=1.2.3.4:abc']);
  assert.ok(r.kind === 'exit' && r.code === 22);
  const r2 = parseTgtdArgs(['--iscsi', 'bogus=1']);
  assert.ok(r2.kind === 'exit' && r2.code === 22);
});

test('tgt §1.7 -t: the daemon gets -t I/O threads when given, else UV_THREADPOOL_SIZE, else 16', () => {
  assert.equal(threadPoolSize(runOptions(['-t', '8']), { UV_THREADPOOL_SIZE: '2' }), '8');
  assert.equal(threadPoolSize(runOptions([]), { UV_THREADPOOL_SIZE: '2' }), '2');
  assert.equal(threadPoolSize(runOptions([]), {}), '16');
});

test('tgt §1.7 -t: in the foreground a -t the environment does not match is reported, not silently ignored', () => {
  assert.match(
    foregroundThreadPoolWarning(runOptions(['-f', '-t', '8']), {}) ?? '',
    /-t 8 has no effect.*UV_THREADPOOL_SIZE=8/,
  );
  assert.equal(foregroundThreadPoolWarning(runOptions(['-f', '-t', '8']), { UV_THREADPOOL_SIZE: '8' }), null);
  assert.equal(foregroundThreadPoolWarning(runOptions(['-f']), {}), null);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decideRedirect,
  isOwnAddress,
  parseCallbackOutput,
  redirectFor,
  staticDestination,
  targetAddressValue,
} from '../../../../src/iscsi/redirect.js';

const settings = (over: Partial<Parameters<typeof decideRedirect>[0]> = {}) => ({
  address: '',
  port: '',
  reason: undefined,
  callback: undefined,
  ...over,
});

test('tgt §4.8: callback output addr:port:reason parses (IPv4, [IPv6], trailing newline)', () => {
  assert.deepEqual(parseCallbackOutput('10.0.0.2:3261:Temporary\n'), {
    address: '10.0.0.2',
    port: '3261',
    reason: 'Temporary',
  });
  assert.deepEqual(parseCallbackOutput('[fd00::2]:3260:Permanent'), {
    address: '[fd00::2]',
    port: '3260',
    reason: 'Permanent',
  });
});

test('tgt §4.8: malformed callback output is refused', () => {
  for (const bad of [
    '',
    '10.0.0.2',
    '10.0.0.2:3260',
    '10.0.0.2:3260:Later',
    '[fd00::2:3260:Temporary',
    ':3260:Temporary',
    '10.0.0.2:x:Temporary',
  ])
    assert.equal(parseCallbackOutput(bad), null, bad);
});

test('rfc7143 11.13.5: Temporary -> 0x0101, Permanent -> 0x0102 with TargetAddress=addr:port', () => {
  assert.deepEqual(redirectFor({ address: '10.0.0.2', port: '3260', reason: 'Temporary' }, '10.0.0.9'), {
    kind: 'redirect',
    status: 0x0101,
    targetAddress: '10.0.0.2:3260',
  });
  const perm = redirectFor({ address: '[fd00::2]', port: '3261', reason: 'Permanent' }, '10.0.0.9');
  assert.deepEqual(perm, { kind: 'redirect', status: 0x0102, targetAddress: '[fd00::2]:3261' });
  assert.equal(targetAddressValue({ address: 'san2', port: '', reason: 'Temporary' }), 'san2');
});

test('tgt §4.8: no redirect when the initiator already is at the redirect address', () => {
  assert.equal(
    isOwnAddress({ address: '10.0.0.2', port: '3260', reason: 'Temporary' }, '::ffff:10.0.0.2'),
    true,
  );
  assert.equal(isOwnAddress({ address: '[FD00::2]', port: '3260', reason: 'Temporary' }, 'fd00::2'), true);
  assert.deepEqual(redirectFor({ address: '10.0.0.2', port: '3260', reason: 'Temporary' }, '10.0.0.2'), {
    kind: 'none',
  });
});

test('tgt §4.8: a static redirect needs an address and a reason', () => {
  assert.equal(staticDestination(settings({ address: '10.0.0.2', port: '3260' })), null);
  assert.equal(staticDestination(settings({ port: '3260', reason: 'Temporary' })), null);
  assert.deepEqual(staticDestination(settings({ address: '10.0.0.2', port: '3260', reason: 'Permanent' })), {
    address: '10.0.0.2',
    port: '3260',
    reason: 'Permanent',
  });
});

test('tgt §4.8: the callback gets <targetname> <initiator-ip>; failures and timeouts are target errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'redirect-'));
  try {
    const good = join(dir, 'good.sh');
    await writeFile(good, `#!/bin/sh\necho "$1 $2" > ${dir}/args\necho 10.0.0.7:3262:Permanent\n`);
    const slow = join(dir, 'slow.sh');
    await writeFile(slow, '#!/bin/sh\nsleep 5\necho 10.0.0.2:3260:Temporary\n');
    const failing = join(dir, 'fail.sh');
    await writeFile(failing, '#!/bin/sh\nexit 3\n');
    for (const f of [good, slow, failing]) await chmod(f, 0o755);

    const d = await decideRedirect(settings({ callback: good }), 'iqn.2024-01.t:a', '::ffff:10.9.9.9');
    assert.deepEqual(d, { kind: 'redirect', status: 0x0102, targetAddress: '10.0.0.7:3262' });
    assert.equal(await readFile(join(dir, 'args'), 'utf8'), 'iqn.2024-01.t:a 10.9.9.9\n');

    const started = Date.now();
    const t = await decideRedirect(settings({ callback: slow }), 'iqn.x', '10.9.9.9', 200);
    assert.equal(t.kind, 'error');
    assert.ok(Date.now() - started < 3000, 'the callback is killed at the timeout');

    assert.equal((await decideRedirect(settings({ callback: failing }), 'iqn.x', '10.9.9.9')).kind, 'error');
    assert.equal(
      (await decideRedirect(settings({ callback: join(dir, 'missing') }), 'iqn.x', '1.2.3.4')).kind,
      'error',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

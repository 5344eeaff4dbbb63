import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryStoreType, nullStoreType } from '../../../src/backing/index.js';
import { IscsiDriver } from '../../../src/iscsi/driver.js';
import { dispatch } from '../../../src/mgmt/dispatch.js';
import {
  captureState,
  parseState,
  restoreState,
  StateFileError,
  StateSaver,
  writeFileAtomic,
} from '../../../src/mgmt/state.js';
import { planTgtadm } from '../../../src/mgmt/tgtadm-cli.js';
import { parsePayload } from '../../../src/mgmt/wire.js';
import { AdminError } from '../../../src/scsi/admin-error.js';
import { TargetSystem } from '../../../src/scsi/system.js';

function newSystem(): { system: TargetSystem; adm: (...args: string[]) => Promise<AdminError> } {
  const system = new TargetSystem({ storeTypes: [memoryStoreType, nullStoreType] });
  system.registerDriver(new IscsiDriver(system));
  const ctx = { system, onSystemDelete: () => {} };
  const adm = async (...args: string[]): Promise<AdminError> => {
    const plan = planTgtadm(args);
    if (plan.kind !== 'request') throw new Error(`bad tgtadm args ${args.join(' ')}`);
    return (await dispatch(ctx, plan.req, parsePayload(plan.payload))).err;
  };
  return { system, adm };
}

test('tgt-ts --state: capture -> restore on an empty daemon -> capture is identical', async () => {
  const { system, adm } = newSystem();
  const ok = async (...args: string[]) =>
    assert.equal(await adm(...args), AdminError.Success, args.join(' '));
  await ok('--mode', 'target', '--op', 'new', '--tid', '3', '-T', 'iqn.2024-01.t:three');
  await ok(
    '--mode',
    'logicalunit',
    '--op',
    'new',
    '--tid',
    '3',
    '--lun',
    '2',
    '-E',
    'memory',
    '-b',
    '8M',
    '-y',
    '4096',
  );
  await ok(
    '--mode',
    'logicalunit',
    '--op',
    'update',
    '--tid',
    '3',
    '--lun',
    '2',
    '--params',
    'vendor_id=V,online=0',
  );
  await ok('--mode', 'logicalunit', '--op', 'new', '--tid', '3', '--lun', '5');
  await ok(
    '--mode',
    'target',
    '--op',
    'update',
    '--tid',
    '3',
    '--name',
    'MaxBurstLength',
    '--value',
    '131072',
  );
  await ok(
    '--mode',
    'target',
    '--op',
    'update',
    '--tid',
    '3',
    '--name',
    'RedirectCallback',
    '--value',
    '/bin/true',
  );
  await ok('--mode', 'target', '--op', 'update', '--tid', '3', '--name', 'state', '--value', 'offline');
  await ok('--mode', 'target', '--op', 'bind', '--tid', '3', '-I', 'ALL');
  await ok('--mode', 'target', '--op', 'bind', '--tid', '3', '-Q', 'iqn.2024-01.i:one');
  await ok('--mode', 'target', '--op', 'update', '--tid', '3', '--name', 'acl_match', '--value', 'all');
  await ok('--mode', 'account', '--op', 'new', '--user', 'u1', '--password', 'p,1');
  await ok('--mode', 'account', '--op', 'bind', '--tid', '3', '--user', 'u1', '--outgoing');
  await ok('--mode', 'account', '--op', 'bind', '--user', 'u1');

  const saved = captureState(system);
  assert.deepEqual(saved.accounts, [{ user: 'u1', password: 'p,1' }]);
  const params = new Map(saved.targets[0]!.params);
  // Hidden by `target show --tid` while a redirect callback is set, but kept in the state.
  assert.equal(params.get('MaxBurstLength'), '131072');
  assert.equal(params.get('RedirectCallback'), '/bin/true');

  const again = newSystem();
  await restoreState(again.system, parseState(JSON.stringify(saved)));
  assert.deepEqual(captureState(again.system), saved);
  assert.equal(again.system.targets.get(3)!.state, 'offline');
  assert.equal(again.system.targets.get(3)!.aclMatch, 'all');
  // A file written before acl_match existed restores tgt's OR.
  const old = structuredClone(saved);
  delete old.targets[0]!.acl.match;
  const older = newSystem();
  await restoreState(older.system, parseState(JSON.stringify(old)));
  assert.equal(older.system.targets.get(3)!.aclMatch, 'any');
});

test('tgt-ts --state: restore stops at the first step that fails, naming it', async () => {
  const { system } = newSystem();
  const state = parseState(
    JSON.stringify({
      format: 'tgt-ts-state',
      version: 1,
      accounts: [],
      discovery: { incoming: ['nobody'] },
      targets: [],
      portals: {},
    }),
  );
  await assert.rejects(restoreState(system, state), (e: Error) => {
    assert.ok(e instanceof StateFileError);
    assert.match(e.message, /can't restore discovery account nobody: NoUser/);
    return true;
  });
});

test('tgt-ts --state: malformed files are refused with a reason', () => {
  const bad: Array<[string, RegExp]> = [
    ['{', /corrupt/],
    ['[]', /not a tgt-ts state file/],
    ['{"format":"tgt-ts-state","version":9}', /version 9/],
    ['{"format":"tgt-ts-state","version":1,"accounts":[{"user":"a"}]}', /malformed accounts/],
    [
      '{"format":"tgt-ts-state","version":1,"accounts":[],"discovery":{"incoming":[]},"targets":[{"tid":"x"}],"portals":{}}',
      /target #0: malformed target/,
    ],
  ];
  for (const [text, why] of bad) assert.throws(() => parseState(text), why, text);
});

test('tgt-ts --state: atomic write leaves a 0600 file and no temporary file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'state-'));
  try {
    const path = join(dir, 'state.json');
    await writeFile(join(dir, '.state.json.tmp'), 'leftover', { mode: 0o644 });
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, 'two');
    assert.equal(await readFile(path, 'utf8'), 'two');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['state.json']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tgt-ts --state: successful changes are saved before the answer; a failed save is reported', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'state-'));
  try {
    const { system, adm } = newSystem();
    const saver = new StateSaver(join(dir, 'state.json'), system);
    let saves = 0;
    system.onConfigChange = async () => {
      saves++;
      await saver.save();
    };
    assert.equal(await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.2024-01.t:one'), 0);
    assert.match(await readFile(join(dir, 'state.json'), 'utf8'), /iqn\.2024-01\.t:one/);
    // Failures and read-only requests do not save.
    assert.equal(
      await adm('--mode', 'target', '--op', 'new', '--tid', '1', '-T', 'iqn.2024-01.t:one'),
      AdminError.TargetExist,
    );
    assert.equal(await adm('--mode', 'target', '--op', 'show'), 0);
    assert.equal(saves, 1);
    system.onConfigChange = () => Promise.reject(new Error('disk full'));
    assert.equal(await adm('--mode', 'target', '--op', 'delete', '--tid', '1'), AdminError.UnknownErr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

#!/usr/bin/env node
// Starts a demo target on 127.0.0.1:3260 from this working tree: tgtd (daemonized) with its control
// socket under ./demo/, one target with one LUN backed by a 1 GiB sparse file ./demo/disk.img.
//   npm run demo            start (or report that it is already running)
//   npm run demo -- stop    stop it
import { existsSync, mkdirSync, readFileSync, rmSync, openSync, closeSync, ftruncateSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = resolve(root, 'demo');
const env = { ...process.env, TGT_IPC_SOCKET: resolve(dir, 'socket') };
const pidFile = resolve(dir, 'tgtd.pid');
const iqn = 'iqn.2026-11.io.tgt-ts:demo';
const portal = process.env.DEMO_PORTAL ?? '127.0.0.1:3260';

function running() {
  if (!existsSync(pidFile)) return 0;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return 0;
  }
}

function tgtadm(...args) {
  const r = spawnSync(resolve(root, 'bin/tgtadm'), args, { env, encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(r.stderr || r.stdout);
    process.exit(r.status ?? 1);
  }
  return r.stdout;
}

if (process.argv[2] === 'stop') {
  const pid = running();
  if (pid) process.kill(pid, 'SIGTERM');
  rmSync(pidFile, { force: true });
  console.log(pid ? `stopped tgtd (pid ${pid})` : 'demo tgtd was not running');
  process.exit(0);
}

if (running()) {
  console.log(`demo tgtd already running (pid ${running()}); stop it with: npm run demo -- stop`);
  process.exit(0);
}
mkdirSync(dir, { recursive: true });
const disk = resolve(dir, 'disk.img');
if (!existsSync(disk)) {
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, 1024 * 1024 * 1024); // sparse: costs no disk space until written
  closeSync(fd);
}
const start = spawnSync(resolve(root, 'bin/tgtd'), ['--iscsi', `portal=${portal}`, '-p', pidFile], {
  env,
  stdio: 'inherit',
});
if (start.status !== 0) process.exit(start.status ?? 1);
tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', iqn);
tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '1', '-b', disk);
tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL');
console.log(`demo target ${iqn} is up on ${portal} (LUN 1: ${disk})
  iscsi-ls -s iscsi://${portal}
  iscsi-inq iscsi://${portal}/${iqn}/1
  TGT_IPC_SOCKET=${env.TGT_IPC_SOCKET} bin/tgtadm --mode target --op show
  npm run demo -- stop`);

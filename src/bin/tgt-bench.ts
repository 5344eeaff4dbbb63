/**
 * `npm run bench`: the same workloads against our tgtd and, when Debian's tgt is installed,
 * against tgt's tgtd, in turns (A B A B ...), with the in-repo initiator as the load generator,
 * so the comparison needs no C tool. Both daemons run on loopback with private control sockets
 * and 1 GiB sparse backing files in a temporary folder.
 *
 *   npm run bench -- [--seconds N] [--only NAME,...] [--no-tgt] [--rounds N] [--warmup N]
 *
 * The `2targets-` rows load two targets of the daemon at once (one load each, on a thread of its
 * own, IOPS summed): tgt serves both from one event loop, tgt-ts from one process each (tgtd
 * --workers, by default one process per CPU).
 *
 * Before its measured rounds each workload runs `--warmup` seconds (default 1) against every
 * daemon, unrecorded: the load generator's JIT (and tgt-ts's) would otherwise still be warming
 * up during the first daemon's first round, which made the first row read low for it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, ftruncateSync, closeSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { runLoad, type LoadOptions, type LoadPattern, type LoadResult } from '../initiator/load.js';
import { tgtdNodeFlags } from './tgtd-options.cjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const IQN = 'iqn.2026-11.io.tgt-ts:bench';

interface Workload {
  name: string;
  pattern: LoadPattern;
  ioSize: number;
  queueDepth: number;
  sessions: number;
  /** Targets loaded at once, one load each (default 1). */
  targets?: number;
}

/** Targets every daemon gets (tid 1 is IQN, tid N > 1 is `${IQN}-N`). */
const TARGETS = 2;
const targetName = (tid: number): string => (tid === 1 ? IQN : `${IQN}-${tid}`);

const WORKLOADS: readonly Workload[] = [
  { name: 'randread-4k-qd32', pattern: 'randread', ioSize: 4096, queueDepth: 32, sessions: 1 },
  { name: 'randwrite-4k-qd32', pattern: 'randwrite', ioSize: 4096, queueDepth: 32, sessions: 1 },
  { name: 'randread-4k-qd1', pattern: 'randread', ioSize: 4096, queueDepth: 1, sessions: 1 },
  { name: 'read-128k-qd8', pattern: 'read', ioSize: 131072, queueDepth: 8, sessions: 1 },
  { name: 'write-128k-qd8', pattern: 'write', ioSize: 131072, queueDepth: 8, sessions: 1 },
  { name: 'randread-4k-4x16', pattern: 'randread', ioSize: 4096, queueDepth: 16, sessions: 4 },
  {
    name: '2targets-randread-4k-qd16',
    pattern: 'randread',
    ioSize: 4096,
    queueDepth: 16,
    sessions: 1,
    targets: 2,
  },
  {
    name: '2targets-randread-4k-qd1',
    pattern: 'randread',
    ioSize: 4096,
    queueDepth: 1,
    sessions: 1,
    targets: 2,
  },
];

interface Daemon {
  label: string;
  port: number;
  process: ChildProcess;
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = net.createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => ok(port));
    });
  });
}

function sparseFile(path: string): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 1024 * 1024 * 1024);
  closeSync(fd);
}

/** Start a daemon (ours or tgt's), create the targets with LUN 1 each, and wait until it answers. */
async function startDaemon(label: string, tgtd: string[], tgtadm: string[], dir: string): Promise<Daemon> {
  const port = await freePort();
  const env = { ...process.env, TGT_IPC_SOCKET: join(dir, `${label}-socket`) };
  const child = spawn(tgtd[0]!, [...tgtd.slice(1), '-f', '-C', '0', '--iscsi', `portal=127.0.0.1:${port}`], {
    env,
    stdio: 'ignore',
  });
  const adm = (...args: string[]): number =>
    spawnSync(tgtadm[0]!, [...tgtadm.slice(1), '-C', '0', ...args], { env, stdio: 'ignore' }).status ?? 1;
  for (let i = 0; adm('--mode', 'system', '--op', 'show') !== 0; i++) {
    if (i > 100) throw new Error(`${label}: tgtd did not come up`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  for (let tid = 1; tid <= TARGETS; tid++) {
    const disk = join(dir, `${label}-${tid}.img`);
    sparseFile(disk);
    const t = String(tid);
    const steps = [
      ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', t, '-T', targetName(tid)],
      ['--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', t, '--lun', '1', '-b', disk],
      ['--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', t, '-I', 'ALL'],
    ];
    for (const step of steps)
      if (adm(...step) !== 0) throw new Error(`${label}: tgtadm ${step.join(' ')} failed`);
  }
  return { label, port, process: child };
}

function findTgtd(): string | null {
  for (const p of ['/usr/sbin/tgtd', '/usr/local/sbin/tgtd']) if (existsSync(p)) return p;
  return null;
}

/** runLoad on a worker thread of its own (tgt-bench-load.ts). */
function loadInThread(options: LoadOptions, progress: (n: number) => void): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const thread = new Worker(new URL('./tgt-bench-load.js', import.meta.url), { workerData: options });
    thread.on('message', (m: { progress?: number; result?: LoadResult; error?: string }) => {
      if (m.progress !== undefined) progress(m.progress);
      else if (m.result) resolve(m.result);
      else reject(new Error(m.error ?? 'load failed'));
      if (m.progress === undefined) void thread.terminate();
    });
    thread.on('error', reject);
  });
}

/** Loads run at once on several targets, as one: IOPS and errors add up, latencies are averaged. */
function combine(results: LoadResult[]): LoadResult {
  const sum = (f: (r: LoadResult) => number): number => results.reduce((n, r) => n + f(r), 0);
  return {
    iops: sum((r) => r.iops),
    mbPerSecond: sum((r) => r.mbPerSecond),
    p50us: Math.round(sum((r) => r.p50us) / results.length),
    p99us: Math.round(sum((r) => r.p99us) / results.length),
    errors: sum((r) => r.errors),
  };
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const seconds = Number(opt('--seconds') ?? 3);
  const rounds = Number(opt('--rounds') ?? 1);
  const warmup = Number(opt('--warmup') ?? 1);
  const only = opt('--only')?.split(',');
  const workloads = WORKLOADS.filter((w) => !only || only.includes(w.name));
  const dir = mkdtempSync(join(tmpdir(), 'tgt-ts-bench-'));
  const daemons: Daemon[] = [];
  try {
    const node = process.execPath;
    daemons.push(
      await startDaemon(
        'tgt-ts',
        [node, ...tgtdNodeFlags(join(ROOT, 'bin/tgtd')), join(ROOT, 'bin/tgtd')],
        [node, join(ROOT, 'bin/tgtadm')],
        dir,
      ),
    );
    const tgtd = args.includes('--no-tgt') ? null : findTgtd();
    if (tgtd) daemons.push(await startDaemon('tgt', [tgtd], ['/usr/sbin/tgtadm'], dir));
    else process.stderr.write('tgt not installed (apt-get install tgt): measuring tgt-ts alone\n');

    const results = new Map<string, Map<string, LoadResult[]>>();
    for (const w of workloads) {
      const perDaemon = new Map<string, LoadResult[]>();
      results.set(w.name, perDaemon);
      const loadOptions = (d: Daemon, tid: number, runSeconds: number): LoadOptions => ({
        host: '127.0.0.1',
        port: d.port,
        targetName: targetName(tid),
        lun: 1,
        pattern: w.pattern,
        ioSize: w.ioSize,
        queueDepth: w.queueDepth,
        sessions: w.sessions,
        seconds: runSeconds,
        rangeBytes: 512 * 1024 * 1024,
      });
      const load = async (d: Daemon, runSeconds: number, label: string): Promise<LoadResult> => {
        const progress = (n: number): boolean =>
          process.stderr.write(`\r${w.name} ${d.label} ${label}: ${n} I/Os   `);
        if ((w.targets ?? 1) === 1)
          return runLoad({ ...loadOptions(d, 1, runSeconds), onProgress: progress });
        const tids = Array.from({ length: w.targets! }, (_, i) => i + 1);
        return combine(
          await Promise.all(tids.map((tid) => loadInThread(loadOptions(d, tid, runSeconds), progress))),
        );
      };
      if (warmup > 0) for (const d of daemons) await load(d, warmup, 'warm-up');
      for (let round = 0; round < rounds; round++) {
        for (const d of daemons) {
          const r = await load(d, seconds, `round ${round + 1}`);
          perDaemon.set(d.label, [...(perDaemon.get(d.label) ?? []), r]);
        }
      }
      process.stderr.write('\r' + ' '.repeat(70) + '\r');
    }

    const labels = daemons.map((d) => d.label);
    const header = ['workload'.padEnd(26), ...labels.map((l) => `${l} IOPS`.padStart(14))];
    if (labels.length === 2) header.push('ratio'.padStart(8), 'p50 us'.padStart(16));
    console.log(header.join(''));
    for (const w of workloads) {
      const per = results.get(w.name)!;
      const iops = labels.map((l) => median(per.get(l)!.map((r) => r.iops)));
      const row = [w.name.padEnd(26), ...iops.map((v) => String(v).padStart(14))];
      if (labels.length === 2) {
        row.push((iops[0]! / Math.max(1, iops[1]!)).toFixed(2).padStart(8));
        const p50 = labels.map((l) => median(per.get(l)!.map((r) => r.p50us)));
        row.push(`${p50[0]} / ${p50[1]}`.padStart(16));
      }
      const errors = labels.reduce((n, l) => n + per.get(l)!.reduce((m, r) => m + r.errors, 0), 0);
      if (errors) row.push(`  (${errors} errors)`);
      console.log(row.join(''));
    }
  } finally {
    for (const d of daemons) d.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});

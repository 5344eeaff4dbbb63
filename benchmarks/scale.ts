/**
 * Scale points of issue 6, measured against a real tgtd (bin/tgtd) with the in-repo initiator:
 *
 *   luns      1000 LUNs on one target: create time (tgtadm), REPORT LUNS lists them all, a host
 *             scan (INQUIRY + READ CAPACITY(16) on every LUN), TUR/READ on the last one, RSS
 *   capacity  a 64 TiB sparse LUN: READ CAPACITY(16) beyond 2^32 blocks, exact; READ(16)/WRITE(16)
 *             beyond LBA 2^32 read back what was written
 *   burst     MaxBurstLength/FirstBurstLength raised with `target update`, negotiated as large as
 *             RFC 7143 allows; WRITE(16)/READ(16) of 16 MiB per command, verified, throughput
 *   sessions  1..256 sessions x QD 32 of 4 KiB random reads on a memory LUN: IOPS, tgtd VmRSS
 *             (sampled) and VmHWM per point, against a 512 MiB bound
 *
 *   npm run bench:scale -- [--seconds N] [--sessions 1,4,16,64,256] [--qd 32] [--luns 1000]
 *                          [--rss-limit-mib 512] [--only luns,capacity,burst,sessions]
 *
 * Each point starts its own tgtd (private socket dir, ephemeral portal). Prints one table per
 * point and a summary; exits 1 when a scale point does not hold.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import {
  parseReadCapacity10,
  parseReadCapacity16,
  parseReportLuns,
  Session,
  type ScsiResult,
  type SessionOptions,
} from '../src/initiator/index.js';
import { runLoad } from '../src/initiator/load.js';
import { bhsOpcode, R2TView } from '../src/iscsi/pdu.js';
import { Opcode } from '../src/iscsi/spec.js';
import { TgtDaemon } from '../test/helpers/daemon.js';

const IQN = 'iqn.2026-11.io.tgt-ts:scale';
const MiB = 1024 * 1024;
const GOOD = 0;
/** RFC 7143 13.13/13.14: the largest MaxBurstLength/FirstBurstLength (2^24 - 1). */
const MAX_BURST = 2 ** 24 - 1;

const args = process.argv.slice(2);
function opt(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
}
const SECONDS = Number(opt('--seconds', '5'));
const SWEEP = opt('--sessions', '1,4,16,64,256').split(',').map(Number);
const QUEUE_DEPTH = Number(opt('--qd', '32'));
const LUN_COUNT = Number(opt('--luns', '1000'));
const RSS_LIMIT_MIB = Number(opt('--rss-limit-mib', '512'));
const ONLY = new Set(opt('--only', 'luns,capacity,burst,sessions').split(','));

/** One scale point's outcome: labelled numbers and the checks that failed. */
interface PointResult {
  name: string;
  rows: [string, string][];
  failures: string[];
}

// ---------------------------------------------------------------------------------------------
// helpers

interface ProcMemory {
  rssMiB: number;
  hwmMiB: number;
}

/** VmRSS and VmHWM of a process (Linux /proc). */
async function procMemory(pid: number): Promise<ProcMemory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}

/** CPU seconds (user + system) a process has used so far (/proc/PID/stat, 100 ticks/s on Linux). */
async function procCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // fields after the ")" of the command name: state is field 3, utime 14, stime 15
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Reset VmHWM to the current RSS (proc(5) clear_refs "5"); false where the kernel refuses. */
async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Sample VmRSS every `ms` until stopped; resolves with the largest value seen. */
function sampleRss(pid: number, ms = 200): { stop: () => Promise<number> } {
  let max = 0;
  let pending: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    pending = procMemory(pid).then(
      (m) => void (max = Math.max(max, m.rssMiB)),
      () => {},
    );
  }, ms);
  return {
    stop: async () => {
      clearInterval(timer);
      await pending;
      max = Math.max(max, (await procMemory(pid)).rssMiB);
      return max;
    },
  };
}

function login(d: TgtDaemon, extra: Partial<SessionOptions> = {}): Promise<Session> {
  return Session.login({ host: d.host, port: d.port, targetName: IQN, timeoutMs: 60_000, ...extra });
}

/** TEST UNIT READY until the power-on unit attention is consumed; the last result. */
async function ready(s: Session, lun: number): Promise<ScsiResult> {
  let r = await s.testUnitReady(lun);
  for (let i = 0; i < 3 && r.status !== GOOD && r.sense?.key === 0x06; i++) r = await s.testUnitReady(lun);
  return r;
}

function statusText(r: ScsiResult): string {
  if (r.status === GOOD) return 'GOOD';
  const s = r.sense;
  return s
    ? `status 0x${r.status.toString(16)} sense ${s.key.toString(16)}/${s.asc.toString(16).padStart(2, '0')}/${s.ascq.toString(16).padStart(2, '0')}`
    : `status 0x${r.status.toString(16)}`;
}

/** Record the Desired Data Transfer Length of every R2T the session receives (one per burst). */
function watchR2Ts(s: Session): number[] {
  const seen: number[] = [];
  const dispatch = s.connection.onPdu;
  s.connection.onPdu = (pdu) => {
    if (bhsOpcode(pdu.bhs) === Opcode.R2T) seen.push(new R2TView(pdu.bhs).desiredDataTransferLength);
    dispatch?.(pdu);
  };
  return seen;
}

const ms = (from: number): number => Math.round(performance.now() - from);
const mib = (v: number): string => v.toFixed(1);

async function withDaemon<T>(fn: (d: TgtDaemon) => Promise<T>): Promise<T> {
  const d = await TgtDaemon.start();
  try {
    return await fn(d);
  } finally {
    await d.stop().catch(() => d.kill());
    await d.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// (a) 1000 LUNs on one target

async function lunsPoint(): Promise<PointResult> {
  return withDaemon(async (d) => {
    const pid = d.proc.pid!;
    const r: PointResult = { name: `${LUN_COUNT} LUNs`, rows: [], failures: [] };
    await d.admInProcess('--mode', 'target', '--op', 'new', '--tid', '1', '-T', IQN);
    const idle = await procMemory(pid);
    const luNew = (lun: number): string[] => [
      '--mode',
      'logicalunit',
      '--op',
      'new',
      '--tid',
      '1',
      '--lun',
      String(lun),
      '-E',
      'null',
      '-b',
      '1G',
    ];
    // The last SPAWNED LUNs through bin/tgtadm processes (as a shell script would), the rest
    // through tgtadm's code in this process (the daemon's cost without node's start-up).
    const SPAWNED = Math.min(10, LUN_COUNT);
    let t = performance.now();
    const perLun: number[] = [];
    for (let lun = 1; lun <= LUN_COUNT - SPAWNED; lun++) {
      const one = performance.now();
      await d.admInProcess(...luNew(lun));
      perLun.push(performance.now() - one);
    }
    const inProcessMs = ms(t);
    // does a LUN cost more to add when the target already has many? (first vs last tenth)
    const tenth = Math.max(1, Math.floor(perLun.length / 10));
    const avg = (xs: number[]): string => (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2);
    t = performance.now();
    for (let lun = LUN_COUNT - SPAWNED + 1; lun <= LUN_COUNT; lun++)
      await d.adm('--lld', 'iscsi', ...luNew(lun));
    const spawnedMs = ms(t);
    r.rows.push([
      `create LUNs 1..${LUN_COUNT - SPAWNED} (null store), one tgtadm request each, in-process`,
      `${inProcessMs} ms (${(inProcessMs / (LUN_COUNT - SPAWNED)).toFixed(2)} ms/LUN; first ${tenth}: ${avg(perLun.slice(0, tenth))}, last ${tenth}: ${avg(perLun.slice(-tenth))} ms/LUN)`,
    ]);
    r.rows.push([
      `create LUNs ${LUN_COUNT - SPAWNED + 1}..${LUN_COUNT}, one bin/tgtadm process each`,
      `${spawnedMs} ms (${(spawnedMs / SPAWNED).toFixed(0)} ms/LUN, mostly node start-up)`,
    ]);
    await d.admInProcess('--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL');

    // bin/tgtadm as a process, as a script would run it: `target show` with every LUN listed
    t = performance.now();
    const show = await d.adm('--lld', 'iscsi', '--mode', 'target', '--op', 'show');
    const shownLuns = (show.match(/^\s+LUN: \d+$/gm) ?? []).length;
    r.rows.push([
      'bin/tgtadm --mode target --op show (a process)',
      `${ms(t)} ms, ${shownLuns} LUNs listed, ${show.length} bytes`,
    ]);
    if (shownLuns !== LUN_COUNT + 1)
      r.failures.push(`target show lists ${shownLuns} LUNs, expected ${LUN_COUNT + 1}`);

    t = performance.now();
    const s = await login(d);
    r.rows.push(['login', `${ms(t)} ms`]);
    try {
      await ready(s, 0);
      const allocation = 8 + 8 * (LUN_COUNT + 1);
      t = performance.now();
      const rl = await s.reportLuns(allocation);
      const luns = parseReportLuns(rl.data);
      const listed = new Set(luns.map(Number));
      let missing = 0;
      for (let lun = 0; lun <= LUN_COUNT; lun++) if (!listed.has(lun)) missing++;
      r.rows.push([
        'REPORT LUNS',
        `${ms(t)} ms, ${statusText(rl)}, ${luns.length} LUNs (list length ${rl.data.readUInt32BE(0)} bytes)`,
      ]);
      if (rl.status !== GOOD || luns.length !== LUN_COUNT + 1 || missing) {
        r.failures.push(
          `REPORT LUNS: ${statusText(rl)}, ${luns.length} LUNs, ${missing} of 0..${LUN_COUNT} missing`,
        );
      }

      // What a host does after REPORT LUNS: INQUIRY and READ CAPACITY(16) on each LUN.
      t = performance.now();
      let scanFailures = 0;
      await Promise.all(
        Array.from({ length: LUN_COUNT }, async (_, i) => {
          const lun = i + 1;
          const tur = await ready(s, lun);
          const inq = await s.inquiry(lun);
          const cap = await s.readCapacity16(lun);
          if (
            tur.status !== GOOD ||
            inq.status !== GOOD ||
            cap.status !== GOOD ||
            (inq.data[0] ?? 0xff) !== 0
          )
            scanFailures++;
        }),
      );
      r.rows.push([
        `scan: TUR + INQUIRY + READ CAPACITY(16) on all ${LUN_COUNT} LUNs`,
        `${ms(t)} ms, ${scanFailures} failed`,
      ]);
      if (scanFailures) r.failures.push(`${scanFailures} LUNs failed the scan`);

      const last = LUN_COUNT;
      const tur = await s.testUnitReady(last);
      const rd = await s.read16(last, 0n, 8, 512);
      const zeroes = rd.data.length === 4096 && rd.data.every((b) => b === 0);
      r.rows.push([
        `TUR / READ(16) 4 KiB on LUN ${last}`,
        `${statusText(tur)} / ${statusText(rd)}${zeroes ? ', zeroes' : ''}`,
      ]);
      if (tur.status !== GOOD || rd.status !== GOOD || !zeroes)
        r.failures.push(`LUN ${last}: TUR ${statusText(tur)}, READ ${statusText(rd)}`);
    } finally {
      await s.logout().catch(() => s.destroy());
    }
    const mem = await procMemory(pid);
    r.rows.push([
      'tgtd VmRSS idle (1 target, no LUN) / with LUNs / VmHWM',
      `${mib(idle.rssMiB)} / ${mib(mem.rssMiB)} / ${mib(mem.hwmMiB)} MiB`,
    ]);
    if (mem.hwmMiB > RSS_LIMIT_MIB) r.failures.push(`VmHWM ${mib(mem.hwmMiB)} MiB > ${RSS_LIMIT_MIB} MiB`);
    return r;
  });
}

// ---------------------------------------------------------------------------------------------
// (b) 64 TiB sparse LUNs

async function capacityPoint(): Promise<PointResult> {
  return withDaemon(async (d) => {
    const r: PointResult = { name: '64 TiB LUNs', rows: [], failures: [] };
    await d.admInProcess('--mode', 'target', '--op', 'new', '--tid', '1', '-T', IQN);
    // memory: sparse (64 KiB chunks on first write), keeps data, so reads can be verified.
    await d.addLu(1, { lun: 1, bstype: 'memory', path: '64T' }, true);
    // null: the size is the path; 4 KiB blocks, still 2^34 blocks; keeps nothing.
    await d.admInProcess(
      '--mode',
      'logicalunit',
      '--op',
      'new',
      '--tid',
      '1',
      '--lun',
      '2',
      '-E',
      'null',
      '-b',
      '64T',
      '--blocksize',
      '4096',
    );
    await d.admInProcess('--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL');
    const s = await login(d);
    try {
      for (const [lun, store, blockSize] of [
        [1, 'memory', 512],
        [2, 'null', 4096],
      ] as const) {
        await ready(s, lun);
        const blocks = 2n ** 46n / BigInt(blockSize);
        const rc16 = await s.readCapacity16(lun);
        const cap = parseReadCapacity16(rc16.data);
        const rc10 = await s.readCapacity10(lun);
        const cap10 = parseReadCapacity10(rc10.data);
        r.rows.push([
          `LUN ${lun} (${store}, 64T, ${blockSize}-byte blocks): READ CAPACITY(16)`,
          `${statusText(rc16)}, last LBA ${cap?.lastLba} (expected ${blocks - 1n} = 2^${Math.log2(Number(blocks))} - 1), block ${cap?.blockSize}`,
        ]);
        r.rows.push([
          `LUN ${lun}: READ CAPACITY(10)`,
          `${statusText(rc10)}, last LBA 0x${cap10?.lastLba.toString(16)} (SBC: FFFFFFFFh = use RC16)`,
        ]);
        if (cap?.lastLba !== blocks - 1n || cap.blockSize !== blockSize)
          r.failures.push(`LUN ${lun}: READ CAPACITY(16) last LBA ${cap?.lastLba}, block ${cap?.blockSize}`);
        if (cap10?.lastLba !== 0xffffffff)
          r.failures.push(`LUN ${lun}: READ CAPACITY(10) did not report FFFFFFFFh`);

        // 1 MiB just past LBA 2^32 and the last 8 blocks of the medium
        const ios: [bigint, number][] = [
          [2n ** 32n + 12345n, MiB],
          [blocks - 8n, 8 * blockSize],
        ];
        for (const [lba, bytes] of ios) {
          const data = randomBytes(bytes);
          const t = performance.now();
          const w = await s.write16(lun, lba, data, blockSize);
          const rd = await s.read16(lun, lba, bytes / blockSize, blockSize);
          const expected = store === 'memory' ? data : Buffer.alloc(bytes);
          const same = rd.data.equals(expected);
          r.rows.push([
            `LUN ${lun}: WRITE(16)+READ(16) ${bytes} bytes at LBA ${lba}`,
            `${statusText(w)} / ${statusText(rd)}, ${store === 'memory' ? 'data read back equal' : 'zeroes read back'}: ${same}, ${ms(t)} ms`,
          ]);
          if (w.status !== GOOD || rd.status !== GOOD || !same)
            r.failures.push(`LUN ${lun}: I/O at LBA ${lba}`);
        }
        const past = await s.read16(lun, blocks, 1, blockSize);
        r.rows.push([`LUN ${lun}: READ(16) at LBA ${blocks} (one past the end)`, statusText(past)]);
        if (past.sense?.key !== 0x05 || past.sense.asc !== 0x21)
          r.failures.push(`LUN ${lun}: read past the end: ${statusText(past)}`);
      }
    } finally {
      await s.logout().catch(() => s.destroy());
    }
    const mem = await procMemory(d.proc.pid!);
    r.rows.push(['tgtd VmRSS / VmHWM', `${mib(mem.rssMiB)} / ${mib(mem.hwmMiB)} MiB`]);
    return r;
  });
}

// ---------------------------------------------------------------------------------------------
// (c) 16 MiB bursts

async function burstPoint(): Promise<PointResult> {
  return withDaemon(async (d) => {
    const r: PointResult = { name: '16 MiB bursts', rows: [], failures: [] };
    await d.admInProcess('--mode', 'target', '--op', 'new', '--tid', '1', '-T', IQN);
    await d.addLu(1, { lun: 1, bstype: 'memory', path: '256M' }, true);
    await d.admInProcess('--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL');
    for (const [key, value] of [
      ['MaxBurstLength', MAX_BURST],
      ['FirstBurstLength', MAX_BURST],
      ['MaxRecvDataSegmentLength', 262144],
    ] as const) {
      await d.admInProcess(
        '--mode',
        'target',
        '--op',
        'update',
        '--tid',
        '1',
        '--name',
        key,
        '--value',
        String(value),
      );
    }
    const s = await login(d, {
      proposals: { maxBurstLength: MAX_BURST, firstBurstLength: MAX_BURST, maxRecvDataSegmentLength: 262144 },
    });
    try {
      const p = s.params;
      r.rows.push([
        'negotiated MaxBurstLength / FirstBurstLength / InitialR2T / ImmediateData',
        `${p.maxBurstLength} / ${p.firstBurstLength} / ${p.initialR2T ? 'Yes' : 'No'} / ${p.immediateData ? 'Yes' : 'No'}`,
      ]);
      r.rows.push([
        'negotiated MaxRecvDataSegmentLength target / initiator',
        `${p.maxXmitDataSegmentLength} / ${p.maxRecvDataSegmentLength}`,
      ]);
      if (p.maxBurstLength !== MAX_BURST)
        r.failures.push(`MaxBurstLength negotiated ${p.maxBurstLength}, expected ${MAX_BURST}`);
      await ready(s, 1);
      const r2ts = watchR2Ts(s);
      const b0 = await s.inquiry(1, true, 0xb0, 64);
      const maxTransferBlocks = b0.status === GOOD ? b0.data.readUInt32BE(8) : 0;
      r.rows.push([
        'VPD B0 MAXIMUM TRANSFER LENGTH',
        `${maxTransferBlocks} blocks = ${(maxTransferBlocks * 512) / MiB} MiB`,
      ]);

      for (const size of [16 * MiB, 8 * MiB]) {
        const data = randomBytes(size);
        const blocks = size / 512;
        r2ts.length = 0;
        const w = await s.write16(1, 0n, data, 512);
        const bursts = [...r2ts];
        const rd = w.status === GOOD ? await s.read16(1, 0n, blocks, 512) : undefined;
        const verified = rd?.status === GOOD && rd.data.equals(data);
        r.rows.push([
          `WRITE(16) + READ(16) of ${size / MiB} MiB, verified`,
          `${statusText(w)}${rd ? ` / ${statusText(rd)}` : ''}, equal: ${verified}; R2T desired lengths ${bursts.join(' + ')}`,
        ]);
        if (size === 16 * MiB && !verified) {
          r.failures.push(
            `16 MiB WRITE(16): ${statusText(w)}` +
              (maxTransferBlocks * 512 < size
                ? ` (VPD B0 MAXIMUM TRANSFER LENGTH is ${(maxTransferBlocks * 512) / MiB} MiB)`
                : ''),
          );
        }
        if (!verified) continue;
        // throughput: commands back to back (QD 1) for a couple of seconds each way
        for (const dir of ['write', 'read'] as const) {
          let n = 0;
          const t = performance.now();
          while (performance.now() - t < 2000 || n < 2) {
            const lba = BigInt((n % 8) * blocks);
            const x =
              dir === 'write' ? await s.write16(1, lba, data, 512) : await s.read16(1, lba, blocks, 512);
            if (x.status !== GOOD) r.failures.push(`${size / MiB} MiB ${dir}: ${statusText(x)}`);
            n++;
          }
          const secs = (performance.now() - t) / 1000;
          r.rows.push([
            `${dir} ${size / MiB} MiB x ${n}, QD 1`,
            `${Math.round((n * size) / MiB / secs)} MiB/s`,
          ]);
        }
      }
    } finally {
      await s.logout().catch(() => s.destroy());
    }
    const mem = await procMemory(d.proc.pid!);
    r.rows.push(['tgtd VmRSS / VmHWM (64 MiB of store data)', `${mib(mem.rssMiB)} / ${mib(mem.hwmMiB)} MiB`]);
    return r;
  });
}

// ---------------------------------------------------------------------------------------------
// (d) sessions sweep

interface SweepRow {
  sessions: number;
  loginMs: number;
  iops: number;
  mbPerSecond: number;
  p50us: number;
  p99us: number;
  errors: number;
  rssMaxMiB: number;
  hwmMiB: number;
  /** tgtd CPU use during the load, percent of one core. */
  cpuPercent: number;
  note: string;
}

async function sessionsPoint(): Promise<PointResult & { sweep: SweepRow[] }> {
  return withDaemon(async (d) => {
    const pid = d.proc.pid!;
    const r = {
      name: 'sessions sweep',
      rows: [] as [string, string][],
      failures: [] as string[],
      sweep: [] as SweepRow[],
    };
    const rangeBytes = 64 * MiB;
    await d.admInProcess('--mode', 'target', '--op', 'new', '--tid', '1', '-T', IQN);
    await d.addLu(1, { lun: 1, bstype: 'memory', path: '1G' }, true);
    await d.admInProcess('--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL');
    // Fill the range read below, so reads copy real data (64 MiB of store in tgtd's RSS).
    const s = await login(d);
    await ready(s, 1);
    const fill = randomBytes(MiB);
    for (let off = 0; off < rangeBytes; off += MiB) await s.write16(1, BigInt(off / 512), fill, 512);
    await s.logout();
    const idle = await procMemory(pid);
    r.rows.push(['tgtd VmRSS idle, 64 MiB of store data written', `${mib(idle.rssMiB)} MiB`]);
    const canReset = await resetPeak(pid);
    if (!canReset) r.rows.push(['VmHWM reset (clear_refs 5)', 'refused: VmHWM is the peak since start']);

    let peak = 0;
    for (const sessions of SWEEP) {
      await resetPeak(pid);
      const sampler = sampleRss(pid);
      const row: SweepRow = {
        sessions,
        loginMs: 0,
        iops: 0,
        mbPerSecond: 0,
        p50us: 0,
        p99us: 0,
        errors: 0,
        rssMaxMiB: 0,
        hwmMiB: 0,
        cpuPercent: 0,
        note: '',
      };
      try {
        // login time of all sessions at once, measured separately from the load
        let t = performance.now();
        const probe = await Promise.all(
          Array.from({ length: sessions }, (_, i) =>
            login(d, { initiatorName: `iqn.2026-11.io.tgt-ts:probe-${i}` }),
          ),
        );
        row.loginMs = ms(t);
        await Promise.all(probe.map((p) => p.logout().catch(() => p.destroy())));
        t = performance.now();
        const cpuBefore = await procCpuSeconds(pid);
        const load = await runLoad({
          host: d.host,
          port: d.port,
          targetName: IQN,
          lun: 1,
          pattern: 'randread',
          ioSize: 4096,
          queueDepth: QUEUE_DEPTH,
          sessions,
          seconds: SECONDS,
          rangeBytes,
          session: { timeoutMs: 60_000 },
          onProgress: (n) => process.stderr.write(`\r${sessions} sessions x QD ${QUEUE_DEPTH}: ${n} I/Os   `),
        });
        // CPU over the whole runLoad (its logins and logouts included): an upper bound
        row.cpuPercent = Math.round(
          (((await procCpuSeconds(pid)) - cpuBefore) / ((performance.now() - t) / 1000)) * 100,
        );
        Object.assign(row, {
          iops: load.iops,
          mbPerSecond: load.mbPerSecond,
          p50us: load.p50us,
          p99us: load.p99us,
          errors: load.errors,
        });
      } catch (e) {
        row.note = `failed: ${(e as Error).message}`;
        r.failures.push(`${sessions} sessions: ${(e as Error).message}`);
      }
      process.stderr.write('\r' + ' '.repeat(60) + '\r');
      row.rssMaxMiB = await sampler.stop();
      row.hwmMiB = (await procMemory(pid)).hwmMiB;
      peak = Math.max(peak, row.iops);
      if (row.errors) r.failures.push(`${sessions} sessions: ${row.errors} I/O errors`);
      if (Math.max(row.rssMaxMiB, row.hwmMiB) >= RSS_LIMIT_MIB) {
        row.note ||= `over ${RSS_LIMIT_MIB} MiB`;
        r.failures.push(`${sessions} sessions: tgtd VmHWM ${mib(row.hwmMiB)} MiB >= ${RSS_LIMIT_MIB} MiB`);
      }
      // graceful: no collapse as sessions grow (at least half of the best point so far)
      if (!row.note && row.iops < peak / 2) {
        row.note = `IOPS below half of the best point`;
        r.failures.push(`${sessions} sessions: ${row.iops} IOPS < half of ${peak}`);
      }
      r.sweep.push(row);
      await new Promise((ok) => setTimeout(ok, 500)); // let logouts settle before the next point
    }
    return r;
  });
}

// ---------------------------------------------------------------------------------------------

function printPoint(p: PointResult): void {
  console.log(`\n## ${p.name}: ${p.failures.length ? 'FAIL' : 'ok'}\n`);
  console.log('| measure | result |\n|---|---|');
  for (const [k, v] of p.rows) console.log(`| ${k} | ${v} |`);
  for (const f of p.failures) console.log(`\nFAIL: ${f}`);
}

function printSweep(rows: readonly SweepRow[]): void {
  const best = Math.max(1, ...rows.map((x) => x.iops));
  console.log(
    `\n| sessions | QD/session | in flight | login all (ms) | IOPS | vs best | p50 us | p99 us | errors | tgtd CPU % | VmRSS max (MiB) | VmHWM (MiB) | < ${RSS_LIMIT_MIB} MiB |`,
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const x of rows) {
    const ok = Math.max(x.rssMaxMiB, x.hwmMiB) < RSS_LIMIT_MIB ? 'yes' : 'NO';
    console.log(
      `| ${x.sessions} | ${QUEUE_DEPTH} | ${x.sessions * QUEUE_DEPTH} | ${x.loginMs} | ${x.iops} | ${(x.iops / best).toFixed(2)} | ${x.p50us} | ${x.p99us} | ${x.errors} | ${x.cpuPercent} | ${mib(x.rssMaxMiB)} | ${mib(x.hwmMiB)} | ${ok}${x.note ? ` (${x.note})` : ''} |`,
    );
  }
}

async function main(): Promise<void> {
  console.log(`# tgt-ts scale points, ${new Date().toISOString()}, node ${process.version}`);
  const results: PointResult[] = [];
  const run = async (key: string, fn: () => Promise<PointResult>): Promise<void> => {
    if (!ONLY.has(key)) return;
    process.stderr.write(`${key}...\n`);
    let p: PointResult;
    try {
      p = await fn();
    } catch (e) {
      p = { name: key, rows: [], failures: [`aborted: ${(e as Error).stack ?? String(e)}`] };
    }
    printPoint(p);
    if ('sweep' in p) printSweep((p as { sweep: SweepRow[] }).sweep);
    results.push(p);
  };
  await run('luns', lunsPoint);
  await run('capacity', capacityPoint);
  await run('burst', burstPoint);
  await run('sessions', sessionsPoint);
  console.log('\n## summary\n');
  for (const p of results)
    console.log(
      `${p.failures.length ? 'FAIL' : 'ok  '} ${p.name}${p.failures.length ? `: ${p.failures.join('; ')}` : ''}`,
    );
  if (results.some((p) => p.failures.length)) process.exitCode = 1;
}

main().catch((e: Error) => {
  process.stderr.write(`bench:scale: ${e.stack ?? e.message}\n`);
  process.exit(2);
});

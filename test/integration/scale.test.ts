/**
 * Scale points of issue 6, cheap enough for CI (the full measurement is `npm run bench:scale`,
 * BENCHMARKS.md "Scale"): 1000 LUNs on one target, 64 TiB sparse LUNs beyond 2^32 blocks,
 * bursts as large as RFC 7143 allows, and 64 sessions at once with tgtd's memory bounded.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  parseReadCapacity10,
  parseReadCapacity16,
  parseReportLuns,
  type Session,
} from '../../src/initiator/index.js';
import { runLoad } from '../../src/initiator/load.js';
import { bhsOpcode, R2TView } from '../../src/iscsi/pdu.js';
import { Opcode } from '../../src/iscsi/spec.js';
import { delay, TgtDaemon } from '../helpers/daemon.js';
import {
  BLOCK,
  CHECK_CONDITION,
  clearUnitAttention,
  closeSession,
  GOOD,
  IQN,
  login,
  loginReady,
  pattern,
} from './util.js';

const TARGET = `${IQN}:scale`;
const MiB = 1024 * 1024;
const LUN_COUNT = 1000;
/** RFC 7143 13.13/13.14: the largest MaxBurstLength/FirstBurstLength, 2^24 - 1. */
const MAX_BURST = 2 ** 24 - 1;
/** 64 TiB. */
const BIG = 2n ** 46n;
/**
 * tgtd's VmHWM bound for 64 sessions x QD 32: about 1.5 MiB per session over an idle daemon
 * (~60 MiB), the per-session budget of the bench's 512 MiB at 256 sessions; measured ~80 MiB.
 */
const RSS_BOUND_MIB = 160;

/** A daemon with target tid 1 (bound to ALL) holding the LUNs that `setup` creates. */
async function startWith(setup: (d: TgtDaemon) => Promise<void>): Promise<TgtDaemon> {
  const d = await TgtDaemon.start();
  try {
    await d.admInProcess('--mode', 'target', '--op', 'new', '--tid', '1', '-T', TARGET);
    await setup(d);
    await d.admInProcess('--mode', 'target', '--op', 'bind', '--tid', '1', '-I', 'ALL');
  } catch (e) {
    await d.cleanup();
    throw e;
  }
  return d;
}

async function stop(d: TgtDaemon | undefined): Promise<void> {
  if (!d) return;
  try {
    await d.stopChecked();
  } finally {
    await d.cleanup();
  }
}

/** VmHWM (peak resident set) of a process in MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmHWM:\s+(\d+) kB/m.exec(status);
  assert.ok(kib, 'VmHWM in /proc/PID/status');
  return Number(kib[1]) / 1024;
}

/** The Desired Data Transfer Length of every R2T the session receives from now on. */
function watchR2Ts(s: Session): number[] {
  const seen: number[] = [];
  const dispatch = s.connection.onPdu;
  s.connection.onPdu = (pdu) => {
    if (bhsOpcode(pdu.bhs) === Opcode.R2T) seen.push(new R2TView(pdu.bhs).desiredDataTransferLength);
    dispatch?.(pdu);
  };
  return seen;
}

describe(`${LUN_COUNT} LUNs on one target`, () => {
  let d: TgtDaemon | undefined;
  let s: Session | undefined;

  before(async () => {
    d = await startWith(async (daemon) => {
      for (let lun = 1; lun <= LUN_COUNT; lun++) {
        const args = ['--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', String(lun)];
        await daemon.admInProcess(...args, '-E', 'null', '-b', '1G');
      }
    });
    s = await loginReady(d, TARGET, 0);
  });

  after(async () => {
    await closeSession(s);
    await stop(d);
  });

  test('spc4 6.33 REPORT LUNS: LUN 0 and all 1000 LUNs (flat addressing above 255), in order', async () => {
    const r = await s!.reportLuns(8 + 8 * (LUN_COUNT + 1));
    assert.equal(r.status, GOOD);
    assert.equal(r.data.readUInt32BE(0), 8 * (LUN_COUNT + 1), 'LUN LIST LENGTH');
    const luns = parseReportLuns(r.data).map(Number);
    assert.deepEqual(
      luns,
      Array.from({ length: LUN_COUNT + 1 }, (_, i) => i),
    );
  });

  test('spc4 6.33: a short allocation length still reports the full LUN LIST LENGTH', async () => {
    const r = await s!.reportLuns(4096);
    assert.equal(r.status, GOOD);
    assert.equal(r.data.length, 4096);
    assert.equal(r.data.readUInt32BE(0), 8 * (LUN_COUNT + 1));
  });

  test('the last LUN (1000) answers TEST UNIT READY and READ(16)', async () => {
    let tur = await s!.testUnitReady(LUN_COUNT);
    if (tur.status !== GOOD) tur = await s!.testUnitReady(LUN_COUNT); // power-on UA of this LU
    assert.equal(tur.status, GOOD);
    const r = await s!.read16(LUN_COUNT, 0n, 8, BLOCK);
    assert.equal(r.status, GOOD);
    assert.ok(r.data.equals(Buffer.alloc(8 * BLOCK)), 'the null store reads zeroes');
  });

  test('tgt §2.6: target show lists every LUN', async () => {
    const show = await d!.admInProcess('--mode', 'target', '--op', 'show');
    assert.equal((show.match(/^\s+LUN: \d+$/gm) ?? []).length, LUN_COUNT + 1);
  });
});

describe('64 TiB sparse LUNs (beyond 2^32 blocks)', () => {
  let d: TgtDaemon | undefined;
  let s: Session | undefined;

  before(async () => {
    d = await startWith(async (daemon) => {
      const lu = ['--mode', 'logicalunit', '--op', 'new', '--tid', '1'];
      // memory: sparse (chunks allocated on first write) and keeps data; ext4 caps files at 16 TiB
      await daemon.admInProcess(...lu, '--lun', '1', '-E', 'memory', '-b', '64T');
      await daemon.admInProcess(...lu, '--lun', '2', '-E', 'null', '-b', '64T', '--blocksize', '4096');
    });
    s = await loginReady(d, TARGET, 1);
    await clearUnitAttention(s, 2);
  });

  after(async () => {
    await closeSession(s);
    await stop(d);
  });

  test('sbc3 5.16 READ CAPACITY(16): exactly 2^37 blocks of 512 bytes on a 64 TiB memory LUN', async () => {
    const r = await s!.readCapacity16(1);
    assert.equal(r.status, GOOD);
    const cap = parseReadCapacity16(r.data);
    assert.equal(cap?.lastLba, BIG / 512n - 1n);
    assert.equal(cap?.blockSize, 512);
  });

  test('sbc3 5.16 READ CAPACITY(16): exactly 2^34 blocks of 4096 bytes on a 64 TiB null LUN', async () => {
    const cap = parseReadCapacity16((await s!.readCapacity16(2)).data);
    assert.equal(cap?.lastLba, BIG / 4096n - 1n);
    assert.equal(cap?.blockSize, 4096);
  });

  test('sbc3 5.15 READ CAPACITY(10) beyond 2^32 blocks returns FFFFFFFFh', async () => {
    for (const lun of [1, 2]) {
      const r = await s!.readCapacity10(lun);
      assert.equal(r.status, GOOD);
      assert.equal(parseReadCapacity10(r.data)?.lastLba, 0xffffffff, `LUN ${lun}`);
    }
  });

  test('sbc3 5.13/5.34 WRITE(16)/READ(16) beyond LBA 2^32 and at the last LBA read back what was written', async () => {
    const last = BIG / 512n - 1n;
    for (const [lba, bytes] of [
      [2n ** 32n + 7n, 256 * 1024],
      [last - 7n, 8 * BLOCK],
    ] as const) {
      const data = pattern(bytes, Number(lba % 1000n));
      assert.equal((await s!.write16(1, lba, data, BLOCK)).status, GOOD, `WRITE(16) at ${lba}`);
      const r = await s!.read16(1, lba, bytes / BLOCK, BLOCK);
      assert.equal(r.status, GOOD, `READ(16) at ${lba}`);
      assert.ok(r.data.equals(data), `data at LBA ${lba}`);
    }
    // the same LBA modulo 2^32 was not touched: no truncation of the 64-bit LBA
    const low = await s!.read16(1, 7n, 1, BLOCK);
    assert.ok(low.data.equals(Buffer.alloc(BLOCK)), 'LBA 7 still reads zeroes');
  });

  test('sbc3 4.5: READ(16) one block past the last LBA -> LOGICAL BLOCK ADDRESS OUT OF RANGE', async () => {
    const r = await s!.read16(1, BIG / 512n, 1, BLOCK);
    assert.equal(r.status, CHECK_CONDITION);
    assert.equal(r.sense?.key, 0x05);
    assert.equal(r.sense?.asc, 0x21);
  });
});

describe('bursts as large as RFC 7143 allows', () => {
  let d: TgtDaemon | undefined;
  let s: Session | undefined;
  let maxTransfer = 0;

  before(async () => {
    d = await startWith(async (daemon) => {
      await daemon.addLu(1, { lun: 1, bstype: 'memory', path: '64M' }, true);
      for (const key of ['MaxBurstLength', 'FirstBurstLength']) {
        await daemon.admInProcess(
          '--mode',
          'target',
          '--op',
          'update',
          '--tid',
          '1',
          '--name',
          key,
          '--value',
          String(MAX_BURST),
        );
      }
    });
    // No immediate data, so every byte of a write is solicited by R2Ts (one per burst).
    s = await loginReady(d, TARGET, 1, {
      proposals: { maxBurstLength: MAX_BURST, firstBurstLength: MAX_BURST, immediateData: false },
    });
    const b0 = await s.inquiry(1, true, 0xb0, 64);
    assert.equal(b0.status, GOOD);
    maxTransfer = b0.data.readUInt32BE(8) * BLOCK;
  });

  after(async () => {
    await closeSession(s);
    await stop(d);
  });

  test('rfc7143 13.13/13.14: MaxBurstLength and FirstBurstLength 2^24-1 after target update', async () => {
    assert.equal(s!.params.maxBurstLength, MAX_BURST);
    // FirstBurstLength is irrelevant without immediate data (13.14): ask again with it.
    const withImmediate = await login(d!, TARGET, {
      proposals: { maxBurstLength: MAX_BURST, firstBurstLength: MAX_BURST, immediateData: true },
    });
    try {
      assert.equal(withImmediate.params.maxBurstLength, MAX_BURST);
      assert.equal(withImmediate.params.firstBurstLength, MAX_BURST);
    } finally {
      await closeSession(withImmediate);
    }
  });

  test('sbc4 6.6.4: a WRITE(16) of MAXIMUM TRANSFER LENGTH moves in one R2T burst and reads back', async () => {
    assert.ok(maxTransfer >= 8 * MiB, `VPD B0 MAXIMUM TRANSFER LENGTH ${maxTransfer} bytes`);
    const size = Math.min(maxTransfer, MAX_BURST - (MAX_BURST % BLOCK));
    const data = pattern(size, 3);
    const r2ts = watchR2Ts(s!);
    assert.equal((await s!.write16(1, 0n, data, BLOCK)).status, GOOD);
    assert.deepEqual(r2ts, [size], 'one R2T for the whole transfer');
    const r = await s!.read16(1, 0n, size / BLOCK, BLOCK);
    assert.equal(r.status, GOOD);
    assert.ok(r.data.equals(data));
  });

  test('sbc4 6.6.4: one block more than MAXIMUM TRANSFER LENGTH -> INVALID FIELD IN CDB', async () => {
    const blocks = maxTransfer / BLOCK + 1;
    const r = await s!.read16(1, 0n, blocks, BLOCK);
    assert.equal(r.status, CHECK_CONDITION);
    assert.equal(r.sense?.key, 0x05);
    assert.equal(r.sense?.asc, 0x24);
  });

  test('scale: one 16 MiB WRITE(16)/READ(16), verified, in bursts of at most 2^24-1 bytes', async () => {
    const data = pattern(16 * MiB, 16);
    const r2ts = watchR2Ts(s!);
    assert.equal((await s!.write16(1, 0n, data, BLOCK)).status, GOOD);
    assert.ok(r2ts.length <= 2 && r2ts.every((n) => n <= MAX_BURST), `R2Ts ${r2ts.join(' + ')}`);
    const r = await s!.read16(1, 0n, (16 * MiB) / BLOCK, BLOCK);
    assert.equal(r.status, GOOD);
    assert.ok(r.data.equals(data));
  });
});

describe('64 sessions at once', () => {
  let d: TgtDaemon | undefined;

  before(async () => {
    d = await startWith(async (daemon) => {
      await daemon.addLu(1, { lun: 1, bstype: 'memory', path: '1G' }, true);
    });
  });

  after(async () => stop(d));

  test(`64 sessions x QD 32 of 4 KiB random reads: no errors, tgtd VmHWM under ${RSS_BOUND_MIB} MiB`, async () => {
    const r = await runLoad({
      host: d!.host,
      port: d!.port,
      targetName: TARGET,
      lun: 1,
      pattern: 'randread',
      ioSize: 4096,
      queueDepth: 32,
      sessions: 64,
      seconds: 1,
      rangeBytes: 64 * MiB,
      session: { timeoutMs: 30_000 },
    });
    assert.equal(r.errors, 0);
    assert.ok(r.iops > 0, 'I/O completed');
    // every session logged out: the target holds no nexus afterwards (logouts may still be ending)
    let show = '';
    for (let i = 0; i < 20; i++) {
      show = await d!.admInProcess('--mode', 'target', '--op', 'show');
      if (!/I_T nexus: \d+/.test(show)) break;
      await delay(100);
    }
    assert.doesNotMatch(show, /I_T nexus: \d+/);
    const peak = await peakRssMiB(d!.proc.pid!);
    assert.ok(peak < RSS_BOUND_MIB, `tgtd VmHWM ${peak.toFixed(1)} MiB`);
  });

  test('64 sessions logged in at the same time each see their own I_T nexus', async () => {
    const sessions = await Promise.all(
      Array.from({ length: 64 }, (_, i) => login(d!, TARGET, { initiatorName: `${IQN}:host-${i}` })),
    );
    try {
      const show = await d!.admInProcess('--mode', 'target', '--op', 'show');
      assert.equal((show.match(/I_T nexus: \d+/g) ?? []).length, 64);
      const results = await Promise.all(sessions.map((x) => x.read16(1, 0n, 8, BLOCK)));
      // the first command of each new nexus meets its power-on unit attention
      assert.ok(results.every((x) => x.status === GOOD || x.sense?.key === 0x06));
    } finally {
      await Promise.all(sessions.map((x) => closeSession(x)));
    }
  });
});

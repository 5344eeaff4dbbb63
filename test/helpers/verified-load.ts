/**
 * A verified random read/write load (issue 5 "Done when", docs/robustness.md): every sector a
 * write puts down names itself (magic, LBA, write version) and is filled from those, so a read
 * tells exactly which write a sector holds, or that it holds something no write produced (torn,
 * zeroed, shifted). A ledger keeps, per sector, the versions it may hold: normally one (the last
 * acknowledged write), several after a write whose outcome is unknown (the connection died while
 * it was in flight). By default reads collapse the set to what they saw, so data that changes
 * later without a write (a stale write landing late) is caught too; with pinReads false such
 * changes are only counted, and only an acknowledged write narrows the set.
 *
 *   const ledger = new SectorLedger(4096);
 *   const stats = await runVerifiedIo(session, ledger, { lun: 1, queueDepth: 4, stop: () => done });
 *   await verifyRange(session, ledger, 1);       // every sector read back and checked
 *   assert.deepEqual(ledger.violations, []);
 *
 * I/Os never overlap: a worker locks the sectors of its I/O, so an acknowledged read must see
 * exactly the ledger's version and no two writes to one sector are in flight at once.
 */
import { read16Cdb, write16Cdb, type ScsiResult, type Session } from '../../src/initiator/index.js';

/** Sector size of the LUNs the load runs on. */
export const SECTOR = 512;
/** Version of a sector nothing has written (all zeroes). */
export const UNWRITTEN = 0;
const MAGIC = 0x5ec7a11e;
const GOOD = 0x00;
/** At most this many violations are kept in full (the count goes on). */
const MAX_REPORTED = 50;

/** A seeded random source (mulberry32) so a failing run can be repeated from its seed. */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Write the image of sector `lba` as write `version` puts it down into `out` at `offset`. */
export function fillSector(version: number, lba: number, out: Buffer, offset = 0): void {
  out.writeUInt32LE(MAGIC, offset);
  out.writeUInt32LE(version >>> 0, offset + 4);
  out.writeUInt32LE(lba >>> 0, offset + 8);
  out.writeUInt32LE(Math.floor(lba / 2 ** 32), offset + 12);
  // xorshift32 from (version, lba): every sector of every write differs everywhere.
  let x = (Math.imul(version, 0x9e3779b1) ^ Math.imul(lba + 1, 0x85ebca6b)) >>> 0 || 1;
  for (let i = 16; i < SECTOR; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, offset + i);
  }
}

/** Data for a write of `count` sectors from `lba`, all of version `version`. */
export function writeImage(version: number, lba: number, count: number): Buffer {
  const buf = Buffer.allocUnsafe(count * SECTOR);
  for (let i = 0; i < count; i++) fillSector(version, lba + i, buf, i * SECTOR);
  return buf;
}

const scratch = Buffer.alloc(SECTOR);

/** Which write a sector image came from: its version, or a description of what is wrong with it. */
export function decodeSector(data: Buffer, lba: number): { version: number } | { problem: string } {
  if (data.length !== SECTOR) return { problem: `${data.length} bytes instead of ${SECTOR}` };
  let zero = true;
  for (let i = 0; i < SECTOR && zero; i += 4) zero = data.readUInt32LE(i) === 0;
  if (zero) return { version: UNWRITTEN };
  if (data.readUInt32LE(0) !== MAGIC) return { problem: 'no sector header (garbage or torn)' };
  const version = data.readUInt32LE(4);
  const at = data.readUInt32LE(8) + data.readUInt32LE(12) * 2 ** 32;
  if (at !== lba) return { problem: `holds the data of LBA ${at} (version ${version})` };
  fillSector(version, lba, scratch);
  if (!scratch.equals(data)) return { problem: `header of version ${version} but its body differs (torn)` };
  return { version };
}

/** How reads of a sector whose content is uncertain are judged. */
export interface LedgerOptions {
  /**
   * true (default): a read pins an uncertain sector to what it saw, so a write that lands after
   * it (a stale write from a dead connection) is a violation. false: any version the sector may
   * hold is accepted until a write is acknowledged; such late changes are only counted.
   */
  pinReads?: boolean;
}

/** Per-sector record of what the load wrote and what each sector may hold. */
export class SectorLedger {
  /** Sector -> versions it may hold; a single entry is the last acknowledged write. */
  private readonly possible: number[][];
  /** Sector -> version an uncertain sector was last read with (pinReads false). */
  private readonly lastSeen = new Map<number, number>();
  /** Versions of writes that ended without an answer. */
  private readonly unanswered = new Set<number>();
  /** Sector -> version of the write in flight to it (at most one, sectors are locked). */
  readonly inFlight = new Map<number, number>();
  private readonly locked: Uint8Array;
  private readonly pinReads: boolean;
  private version = UNWRITTEN;
  /** What went wrong, described (first MAX_REPORTED). */
  readonly violations: string[] = [];
  violationCount = 0;
  /** Sectors read back and found as expected. */
  sectorsVerified = 0;
  /** pinReads false: uncertain sectors whose content changed between two reads with no write. */
  lateChanges = 0;
  /** The first few late changes, described. */
  readonly lateChangeNotes: string[] = [];

  /** A ledger for LBAs [0, sectors), all of them unwritten (zeroes) at the start. */
  constructor(
    readonly sectors: number,
    options: LedgerOptions = {},
  ) {
    this.possible = Array.from({ length: sectors }, () => [UNWRITTEN]);
    this.locked = new Uint8Array(sectors);
    this.pinReads = options.pinReads ?? true;
  }

  /** Lock [lba, lba + count) for one I/O; false when any of it is busy. */
  tryLock(lba: number, count: number): boolean {
    for (let i = lba; i < lba + count; i++) if (this.locked[i]) return false;
    this.locked.fill(1, lba, lba + count);
    return true;
  }

  unlock(lba: number, count: number): void {
    this.locked.fill(0, lba, lba + count);
  }

  /** A write of [lba, lba + count) is about to be sent: its version, recorded as in flight. */
  beginWrite(lba: number, count: number): number {
    this.version = (this.version + 1) >>> 0 || 1;
    for (let i = lba; i < lba + count; i++) this.inFlight.set(i, this.version);
    return this.version;
  }

  /**
   * The write ended: acknowledged (GOOD: the sectors now hold it and nothing older), or not (no
   * answer, an error: the sectors may hold it or what they held before, sector by sector).
   */
  endWrite(lba: number, count: number, version: number, acknowledged: boolean): void {
    if (!acknowledged) this.unanswered.add(version);
    for (let i = lba; i < lba + count; i++) {
      this.inFlight.delete(i);
      const p = this.possible[i]!;
      // A write was attempted: what the sector was read with before says nothing any more.
      this.lastSeen.delete(i);
      if (acknowledged) this.possible[i] = [version];
      else if (!p.includes(version)) p.push(version);
    }
  }

  /** Sectors whose content is not known exactly (a write to them ended without an answer). */
  uncertainSectors(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.sectors; i++) if (this.possible[i]!.length > 1) out.push(i);
    return out;
  }

  /** The versions sector `lba` may hold now. */
  versionsOf(lba: number): readonly number[] {
    return this.possible[lba]!;
  }

  /**
   * Check data read from [lba, lba + count) against the ledger (see LedgerOptions.pinReads for
   * uncertain sectors). Returns the number of bad sectors.
   */
  check(lba: number, data: Buffer, count: number, context: string): number {
    let bad = 0;
    if (data.length < count * SECTOR) {
      this.violation(`${context}: read of LBA ${lba}+${count} returned ${data.length} bytes`);
      return count;
    }
    for (let i = 0; i < count; i++) {
      const sector = lba + i;
      const got = decodeSector(data.subarray(i * SECTOR, (i + 1) * SECTOR), sector);
      const may = this.possible[sector]!;
      if ('problem' in got) {
        bad++;
        this.violation(`${context}: LBA ${sector} ${got.problem}; expected version ${may.join(' or ')}`);
      } else if (!may.includes(got.version)) {
        bad++;
        const why =
          got.version === UNWRITTEN
            ? ' (zeroes where acknowledged data was)'
            : this.unanswered.has(got.version)
              ? ' (a write left unanswered by a dead connection, landed after the sector was read without it' +
                ' or after a newer write was acknowledged)'
              : '';
        this.violation(
          `${context}: LBA ${sector} holds version ${got.version}, expected ${may.join(' or ')}${why}`,
        );
      } else {
        this.sectorsVerified++;
        if (may.length === 1) continue;
        if (this.pinReads) {
          this.possible[sector] = [got.version];
          continue;
        }
        const seen = this.lastSeen.get(sector);
        if (seen !== undefined && seen !== got.version) {
          this.lateChanges++;
          if (this.lateChangeNotes.length < MAX_REPORTED) {
            this.lateChangeNotes.push(
              `${context}: LBA ${sector} read as version ${seen}, later as ${got.version}`,
            );
          }
        }
        this.lastSeen.set(sector, got.version);
      }
    }
    return bad;
  }

  private violation(what: string): void {
    this.violationCount++;
    if (this.violations.length < MAX_REPORTED) this.violations.push(what);
  }
}

export interface VerifiedIoOptions {
  lun: number;
  /** Commands kept in flight on the session. */
  queueDepth: number;
  /** Checked before each I/O: the workers finish their current I/O and return. */
  stop: () => boolean;
  /** Fraction of I/Os that are writes (default 0.5). */
  writeFraction?: number;
  /** Largest ordinary I/O in sectors (default 16: fits immediate data at tgt's 8 KiB MRDSL). */
  maxSectors?: number;
  /** One I/O in 8 is up to this many sectors (default 256: solicited with R2T). */
  largeSectors?: number;
  /** One write in this many has FUA set (default 16; 0: never). */
  fuaEvery?: number;
  rng?: () => number;
  /** Per-command timeout (default 20 s): a command never answered is a stall. */
  timeoutMs?: number;
}

export interface VerifiedIoStats {
  reads: number;
  writes: number;
  bytes: number;
  /** Sectors found wrong by reads during the load. */
  badSectors: number;
  /** Commands answered with a status other than GOOD. */
  statusErrors: string[];
  /** Commands that threw (connection closed, timeout, Reject), with the error's code. */
  failures: { code: string; message: string }[];
}

/**
 * Run `queueDepth` workers on one session until `stop()` says so or the session closes: random
 * READ(16)/WRITE(16) inside the ledger's range, every read checked against the ledger.
 */
export async function runVerifiedIo(
  session: Session,
  ledger: SectorLedger,
  o: VerifiedIoOptions,
): Promise<VerifiedIoStats> {
  const rng = o.rng ?? Math.random;
  const maxSectors = Math.min(o.maxSectors ?? 16, ledger.sectors);
  const largeSectors = Math.min(o.largeSectors ?? 256, ledger.sectors);
  const writeFraction = o.writeFraction ?? 0.5;
  const fuaEvery = o.fuaEvery ?? 16;
  const timeoutMs = o.timeoutMs ?? 20_000;
  const stats: VerifiedIoStats = {
    reads: 0,
    writes: 0,
    bytes: 0,
    badSectors: 0,
    statusErrors: [],
    failures: [],
  };

  /** Lock a random free range; undefined after a few collisions (try again later). */
  const pick = (): { lba: number; count: number } | undefined => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const limit = rng() < 0.125 ? largeSectors : maxSectors;
      const count = 1 + Math.floor(rng() * limit);
      const lba = Math.floor(rng() * (ledger.sectors - count + 1));
      if (ledger.tryLock(lba, count)) return { lba, count };
    }
    return undefined;
  };

  const worker = async (): Promise<void> => {
    while (!o.stop() && session.state === 'full-feature') {
      const range = pick();
      if (!range) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      const { lba, count } = range;
      try {
        if (rng() < writeFraction) await write(lba, count);
        else await read(lba, count);
      } finally {
        ledger.unlock(lba, count);
      }
    }
  };

  const write = async (lba: number, count: number): Promise<void> => {
    const version = ledger.beginWrite(lba, count);
    const fua = fuaEvery > 0 && Math.floor(rng() * fuaEvery) === 0;
    let r: ScsiResult;
    try {
      r = await session.command({
        lun: o.lun,
        cdb: write16Cdb(lba, count, { fua }),
        dataOut: writeImage(version, lba, count),
        timeoutMs,
      });
    } catch (e) {
      ledger.endWrite(lba, count, version, false);
      stats.failures.push(failure(e, `WRITE(16) LBA ${lba}+${count}`));
      return;
    }
    ledger.endWrite(lba, count, version, r.status === GOOD);
    stats.writes++;
    stats.bytes += count * SECTOR;
    if (r.status !== GOOD) stats.statusErrors.push(statusText('WRITE(16)', lba, count, r));
  };

  const read = async (lba: number, count: number): Promise<void> => {
    let r: ScsiResult;
    try {
      r = await session.command({
        lun: o.lun,
        cdb: read16Cdb(lba, count),
        readLength: count * SECTOR,
        timeoutMs,
      });
    } catch (e) {
      stats.failures.push(failure(e, `READ(16) LBA ${lba}+${count}`));
      return;
    }
    stats.reads++;
    stats.bytes += count * SECTOR;
    if (r.status !== GOOD) stats.statusErrors.push(statusText('READ(16)', lba, count, r));
    else stats.badSectors += ledger.check(lba, r.data, count, 'read during load');
  };

  await Promise.all(Array.from({ length: o.queueDepth }, worker));
  return stats;
}

/**
 * Read `sectors` (default: the whole range) back in chunks and check every one against the
 * ledger; no I/O may be running. Returns the number of bad sectors.
 */
export async function verifyRange(
  session: Session,
  ledger: SectorLedger,
  lun: number,
  context = 'final verify',
  sectors?: readonly number[],
): Promise<number> {
  const chunk = 256;
  let bad = 0;
  const runs = sectors ? contiguousRuns(sectors, chunk) : wholeRange(ledger.sectors, chunk);
  for (const [lba, count] of runs) {
    const r = await session.command({ lun, cdb: read16Cdb(lba, count), readLength: count * SECTOR });
    if (r.status !== GOOD) throw new Error(`${context}: ${statusText('READ(16)', lba, count, r)}`);
    bad += ledger.check(lba, r.data, count, context);
  }
  return bad;
}

function wholeRange(sectors: number, chunk: number): [number, number][] {
  const out: [number, number][] = [];
  for (let lba = 0; lba < sectors; lba += chunk) out.push([lba, Math.min(chunk, sectors - lba)]);
  return out;
}

/** Sorted sector numbers grouped into [lba, count] runs of at most `chunk`. */
function contiguousRuns(sectors: readonly number[], chunk: number): [number, number][] {
  const sorted = [...sectors].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === s && last[1] < chunk) last[1]++;
    else out.push([s, 1]);
  }
  return out;
}

function failure(e: unknown, what: string): { code: string; message: string } {
  const code = (e as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : 'unknown', message: `${what}: ${String(e)}` };
}

function statusText(op: string, lba: number, count: number, r: ScsiResult): string {
  const s = r.sense;
  const sense = s ? ` sense ${s.key.toString(16)}/${s.asc.toString(16)}/${s.ascq.toString(16)}` : '';
  return `${op} LBA ${lba}+${count}: status 0x${r.status.toString(16)}${sense}`;
}

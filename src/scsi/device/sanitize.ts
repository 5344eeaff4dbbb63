/**
 * SANITIZE (SBC-4 5.30, 4.11): OVERWRITE, BLOCK ERASE, CRYPTO ERASE and EXIT FAILURE MODE.
 *
 * A sanitize operation belongs to the LU, not to the command: it runs in the background, goes on
 * when its command is aborted or the LU / target is reset (the command is then ended at once
 * through TaskSet.onInterrupt), and while it runs every command but INQUIRY, REPORT LUNS and
 * REQUEST SENSE is answered NOT READY, SANITIZE IN PROGRESS with a progress indication. With
 * IMMED the command returns GOOD once the parameters are checked.
 *
 * - OVERWRITE writes the initialization pattern (repeated to fill each block, inverted between
 *   passes when INVERT is set) over the whole medium, OVERWRITE COUNT times, paced at
 *   SANITIZE_BYTES_PER_SECOND so that it never starves the I/O of other LUs sharing the disk and
 *   thread pool (a 1 GiB LU takes 8 s per pass).
 * - BLOCK ERASE deallocates every block (reads return zeroes: WABEREQ 01b in VPD B1), by unmap
 *   when the store can, else by writing zeroes. CRYPTO ERASE does the same: the stores keep no
 *   encryption key to destroy, and the user data is gone either way (WACEREQ 01b).
 * - A failed sanitize (store error) leaves the LU in failure mode: media commands answer MEDIUM
 *   ERROR, SANITIZE COMMAND FAILED until a sanitize succeeds, or EXIT FAILURE MODE when the
 *   failed command had AUSE set.
 */
import { Buffer } from 'node:buffer';
import { ScsiStatus, type ScsiCommand } from '../command.js';
import type { LogicalUnit } from '../lu.js';
import { invalidCdbField, SenseError, SenseReason } from '../sense.js';
import { checkWritable } from './block-io.js';

/** SANITIZE service actions (SBC-4 5.30.1). */
export const SA_SANITIZE_OVERWRITE = 0x01;
export const SA_SANITIZE_BLOCK_ERASE = 0x02;
export const SA_SANITIZE_CRYPTO_ERASE = 0x03;
export const SA_SANITIZE_EXIT_FAILURE_MODE = 0x1f;

/** Pace of a sanitize operation (bytes written or erased per second). */
export const SANITIZE_BYTES_PER_SECOND = 128 * 1024 * 1024;
/** Bytes per store call of a sanitize operation. */
const SANITIZE_CHUNK_BYTES = 1024 * 1024;

/** The sanitize operation running on an LU. */
export class SanitizeOperation {
  /** Bytes done so far out of `total` (all passes). */
  done = 0;
  readonly total: number;
  /** Settles when the operation ends; resolves true on success. */
  readonly finished: Promise<boolean>;

  constructor(
    lu: LogicalUnit,
    readonly ause: boolean,
    passes: number,
    run: (op: SanitizeOperation) => Promise<void>,
  ) {
    this.total = Math.max(1, lu.size * passes);
    this.finished = run(this).then(
      () => true,
      () => false,
    );
  }

  /** SPC-4 4.5.2.4.3 PROGRESS INDICATION: fraction done x 65536. */
  get progress(): number {
    return Math.min(0xffff, Math.floor((this.done / this.total) * 0x10000));
  }

  /** Wait as long as needed to stay at SANITIZE_BYTES_PER_SECOND since `startedAt`. */
  async pace(startedAt: number): Promise<void> {
    const due = startedAt + (this.done / SANITIZE_BYTES_PER_SECOND) * 1000;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((ok) => setTimeout(ok, wait));
  }
}

/** The pattern block of an OVERWRITE pass: the pattern repeated over a block, inverted if asked. */
function patternBlock(pattern: Buffer, blockSize: number, invert: boolean): Buffer {
  const block = Buffer.alloc(blockSize);
  for (let off = 0; off < blockSize; off += pattern.length) pattern.copy(block, off);
  if (invert) for (let i = 0; i < blockSize; i++) block[i] = ~block[i]! & 0xff;
  return block;
}

/** Write `block` over the whole medium, paced; counts into `op.done`. */
async function fillMedium(lu: LogicalUnit, op: SanitizeOperation, block: Buffer): Promise<void> {
  const store = lu.store!;
  const perChunk = Math.max(1, Math.floor(SANITIZE_CHUNK_BYTES / lu.blockSize));
  const chunk = Buffer.allocUnsafe(perChunk * lu.blockSize);
  for (let i = 0; i < perChunk; i++) block.copy(chunk, i * lu.blockSize);
  const size = lu.size;
  const startedAt = Date.now() - (op.done / SANITIZE_BYTES_PER_SECOND) * 1000;
  for (let pos = 0; pos < size; pos += chunk.length) {
    const n = Math.min(chunk.length, size - pos);
    await store.write([chunk.subarray(0, n)], pos, false);
    op.done += n;
    await op.pace(startedAt);
  }
  if (store.capabilities.flush) await store.flush();
}

/** Deallocate the whole medium (or zero it when the store cannot deallocate). */
async function eraseMedium(lu: LogicalUnit, op: SanitizeOperation): Promise<void> {
  const store = lu.store!;
  if (store.capabilities.unmap && store.unmap) {
    await store.unmap(0, lu.size);
    op.done = op.total;
    if (store.capabilities.flush) await store.flush();
    return;
  }
  await fillMedium(lu, op, Buffer.alloc(lu.blockSize));
}

/** OVERWRITE parameter list (SBC-4 5.30.3): checked against the CDB's PARAMETER LIST LENGTH. */
function parseOverwrite(cmd: ScsiCommand, lu: LogicalUnit, listLen: number) {
  // The list is a 4-byte header and a pattern of 1..block size bytes (libiscsi Sanitize.Overwrite
  // expects INVALID FIELD IN CDB for every length outside 5..block size + 4).
  if (listLen < 5 || listLen > lu.blockSize + 4) throw invalidCdbField(7);
  if (cmd.dataOutLength < listLen) throw new SenseError(SenseReason.ParameterListLengthError);
  const data = cmd.gatherDataOut(listLen);
  const invert = (data[0]! & 0x80) !== 0;
  const test = (data[0]! >> 5) & 0x03;
  const count = data[0]! & 0x1f;
  const patternLen = data.readUInt16BE(2);
  if (test !== 0 || count === 0) throw invalidCdbField(7);
  if (patternLen === 0 || patternLen > lu.blockSize || patternLen + 4 !== listLen) throw invalidCdbField(7);
  return { invert, count, pattern: Buffer.from(data.subarray(4, 4 + patternLen)) };
}

/** SANITIZE (any service action). */
export async function sanitizeHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const immed = (cdb[1]! & 0x80) !== 0;
  const ause = (cdb[1]! & 0x20) !== 0;
  const sa = cdb[1]! & 0x1f;
  const listLen = cdb.readUInt16BE(7);
  cmd.writeTransferLength = listLen;
  // SBC-4 5.30.1: byte 1 bit 6 and bytes 2-6 are reserved
  if ((cdb[1]! & 0x40) !== 0) throw invalidCdbField(1, 6);
  for (let i = 2; i <= 6; i++) if (cdb[i] !== 0) throw invalidCdbField(i);

  if (sa === SA_SANITIZE_EXIT_FAILURE_MODE) {
    if (listLen !== 0) throw invalidCdbField(7);
    // SBC-4 4.11.4: only a failed sanitize with AUSE set may be left this way
    if (lu.sanitizeFailure && !lu.sanitizeFailure.ause) throw invalidCdbField(1, 5);
    lu.sanitizeFailure = null;
    return;
  }
  let run: (op: SanitizeOperation) => Promise<void>;
  let passes = 1;
  if (sa === SA_SANITIZE_OVERWRITE) {
    const { invert, count, pattern } = parseOverwrite(cmd, lu, listLen);
    passes = count;
    run = async (op) => {
      for (let pass = 0; pass < count; pass++)
        await fillMedium(lu, op, patternBlock(pattern, lu.blockSize, invert && pass % 2 === 1));
    };
  } else {
    if (listLen !== 0) throw invalidCdbField(7); // BLOCK/CRYPTO ERASE take no parameter list
    run = (op) => eraseMedium(lu, op);
  }
  checkWritable(lu);

  const op = new SanitizeOperation(lu, ause, passes, run);
  lu.sanitize = op;
  const ended = op.finished.then((ok) => {
    if (lu.sanitize === op) lu.sanitize = null;
    lu.sanitizeFailure = ok ? null : { ause };
    return ok;
  });
  if (immed) {
    void ended;
    return;
  }
  // Without IMMED the command lasts as long as the operation, unless task management ends it
  // first (the operation goes on).
  let interrupted = false;
  let unregister = (): void => undefined;
  const interruption = new Promise<void>((resolve) => {
    unregister = lu.taskSet.onInterrupt(cmd, () => {
      interrupted = true;
      resolve();
    });
  });
  const ok = await Promise.race([ended, interruption.then(() => true)]);
  unregister();
  if (interrupted) {
    cmd.aborted = true;
    cmd.status = ScsiStatus.TaskAborted;
    return;
  }
  if (!ok) throw new SenseError(SenseReason.SanitizeFailed);
}

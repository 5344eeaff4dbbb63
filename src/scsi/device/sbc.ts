/**
 * SBC-4 direct-access block device ("disk"): the opcode table and its handlers. Handlers
 * decode the CDB, check it, and move bytes with the backing store: reads go straight into
 * `cmd.dataIn`, writes go from `cmd.dataOut` segments without concatenation. What a store
 * lacks is emulated here (FUA by write + flush, WRITE SAME by repeated writes).
 */
import { Buffer } from 'node:buffer';
import type { ScsiCommand } from '../command.js';
import {
  cdbFua,
  cdbLba,
  cdbProtect,
  cdbTransferLength,
  Op,
  SA_GET_LBA_STATUS,
  SA_READ_CAPACITY_16,
  SA_REPORT_SUPPORTED_OPCODES,
  SA_REPORT_SUPPORTED_TMFS,
  SA_REPORT_TARGET_PORT_GROUPS,
} from '../cdb.js';
import type { LogicalUnit } from '../lu.js';
import type { ItNexus } from '../nexus.js';
import { PrAccess } from '../pr.js';
import { invalidCdbField, SenseError, SenseReason } from '../sense.js';
import { REPORT_TARGET_PORT_GROUPS } from './alua.js';
import { REPORT_SUPPORTED_TMFS } from './tmf-report.js';
import { PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT } from './pr.js';
import {
  checkRange,
  checkWritable,
  firstMismatch,
  receivedLength,
  sliceSegments,
  storeRead,
  storeReadNow,
  storeWrite,
  storeWriteNow,
  acquireDataIn,
  transferBytes,
} from './block-io.js';
import { getLbaStatusHandler, unmapHandler, writeSameHandler } from './provisioning.js';
import {
  copyStatusHandler,
  extendedCopyHandler,
  operatingParametersHandler,
  SA_COPY_STATUS,
  SA_OPERATING_PARAMETERS,
} from './xcopy.js';
import {
  sanitizeHandler,
  SA_SANITIZE_BLOCK_ERASE,
  SA_SANITIZE_CRYPTO_ERASE,
  SA_SANITIZE_EXIT_FAILURE_MODE,
  SA_SANITIZE_OVERWRITE,
} from './sanitize.js';
import { MAX_COMPARE_AND_WRITE_BLOCKS, replyData, SPC_ENTRIES, usage } from './spc.js';
import { opcodeTable, serviceActionTable, type DeviceType, type OpcodeEntry } from './types.js';

/**
 * READ(6/10/12/16) (SBC-4 5.11-5.14). Synchronous when the store reads at once (the page
 * cache), so a cached READ costs no promise round trips.
 */
function readHandler(cmd: ScsiCommand, lu: LogicalUnit): void | Promise<void> {
  const cdb = cmd.cdb;
  if (cdbProtect(cdb) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb); // no protection information
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  checkRange(lu, lba, blocks);
  const bytes = transferBytes(lu, blocks);
  if (bytes === 0) return;
  // Read only what the initiator will take; dataInLength still says what the CDB asked for,
  // so the fabric reports the overflow residual.
  const wanted = Math.min(bytes, cmd.expectedReadLength);
  const buf = acquireDataIn(cmd, wanted);
  cmd.dataIn = buf;
  cmd.dataInLength = bytes;
  const offset = lba * lu.blockSize;
  if (wanted === 0 || storeReadNow(lu, buf, offset, cmd)) return;
  return storeRead(lu, buf, offset, cmd);
}

/** WRITE(6/10/12/16) (SBC-4 5.40-5.43); FUA or WCE=0 -> durable before GOOD. */
function writeHandler(cmd: ScsiCommand, lu: LogicalUnit): void | Promise<void> {
  const cdb = cmd.cdb;
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  cmd.writeTransferLength = blocks * lu.blockSize;
  if (cdbProtect(cdb) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
  checkRange(lu, lba, blocks);
  const bytes = transferBytes(lu, blocks);
  checkWritable(lu);
  const n = receivedLength(cmd, lu, bytes);
  if (n === 0) return;
  const segments = n === cmd.dataOutLength ? cmd.dataOut : sliceSegments(cmd.dataOut, 0, n);
  const offset = lba * lu.blockSize;
  const durable = cdbFua(cdb) || !lu.writeCacheEnabled;
  // Stores never keep the segments they were given (store.ts): the fabric may reuse them.
  if (storeWriteNow(lu, segments, offset, durable)) {
    cmd.dataOutConsumed = true;
    return;
  }
  return storeWrite(lu, segments, offset, durable).then(() => {
    cmd.dataOutConsumed = true;
  });
}

/** Compare `bytes` of Data-Out (from `dataStart`) with the medium at `offset`; MISCOMPARE on difference. */
async function compareWithMedium(
  cmd: ScsiCommand,
  lu: LogicalUnit,
  offset: number,
  bytes: number,
  dataStart: number,
): Promise<void> {
  const medium = Buffer.allocUnsafe(bytes);
  await storeRead(lu, medium, offset);
  const at = firstMismatch(cmd.dataOut, dataStart, medium);
  // SBC-4 5.3: INFORMATION = offset of the first miscompared byte
  if (at >= 0) throw new SenseError(SenseReason.Miscompare, at);
}

/** VERIFY(10/12/16) (SBC-4 5.30-5.32): BYTCHK 00b no compare, 01b compare, 11b one block for all. */
async function verifyHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  const bytchk = (cdb[1]! >> 1) & 0x03;
  cmd.writeTransferLength = bytchk === 0 ? 0 : bytchk === 3 ? lu.blockSize : blocks * lu.blockSize;
  if (cdbProtect(cdb) !== 0 || bytchk === 2) throw new SenseError(SenseReason.InvalidFieldInCdb);
  checkRange(lu, lba, blocks);
  const bytes = transferBytes(lu, blocks);
  if (bytchk === 0 || bytes === 0) return;
  if (cmd.dataOutLength < cmd.writeTransferLength)
    throw new SenseError(SenseReason.InvalidFieldInInformationUnit);
  if (bytchk === 1) return compareWithMedium(cmd, lu, lba * lu.blockSize, bytes, 0);
  const medium = Buffer.allocUnsafe(bytes);
  await storeRead(lu, medium, lba * lu.blockSize);
  for (let b = 0; b < blocks; b++) {
    const at = firstMismatch(cmd.dataOut, 0, medium.subarray(b * lu.blockSize, (b + 1) * lu.blockSize));
    if (at >= 0) throw new SenseError(SenseReason.Miscompare, b * lu.blockSize + at);
  }
}

/** WRITE AND VERIFY(10/12/16) (SBC-4 5.44-5.46): write durably, then compare when BYTCHK. */
async function writeVerifyHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  const bytchk = (cdb[1]! >> 1) & 0x01;
  cmd.writeTransferLength = blocks * lu.blockSize;
  if (cdbProtect(cdb) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
  checkRange(lu, lba, blocks);
  const bytes = transferBytes(lu, blocks);
  checkWritable(lu);
  const n = receivedLength(cmd, lu, bytes);
  if (n === 0) return;
  const segments = n === cmd.dataOutLength ? cmd.dataOut : sliceSegments(cmd.dataOut, 0, n);
  await storeWrite(lu, segments, lba * lu.blockSize, true);
  if (bytchk) await compareWithMedium(cmd, lu, lba * lu.blockSize, n, 0);
}

/**
 * COMPARE AND WRITE (SBC-4 5.3): compare N blocks with the medium, write the next N only if
 * they all match. Atomic: the entry is `exclusive`, so nothing else runs on the LU meanwhile.
 */
async function compareAndWriteHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  const bytes = blocks * lu.blockSize;
  cmd.writeTransferLength = 2 * bytes;
  if (cdbProtect(cdb) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
  if (blocks > MAX_COMPARE_AND_WRITE_BLOCKS) throw invalidCdbField(13);
  // The verify and write data come as one transfer of exactly 2 x NUMBER OF LOGICAL BLOCKS
  // (SBC-4 5.3); any other Data-Out length is refused before anything is compared or written.
  if (cmd.expectedWriteLength !== 2 * bytes) throw invalidCdbField(13);
  checkRange(lu, lba, blocks);
  checkWritable(lu);
  if (blocks === 0) return;
  if (cmd.dataOutLength < 2 * bytes) throw new SenseError(SenseReason.InvalidFieldInInformationUnit);
  await compareWithMedium(cmd, lu, lba * lu.blockSize, bytes, 0);
  await storeWrite(
    lu,
    sliceSegments(cmd.dataOut, bytes, bytes),
    lba * lu.blockSize,
    cdbFua(cdb) || !lu.writeCacheEnabled,
  );
}

/**
 * ORWRITE(16) (SBC-4 5.8): OR the Data-Out into the medium's blocks and write the result.
 * Atomic like COMPARE AND WRITE (`exclusive`): nothing else touches the LU in between.
 */
async function orWriteHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  cmd.writeTransferLength = blocks * lu.blockSize;
  if (cdbProtect(cdb) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb); // ORPROTECT
  checkRange(lu, lba, blocks);
  const bytes = transferBytes(lu, blocks);
  checkWritable(lu);
  const n = receivedLength(cmd, lu, bytes);
  if (n === 0) return;
  const offset = lba * lu.blockSize;
  const medium = Buffer.allocUnsafe(n);
  await storeRead(lu, medium, offset);
  let pos = 0;
  for (const seg of sliceSegments(cmd.dataOut, 0, n)) {
    for (let i = 0; i < seg.length; i++) medium[pos + i]! |= seg[i]!;
    pos += seg.length;
  }
  await storeWrite(lu, [medium], offset, cdbFua(cdb) || !lu.writeCacheEnabled);
}

/**
 * WRITE ATOMIC(16) (SBC-4 5.48): the whole transfer or nothing. Atomic against every other
 * command on the LU because the entry is `exclusive` (nothing else runs meanwhile) and because a
 * short Data-Out writes nothing; up to MAXIMUM ATOMIC TRANSFER LENGTH blocks, no alignment or
 * granularity constraints, no atomic boundaries (ATOMIC BOUNDARY must be 0).
 */
async function writeAtomicHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const cdb = cmd.cdb;
  const lba = cdbLba(cdb);
  const blocks = cdb.readUInt16BE(12);
  cmd.writeTransferLength = blocks * lu.blockSize;
  if (cdbProtect(cdb) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
  if (cdb.readUInt16BE(10) !== 0) throw invalidCdbField(10);
  checkRange(lu, lba, blocks);
  if (blocks > lu.maxAtomicBlocks) throw invalidCdbField(12);
  checkWritable(lu);
  const bytes = blocks * lu.blockSize;
  if (bytes === 0) return;
  if (cmd.dataOutLength < bytes) throw new SenseError(SenseReason.InvalidFieldInInformationUnit);
  const segments = bytes === cmd.dataOutLength ? cmd.dataOut : sliceSegments(cmd.dataOut, 0, bytes);
  await storeWrite(lu, segments, lba * lu.blockSize, cdbFua(cdb) || !lu.writeCacheEnabled);
}

/**
 * READ DEFECT DATA(10/12) (SBC-4 5.12/5.13): a virtual disk has no defects: the header echoes
 * the requested lists and format with an empty list.
 */
function readDefectDataHandler(cmd: ScsiCommand): void {
  const cdb = cmd.cdb;
  const twelve = cdb[0] === Op.ReadDefectData12;
  const request = (twelve ? cdb[1]! : cdb[2]!) & 0x1f; // REQ_PLIST, REQ_GLIST, DEFECT LIST FORMAT
  const d = Buffer.alloc(twelve ? 8 : 4);
  d[1] = request; // PLISTV, GLISTV, format; DEFECT LIST LENGTH 0
  replyData(cmd, d, twelve ? cdb.readUInt32BE(6) : cdb.readUInt16BE(7));
}

/** SYNCHRONIZE CACHE(10/16) (SBC-4 5.24/5.25): flush; IMMED is honoured by flushing first. */
async function syncCacheHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const lba = cdbLba(cmd.cdb);
  const blocks = cdbTransferLength(cmd.cdb); // 0 = to the end of the medium
  checkRange(lu, lba, blocks);
  const store = lu.store!;
  if (!store.capabilities.flush) return;
  try {
    await store.flush();
  } catch {
    throw new SenseError(SenseReason.WriteError);
  }
}

/** PRE-FETCH(10/16) (SBC-4 5.9/5.10): advisory read-ahead; GOOD. */
async function preFetchHandler(cmd: ScsiCommand, lu: LogicalUnit): Promise<void> {
  const lba = cdbLba(cmd.cdb);
  const blocks = cdbTransferLength(cmd.cdb);
  checkRange(lu, lba, blocks);
  const store = lu.store!;
  if (blocks === 0 || !store.prefetch) return;
  await store.prefetch(lba * lu.blockSize, blocks * lu.blockSize).catch(() => undefined);
}

/** READ CAPACITY(10) (SBC-4 5.16): FFFFFFFFh when the last LBA does not fit. */
function readCapacity10Handler(cmd: ScsiCommand, lu: LogicalUnit): void {
  const cdb = cmd.cdb;
  const pmi = (cdb[8]! & 0x01) !== 0;
  // SBC-3 5.15: LBA must be zero when PMI is zero
  if (!pmi && cdb.readUInt32BE(2) !== 0) throw new SenseError(SenseReason.InvalidFieldInCdb);
  const d = Buffer.alloc(8);
  d.writeUInt32BE(Math.min(Math.max(lu.blocks - 1, 0), 0xffffffff), 0);
  d.writeUInt32BE(lu.blockSize, 4);
  replyData(cmd, d, 8);
}

/** READ CAPACITY(16) (SBC-4 5.17): LBPME/LBPRZ when thin provisioned, LBPPBE, LALBA. */
function readCapacity16Handler(cmd: ScsiCommand, lu: LogicalUnit): void {
  const d = Buffer.alloc(32);
  d.writeBigUInt64BE(BigInt(Math.max(lu.blocks - 1, 0)), 0);
  d.writeUInt32BE(lu.blockSize, 8);
  d[13] = lu.lbppbe & 0x0f;
  let word = lu.laLba & 0x3fff;
  if (lu.unmapSupported) word |= 0xc000; // LBPME, LBPRZ
  d.writeUInt16BE(word, 14);
  replyData(cmd, d, cmd.cdb.readUInt32BE(10));
}

/** START STOP UNIT (SBC-4 5.23): LOEJ loads/ejects removable media (refused under PREVENT). */
function startStopHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): void {
  const b4 = cmd.cdb[4]!;
  const powerCondition = b4 >> 4;
  const loej = (b4 & 0x02) !== 0;
  const start = (b4 & 0x01) !== 0;
  if (powerCondition !== 0 || !loej || !lu.removable) return; // power states are not modelled
  // SBC-4 5.25: under PREVENT neither unload nor load may change the medium
  if (lu.preventRemoval) throw new SenseError(SenseReason.MediumRemovalPrevented);
  if (start) {
    if (lu.store && !lu.online) {
      lu.online = true;
      for (const n of lu.target.nexuses.values())
        if (n !== nexus) n.luInfo(lu).addUnitAttention(SenseReason.NotReadyToReadyChange);
    }
    return;
  }
  lu.online = false;
}

/** PREVENT ALLOW MEDIUM REMOVAL (SBC-4 5.8): per I_T nexus. */
function preventAllowHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): void {
  const prevent = cmd.cdb[4]! & 0x03;
  if (prevent > 1) throw new SenseError(SenseReason.InvalidFieldInCdb);
  nexus.luInfo(lu).prevent = prevent === 1;
}

/** FORMAT UNIT (SBC-4 5.4): nothing to format; tgt's checks (no FMTPINFO, FMTDATA, defect list). */
function formatUnitHandler(cmd: ScsiCommand, lu: LogicalUnit): void {
  const b1 = cmd.cdb[1]!;
  if ((b1 & 0x80) !== 0 || (b1 & 0x10) !== 0 || (b1 & 0x07) !== 0)
    throw new SenseError(SenseReason.InvalidFieldInCdb);
  checkWritable(lu);
}

const rw10 = [0xfe, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff] as const;
const rw12 = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f] as const;
const rw16 = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f] as const;

function media(
  name: string,
  handler: OpcodeEntry['handler'],
  use: readonly number[],
  extra: Partial<OpcodeEntry> = {},
): OpcodeEntry {
  return Object.freeze({ name, handler, usage: use, needsMedia: true, ...extra });
}

/** The disk's opcode table (tgt §5.2). */
export const SBC_OPS = opcodeTable([
  [Op.TestUnitReady, SPC_ENTRIES.testUnitReady],
  [Op.RequestSense, SPC_ENTRIES.requestSense],
  [Op.FormatUnit, media('FORMAT UNIT', formatUnitHandler, usage(Op.FormatUnit, 0xff))],
  [Op.Read6, media('READ(6)', readHandler, usage(Op.Read6, 0x1f, 0xff, 0xff, 0xff), { pr: PrAccess.Read })],
  [Op.Write6, media('WRITE(6)', writeHandler, usage(Op.Write6, 0x1f, 0xff, 0xff, 0xff))],
  [Op.Inquiry, SPC_ENTRIES.inquiry],
  [Op.ModeSelect6, SPC_ENTRIES.modeSelect6],
  [Op.Reserve6, SPC_ENTRIES.reserve6],
  [Op.Release6, SPC_ENTRIES.release6],
  [Op.ModeSense6, SPC_ENTRIES.modeSense6],
  [
    Op.StartStopUnit,
    Object.freeze({
      name: 'START STOP UNIT',
      handler: startStopHandler,
      usage: usage(Op.StartStopUnit, 0x01, 0, 0x0f, 0xf7),
    }),
  ],
  [Op.SendDiagnostic, SPC_ENTRIES.sendDiagnostic],
  [
    Op.PreventAllow,
    Object.freeze({
      name: 'PREVENT ALLOW MEDIUM REMOVAL',
      handler: preventAllowHandler,
      usage: usage(Op.PreventAllow, 0, 0, 0, 0x03),
    }),
  ],
  [
    Op.ReadCapacity10,
    media(
      'READ CAPACITY(10)',
      readCapacity10Handler,
      usage(Op.ReadCapacity10, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01),
      { pr: PrAccess.Allowed },
    ),
  ],
  [Op.Read10, media('READ(10)', readHandler, usage(Op.Read10, ...rw10), { pr: PrAccess.Read })],
  [Op.Write10, media('WRITE(10)', writeHandler, usage(Op.Write10, ...rw10))],
  [Op.WriteVerify10, media('WRITE AND VERIFY(10)', writeVerifyHandler, usage(Op.WriteVerify10, ...rw10))],
  [
    Op.ReadDefectData10,
    media(
      'READ DEFECT DATA(10)',
      readDefectDataHandler,
      usage(Op.ReadDefectData10, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff),
      {
        pr: PrAccess.Read,
      },
    ),
  ],
  [Op.Verify10, media('VERIFY(10)', verifyHandler, usage(Op.Verify10, ...rw10), { pr: PrAccess.Read })],
  [
    Op.PreFetch10,
    media(
      'PRE-FETCH(10)',
      preFetchHandler,
      usage(Op.PreFetch10, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff),
      { pr: PrAccess.Read },
    ),
  ],
  [
    Op.SyncCache10,
    media(
      'SYNCHRONIZE CACHE(10)',
      syncCacheHandler,
      usage(Op.SyncCache10, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff),
    ),
  ],
  [
    Op.WriteSame10,
    media(
      'WRITE SAME(10)',
      writeSameHandler,
      usage(Op.WriteSame10, 0x08, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff),
    ),
  ],
  [
    Op.Sanitize,
    serviceActionTable(
      'SANITIZE',
      (
        [
          [SA_SANITIZE_OVERWRITE, 'SANITIZE OVERWRITE'],
          [SA_SANITIZE_BLOCK_ERASE, 'SANITIZE BLOCK ERASE'],
          [SA_SANITIZE_CRYPTO_ERASE, 'SANITIZE CRYPTO ERASE'],
          [SA_SANITIZE_EXIT_FAILURE_MODE, 'SANITIZE EXIT FAILURE MODE'],
        ] as const
      ).map(([sa, name]) => [
        sa,
        media(name, sanitizeHandler, usage(Op.Sanitize, 0xa0 | sa, 0, 0, 0, 0, 0xff, 0xff)),
      ]),
    ),
  ],
  [Op.Unmap, media('UNMAP', unmapHandler, usage(Op.Unmap, 0, 0, 0, 0, 0, 0x1f, 0xff, 0xff))],
  [Op.ModeSelect10, SPC_ENTRIES.modeSelect10],
  [Op.Reserve10, SPC_ENTRIES.reserve10],
  [Op.Release10, SPC_ENTRIES.release10],
  [Op.ModeSense10, SPC_ENTRIES.modeSense10],
  [Op.PersistentReserveIn, PERSISTENT_RESERVE_IN],
  [Op.PersistentReserveOut, PERSISTENT_RESERVE_OUT],
  [
    Op.ExtendedCopy,
    serviceActionTable('EXTENDED COPY', [
      [
        0x00,
        media(
          'EXTENDED COPY(LID1)',
          extendedCopyHandler,
          usage(Op.ExtendedCopy, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0),
        ),
      ],
    ]),
  ],
  [
    Op.ReceiveCopyResults,
    serviceActionTable(
      'RECEIVE COPY RESULTS',
      (
        [
          [SA_COPY_STATUS, 'RECEIVE COPY RESULTS(COPY STATUS)', copyStatusHandler],
          [SA_OPERATING_PARAMETERS, 'RECEIVE COPY RESULTS(OPERATING PARAMETERS)', operatingParametersHandler],
        ] as const
      ).map(([sa, name, handler]) => [
        sa,
        Object.freeze({
          name,
          handler,
          usage: usage(Op.ReceiveCopyResults, sa, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0),
          pr: PrAccess.Allowed,
        }),
      ]),
    ),
  ],
  [Op.Read16, media('READ(16)', readHandler, usage(Op.Read16, ...rw16), { pr: PrAccess.Read })],
  [
    Op.CompareAndWrite,
    media(
      'COMPARE AND WRITE',
      compareAndWriteHandler,
      usage(Op.CompareAndWrite, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x1f),
      { exclusive: true },
    ),
  ],
  [Op.Write16, media('WRITE(16)', writeHandler, usage(Op.Write16, ...rw16))],
  [Op.OrWrite16, media('ORWRITE(16)', orWriteHandler, usage(Op.OrWrite16, ...rw16), { exclusive: true })],
  [Op.WriteVerify16, media('WRITE AND VERIFY(16)', writeVerifyHandler, usage(Op.WriteVerify16, ...rw16))],
  [Op.Verify16, media('VERIFY(16)', verifyHandler, usage(Op.Verify16, ...rw16), { pr: PrAccess.Read })],
  [
    Op.PreFetch16,
    media('PRE-FETCH(16)', preFetchHandler, usage(Op.PreFetch16, 0x02, ...rw16.slice(1)), {
      pr: PrAccess.Read,
    }),
  ],
  [
    Op.SyncCache16,
    media('SYNCHRONIZE CACHE(16)', syncCacheHandler, usage(Op.SyncCache16, 0x02, ...rw16.slice(1))),
  ],
  [
    Op.WriteAtomic16,
    media(
      'WRITE ATOMIC(16)',
      writeAtomicHandler,
      usage(Op.WriteAtomic16, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0x1f),
      { exclusive: true },
    ),
  ],
  [Op.WriteSame16, media('WRITE SAME(16)', writeSameHandler, usage(Op.WriteSame16, 0x09, ...rw16.slice(1)))],
  [
    Op.ServiceActionIn16,
    serviceActionTable('SERVICE ACTION IN(16)', [
      [
        SA_READ_CAPACITY_16,
        media(
          'READ CAPACITY(16)',
          readCapacity16Handler,
          usage(Op.ServiceActionIn16, 0x1f, ...new Array<number>(8).fill(0), 0xff, 0xff, 0xff, 0xff),
          { pr: PrAccess.Allowed },
        ),
      ],
      [
        SA_GET_LBA_STATUS,
        media(
          'GET LBA STATUS',
          getLbaStatusHandler,
          usage(Op.ServiceActionIn16, 0x1f, ...new Array<number>(8).fill(0xff), 0xff, 0xff, 0xff, 0xff),
          { pr: PrAccess.Read },
        ),
      ],
    ]),
  ],
  [Op.ReportLuns, SPC_ENTRIES.reportLuns],
  [
    Op.MaintenanceIn,
    serviceActionTable('MAINTENANCE IN', [
      [SA_REPORT_TARGET_PORT_GROUPS, REPORT_TARGET_PORT_GROUPS],
      [SA_REPORT_SUPPORTED_OPCODES, SPC_ENTRIES.reportSupportedOpcodes],
      [SA_REPORT_SUPPORTED_TMFS, REPORT_SUPPORTED_TMFS],
    ]),
  ],
  [Op.Read12, media('READ(12)', readHandler, usage(Op.Read12, ...rw12), { pr: PrAccess.Read })],
  [Op.Write12, media('WRITE(12)', writeHandler, usage(Op.Write12, ...rw12))],
  [Op.WriteVerify12, media('WRITE AND VERIFY(12)', writeVerifyHandler, usage(Op.WriteVerify12, ...rw12))],
  [
    Op.ReadDefectData12,
    media(
      'READ DEFECT DATA(12)',
      readDefectDataHandler,
      usage(Op.ReadDefectData12, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff),
      { pr: PrAccess.Read },
    ),
  ],
  [Op.Verify12, media('VERIFY(12)', verifyHandler, usage(Op.Verify12, ...rw12), { pr: PrAccess.Read })],
]);

/** Disk mode pages (tgt §5.4): caching (WCE changeable), control (D_SENSE, SWP changeable), ... */
function initDiskModePages(lu: LogicalUnit): void {
  const pages = lu.modePages;
  pages.set(0x02, 0, [0x80, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // disconnect-reconnect
  // caching (SBC-4 6.5.5): WCE=1 (write-back, as tgt), only WCE changeable
  pages.set(
    0x08,
    0,
    [0x04, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x80, 0x14, 0, 0, 0, 0, 0, 0],
    [0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  );
  // control (SPC-4 7.5.8): GLTSD, QUEUE ALGORITHM MODIFIER 1; D_SENSE, QERR, SWP and TAS changeable
  pages.set(0x0a, 0, [0x02, 0x10, 0, 0, 0, 0, 0, 0, 0, 0], [0x04, 0x06, 0x08, 0x40, 0, 0, 0, 0, 0, 0]);
  pages.set(0x0a, 0x01, new Array<number>(0x1c).fill(0)); // control extension
  pages.set(0x1c, 0, [0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // informational exceptions: DEXCPT
}

/** SBC direct-access block device (peripheral device type 00h). */
export const diskDeviceType: DeviceType = Object.freeze({
  code: 0x00,
  name: 'disk',
  productId: 'VIRTUAL-DISK',
  versionDescriptors: [0x04c0, 0x0960, 0x0300], // SBC-3, iSCSI, SPC-3 (as tgt)
  vpdPages: [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2],
  ops: SBC_OPS,
  initModePages: initDiskModePages,
});

/**
 * Micro-benchmarks of the per-command hot paths: BHS decode, CDB decode, CRC32C, Data-In
 * build and receive framing. Run with `npx tsx benchmarks/hot-paths.ts [seconds-per-case]` (default 1). Prints
 * operations per second and nanoseconds per operation; compare runs on the same machine only.
 */
import { DataDirection, ScsiCommand, TaskAttribute } from '../src/scsi/command.js';
import { cdbLba, cdbTransferLength } from '../src/scsi/cdb.js';
import { crc32cUpdate } from '../src/iscsi/digest.js';
import { sendCommandResult } from '../src/iscsi/data-in.js';
import { bhsLun, encodeScsiCommand, ScsiCommandView, scsiCommandCdb } from '../src/iscsi/pdu.js';
import { encodePduToBuffer, pduBuffers } from '../src/iscsi/pdu-writer.js';
import { PduFramer } from '../src/iscsi/framer.js';
import { allocatePduData } from '../src/iscsi/payload-buffers.js';
import { releaseBuffer } from '../src/scsi/buffer-pool.js';
import { BHS_LENGTH } from '../src/iscsi/spec.js';
import { IscsiTask } from '../src/iscsi/task.js';

const seconds = Number(process.argv[2] ?? 1);

/** Run `fn` in batches until `seconds` have passed; returns operations per second. */
function measure(name: string, fn: () => number): void {
  for (let i = 0; i < 10_000; i++) fn(); // warm up (JIT)
  let ops = 0;
  let sink = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < end) {
    for (let i = 0; i < 1000; i++) sink += fn();
    ops += 1000;
    now = process.hrtime.bigint();
  }
  const ns = Number(now - start);
  const perSecond = (ops * 1e9) / ns;
  console.log(
    `${name.padEnd(40)} ${Math.round(perSecond).toLocaleString('en').padStart(14)} op/s ${(ns / ops).toFixed(1).padStart(9)} ns/op` +
      (sink === 0.5 ? ' ' : ''),
  );
}

function read10(lba: number, blocks: number): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x28;
  cdb.writeUInt32BE(lba, 2);
  cdb.writeUInt16BE(blocks, 7);
  return cdb;
}

function read16(lba: number, blocks: number): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x88;
  cdb.writeBigUInt64BE(BigInt(lba), 2);
  cdb.writeUInt32BE(blocks, 10);
  return cdb;
}

// --- BHS decode: what onScsiCommand reads from every SCSI Command PDU -----------------------
const bhs = encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
  itt: 0x1234,
  read: true,
  edtl: 4096,
  cmdSN: 7,
  expStatSN: 3,
  cdb: read10(1000, 8),
});
const view = new ScsiCommandView(Buffer.alloc(BHS_LENGTH));
measure('BHS decode (SCSI Command fields)', () => {
  const v = view.wrap(bhs);
  const lun = bhsLun(bhs);
  const cdb = scsiCommandCdb(bhs, null);
  return v.itt + v.edtl + v.cmdSN + (v.read ? 1 : 0) + v.attr + lun.length + cdb.length;
});

// --- CDB decode -------------------------------------------------------------------------------
const cdb10 = read10(123456, 8);
const cdb16 = read16(2 ** 40, 256);
measure('CDB decode READ(10) lba+length', () => cdbLba(cdb10) + cdbTransferLength(cdb10));
measure('CDB decode READ(16) lba+length', () => cdbLba(cdb16) + cdbTransferLength(cdb16));

// --- CRC32C -----------------------------------------------------------------------------------
for (const size of [48, 4096, 128 * 1024]) {
  const data = Buffer.alloc(size, 0xa5);
  measure(`CRC32C ${size} bytes`, () => crc32cUpdate(0, data));
}

// --- Data-In build: Data-In PDUs + status of a finished READ, and their wire pieces ----------
function finishedRead(bytes: number): IscsiTask {
  const cmd = new ScsiCommand(
    {
      cdb: read10(0, bytes / 512),
      lun: Buffer.alloc(8),
      tag: 1,
      attribute: TaskAttribute.Simple,
      direction: DataDirection.Read,
      expectedReadLength: bytes,
      expectedWriteLength: 0,
    },
    () => {},
  );
  cmd.dataIn = Buffer.alloc(bytes);
  cmd.dataInLength = bytes;
  return new IscsiTask(1, cmd, false);
}

let statSn = 0;
const seq = { takeStatSn: () => statSn++, expCmdSn: 1, maxCmdSn: 64 };
const limits = { maxXmitDataSegmentLength: 262144, maxBurstLength: 262144 };
const pieces: Buffer[] = [];
const digests = { headerDigest: false, dataDigest: false };
const send = (header: Buffer, data: Buffer | readonly Buffer[] | null): void => {
  pduBuffers(pieces, header, null, data, digests);
  pieces.length = 0;
};
for (const size of [4096, 128 * 1024]) {
  const task = finishedRead(size);
  measure(
    `Data-In build ${size / 1024} KiB (+status)`,
    () => sendCommandResult(task, limits, seq, send).dataInPdus,
  );
}
const small = { maxXmitDataSegmentLength: 8192, maxBurstLength: 262144 };
const big = finishedRead(128 * 1024);
measure('Data-In build 128 KiB in 8 KiB PDUs', () => sendCommandResult(big, small, seq, send).dataInPdus);

// --- Receive framing: one socket read holding 32 WRITE PDUs with immediate data, framed into
// pooled payload buffers that go back once "written", as on the target (one op = one read).
for (const size of [4096, 8192]) {
  const stream = Buffer.concat(
    Array.from({ length: 32 }, (_, i) =>
      encodePduToBuffer(
        encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
          itt: i,
          write: true,
          edtl: size,
          cdb: Buffer.alloc(16, 0x2a),
          cmdSN: i,
          expStatSN: 1,
        }),
        null,
        Buffer.alloc(size, i),
        digests,
      ),
    ),
  );
  let framed = 0;
  const framer = new PduFramer(
    (pdu) => {
      framed++;
      releaseBuffer(pdu.data);
    },
    (err) => {
      throw err;
    },
    { maxDataSegmentLength: 262144, allocateData: allocatePduData },
  );
  measure(`Framing a read of 32 WRITE + ${size / 1024} KiB PDUs`, () => {
    framer.push(stream);
    return framed;
  });
}

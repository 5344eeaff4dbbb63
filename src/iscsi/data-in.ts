/**
 * The answer to a finished SCSI command (RFC 7143 11.4, 11.7): Data-In PDUs cut at the
 * initiator's MaxRecvDataSegmentLength, F set at the end of every MaxBurstLength sequence, and the
 * status either in the last Data-In (phase collapse, 11.7.3) or in a SCSI Response that carries
 * the sense data. Data-In payloads are views of the command's buffer, never copies. The layout
 * is a pure function of the DataSN (dataInSegment), so at ERL >= 1 any Data-In can be encoded
 * again from the returned DataInPlan (encodeDataInAt) for a SNACK instead of being stored.
 */
import { Buffer } from 'node:buffer';
import { DataDirection, ScsiStatus } from '../scsi/command.js';
import {
  encodeDataIn,
  encodeScsiResponse,
  senseLengthPrefix,
  type DataInFields,
  type ScsiResponseFields,
} from './pdu.js';
import { BHS_LENGTH } from './spec.js';
import type { IscsiTask } from './task.js';

/** Where the connection's sequence numbers come from. */
export interface StatusSequence {
  /** Take the next StatSN (it advances). */
  takeStatSn(): number;
  readonly expCmdSn: number;
  readonly maxCmdSn: number;
}

export interface DataInLimits {
  /** The initiator's MaxRecvDataSegmentLength. */
  maxXmitDataSegmentLength: number;
  maxBurstLength: number;
}

export type PduSend = (bhs: Buffer, data: Buffer | readonly Buffer[] | null) => void;

/** What was sent, for the connection's counters and for ERL >= 1 retention (erl1.ts). */
export interface ResultCounts {
  dataInPdus: number;
  dataInBytes: number;
  responses: number;
  /** The Data-In PDUs sent, as a plan that re-encodes any of them (null: none sent). */
  plan: DataInPlan | null;
  /** StatSN the command's status took (in the last Data-In or in the SCSI Response). */
  statSn: number;
}

/**
 * Everything needed to encode any Data-In PDU of a command again, exactly as it was first sent
 * (RFC 7143 11.16: a Data SNACK is answered with replicas). The payloads are views of `data`.
 */
export interface DataInPlan {
  itt: number;
  lun: Buffer;
  data: Buffer;
  /** Bytes sent (the Data-In PDUs cover [0, length)). */
  length: number;
  maxXmitDataSegmentLength: number;
  maxBurstLength: number;
  /** Number of Data-In PDUs (DataSN 0 .. pduCount - 1). */
  pduCount: number;
  /** The status rides on the last Data-In (phase collapse, 11.7.3). */
  collapse: boolean;
  status: number;
  overflow: boolean;
  underflow: boolean;
  residualCount: number;
  /** StatSN carried by the last Data-In when `collapse`. */
  statSn: number;
}

/** Where a Data-In PDU lies in the transfer. */
export interface DataInSegment {
  offset: number;
  length: number;
  final: boolean;
}

/** Where Data-In PDU `dataSn` of a transfer lies: MaxBurstLength sequences cut at the MRDSL. */
export function dataInSegment(
  plan: Pick<DataInPlan, 'length' | 'maxXmitDataSegmentLength' | 'maxBurstLength'>,
  dataSn: number,
  out: DataInSegment = { offset: 0, length: 0, final: false },
): DataInSegment {
  const burst = plan.maxBurstLength;
  const mxdsl = plan.maxXmitDataSegmentLength;
  const perBurst = Math.ceil(burst / mxdsl);
  const burstStart = Math.floor(dataSn / perBurst) * burst;
  const offset = burstStart + (dataSn % perBurst) * mxdsl;
  const burstEnd = Math.min(plan.length, burstStart + burst);
  const length = Math.max(0, Math.min(mxdsl, burstEnd - offset));
  out.offset = offset;
  out.length = length;
  // 11.7.1: F ends each MaxBurstLength sequence.
  out.final = offset + length === burstEnd;
  return out;
}

/** How many Data-In PDUs carry `length` bytes (see dataInSegment). */
export function dataInPduCount(
  length: number,
  maxXmitDataSegmentLength: number,
  maxBurstLength: number,
): number {
  if (length <= 0) return 0;
  const perBurst = Math.ceil(maxBurstLength / maxXmitDataSegmentLength);
  const fullBursts = Math.floor(length / maxBurstLength);
  const rest = length - fullBursts * maxBurstLength;
  return fullBursts * perBurst + Math.ceil(rest / maxXmitDataSegmentLength);
}

/**
 * Encode Data-In PDU `dataSn` of `plan` into `bhs` with the current ExpCmdSN/MaxCmdSN; returns
 * its payload (a view of the command's buffer).
 */
export function encodeDataInAt(
  bhs: Buffer,
  plan: DataInPlan,
  dataSn: number,
  expCmdSn: number,
  maxCmdSn: number,
  acknowledge = false,
): Buffer {
  const seg = dataInSegment(plan, dataSn, segment);
  const withStatus = plan.collapse && seg.offset + seg.length === plan.length;
  // One fields object for every Data-In (encodeDataIn reads it and keeps nothing): a READ
  // allocates no encoder arguments.
  const f = dataInFields;
  f.itt = plan.itt;
  f.lun = plan.lun;
  f.final = seg.final;
  f.acknowledge = acknowledge;
  f.statusPresent = withStatus;
  f.status = withStatus ? plan.status : 0;
  f.overflow = withStatus && plan.overflow;
  f.underflow = withStatus && plan.underflow;
  f.residualCount = withStatus ? plan.residualCount : 0;
  // 11.7.4: StatSN is valid (and advances) only with the S bit.
  f.statSN = withStatus ? plan.statSn : 0;
  f.expCmdSN = expCmdSn;
  f.maxCmdSN = maxCmdSn;
  f.dataSN = dataSn;
  f.bufferOffset = seg.offset;
  encodeDataIn(bhs, f);
  f.lun = undefined; // keep no command's LUN buffer alive
  const data = plan.data;
  // A READ that fits one Data-In sends the command's buffer itself: no view to create.
  if (seg.offset === 0 && seg.length === data.length) return data;
  return data.subarray(seg.offset, seg.offset + seg.length);
}

const EMPTY = Buffer.alloc(0);
const EMPTY_PLAN: DataInPlan = {
  itt: 0,
  lun: EMPTY,
  data: EMPTY,
  length: 0,
  maxXmitDataSegmentLength: 0,
  maxBurstLength: 0,
  pduCount: 0,
  collapse: false,
  status: 0,
  overflow: false,
  underflow: false,
  residualCount: 0,
  statSn: 0,
};
/** The plan of a result whose caller keeps none (ERL 0): one object serves every command. */
const scratchPlan: DataInPlan = { ...EMPTY_PLAN };
const resultCounts: ResultCounts = { dataInPdus: 0, dataInBytes: 0, responses: 0, plan: null, statSn: 0 };

const responseFields: ScsiResponseFields = {
  itt: 0,
  status: 0,
  overflow: false,
  underflow: false,
  residualCount: 0,
  bidiOverflow: false,
  bidiUnderflow: false,
  bidiReadResidualCount: 0,
  statSN: 0,
  expCmdSN: 0,
  maxCmdSN: 0,
  expDataSN: 0,
};

/** encodeDataInAt's segment (it keeps nothing of it between calls). */
const segment: DataInSegment = { offset: 0, length: 0, final: false };

const dataInFields: DataInFields = {
  itt: 0,
  lun: undefined,
  final: false,
  acknowledge: false,
  statusPresent: false,
  status: 0,
  overflow: false,
  underflow: false,
  residualCount: 0,
  statSN: 0,
  expCmdSN: 0,
  maxCmdSN: 0,
  dataSN: 0,
  bufferOffset: 0,
};

/** Optional per-session behaviour of sendCommandResult. */
export interface ResultOptions {
  /** RFC 7143 11.4.8: report ExpDataSN (R2Ts + Data-In sent) in the SCSI Response (ERL >= 1). */
  expDataSn?: number | null;
  /**
   * ERL 2 (RFC 7143 11.5.6): the first Data-In to send, the initiator having acknowledged the
   * ones before (a READ run again after TASK REASSIGN); when that is all of them, the status goes
   * in a SCSI Response. The plan still covers every Data-In (a SNACK may ask for any).
   */
  resumeAt?: number;
  /**
   * Return the DataInPlan in the counts, a new object the caller may keep (ERL >= 1 retention
   * re-encodes Data-In from it for SNACK). Default: when `expDataSn` is given (ERL >= 1).
   * Without it no plan object is allocated and `plan` is null.
   */
  keepPlan?: boolean;
}

/**
 * Send the Data-In PDUs and/or SCSI Response of a finished command through `send`. The counts
 * returned are valid until the next call (one object serves every command).
 */
export function sendCommandResult(
  task: IscsiTask,
  limits: DataInLimits,
  seq: StatusSequence,
  send: PduSend,
  options: ResultOptions = {},
): ResultCounts {
  const cmd = task.cmd;
  const counts = resultCounts;
  counts.dataInPdus = 0;
  counts.dataInBytes = 0;
  counts.responses = 0;
  counts.plan = null;
  counts.statSn = 0;
  const isRead = cmd.direction === DataDirection.Read || cmd.direction === DataDirection.Bidirectional;
  const readExpected = cmd.expectedReadLength;
  const produced = isRead ? cmd.dataInLength : 0;
  const toSend = cmd.dataIn ? Math.min(produced, readExpected, cmd.dataIn.length) : 0;
  // 11.4.5: the residual of the transfer in the command's direction (the write for bidi).
  const readOnly = cmd.direction === DataDirection.Read;
  const mainActual = readOnly ? produced : cmd.writeTransferLength;
  const mainExpected = readOnly ? readExpected : cmd.expectedWriteLength;
  const mainOverflow = mainActual > mainExpected;
  const mainUnderflow = mainActual < mainExpected;
  const mainCount = Math.abs(mainActual - mainExpected);
  const mxdsl = limits.maxXmitDataSegmentLength;
  const burst = limits.maxBurstLength;
  const pduCount = toSend > 0 ? dataInPduCount(toSend, mxdsl, burst) : 0;
  const first = Math.min(options.resumeAt ?? 0, pduCount);
  // 11.7.3: status may ride on the last Data-In when there is no sense and no bidi residual.
  const collapse =
    first < pduCount &&
    cmd.status === ScsiStatus.Good &&
    cmd.sense === null &&
    cmd.direction === DataDirection.Read;

  if (toSend > 0) {
    const keep = options.keepPlan ?? options.expDataSn != null;
    const plan: DataInPlan = keep ? { ...EMPTY_PLAN } : scratchPlan;
    plan.itt = task.itt;
    plan.lun = cmd.lun;
    plan.data = cmd.dataIn!;
    plan.length = toSend;
    plan.maxXmitDataSegmentLength = mxdsl;
    plan.maxBurstLength = burst;
    plan.pduCount = pduCount;
    plan.collapse = collapse;
    plan.status = cmd.status;
    plan.overflow = mainOverflow;
    plan.underflow = mainUnderflow;
    plan.residualCount = mainCount;
    // Nothing else takes a StatSN while this loop runs, so taking it first changes nothing.
    plan.statSn = collapse ? seq.takeStatSn() : 0;
    for (let dataSn = first; dataSn < pduCount; dataSn++) {
      const bhs = Buffer.allocUnsafe(BHS_LENGTH);
      const payload = encodeDataInAt(bhs, plan, dataSn, seq.expCmdSn, seq.maxCmdSn);
      send(bhs, payload);
      counts.dataInPdus++;
      counts.dataInBytes += payload.length;
    }
    counts.statSn = plan.statSn;
    if (keep) counts.plan = plan;
    else {
      // Keep no command's buffers alive.
      plan.lun = EMPTY;
      plan.data = EMPTY;
    }
  }
  if (!collapse) {
    const bhs = Buffer.allocUnsafe(BHS_LENGTH);
    const bidi = cmd.direction === DataDirection.Bidirectional;
    const statSn = seq.takeStatSn();
    // One fields object for every response (encodeScsiResponse keeps nothing of it).
    const f = responseFields;
    f.itt = task.itt;
    f.status = cmd.status;
    f.overflow = mainOverflow;
    f.underflow = mainUnderflow;
    f.residualCount = mainCount;
    f.bidiOverflow = bidi && produced > readExpected;
    f.bidiUnderflow = bidi && produced < readExpected;
    f.bidiReadResidualCount = bidi ? Math.abs(produced - readExpected) : 0;
    f.statSN = statSn;
    f.expCmdSN = seq.expCmdSn;
    f.maxCmdSN = seq.maxCmdSn;
    f.expDataSN = options.expDataSn != null ? options.expDataSn + first + counts.dataInPdus : 0;
    encodeScsiResponse(bhs, f);
    const sense = cmd.sense;
    // 11.4.7: the data segment is SenseLength (2 bytes) followed by the sense data.
    send(bhs, sense && sense.length ? [senseLengthPrefix(sense.length), sense] : null);
    counts.responses++;
    counts.statSn = statSn;
  }
  return counts;
}

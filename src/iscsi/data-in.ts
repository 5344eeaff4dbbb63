/**
 * The answer to a finished SCSI command (RFC 7143 11.4, 11.7): Data-In PDUs cut at the
 * initiator's MaxRecvDataSegmentLength, F set at the end of every MaxBurstLength sequence, and the
 * status either in the last Data-In (phase collapse, 11.7.3) or in a SCSI Response that carries
 * the sense data. Data-In payloads are views of the command's buffer, never copies.
 */
import { DataDirection, ScsiStatus } from '../scsi/command.js';
import { encodeDataIn, encodeScsiResponse, senseLengthPrefix } from './pdu.js';
import { BHS_LENGTH } from './spec.js';
import { residual, type IscsiTask } from './task.js';

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

/** What was sent, for the connection's counters. */
export interface ResultCounts {
  dataInPdus: number;
  dataInBytes: number;
  responses: number;
}

/** Send the Data-In PDUs and/or SCSI Response of a finished command through `send`. */
export function sendCommandResult(
  task: IscsiTask,
  limits: DataInLimits,
  seq: StatusSequence,
  send: PduSend,
): ResultCounts {
  const cmd = task.cmd;
  const counts: ResultCounts = { dataInPdus: 0, dataInBytes: 0, responses: 0 };
  const isRead = cmd.direction === DataDirection.Read || cmd.direction === DataDirection.Bidirectional;
  const readExpected = cmd.expectedReadLength;
  const produced = isRead ? cmd.dataInLength : 0;
  const toSend = cmd.dataIn ? Math.min(produced, readExpected, cmd.dataIn.length) : 0;
  const readResidual = residual(produced, readExpected);
  const writeResidual = residual(cmd.writeTransferLength, cmd.expectedWriteLength);
  const mainResidual = cmd.direction === DataDirection.Read ? readResidual : writeResidual;
  // 11.7.3: status may ride on the last Data-In when there is no sense and no bidi residual.
  const collapse =
    toSend > 0 &&
    cmd.status === ScsiStatus.Good &&
    cmd.sense === null &&
    cmd.direction === DataDirection.Read;

  if (toSend > 0) {
    const data = cmd.dataIn!;
    const mxdsl = limits.maxXmitDataSegmentLength;
    const burst = limits.maxBurstLength;
    let dataSn = 0;
    for (let offset = 0; offset < toSend;) {
      const burstEnd = Math.min(toSend, (Math.floor(offset / burst) + 1) * burst);
      const length = Math.min(mxdsl, burstEnd - offset);
      const withStatus = collapse && offset + length === toSend;
      const bhs = Buffer.allocUnsafe(BHS_LENGTH);
      encodeDataIn(bhs, {
        itt: task.itt,
        lun: cmd.lun,
        // 11.7.1: F ends each MaxBurstLength sequence.
        final: offset + length === burstEnd,
        statusPresent: withStatus,
        status: withStatus ? cmd.status : 0,
        overflow: withStatus && mainResidual.overflow,
        underflow: withStatus && mainResidual.underflow,
        residualCount: withStatus ? mainResidual.count : 0,
        // 11.7.4: StatSN is valid (and advances) only with the S bit.
        statSN: withStatus ? seq.takeStatSn() : 0,
        expCmdSN: seq.expCmdSn,
        maxCmdSN: seq.maxCmdSn,
        dataSN: dataSn++,
        bufferOffset: offset,
      });
      send(bhs, data.subarray(offset, offset + length));
      counts.dataInPdus++;
      counts.dataInBytes += length;
      offset += length;
    }
  }
  if (!collapse) {
    const bhs = Buffer.allocUnsafe(BHS_LENGTH);
    const bidi = cmd.direction === DataDirection.Bidirectional;
    encodeScsiResponse(bhs, {
      itt: task.itt,
      status: cmd.status,
      overflow: mainResidual.overflow,
      underflow: mainResidual.underflow,
      residualCount: mainResidual.count,
      bidiOverflow: bidi && readResidual.overflow,
      bidiUnderflow: bidi && readResidual.underflow,
      bidiReadResidualCount: bidi ? readResidual.count : 0,
      statSN: seq.takeStatSn(),
      expCmdSN: seq.expCmdSn,
      maxCmdSN: seq.maxCmdSn,
      expDataSN: 0,
    });
    const sense = cmd.sense;
    // 11.4.7: the data segment is SenseLength (2 bytes) followed by the sense data.
    send(bhs, sense && sense.length ? [senseLengthPrefix(sense.length), sense] : null);
    counts.responses++;
  }
  return counts;
}

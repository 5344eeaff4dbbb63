/**
 * REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 6.40, MAINTENANCE IN service action 0Dh):
 * which task management functions the core carries out (src/scsi/nexus.ts), so that initiators
 * can find the RFC 7144 ones (QUERY TASK, QUERY TASK SET, I_T NEXUS RESET, QUERY ASYNCHRONOUS
 * EVENT) without trying them.
 */
import { Buffer } from 'node:buffer';
import type { ScsiCommand } from '../command.js';
import { Op } from '../cdb.js';
import { PrAccess } from '../pr.js';
import { invalidCdbField } from '../sense.js';
import { replyData, usage } from './spc.js';
import type { OpcodeEntry } from './types.js';

/** Byte 0: ATS ATSS CACAS CTSS LURS QTS TRS WAKES (bit 7 to 0); CLEAR ACA and WAKEUP are not. */
const BYTE0 = 0x80 | 0x40 | 0x10 | 0x08 | 0x04 | 0x02;
/** Byte 1: QAES (bit 2), QTSS (bit 1), ITNRS (bit 0). */
const BYTE1 = 0x04 | 0x02 | 0x01;

/** The parameter data: 4 bytes, or with REPD the 16-byte extended form (no timeouts given). */
export function supportedTmfData(extended: boolean): Buffer {
  const d = Buffer.alloc(extended ? 16 : 4);
  d[0] = BYTE0;
  d[1] = BYTE1;
  if (extended) d[3] = 0x0c; // ADDITIONAL DATA LENGTH; TMFTMOV 0: no timeout values follow
  return d;
}

const ANSWERS: readonly Buffer[] = [supportedTmfData(false), supportedTmfData(true)];

/** REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 6.40). */
export function reportSupportedTmfHandler(cmd: ScsiCommand): void {
  const cdb = cmd.cdb;
  const allocation = cdb.readUInt32BE(6);
  // SPC-4 6.40.1: an ALLOCATION LENGTH below 4 is INVALID FIELD IN CDB
  if (allocation < 4) throw invalidCdbField(6);
  replyData(cmd, ANSWERS[(cdb[2]! & 0x80) !== 0 ? 1 : 0]!, allocation);
}

/** The MAINTENANCE IN entry (informational: allowed under reservations, as RSOC). */
export const REPORT_SUPPORTED_TMFS: OpcodeEntry = Object.freeze({
  name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS',
  handler: reportSupportedTmfHandler,
  usage: usage(Op.MaintenanceIn, 0x1f, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0),
  reservationExempt: true,
  pr: PrAccess.Allowed,
});

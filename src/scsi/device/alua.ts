/**
 * Implicit asymmetric logical unit access (SPC-4 5.15): REPORT TARGET PORT GROUPS.
 *
 * One target port group per portal group: every LU of a target is reached through one target
 * port (RELATIVE TARGET PORT 1, the target's iSCSI portal group TPGT 1), the only member of
 * target port group 1, which is always active/optimized. The target alone would change that
 * state (TPGS 01b in standard INQUIRY, implicit only), so SET TARGET PORT GROUPS is not
 * offered: MAINTENANCE OUT stays an unsupported opcode. What this gives initiators is the
 * identity dm-multipath's ALUA handler and prioritizer ask for (VPD 83h designators 4h and 5h
 * plus this report), not failover between groups.
 */
import { Buffer } from 'node:buffer';
import type { ScsiCommand } from '../command.js';
import { Op } from '../cdb.js';
import { PrAccess } from '../pr.js';
import { invalidCdbField } from '../sense.js';
import { RELATIVE_TARGET_PORT, replyData, TARGET_PORT_GROUP, usage } from './spc.js';
import type { OpcodeEntry } from './types.js';

/** PARAMETER DATA FORMAT values of the CDB (SPC-4 6.37.1). */
const FORMAT_LENGTH_ONLY = 0b000;
const FORMAT_EXTENDED = 0b001;

/** ASYMMETRIC ACCESS STATE of our target port group (SPC-4 6.37.2): active/optimized. */
const ACTIVE_OPTIMIZED = 0x0;
/** Supported-state bits of byte 1 of a target port group descriptor: AO_SUP only. */
const AO_SUP = 0x01;
/** IMPLICIT TRANSITION TIME (extended header, seconds): no transition ever happens. */
const IMPLICIT_TRANSITION_TIME = 0;

/**
 * REPORT TARGET PORT GROUPS parameter data (SPC-4 6.37.2): the length-only header (4 bytes) or
 * the extended header (8 bytes), then our one target port group descriptor with its one target
 * port descriptor. RETURN DATA LENGTH counts every byte after itself, as sg_rtpg and Linux's
 * scsi_dh_alua read it in both formats.
 */
export function reportTargetPortGroupsData(extended: boolean): Buffer {
  const group = extended ? 8 : 4;
  const d = Buffer.alloc(group + 8 + 4);
  d.writeUInt32BE(d.length - 4, 0); // RETURN DATA LENGTH
  if (extended) {
    d[4] = FORMAT_EXTENDED << 4; // FORMAT TYPE
    d[5] = IMPLICIT_TRANSITION_TIME;
  }
  d[group] = ACTIVE_OPTIMIZED; // PREF 0
  d[group + 1] = AO_SUP; // T_SUP, O_SUP, LBD_SUP, U_SUP, S_SUP, AN_SUP 0
  d.writeUInt16BE(TARGET_PORT_GROUP, group + 2);
  // byte 5 STATUS CODE 0: no status available; byte 6 vendor specific 0
  d[group + 7] = 1; // TARGET PORT COUNT
  d.writeUInt16BE(RELATIVE_TARGET_PORT, group + 8 + 2); // target port descriptor
  return d;
}

/** The two possible answers, built once: they never change while the daemon runs. */
const ANSWERS: readonly Buffer[] = [reportTargetPortGroupsData(false), reportTargetPortGroupsData(true)];

/** REPORT TARGET PORT GROUPS (SPC-4 6.37), MAINTENANCE IN service action 0Ah. */
export function reportTargetPortGroupsHandler(cmd: ScsiCommand): void {
  const cdb = cmd.cdb;
  const format = cdb[1]! >> 5;
  // SPC-4 6.37.1: a PARAMETER DATA FORMAT we do not know is INVALID FIELD IN CDB (byte 1, bit 7)
  if (format !== FORMAT_LENGTH_ONLY && format !== FORMAT_EXTENDED) throw invalidCdbField(1, 7);
  replyData(cmd, ANSWERS[format]!, cdb.readUInt32BE(6));
}

/**
 * The MAINTENANCE IN entry. Allowed under persistent and SPC-2 reservations held by others, as
 * REPORT SUPPORTED OPERATION CODES: path checkers poll it on every path (SPC-4 5.13.1 Table 63).
 */
export const REPORT_TARGET_PORT_GROUPS: OpcodeEntry = Object.freeze({
  name: 'REPORT TARGET PORT GROUPS',
  handler: reportTargetPortGroupsHandler,
  usage: usage(Op.MaintenanceIn, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0),
  reservationExempt: true,
  pr: PrAccess.Allowed,
});

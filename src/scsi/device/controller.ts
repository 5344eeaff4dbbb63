/**
 * Storage array controller LU (SCC-2, peripheral device type 0Ch): what tgt puts at LUN 0 of
 * every target ("Controller"). Only the informational commands; VERIFY answers like TEST
 * UNIT READY, as in tgt's scc.c.
 */
import {
  Op,
  SA_REPORT_SUPPORTED_OPCODES,
  SA_REPORT_SUPPORTED_TMFS,
  SA_REPORT_TARGET_PORT_GROUPS,
} from '../cdb.js';
import { REPORT_TARGET_PORT_GROUPS } from './alua.js';
import { REPORT_SUPPORTED_TMFS } from './tmf-report.js';
import { SPC_ENTRIES, usage } from './spc.js';
import { opcodeTable, serviceActionTable, type DeviceType } from './types.js';

const verifyAsTur = (op: Op, name: string) =>
  Object.freeze({ name, handler: SPC_ENTRIES.testUnitReady.handler, usage: usage(op) });

/** The controller's opcode table. */
export const CONTROLLER_OPS = opcodeTable([
  [Op.TestUnitReady, { ...SPC_ENTRIES.testUnitReady, needsMedia: false }],
  [Op.RequestSense, SPC_ENTRIES.requestSense],
  [Op.Inquiry, SPC_ENTRIES.inquiry],
  [Op.Verify10, verifyAsTur(Op.Verify10, 'VERIFY(10)')],
  [Op.Verify16, verifyAsTur(Op.Verify16, 'VERIFY(16)')],
  [Op.ReportLuns, SPC_ENTRIES.reportLuns],
  [
    Op.MaintenanceIn,
    serviceActionTable('MAINTENANCE IN', [
      [SA_REPORT_TARGET_PORT_GROUPS, REPORT_TARGET_PORT_GROUPS],
      [SA_REPORT_SUPPORTED_OPCODES, SPC_ENTRIES.reportSupportedOpcodes],
      [SA_REPORT_SUPPORTED_TMFS, REPORT_SUPPORTED_TMFS],
    ]),
  ],
  [Op.Verify12, verifyAsTur(Op.Verify12, 'VERIFY(12)')],
]);

/** SCC controller (peripheral device type 0Ch), tgt's LUN 0. */
export const controllerDeviceType: DeviceType = Object.freeze({
  code: 0x0c,
  name: 'controller',
  productId: 'Controller',
  versionDescriptors: [0x04c0, 0x0960, 0x01fb], // as tgt's scc.c
  vpdPages: [0x00, 0x80, 0x83],
  ops: CONTROLLER_OPS,
  initModePages: () => undefined,
});

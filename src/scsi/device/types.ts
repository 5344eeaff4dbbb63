/**
 * Device types as opcode tables (tgt's device_type_template, LIO's spc/sbc split): a frozen
 * 256-entry table from opcode to an entry; opcodes without an entry answer INVALID COMMAND
 * OPERATION CODE.
 */
import { Buffer } from 'node:buffer';
import type { ScsiCommand } from '../command.js';
import type { LogicalUnit } from '../lu.js';
import type { ItNexus } from '../nexus.js';
import type { PrAccess } from '../pr.js';

/**
 * Runs one command. Sets `cmd.dataIn`/`dataInLength`/`status`, or throws (or rejects with) a
 * SenseError. Never calls `cmd.onComplete`: the core does.
 */
export type CommandHandler = (cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus) => void | Promise<void>;

/** How a pending unit attention affects a command (SAM-5 5.14, SPC-4 table in 5.12). */
export enum UaPolicy {
  /** Report the oldest UA as CHECK CONDITION and clear it (most commands). */
  Report,
  /** Neither report nor clear (INQUIRY). */
  Ignore,
  /** Do not report; clear REPORTED LUNS DATA HAS CHANGED (REPORT LUNS). */
  ReportLuns,
  /** The handler returns the UA as sense data (REQUEST SENSE). */
  Handler,
}

export interface OpcodeEntry {
  /** Command name (debug logs, REPORT SUPPORTED OPERATION CODES tests). */
  readonly name: string;
  readonly handler: CommandHandler;
  /**
   * CDB USAGE DATA for REPORT SUPPORTED OPERATION CODES (SPC-4 6.35.3): one mask per CDB byte
   * (byte 0 is the opcode itself); its length is the CDB length.
   */
  readonly usage: readonly number[];
  /** Runs although another I_T nexus holds an SPC-2 reservation (SPC-2 5.5.1). */
  readonly reservationExempt?: boolean;
  /**
   * Class under a persistent reservation held by another I_T nexus (SPC-4 5.13.1 Table 63,
   * SBC-4 4.17); absent = PrAccess.Write (conflicts under every type).
   */
  readonly pr?: PrAccess;
  /** Needs the medium (fails NOT READY while the LU is offline). */
  readonly needsMedia?: boolean;
  /** Runs while a sanitize operation is in progress (SBC-4 4.11: INQUIRY, REPORT LUNS, REQUEST SENSE). */
  readonly duringSanitize?: boolean;
  /** Must run alone on the LU (COMPARE AND WRITE atomicity). */
  readonly exclusive?: boolean;
  readonly ua?: UaPolicy;
}

/** An opcode whose service action (CDB byte 1, bits 4-0) selects the command. */
export interface ServiceActionEntry {
  readonly name: string;
  readonly serviceActions: readonly (OpcodeEntry | undefined)[];
}

export type TableEntry = OpcodeEntry | ServiceActionEntry;

/** Distinguish the two entry kinds. */
export function isServiceActionEntry(e: TableEntry): e is ServiceActionEntry {
  return (e as ServiceActionEntry).serviceActions !== undefined;
}

export interface DeviceType {
  /** Peripheral device type (SPC-4 6.6.2): 0x00 disk, 0x0c storage array controller. */
  readonly code: number;
  /** Name shown by `tgtadm --op show` ("disk", "controller"). */
  readonly name: string;
  /** Default INQUIRY product identification. */
  readonly productId: string;
  /** VERSION DESCRIPTORs of standard INQUIRY data (SPC-4 6.6.2 table). */
  readonly versionDescriptors: readonly number[];
  /** Supported VPD pages, ascending. */
  readonly vpdPages: readonly number[];
  readonly ops: readonly (TableEntry | undefined)[];
  /** Set up the LU's mode pages for this type. */
  initModePages(lu: LogicalUnit): void;
}

/** Build a frozen 256-entry opcode table from (opcode, entry) pairs. */
export function opcodeTable(
  entries: Iterable<readonly [number, TableEntry]>,
): readonly (TableEntry | undefined)[] {
  const table: (TableEntry | undefined)[] = new Array(256).fill(undefined);
  for (const [op, e] of entries) table[op] = e;
  return Object.freeze(table);
}

/** Build a frozen 32-entry service action table. */
export function serviceActionTable(
  name: string,
  entries: Iterable<readonly [number, OpcodeEntry]>,
): ServiceActionEntry {
  const table: (OpcodeEntry | undefined)[] = new Array(32).fill(undefined);
  for (const [sa, e] of entries) table[sa] = e;
  return Object.freeze({ name, serviceActions: Object.freeze(table) });
}

/** Marker: the opcode exists but this service action does not (INVALID FIELD IN CDB). */
export const UNSUPPORTED_SERVICE_ACTION: unique symbol = Symbol('unsupported service action');

/** Resolve the entry for a CDB (service action included); undefined = opcode not supported. */
export function resolveOpcode(
  ops: readonly (TableEntry | undefined)[],
  cdb: Buffer,
): OpcodeEntry | undefined | typeof UNSUPPORTED_SERVICE_ACTION {
  const e = ops[cdb[0]!];
  if (e === undefined || !isServiceActionEntry(e)) return e;
  return e.serviceActions[cdb[1]! & 0x1f] ?? UNSUPPORTED_SERVICE_ACTION;
}

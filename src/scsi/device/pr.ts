/**
 * PERSISTENT RESERVE IN / OUT (SPC-4 6.15 / 6.16): CDB and parameter list decoding on top of
 * the LU's PersistentReservations (`../pr.ts`), and their opcode table entries.
 */
import { Buffer } from 'node:buffer';
import { ScsiStatus, type ScsiCommand } from '../command.js';
import { Op } from '../cdb.js';
import type { LogicalUnit } from '../lu.js';
import type { ItNexus } from '../nexus.js';
import { finishAborted } from '../execute.js';
import {
  decodeIscsiTransportId,
  encodeIscsiTransportId,
  isPrType,
  normalizePort,
  PrAccess,
  type PrType,
} from '../pr.js';
import { SenseError, SenseReason } from '../sense.js';
import { replyData, usage } from './spc.js';
import { serviceActionTable, type OpcodeEntry } from './types.js';

/** PERSISTENT RESERVE IN service actions (SPC-4 6.15.1). */
export enum PrInAction {
  ReadKeys = 0x00,
  ReadReservation = 0x01,
  ReportCapabilities = 0x02,
  ReadFullStatus = 0x03,
}

/** PERSISTENT RESERVE OUT service actions (SPC-4 6.16.1). */
export enum PrOutAction {
  Register = 0x00,
  Reserve = 0x01,
  Release = 0x02,
  Clear = 0x03,
  Preempt = 0x04,
  PreemptAndAbort = 0x05,
  RegisterAndIgnoreExistingKey = 0x06,
  RegisterAndMove = 0x07,
}

/** SPC-4 6.16.3.3: the only SCOPE is LU_SCOPE. */
const LU_SCOPE = 0;
/** Basic PERSISTENT RESERVE OUT parameter list length (SPC-4 6.16.3.1). */
const BASIC_PARAMETER_LENGTH = 24;

/** Allocation length of PERSISTENT RESERVE IN (bytes 7-8). */
function allocationLength(cmd: ScsiCommand): number {
  return cmd.cdb.readUInt16BE(7);
}

/** READ KEYS (SPC-4 6.15.2): PRGENERATION, ADDITIONAL LENGTH (never truncated), the keys. */
function readKeys(cmd: ScsiCommand, lu: LogicalUnit): void {
  const regs = lu.pr.registrations();
  const d = Buffer.alloc(8 + regs.length * 8);
  d.writeUInt32BE(lu.pr.generation, 0);
  d.writeUInt32BE(regs.length * 8, 4);
  regs.forEach((r, i) => d.writeBigUInt64BE(r.key, 8 + i * 8));
  replyData(cmd, d, allocationLength(cmd));
}

/** READ RESERVATION (SPC-4 6.15.3): the reservation's key, SCOPE and TYPE, if any. */
function readReservation(cmd: ScsiCommand, lu: LogicalUnit): void {
  const type = lu.pr.reservationType;
  const d = Buffer.alloc(type === null ? 8 : 24);
  d.writeUInt32BE(lu.pr.generation, 0);
  if (type !== null) {
    d.writeUInt32BE(16, 4);
    d.writeBigUInt64BE(lu.pr.reservationKey, 8);
    d[21] = (LU_SCOPE << 4) | type;
  }
  replyData(cmd, d, allocationLength(cmd));
}

/**
 * REPORT CAPABILITIES (SPC-4 6.15.4): CRH (SPC-3 5.6.3 RESERVE/RELEASE handling), SIP_C
 * (SPEC_I_PT with iSCSI TransportIDs), ATP_C (ALL_TG_PT: our one target port), PTPL_C when the
 * LU can save its state (APTPL) and PTPL_A while that is active; TMV with ALLOW COMMANDS 001b
 * (TEST UNIT READY is allowed through every reservation); all six types.
 */
function reportCapabilities(cmd: ScsiCommand, lu: LogicalUnit): void {
  const d = Buffer.alloc(8);
  d.writeUInt16BE(8, 0);
  d[2] = 0x10 | 0x08 | 0x04 | (lu.pr.persistence !== null ? 0x01 : 0); // CRH, SIP_C, ATP_C, PTPL_C
  d[3] = 0x80 | (0x1 << 4) | (lu.pr.aptpl ? 0x01 : 0); // TMV, ALLOW COMMANDS 001b, PTPL_A
  d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
  d[5] = 0x01; // EX_AC_AR
  replyData(cmd, d, allocationLength(cmd));
}

/** READ FULL STATUS (SPC-4 6.15.5): one descriptor with a TransportID per registration. */
function readFullStatus(cmd: ScsiCommand, lu: LogicalUnit): void {
  const pr = lu.pr;
  const type = pr.reservationType;
  const parts: Buffer[] = [];
  for (const r of pr.registrations()) {
    const tid = encodeIscsiTransportId(r.port);
    const desc = Buffer.alloc(24 + tid.length);
    desc.writeBigUInt64BE(r.key, 0);
    const holder = pr.isHolder(r.port);
    desc[12] = (r.allTargetPorts ? 0x02 : 0) | (holder ? 0x01 : 0); // ALL_TG_PT, R_HOLDER
    if (holder && type !== null) desc[13] = (LU_SCOPE << 4) | type;
    desc.writeUInt16BE(1, 18); // RELATIVE TARGET PORT IDENTIFIER (our single port)
    desc.writeUInt32BE(tid.length, 20);
    tid.copy(desc, 24);
    parts.push(desc);
  }
  const body = Buffer.concat(parts);
  const d = Buffer.alloc(8 + body.length);
  d.writeUInt32BE(pr.generation, 0);
  d.writeUInt32BE(body.length, 4);
  body.copy(d, 8);
  replyData(cmd, d, allocationLength(cmd));
}

/** The parameter list of a PERSISTENT RESERVE OUT, checked against PARAMETER LIST LENGTH. */
function parameterList(cmd: ScsiCommand, minimum: number): Buffer {
  const listLen = cmd.cdb.readUInt32BE(5);
  cmd.writeTransferLength = listLen;
  if (listLen < minimum || cmd.dataOutLength < listLen)
    throw new SenseError(SenseReason.ParameterListLengthError);
  return cmd.gatherDataOut(listLen);
}

/** SCOPE and TYPE of RESERVE / RELEASE / PREEMPT (SPC-4 6.16.2): INVALID FIELD IN CDB otherwise. */
function scopeAndType(cmd: ScsiCommand): PrType {
  const scope = cmd.cdb[2]! >> 4;
  const type = cmd.cdb[2]! & 0x0f;
  if (scope !== LU_SCOPE || !isPrType(type)) throw new SenseError(SenseReason.InvalidFieldInCdb);
  return type;
}

/** Set RESERVATION CONFLICT when an operation refused. */
function conflictUnless(cmd: ScsiCommand, ok: boolean): void {
  if (!ok) cmd.status = ScsiStatus.ReservationConflict;
}

/** PREEMPT AND ABORT (SPC-4 5.13.11.4.5): abort the queued commands of the preempted I_T nexuses. */
function abortPreempted(cmd: ScsiCommand, lu: LogicalUnit, ports: readonly string[]): void {
  if (ports.length === 0) return;
  const preempted = new Set(ports.map(normalizePort));
  const removed = lu.taskSet.removeWaiting(
    (c, n) => c !== cmd && preempted.has(normalizePort(n.initiatorPort)),
  );
  for (const w of removed) finishAborted(w.cmd, w.nexus, lu);
}

/**
 * SPC-4 6.16.3.1: the TransportIDs after a SPEC_I_PT parameter list's TRANSPORTID PARAMETER
 * DATA LENGTH, as initiator port names. The list must end exactly after them.
 */
function specifiedPorts(data: Buffer): string[] {
  if (data.length < BASIC_PARAMETER_LENGTH + 4) throw new SenseError(SenseReason.ParameterListLengthError);
  const length = data.readUInt32BE(BASIC_PARAMETER_LENGTH);
  const start = BASIC_PARAMETER_LENGTH + 4;
  if (start + length !== data.length) throw new SenseError(SenseReason.ParameterListLengthError);
  const ports: string[] = [];
  for (let o = start; o < data.length;) {
    const { port, length: used } = decodeIscsiTransportId(data.subarray(o));
    ports.push(port);
    o += used;
  }
  return ports;
}

/** Save the PR state when APTPL asks for it (SPC-4 5.13.5) before GOOD is returned. */
async function persisted(cmd: ScsiCommand, lu: LogicalUnit, ok: boolean): Promise<void> {
  conflictUnless(cmd, ok);
  if (ok) await lu.pr.persist();
}

/** PERSISTENT RESERVE OUT with the basic parameter list (every service action but REGISTER AND MOVE). */
async function persistentReserveOutHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): Promise<void> {
  const action = cmd.cdb[1]! & 0x1f;
  const data = parameterList(cmd, BASIC_PARAMETER_LENGTH);
  const key = data.readBigUInt64BE(0);
  const sark = data.readBigUInt64BE(8);
  const flags = data[20]!;
  const specIpt = (flags & 0x08) !== 0;
  const allTgPt = (flags & 0x04) !== 0;
  const aptpl = (flags & 0x01) !== 0;
  const registering = action === PrOutAction.Register || action === PrOutAction.RegisterAndIgnoreExistingKey;
  // SPC-4 6.16.3.1: SPEC_I_PT is valid for REGISTER only
  if (specIpt && action !== PrOutAction.Register)
    throw new SenseError(SenseReason.InvalidFieldInParameterList);
  // SPC-4 6.16.3.1: APTPL without PTPL_C -> INVALID FIELD IN PARAMETER LIST (before any change)
  if (registering && aptpl && lu.pr.persistence === null)
    throw new SenseError(SenseReason.InvalidFieldInParameterList);
  // with SPEC_I_PT zero the list is exactly 24 bytes
  const others = specIpt ? specifiedPorts(data) : null;
  if (others === null && data.length !== BASIC_PARAMETER_LENGTH)
    throw new SenseError(SenseReason.ParameterListLengthError);
  const pr = lu.pr;
  const port = nexus.initiatorPort;
  switch (action) {
    case PrOutAction.Register:
    case PrOutAction.RegisterAndIgnoreExistingKey: {
      const ok =
        others !== null
          ? pr.registerSpecified(port, key, sark, allTgPt, others)
          : pr.register(port, key, sark, action === PrOutAction.RegisterAndIgnoreExistingKey, allTgPt);
      // SPC-4 5.13.5: the APTPL bit of the last registration decides whether the state persists
      if (ok) pr.setAptpl(aptpl);
      return persisted(cmd, lu, ok);
    }
    case PrOutAction.Reserve:
      return persisted(cmd, lu, pr.reserve(port, key, scopeAndType(cmd)));
    case PrOutAction.Release:
      return persisted(cmd, lu, pr.release(port, key, scopeAndType(cmd)));
    case PrOutAction.Clear:
      return persisted(cmd, lu, pr.clear(port, key));
    case PrOutAction.Preempt:
    case PrOutAction.PreemptAndAbort: {
      const result = pr.preempt(port, key, sark, scopeAndType(cmd));
      if (result === false) return conflictUnless(cmd, false);
      if (action === PrOutAction.PreemptAndAbort) abortPreempted(cmd, lu, result);
      return persisted(cmd, lu, true);
    }
    default:
      throw new SenseError(SenseReason.InvalidFieldInCdb);
  }
}

/**
 * REGISTER AND MOVE (SPC-4 6.16.4): parameter list with the destination's relative target port
 * and TransportID. Our only target port is 1.
 */
async function registerAndMoveHandler(cmd: ScsiCommand, lu: LogicalUnit, nexus: ItNexus): Promise<void> {
  const data = parameterList(cmd, BASIC_PARAMETER_LENGTH);
  const key = data.readBigUInt64BE(0);
  const sark = data.readBigUInt64BE(8);
  const unreg = (data[17]! & 0x02) !== 0;
  const aptpl = (data[17]! & 0x01) !== 0;
  const relativePort = data.readUInt16BE(18);
  const tidLength = data.readUInt32BE(20);
  if (24 + tidLength > data.length) throw new SenseError(SenseReason.ParameterListLengthError);
  if (relativePort !== 1) throw new SenseError(SenseReason.InvalidFieldInParameterList);
  if (aptpl && lu.pr.persistence === null) throw new SenseError(SenseReason.InvalidFieldInParameterList);
  let dest = decodeIscsiTransportId(data.subarray(24, 24 + tidLength)).port;
  // A name-only TransportID (format 00b) means that initiator's port on this target, if logged in.
  if (!dest.includes(',i,0x')) {
    const wanted = normalizePort(dest);
    for (const n of lu.target.nexuses.values())
      if (normalizePort(n.initiatorName) === wanted) {
        dest = n.initiatorPort;
        break;
      }
  }
  const ok = lu.pr.registerAndMove(nexus.initiatorPort, key, sark, dest, unreg);
  if (ok) lu.pr.setAptpl(aptpl);
  return persisted(cmd, lu, ok);
}

const prIn = (name: string, handler: OpcodeEntry['handler']): OpcodeEntry =>
  Object.freeze({
    name,
    handler,
    usage: usage(Op.PersistentReserveIn, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff),
    pr: PrAccess.Allowed,
  });

const prOut = (name: string, handler: OpcodeEntry['handler']): OpcodeEntry =>
  Object.freeze({
    name,
    handler,
    usage: usage(Op.PersistentReserveOut, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff),
    pr: PrAccess.Allowed,
  });

/** PERSISTENT RESERVE IN, by service action. */
export const PERSISTENT_RESERVE_IN = serviceActionTable('PERSISTENT RESERVE IN', [
  [PrInAction.ReadKeys, prIn('PERSISTENT RESERVE IN / READ KEYS', readKeys)],
  [PrInAction.ReadReservation, prIn('PERSISTENT RESERVE IN / READ RESERVATION', readReservation)],
  [PrInAction.ReportCapabilities, prIn('PERSISTENT RESERVE IN / REPORT CAPABILITIES', reportCapabilities)],
  [PrInAction.ReadFullStatus, prIn('PERSISTENT RESERVE IN / READ FULL STATUS', readFullStatus)],
]);

/** PERSISTENT RESERVE OUT, by service action. */
export const PERSISTENT_RESERVE_OUT = serviceActionTable('PERSISTENT RESERVE OUT', [
  [PrOutAction.Register, prOut('PERSISTENT RESERVE OUT / REGISTER', persistentReserveOutHandler)],
  [PrOutAction.Reserve, prOut('PERSISTENT RESERVE OUT / RESERVE', persistentReserveOutHandler)],
  [PrOutAction.Release, prOut('PERSISTENT RESERVE OUT / RELEASE', persistentReserveOutHandler)],
  [PrOutAction.Clear, prOut('PERSISTENT RESERVE OUT / CLEAR', persistentReserveOutHandler)],
  [PrOutAction.Preempt, prOut('PERSISTENT RESERVE OUT / PREEMPT', persistentReserveOutHandler)],
  [
    PrOutAction.PreemptAndAbort,
    prOut('PERSISTENT RESERVE OUT / PREEMPT AND ABORT', persistentReserveOutHandler),
  ],
  [
    PrOutAction.RegisterAndIgnoreExistingKey,
    prOut('PERSISTENT RESERVE OUT / REGISTER AND IGNORE EXISTING KEY', persistentReserveOutHandler),
  ],
  [PrOutAction.RegisterAndMove, prOut('PERSISTENT RESERVE OUT / REGISTER AND MOVE', registerAndMoveHandler)],
]);

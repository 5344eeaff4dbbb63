/** Shared helpers for the integration tests (real tgtd + in-repo initiator). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { encodeLun, LoginFailedError, Session, type SessionOptions } from '../../src/initiator/index.js';
import {
  bhsItt,
  bhsOpcode,
  DataInView,
  encodeDataOut,
  encodeNopOut,
  encodeScsiCommand,
  encodeTaskMgmtRequest,
  TaskMgmtResponseView,
  type Pdu,
} from '../../src/iscsi/pdu.js';
import { BHS_LENGTH, Opcode, RESERVED_TAG, TaskAttr, TmfFunction } from '../../src/iscsi/spec.js';
import type { TgtDaemon } from '../helpers/daemon.js';

/** IQN prefix for the targets the integration tests create. */
export const IQN = 'iqn.2026-01.org.tgt-ts.it';
export const BLOCK = 512;
export const GOOD = 0x00;
export const CHECK_CONDITION = 0x02;

/** Log in to `targetName` on `daemon` with a short timeout (tests fail fast instead of hanging). */
export function login(
  daemon: TgtDaemon,
  targetName: string,
  options: Partial<SessionOptions> = {},
): Promise<Session> {
  return Session.login({ host: daemon.host, port: daemon.port, targetName, timeoutMs: 10_000, ...options });
}

/**
 * Consume the POWER ON / RESET unit attention every new I_T nexus starts with (SAM-5 5.14,
 * tgt §5.1), so later commands see GOOD.
 */
export async function clearUnitAttention(session: Session, lun: number): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const r = await session.testUnitReady(lun);
    if (r.status === GOOD) return;
    assert.equal(r.sense?.key, 0x06, `TEST UNIT READY: status ${r.status}, sense key ${r.sense?.key}`);
  }
  assert.fail('unit attentions never cleared');
}

/** Log in and clear the unit attention on `lun`. */
export async function loginReady(
  daemon: TgtDaemon,
  targetName: string,
  lun: number,
  options: Partial<SessionOptions> = {},
): Promise<Session> {
  const s = await login(daemon, targetName, options);
  await clearUnitAttention(s, lun);
  return s;
}

/** Expect a login to fail with the given Status-Class/Status-Detail (RFC 7143 11.13.5). */
export async function expectLoginStatus(
  attempt: Promise<Session>,
  status: number,
  what: string,
): Promise<void> {
  let session: Session | undefined;
  try {
    session = await attempt;
  } catch (e) {
    assert.ok(e instanceof LoginFailedError, `${what}: expected a login failure, got ${String(e)}`);
    assert.equal(
      hex4(e.status),
      hex4(status),
      `${what}: login status 0x${hex4(e.status)}, expected 0x${hex4(status)}`,
    );
    return;
  }
  session.destroy();
  assert.fail(`${what}: login succeeded, expected status 0x${hex4(status)}`);
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** Deterministic test data: `length` bytes derived from `seed` (distinct per block). */
export function pattern(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i + 4 <= length; i += 4) {
    // xorshift32: cheap, no repeats within a test's range.
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (let i = length & ~3; i < length; i++) out[i] = seed & 0xff;
  return out;
}

/** sha256 hex of a buffer. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Log out, or drop the connection when the session is already unusable. */
export async function closeSession(s: Session | undefined): Promise<void> {
  if (!s) return;
  if (s.state === 'full-feature') await s.logout().catch(() => s.destroy());
  else s.destroy();
}

// ---------------------------------------------------------------------------------------------
// Raw mode: hand-built PDUs on a logged-in session (Session.setRawMode(true) first).

export interface RawCommand {
  itt: number;
  cdb: Buffer;
  lun?: number;
  read?: boolean;
  write?: boolean;
  edtl: number;
  /** F bit (default true: no unsolicited Data-Out follows). */
  final?: boolean;
  /** Immediate data. */
  data?: Buffer;
  immediate?: boolean;
  /** Default: the session's next CmdSN (taken). */
  cmdSN?: number;
  /** Task attribute (default SIMPLE). */
  attr?: TaskAttr;
}

/** Send a SCSI Command PDU; returns the CmdSN it carried. */
export function sendRawCommand(s: Session, c: RawCommand): number {
  const cmdSN = c.cmdSN ?? (c.immediate ? s.cmdSN : s.takeCmdSN());
  const bhs = encodeScsiCommand(Buffer.alloc(BHS_LENGTH), {
    itt: c.itt,
    lun: encodeLun(c.lun ?? 0),
    cmdSN,
    expStatSN: s.expStatSN,
    immediate: c.immediate,
    final: c.final ?? true,
    read: c.read,
    write: c.write,
    attr: c.attr ?? TaskAttr.Simple,
    edtl: c.edtl,
    cdb: c.cdb,
  });
  s.sendPdu(bhs, c.data && c.data.length > 0 ? c.data : null);
  return cmdSN;
}

/** Send Data-Out PDUs for data[from, to) of a command, `segment` bytes at most each. */
export function sendRawDataOut(
  s: Session,
  o: { itt: number; lun?: number; ttt: number; data: Buffer; from: number; to: number; segment: number },
): void {
  let dataSN = 0;
  for (let off = o.from; off < o.to; off += o.segment) {
    const end = Math.min(o.to, off + o.segment);
    const bhs = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
      itt: o.itt,
      lun: encodeLun(o.lun ?? 0),
      ttt: o.ttt,
      final: end === o.to,
      expStatSN: s.expStatSN,
      dataSN: dataSN++,
      bufferOffset: off,
    });
    s.sendPdu(bhs, o.data.subarray(off, end));
  }
}

/** Send a NOP-Out ping (ITT `itt`); returns the CmdSN it carried. */
export function sendRawNop(
  s: Session,
  itt: number,
  o: { cmdSN?: number; immediate?: boolean; data?: Buffer } = {},
): number {
  const immediate = o.immediate ?? false;
  const cmdSN = o.cmdSN ?? (immediate ? s.cmdSN : s.takeCmdSN());
  const bhs = encodeNopOut(Buffer.alloc(BHS_LENGTH), {
    itt,
    ttt: RESERVED_TAG,
    cmdSN,
    expStatSN: s.expStatSN,
    immediate,
  });
  s.sendPdu(bhs, o.data ?? null);
  return cmdSN;
}

/** The next PDU in raw mode, or undefined when none arrives within `ms`. */
export async function nextPdu(s: Session, ms: number): Promise<Pdu | undefined> {
  try {
    return await s.receivePdu(ms);
  } catch (e) {
    if ((e as { code?: string }).code === 'TGT_ERR_INI_TIMEOUT') return undefined;
    throw e;
  }
}

/** Receive PDUs until one with opcode `op` (and ITT `itt`, when given); returns all received. */
export async function receiveUntil(s: Session, op: Opcode, itt?: number, ms = 10_000): Promise<Pdu[]> {
  const out: Pdu[] = [];
  for (;;) {
    const pdu = await s.receivePdu(ms);
    out.push(pdu);
    if (bhsOpcode(pdu.bhs) === op && (itt === undefined || bhsItt(pdu.bhs) === itt)) return out;
  }
}

/** TASK REASSIGN (RFC 7143 11.5.1) of `ref` on `s` with tag `itt`, immediate; returns the response code. */
export async function taskReassign(
  s: Session,
  o: { itt: number; lun: number; ref: number; expDataSN?: number },
): Promise<number> {
  s.sendPdu(
    encodeTaskMgmtRequest(Buffer.alloc(BHS_LENGTH), {
      itt: o.itt,
      lun: encodeLun(o.lun),
      function: TmfFunction.TaskReassign,
      referencedTaskTag: o.ref,
      cmdSN: s.cmdSN,
      expStatSN: s.expStatSN,
      expDataSN: o.expDataSN ?? 0,
      immediate: true,
    }),
  );
  const p = (await receiveUntil(s, Opcode.TaskMgmtResponse, o.itt)).pop()!;
  return new TaskMgmtResponseView(p.bhs).response;
}

/** Receive until the status of `itt` (a Data-In with S or a SCSI Response); returns all PDUs. */
export async function untilStatus(s: Session, itt: number): Promise<Pdu[]> {
  const out: Pdu[] = [];
  for (;;) {
    const p = await s.receivePdu(10_000);
    out.push(p);
    if (bhsItt(p.bhs) !== itt) continue;
    const op = bhsOpcode(p.bhs);
    if (op === Opcode.ScsiResponse) return out;
    if (op === Opcode.DataIn && new DataInView(p.bhs).statusPresent) return out;
  }
}

/** Drop the TCP connection of `s` without a logout and give the target time to notice. */
export async function dropConnection(s: Session): Promise<void> {
  s.destroy();
  await new Promise((r) => setTimeout(r, 150));
}

/** Opcode name for assertion messages. */
export function opName(pdu: Pdu | undefined): string {
  if (!pdu) return 'nothing';
  const op = bhsOpcode(pdu.bhs);
  return `${Opcode[op] ?? 'opcode'} (0x${op.toString(16)}, ITT 0x${bhsItt(pdu.bhs).toString(16)})`;
}

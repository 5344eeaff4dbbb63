/**
 * The tgtd control socket wire format (tgt-behaviour.md §2.1; tgt's usr/tgtadm.h), so that
 * Debian's tgtadm drives our daemon and our tgtadm drives tgt's, byte for byte.
 *
 *   request:  struct tgtadm_req (120 bytes, host byte order = little-endian on x86-64)
 *             + optional payload: one NUL-terminated ASCII "key=value,key=value" string
 *   response: struct tgtadm_rsp (8 bytes: err, len) + optional NUL-terminated text (success only)
 */
import { Buffer } from 'node:buffer';

/** tgtadm `--mode` values (enum tgtadm_mode). */
export enum MgmtMode {
  System = 0,
  Target = 1,
  Device = 2,
  Portal = 3,
  Lld = 4,
  Session = 5,
  Connection = 6,
  Account = 7,
}

/** tgtadm `--op` values (enum tgtadm_op). */
export enum MgmtOp {
  New = 0,
  Delete = 1,
  Show = 2,
  Bind = 3,
  Unbind = 4,
  Update = 5,
  Stats = 6,
  Start = 7,
  Stop = 8,
}

/** `ac_dir` values. */
export enum AccountDirection {
  Incoming = 0,
  Outgoing = 1,
}

export const REQ_HEADER_SIZE = 120;
export const RSP_HEADER_SIZE = 8;
/** tgtd drops requests whose payload is larger than this (MAX_MGT_BUFSIZE). */
export const MAX_PAYLOAD = 8 * 1024;
/** Size of the NUL-padded `lld` field (TGT_LLD_NAME_LEN). */
export const LLD_NAME_LEN = 64;
/** `lun` value meaning "not given" (tgtadm's default). */
export const LUN_NOT_GIVEN = 0xffff_ffff_ffff_ffffn;

// Field offsets inside struct tgtadm_req (x86-64 layout, tgt-behaviour.md §2.1).
const OFF_MODE = 0;
const OFF_OP = 4;
const OFF_LLD = 8;
const OFF_LEN = 72;
const OFF_TID = 76;
const OFF_SID = 80;
const OFF_LUN = 88;
const OFF_CID = 96;
const OFF_HOST_NO = 100;
const OFF_DEVICE_TYPE = 104;
const OFF_AC_DIR = 108;
const OFF_PACK = 112;
const OFF_FORCE = 116;

/** A decoded request header. Numeric fields keep their raw wire values. */
export interface AdminRequest {
  mode: number;
  op: number;
  /** Driver name ("" = the first driver, iscsi). */
  lld: string;
  /** Total request length: header + payload (including the payload's trailing NUL). */
  len: number;
  /** -1 = not given / GLOBAL_TID. */
  tid: number;
  sid: bigint;
  lun: bigint;
  cid: number;
  hostNo: number;
  deviceType: number;
  acDir: number;
  pack: number;
  force: number;
}

/** A request with tgtadm's defaults (tid -1, lun "not given", disk, incoming). */
export function defaultRequest(mode: number, op: number): AdminRequest {
  return {
    mode,
    op,
    lld: '',
    len: REQ_HEADER_SIZE,
    tid: -1,
    sid: 0n,
    lun: LUN_NOT_GIVEN,
    cid: 0,
    hostNo: 0,
    deviceType: 0,
    acDir: AccountDirection.Incoming,
    pack: 0,
    force: 0,
  };
}

/**
 * Encode a request header plus payload into one buffer. An empty payload sends no bytes at all
 * (len = 120), a non-empty one is NUL-terminated, exactly as tgtadm does.
 */
export function encodeRequest(req: AdminRequest, payload = ''): Buffer {
  const body = payload.length > 0 ? Buffer.from(payload + '\0', 'latin1') : Buffer.alloc(0);
  const buf = Buffer.alloc(REQ_HEADER_SIZE + body.length);
  buf.writeUInt32LE(req.mode >>> 0, OFF_MODE);
  buf.writeUInt32LE(req.op >>> 0, OFF_OP);
  // strncpy into char[64]: at most 64 bytes, no terminator when the name fills the field.
  buf.write(req.lld, OFF_LLD, LLD_NAME_LEN, 'latin1');
  buf.writeUInt32LE(buf.length, OFF_LEN);
  buf.writeInt32LE(req.tid | 0, OFF_TID);
  buf.writeBigUInt64LE(BigInt.asUintN(64, req.sid), OFF_SID);
  buf.writeBigUInt64LE(BigInt.asUintN(64, req.lun), OFF_LUN);
  buf.writeUInt32LE(req.cid >>> 0, OFF_CID);
  buf.writeUInt32LE(req.hostNo >>> 0, OFF_HOST_NO);
  buf.writeUInt32LE(req.deviceType >>> 0, OFF_DEVICE_TYPE);
  buf.writeUInt32LE(req.acDir >>> 0, OFF_AC_DIR);
  buf.writeUInt32LE(req.pack >>> 0, OFF_PACK);
  buf.writeUInt32LE(req.force >>> 0, OFF_FORCE);
  body.copy(buf, REQ_HEADER_SIZE);
  return buf;
}

/** Decode the 120-byte request header (the caller guarantees `buf.length >= 120`). */
export function decodeRequestHeader(buf: Buffer): AdminRequest {
  if (buf.length < REQ_HEADER_SIZE) throw new RangeError(`request header needs ${REQ_HEADER_SIZE} bytes`);
  const lldField = buf.subarray(OFF_LLD, OFF_LLD + LLD_NAME_LEN);
  const nul = lldField.indexOf(0);
  // tgtd forces the last byte to NUL, so a 64-byte name is read as its first 63 bytes.
  const lld = lldField.subarray(0, nul >= 0 ? nul : LLD_NAME_LEN - 1).toString('latin1');
  return {
    mode: buf.readUInt32LE(OFF_MODE),
    op: buf.readUInt32LE(OFF_OP),
    lld,
    len: buf.readUInt32LE(OFF_LEN),
    tid: buf.readInt32LE(OFF_TID),
    sid: buf.readBigUInt64LE(OFF_SID),
    lun: buf.readBigUInt64LE(OFF_LUN),
    cid: buf.readUInt32LE(OFF_CID),
    hostNo: buf.readUInt32LE(OFF_HOST_NO),
    deviceType: buf.readUInt32LE(OFF_DEVICE_TYPE),
    acDir: buf.readUInt32LE(OFF_AC_DIR),
    pack: buf.readUInt32LE(OFF_PACK),
    force: buf.readUInt32LE(OFF_FORCE),
  };
}

/** The payload as a string: bytes up to the first NUL (C string semantics). */
export function payloadText(payload: Buffer): string {
  const nul = payload.indexOf(0);
  return payload.subarray(0, nul >= 0 ? nul : payload.length).toString('latin1');
}

/**
 * Encode a response. Text travels only on success (tgtd sends none with an error); it is
 * NUL-terminated and `len` counts the header, the text and the NUL.
 */
export function encodeResponse(err: number, text = ''): Buffer {
  const withText = err === 0 && text.length > 0;
  const body = withText ? Buffer.from(text + '\0', 'latin1') : null;
  const buf = Buffer.alloc(RSP_HEADER_SIZE + (body ? body.length : 0));
  buf.writeUInt32LE(err >>> 0, 0);
  buf.writeUInt32LE(buf.length, 4);
  if (body) body.copy(buf, RSP_HEADER_SIZE);
  return buf;
}

export interface ResponseHeader {
  err: number;
  len: number;
}

/** Decode the 8-byte response header. */
export function decodeResponseHeader(buf: Buffer): ResponseHeader {
  if (buf.length < RSP_HEADER_SIZE) throw new RangeError(`response header needs ${RSP_HEADER_SIZE} bytes`);
  return { err: buf.readUInt32LE(0), len: buf.readUInt32LE(4) };
}

/** A request payload split into tgtadm's items. */
export interface ParsedPayload {
  /** The whole payload string (update ops read "name=value" from it, value may hold commas). */
  raw: string;
  /** Plain `key=value` items in order (the value is everything after the first '='). */
  items: Array<[string, string]>;
  /** `--params` text after the `targetOps ` prefix (trailing comma removed), if present. */
  targetOps?: string;
  /** `--params` text after the `portalOps ` prefix (portal mode), if present. */
  portalOps?: string;
}

const TARGET_OPS = 'targetOps ';
const PORTAL_OPS = 'portalOps ';

/**
 * Split a tgtadm payload. tgtadm appends `targetOps <params>,` / `portalOps <params>,` last, and
 * those params contain commas themselves, so everything after the prefix belongs to them.
 */
export function parsePayload(raw: string): ParsedPayload {
  const out: ParsedPayload = { raw, items: [] };
  let rest = raw;
  const opsAt = findOpsPrefix(raw);
  if (opsAt) {
    rest = raw.slice(0, opsAt.index);
    const ops = raw.slice(opsAt.index + opsAt.prefix.length).replace(/,$/, '');
    if (opsAt.prefix === TARGET_OPS) out.targetOps = ops;
    else out.portalOps = ops;
  }
  for (const item of rest.split(',')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) out.items.push([item, '']);
    else out.items.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  return out;
}

/** Find the first `targetOps `/`portalOps ` that starts an item (at 0 or after a comma). */
function findOpsPrefix(raw: string): { index: number; prefix: string } | null {
  let best: { index: number; prefix: string } | null = null;
  for (const prefix of [TARGET_OPS, PORTAL_OPS]) {
    let from = 0;
    for (;;) {
      const i = raw.indexOf(prefix, from);
      if (i < 0) break;
      if (i === 0 || raw[i - 1] === ',') {
        if (!best || i < best.index) best = { index: i, prefix };
        break;
      }
      from = i + 1;
    }
  }
  return best;
}

/** Split `k=v,k=v` (a --params string) into ordered pairs; empty items are skipped. */
export function parseParamList(text: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const item of text.split(',')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    pairs.push(eq < 0 ? [item, ''] : [item.slice(0, eq), item.slice(eq + 1)]);
  }
  return pairs;
}

/** Value of the first plain item named `key`. */
export function payloadValue(p: ParsedPayload, key: string): string | undefined {
  for (const [k, v] of p.items) if (k === key) return v;
  return undefined;
}

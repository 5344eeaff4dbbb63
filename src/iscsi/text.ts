/**
 * iSCSI text key=value codec (RFC 7143 6.1, 5.1) for Login and Text data segments, plus the
 * binary/numerical value encodings the keys use.
 *
 * Key names: RFC 7143 6.1 makes key names case-sensitive, and we match them exactly on the wire
 * (a lower-case "headerdigest" is an unknown key and is answered NotUnderstood). tgt matches
 * case-insensitively; we keep that only for the admin path (`TargetParams.set`), where people type
 * names by hand.
 *
 * Values are UTF-8. Each simple value (a comma-separated item) is limited to 255 bytes, except the
 * CHAP binary values (CHAP_C, CHAP_R), which may carry up to 1024 bytes in hex or base64 form.
 */
import { Buffer } from 'node:buffer';

/** One key=value pair, in wire order. */
export type TextPair = [key: string, value: string];

/** A malformed text data segment: the caller answers with a protocol/initiator error. */
export class TextFormatError extends Error {
  readonly code = 'TGT_ERR_ISCSI_TEXT_FORMAT';
  constructor(message: string) {
    super(message);
    this.name = 'TextFormatError';
  }
}

/** RFC 7143 6.1: a key name (standard-label or extension) is at most 63 characters. */
export const MAX_KEY_NAME_LENGTH = 63;
/** RFC 7143 6.1: a simple value is at most 255 bytes unless the key says otherwise. */
export const MAX_SIMPLE_VALUE_LENGTH = 255;
/** RFC 7143 12.1.3: CHAP_C/CHAP_R carry up to 1024 binary bytes. */
export const MAX_CHAP_BINARY_LENGTH = 1024;
/** Longest encoded form of a 1024-byte binary value: "0x" + 2048 hex digits. */
export const MAX_LONG_VALUE_LENGTH = 2 + 2 * MAX_CHAP_BINARY_LENGTH;
/** Default bound for text accumulated over several PDUs (C bit). */
export const DEFAULT_TEXT_LIMIT = 64 * 1024;

/** Keys whose values are large binary values (RFC 7143 12.1.3). */
const LONG_VALUE_KEYS: ReadonlySet<string> = new Set(['CHAP_C', 'CHAP_R']);

// RFC 7143 6.1: key-name characters are letters, digits, '.', '-', '+', '@', '_'.
const KEY_NAME = /^[A-Za-z0-9.\-+@_]+$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parse a complete text data segment into ordered pairs. Throws TextFormatError on a pair
 * without '=', an empty or invalid key name, a duplicate key, invalid UTF-8 or an over-long value.
 * Empty entries (consecutive NULs) and a missing NUL after the last pair are tolerated.
 */
export function parseText(data: Uint8Array): TextPair[] {
  const pairs: TextPair[] = [];
  const seen = new Set<string>();
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length;
    if (end > start) {
      const pair = parsePair(data.subarray(start, end));
      // RFC 7143 6.1/6.3: a key is sent at most once per negotiation; a repeat is an error.
      if (seen.has(pair[0])) throw new TextFormatError(`duplicate key ${pair[0]}`);
      seen.add(pair[0]);
      pairs.push(pair);
    }
    start = end + 1;
  }
  return pairs;
}

/** Parse a text segment where repeated keys are legal (SendTargets responses: TargetName, TargetAddress). */
export function parseTextAllowRepeats(data: Uint8Array): TextPair[] {
  const pairs: TextPair[] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length;
    if (end > start) pairs.push(parsePair(data.subarray(start, end)));
    start = end + 1;
  }
  return pairs;
}

function parsePair(bytes: Uint8Array): TextPair {
  const eq = bytes.indexOf(0x3d); // '='
  if (eq < 0) throw new TextFormatError('key=value pair without "="');
  if (eq === 0) throw new TextFormatError('empty key name');
  let key: string;
  let value: string;
  try {
    key = utf8.decode(bytes.subarray(0, eq));
    value = utf8.decode(bytes.subarray(eq + 1));
  } catch {
    throw new TextFormatError('text is not valid UTF-8');
  }
  if (eq > MAX_KEY_NAME_LENGTH) throw new TextFormatError(`key name longer than ${MAX_KEY_NAME_LENGTH}`);
  if (!KEY_NAME.test(key)) throw new TextFormatError(`invalid key name ${JSON.stringify(key)}`);
  checkValueLength(key, value, bytes.length - eq - 1);
  return [key, value];
}

function checkValueLength(key: string, value: string, byteLength: number): void {
  if (LONG_VALUE_KEYS.has(key)) {
    if (byteLength > MAX_LONG_VALUE_LENGTH) throw new TextFormatError(`${key} value too long`);
    return;
  }
  if (byteLength <= MAX_SIMPLE_VALUE_LENGTH) return;
  // A list may be longer than 255 bytes as a whole; each item may not.
  for (const item of value.split(',')) {
    if (Buffer.byteLength(item, 'utf8') > MAX_SIMPLE_VALUE_LENGTH) {
      throw new TextFormatError(`${key} value longer than ${MAX_SIMPLE_VALUE_LENGTH} bytes`);
    }
  }
}

/** Encode pairs as `key=value\0...` (every pair, the last included, NUL-terminated: RFC 7143 6.1). */
export function encodeText(pairs: Iterable<readonly [string, string]>): Buffer {
  const parts: string[] = [];
  for (const [key, value] of pairs) parts.push(`${key}=${value}\0`);
  return Buffer.from(parts.join(''), 'utf8');
}

/** Find a key's value in a pair list (exact, case-sensitive match). */
export function findKey(pairs: readonly TextPair[], key: string): string | undefined {
  for (const [k, v] of pairs) if (k === key) return v;
  return undefined;
}

/**
 * Collects the data segments of a text sequence sent with the C (continue) bit, up to a bound.
 * RFC 7143 11.10.2/11.12.2: a key=value pair may be split across PDUs, so pairs are parsed only
 * after the final PDU (C=0) arrives.
 */
export class TextAccumulator {
  private chunks: Buffer[] = [];
  private total = 0;

  constructor(readonly limit: number = DEFAULT_TEXT_LIMIT) {}

  /** Bytes collected so far. */
  get length(): number {
    return this.total;
  }

  /** Add one PDU's data segment; returns false (and keeps nothing new) if the bound would be exceeded. */
  append(segment: Uint8Array): boolean {
    if (this.total + segment.length > this.limit) return false;
    // Copy: the segment is usually a view of a pooled receive buffer.
    this.chunks.push(Buffer.from(segment));
    this.total += segment.length;
    return true;
  }

  /** Return the whole text collected so far and start over. */
  take(): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.total);
    this.reset();
    return all;
  }

  /** Drop everything collected. */
  reset(): void {
    this.chunks = [];
    this.total = 0;
  }
}

const HEX = /^[0-9a-fA-F]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Decode a binary value (RFC 7143 6.1): `0x`/`0X` hex (an odd digit count means an implied leading
 * zero nibble) or `0b`/`0B` base64. Returns undefined for anything else or malformed digits.
 */
export function decodeBinary(value: string): Buffer | undefined {
  if (value.length < 3 || value[0] !== '0') return undefined;
  const kind = value[1];
  const digits = value.slice(2);
  if (kind === 'x' || kind === 'X') {
    if (!HEX.test(digits)) return undefined;
    return Buffer.from(digits.length % 2 === 1 ? `0${digits}` : digits, 'hex');
  }
  if (kind === 'b' || kind === 'B') {
    if (!BASE64.test(digits)) return undefined;
    // Padding, when present, must complete the last quantum; without it, a lone sextet is invalid.
    if (digits.includes('=') ? digits.length % 4 !== 0 : digits.length % 4 === 1) return undefined;
    return Buffer.from(digits, 'base64');
  }
  return undefined;
}

/** Encode binary data as a hex-constant with the `0x` prefix (lower-case digits). */
export function encodeHex(data: Uint8Array): string {
  return `0x${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex')}`;
}

/** Encode binary data as a base64-constant with the `0b` prefix. */
export function encodeBase64(data: Uint8Array): string {
  return `0b${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')}`;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/**
 * Decode a numerical value (RFC 7143 6.1: decimal-constant or hex-constant, below 2^64). Returns
 * undefined when malformed; values beyond Number.MAX_SAFE_INTEGER come back as Infinity, which
 * every range check rejects.
 */
export function decodeNumber(value: string): number | undefined {
  let n: bigint;
  if (DECIMAL.test(value)) n = BigInt(value);
  else if ((value.startsWith('0x') || value.startsWith('0X')) && HEX.test(value.slice(2))) n = BigInt(value);
  else return undefined;
  if (n >= 1n << 64n) return undefined;
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(n);
}

/**
 * C number parsing as tgtadm does it: glibc strtoull(str, &end, 0) wrapped in tgt's
 * str_to_int() macros (usr/util.h), so that our tgtadm accepts and rejects exactly the same
 * option values ("0x10", "010", " 7", "7x" are accepted; "-1" and "" are invalid).
 */

const ULLONG_MAX = 0xffff_ffff_ffff_ffffn;

/** glibc strtoull with base 0: the value (ULLONG_MAX on overflow) and how many chars were used. */
export function strtoull(str: string): { value: bigint; consumed: number } {
  let i = 0;
  while (i < str.length && isCSpace(str.charCodeAt(i))) i++;
  let negative = false;
  if (str[i] === '+' || str[i] === '-') {
    negative = str[i] === '-';
    i++;
  }
  let base = 10n;
  if (str[i] === '0') {
    if ((str[i + 1] === 'x' || str[i + 1] === 'X') && digitValue(str[i + 2], 16) >= 0) {
      base = 16n;
      i += 2;
    } else {
      base = 8n;
    }
  }
  const start = i;
  let value = 0n;
  let overflow = false;
  for (; i < str.length; i++) {
    const d = digitValue(str[i], Number(base));
    if (d < 0) break;
    value = value * base + BigInt(d);
    if (value > ULLONG_MAX) overflow = true;
  }
  if (i === start) return { value: 0n, consumed: 0 }; // no digits: endptr = str
  if (overflow) return { value: ULLONG_MAX, consumed: i };
  return { value: negative ? BigInt.asUintN(64, -value) : value, consumed: i };
}

function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function digitValue(ch: string | undefined, base: number): number {
  if (ch === undefined) return -1;
  const d = parseInt(ch, 36);
  return Number.isNaN(d) || d >= base ? -1 : d;
}

/** C integer types tgtadm parses into. */
export type CIntType = 'int32' | 'int16' | 'uint32' | 'uint64';

export type CIntResult = { ok: true; value: bigint } | { ok: false; reason: 'invalid' | 'range' };

/**
 * tgt's `str_to_int(str, val)`: EINVAL when nothing parsed or the result is ULLONG_MAX, ERANGE
 * when the value does not survive the cast to the field's type; with `min`, the `_ge` variant.
 */
export function strToInt(str: string, type: CIntType, min?: bigint): CIntResult {
  const { value, consumed } = strtoull(str);
  if (consumed === 0 || value === ULLONG_MAX) return { ok: false, reason: 'invalid' };
  const cast = castTo(value, type);
  // C compares val != ull_val after converting val back to unsigned long long.
  if (BigInt.asUintN(64, cast) !== value) return { ok: false, reason: 'range' };
  if (min !== undefined && cast < min) return { ok: false, reason: 'range' };
  return { ok: true, value: cast };
}

function castTo(value: bigint, type: CIntType): bigint {
  switch (type) {
    case 'int32':
      return BigInt.asIntN(32, value);
    case 'int16':
      return BigInt.asIntN(16, value);
    case 'uint32':
      return BigInt.asUintN(32, value);
    case 'uint64':
      return value;
  }
}

import { StoreError } from './errors.js';

/**
 * Size syntax used by the memory and null stores' path (and by tools):
 *   - a plain integer is bytes: "1048576"
 *   - an integer followed by a binary unit, case-insensitive: K, M, G, T, P (powers of 1024),
 *     optionally followed by "B" or "iB": "64M", "64MiB", "1g", "512KB"
 *   - surrounding whitespace is ignored; fractions, signs and zero are rejected.
 */
const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
};
const SIZE_RE = /^(\d+)\s*([kmgtp]?)(?:i?b)?$/i;

/** Parse a size string (see above) into bytes; throws StoreError TGT_ERR_BS_BAD_SIZE. */
export function parseSize(text: string): number {
  const m = SIZE_RE.exec(text.trim());
  // A bare "B" suffix without a unit ("512B") is accepted; "iB" alone is not.
  if (!m || (m[2] === '' && /ib$/i.test(text.trim()))) {
    throw new StoreError('TGT_ERR_BS_BAD_SIZE', `invalid size "${text}" (expected e.g. 1048576, 64M, 1GiB)`);
  }
  const bytes = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new StoreError('TGT_ERR_BS_BAD_SIZE', `size "${text}" must be between 1 byte and 2^53-1 bytes`);
  }
  return bytes;
}

/** Like parseSize, but returns undefined instead of throwing. */
export function tryParseSize(text: string): number | undefined {
  try {
    return parseSize(text);
  } catch {
    return undefined;
  }
}

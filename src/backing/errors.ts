/**
 * Typed errors thrown by backing stores for bad configuration or misuse. I/O failures from the
 * operating system are passed through unchanged (Node's `ErrnoException` with `code` = 'EIO',
 * 'ENOSPC', ...): the SCSI core maps both kinds to sense data, management maps open failures to
 * tgtadm errors.
 */

export type StoreErrorCode =
  /** A size string (memory/null path) did not parse, or is zero or too large. */
  | 'TGT_ERR_BS_BAD_SIZE'
  /** rdwr was pointed at something that is neither a regular file nor a block device. */
  | 'TGT_ERR_BS_BAD_FILE_TYPE'
  /** A write or unmap reached a store opened read-only. */
  | 'TGT_ERR_BS_READONLY'
  /** A request reached past the end of the store (the core checks ranges; this is the backstop). */
  | 'TGT_ERR_BS_OUT_OF_RANGE';

const BRAND = Symbol.for('tgt-ts.StoreError');

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly [BRAND] = true;

  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }

  /** True for any StoreError, even one from a duplicate copy of this module. */
  static is(value: unknown): value is StoreError {
    return typeof value === 'object' && value !== null && BRAND in value;
  }
}

/** Throw TGT_ERR_BS_OUT_OF_RANGE unless [offset, offset+length) lies inside a store of `size` bytes. */
export function checkRange(offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > size) {
    throw new StoreError(
      'TGT_ERR_BS_OUT_OF_RANGE',
      `range ${offset}+${length} outside store of ${size} bytes`,
    );
  }
}

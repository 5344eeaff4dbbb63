/**
 * Errors raised by the initiator. Each has a stable `code` so tests can assert on it without
 * matching messages.
 */
import { Buffer } from 'node:buffer';

export type InitiatorErrorCode =
  | 'TGT_ERR_INI_CONNECTION_CLOSED'
  | 'TGT_ERR_INI_TIMEOUT'
  | 'TGT_ERR_INI_LOGIN_FAILED'
  | 'TGT_ERR_INI_AUTH_FAILED'
  | 'TGT_ERR_INI_NEGOTIATION'
  | 'TGT_ERR_INI_PROTOCOL'
  | 'TGT_ERR_INI_REJECTED'
  | 'TGT_ERR_INI_STATE'
  | 'TGT_ERR_INI_SCSI_STATUS';

export class InitiatorError extends Error {
  readonly code: InitiatorErrorCode;
  constructor(code: InitiatorErrorCode, message: string) {
    super(message);
    this.name = 'InitiatorError';
    this.code = code;
  }
}

/** The target answered a Login Request with a non-zero status (RFC 7143 11.13.5). */
export class LoginFailedError extends InitiatorError {
  constructor(
    /** (Status-Class << 8) | Status-Detail. */
    readonly status: number,
    /** Redirection (class 1): the TargetAddress the target sent. */
    readonly targetAddress?: string,
  ) {
    super(
      'TGT_ERR_INI_LOGIN_FAILED',
      `login failed: status class 0x${(status >> 8).toString(16)} detail 0x${(status & 0xff).toString(16).padStart(2, '0')}` +
        (targetAddress ? ` (redirect to ${targetAddress})` : ''),
    );
    this.name = 'LoginFailedError';
  }
  get statusClass(): number {
    return this.status >> 8;
  }
  get statusDetail(): number {
    return this.status & 0xff;
  }
}

/** The target rejected a PDU (RFC 7143 11.17); `reason` is the RejectReason. */
export class RejectedError extends InitiatorError {
  constructor(
    readonly reason: number,
    /** The rejected header the target sent back. */
    readonly rejectedHeader: Buffer,
  ) {
    super('TGT_ERR_INI_REJECTED', `target rejected the PDU with reason 0x${reason.toString(16)}`);
    this.name = 'RejectedError';
  }
}

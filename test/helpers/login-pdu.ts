/**
 * A hand-built first Login Request of a normal session, as bytes on the wire (no digests
 * exist during login), for tests that talk to the target below the initiator library.
 */
import { Buffer } from 'node:buffer';
import { encodeLoginRequest } from '../../src/iscsi/pdu.js';
import { BHS_LENGTH, LoginStage } from '../../src/iscsi/spec.js';
import { encodeText } from '../../src/iscsi/text.js';

export interface FirstLoginOptions {
  initiatorName: string;
  targetName: string;
  /** T bit: ask to leave the security stage (default true). */
  transit?: boolean;
  /** C bit: the keys continue in the next PDU (default false). */
  continues?: boolean;
  /** Last ISID byte (the rest: random format 0x80). */
  isidLow?: number;
}

export function firstLoginPdu(o: FirstLoginOptions): Buffer {
  const data = encodeText([
    ['InitiatorName', o.initiatorName],
    ['TargetName', o.targetName],
    ['SessionType', 'Normal'],
    ['AuthMethod', 'None'],
  ]);
  const transit = o.transit ?? true;
  const bhs = encodeLoginRequest(Buffer.alloc(BHS_LENGTH), {
    itt: 1,
    transit,
    continue: o.continues ?? false,
    csg: LoginStage.SecurityNegotiation,
    nsg: transit ? LoginStage.LoginOperationalNegotiation : LoginStage.SecurityNegotiation,
    isid: Buffer.from([0x80, 0, 0, 0, 0, o.isidLow ?? 1]),
    tsih: 0,
    cid: 0,
    cmdSN: 1,
    expStatSN: 0,
  });
  bhs.writeUIntBE(data.length, 5, 3);
  return Buffer.concat([bhs, data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
}

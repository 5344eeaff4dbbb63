/**
 * Initiator side of login key negotiation (RFC 7143 6, 13): what we propose, how we answer keys
 * the target proposes, and what the session ends up with. Answers to our proposals are checked
 * against the result function (a target may not raise a "min" value, turn on an "and" boolean we
 * turned off, or pick a list value we did not offer).
 */
import { lookupKey } from '../iscsi/params.js';
import { decodeNumber, type TextPair } from '../iscsi/text.js';
import { InitiatorError } from './errors.js';

/** Operational keys the initiator proposes. Unset fields use the defaults in DEFAULT_PROPOSALS. */
export interface LoginProposals {
  /** "None", "CRC32C" or a preference list such as "CRC32C,None". */
  headerDigest: string;
  dataDigest: string;
  /** Our receive limit (declarative): the target cuts Data-In/NOP-In/Text at this size. */
  maxRecvDataSegmentLength: number;
  initialR2T: boolean;
  immediateData: boolean;
  firstBurstLength: number;
  maxBurstLength: number;
  maxOutstandingR2T: number;
  errorRecoveryLevel: number;
  maxConnections: number;
  dataPduInOrder: boolean;
  dataSequenceInOrder: boolean;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  /** RFC 7143 13.25: obsolete markers; only "No" is sent, and only when true. */
  sendMarkerKeys: boolean;
}

/** open-iscsi's defaults (iscsid.conf), so tests see what a common initiator would propose. */
export const DEFAULT_PROPOSALS: Readonly<LoginProposals> = Object.freeze({
  headerDigest: 'None',
  dataDigest: 'None',
  maxRecvDataSegmentLength: 262144,
  initialR2T: false,
  immediateData: true,
  firstBurstLength: 262144,
  maxBurstLength: 16776192,
  maxOutstandingR2T: 1,
  errorRecoveryLevel: 0,
  maxConnections: 1,
  dataPduInOrder: true,
  dataSequenceInOrder: true,
  defaultTime2Wait: 2,
  defaultTime2Retain: 0,
  sendMarkerKeys: true,
});

/** The session parameters in force after login. */
export interface NegotiatedParams {
  headerDigest: boolean;
  dataDigest: boolean;
  /** Our MaxRecvDataSegmentLength (what we told the target). */
  maxRecvDataSegmentLength: number;
  /** The target's MaxRecvDataSegmentLength: the most data we may put in one PDU (default 8192). */
  maxXmitDataSegmentLength: number;
  initialR2T: boolean;
  immediateData: boolean;
  firstBurstLength: number;
  maxBurstLength: number;
  maxOutstandingR2T: number;
  errorRecoveryLevel: number;
  maxConnections: number;
  dataPduInOrder: boolean;
  dataSequenceInOrder: boolean;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  targetPortalGroupTag?: number;
  targetAlias?: string;
  /** Every key=value the target sent during login, last value wins. */
  targetKeys: Map<string, string>;
}

/** Wire key -> field of LoginProposals / NegotiatedParams. */
const KEY_FIELDS: ReadonlyArray<readonly [string, keyof LoginProposals & keyof NegotiatedParams]> = [
  ['HeaderDigest', 'headerDigest'],
  ['DataDigest', 'dataDigest'],
  ['MaxRecvDataSegmentLength', 'maxRecvDataSegmentLength'],
  ['InitialR2T', 'initialR2T'],
  ['ImmediateData', 'immediateData'],
  ['FirstBurstLength', 'firstBurstLength'],
  ['MaxBurstLength', 'maxBurstLength'],
  ['MaxOutstandingR2T', 'maxOutstandingR2T'],
  ['ErrorRecoveryLevel', 'errorRecoveryLevel'],
  ['MaxConnections', 'maxConnections'],
  ['DataPDUInOrder', 'dataPduInOrder'],
  ['DataSequenceInOrder', 'dataSequenceInOrder'],
  ['DefaultTime2Wait', 'defaultTime2Wait'],
  ['DefaultTime2Retain', 'defaultTime2Retain'],
];
const FIELD_BY_KEY = new Map(KEY_FIELDS);

/** RFC 7143 13: values that apply when a key is not negotiated. */
function rfcDefaults(ours: LoginProposals): NegotiatedParams {
  return {
    headerDigest: false,
    dataDigest: false,
    maxRecvDataSegmentLength: ours.maxRecvDataSegmentLength,
    maxXmitDataSegmentLength: 8192,
    initialR2T: true,
    immediateData: true,
    firstBurstLength: 65536,
    maxBurstLength: 262144,
    maxOutstandingR2T: 1,
    errorRecoveryLevel: 0,
    maxConnections: 1,
    dataPduInOrder: true,
    dataSequenceInOrder: true,
    defaultTime2Wait: 2,
    defaultTime2Retain: 20,
    targetKeys: new Map(),
  };
}

const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');
const SPECIAL = new Set(['Reject', 'Irrelevant', 'NotUnderstood']);

/** Drives the operational-stage key exchange for one login. */
export class LoginNegotiator {
  readonly proposals: LoginProposals;
  private readonly sent = new Map<string, string>();
  private readonly params: NegotiatedParams;

  constructor(
    proposals: Partial<LoginProposals> = {},
    private readonly discovery = false,
  ) {
    this.proposals = { ...DEFAULT_PROPOSALS, ...proposals };
    this.params = rfcDefaults(this.proposals);
  }

  /** The keys of our first operational Login Request (or Text negotiation). */
  initialKeys(): TextPair[] {
    const p = this.proposals;
    const pairs: TextPair[] = [];
    for (const [key, field] of KEY_FIELDS) {
      // RFC 7143 13: session keys other than digests/MRDSL/time2* are irrelevant in discovery.
      if (this.discovery && lookupKey(key)?.irrelevantInDiscovery) continue;
      const v = p[field];
      pairs.push([key, typeof v === 'boolean' ? yesNo(v) : String(v)]);
    }
    if (p.sendMarkerKeys && !this.discovery) pairs.push(['IFMarker', 'No'], ['OFMarker', 'No']);
    for (const [k, v] of pairs) this.sent.set(k, v);
    return pairs;
  }

  /**
   * Take one Login/Text Response's keys: record answers to our proposals and return our answers
   * to the keys the target proposed (to be sent in the next request).
   */
  absorb(pairs: readonly TextPair[]): TextPair[] {
    const replies: TextPair[] = [];
    for (const [key, value] of pairs) {
      this.params.targetKeys.set(key, value);
      if (this.sent.has(key)) this.acceptAnswer(key, value);
      else {
        const reply = this.answerProposal(key, value);
        if (reply !== undefined) replies.push([key, reply]);
      }
    }
    return replies;
  }

  /** Record the target's keys from security-stage responses (TargetPortalGroupTag, TargetAlias). */
  noteSecurityKeys(pairs: readonly TextPair[]): void {
    for (const [key, value] of pairs) {
      this.params.targetKeys.set(key, value);
      if (key === 'TargetPortalGroupTag') this.params.targetPortalGroupTag = decodeNumber(value);
      if (key === 'TargetAlias') this.params.targetAlias = value;
    }
  }

  /** The negotiated parameters (valid once login has reached full feature phase). */
  result(): NegotiatedParams {
    return this.params;
  }

  /** The target answered a key we sent. */
  private acceptAnswer(key: string, value: string): void {
    const field = FIELD_BY_KEY.get(key);
    if (!field) return; // markers: nothing to record
    // MRDSL is declarative: the target's value is its own limit, not an answer to ours.
    if (key === 'MaxRecvDataSegmentLength') {
      this.params.maxXmitDataSegmentLength = this.number(key, value, 512, 0xffffff);
      return;
    }
    if (SPECIAL.has(value)) return; // RFC 7143 6.2: the key keeps its default
    const def = lookupKey(key)!;
    const ours = this.sent.get(key)!;
    switch (def.result) {
      case 'list': {
        const offered = ours.split(',');
        if (!offered.includes(value)) this.fail(key, value, `not one of ${ours}`);
        this.set(field, value === 'CRC32C');
        return;
      }
      case 'and':
      case 'or': {
        if (value !== 'Yes' && value !== 'No') this.fail(key, value, 'not Yes/No');
        // RFC 7143 6.2.2: AND with our No must be No; OR with our Yes must be Yes.
        if (def.result === 'and' && ours === 'No' && value === 'Yes')
          this.fail(key, value, 'AND with our No');
        if (def.result === 'or' && ours === 'Yes' && value === 'No') this.fail(key, value, 'OR with our Yes');
        this.set(field, value === 'Yes');
        return;
      }
      default: {
        const n = this.number(key, value, def.min ?? 0, def.max ?? Number.MAX_SAFE_INTEGER);
        if (def.result === 'min' && n > Number(ours)) this.fail(key, value, `above our ${ours} (min)`);
        if (def.result === 'max' && n < Number(ours)) this.fail(key, value, `below our ${ours} (max)`);
        this.set(field, n);
      }
    }
  }

  /** The target proposed a key we did not send: compute our answer (undefined = no answer). */
  private answerProposal(key: string, value: string): string | undefined {
    if (key === 'TargetPortalGroupTag') {
      this.params.targetPortalGroupTag = decodeNumber(value);
      return undefined;
    }
    if (key === 'TargetAlias') {
      this.params.targetAlias = value;
      return undefined;
    }
    const def = lookupKey(key);
    if (!def) return 'NotUnderstood';
    if (def.result === 'declarative' || def.senders === 'target' || SPECIAL.has(value)) {
      if (key === 'MaxRecvDataSegmentLength') {
        this.params.maxXmitDataSegmentLength = this.number(key, value, 512, 0xffffff);
      }
      return undefined;
    }
    const field = FIELD_BY_KEY.get(key);
    if (def.obsolete || !field) return def.type === 'boolean' ? 'No' : 'Irrelevant';
    const ours = this.proposals[field];
    switch (def.result) {
      case 'list': {
        const mine = String(ours).split(',');
        const pick = value.split(',').find((v) => mine.includes(v));
        if (pick === undefined) return 'Reject';
        this.set(field, pick === 'CRC32C');
        return pick;
      }
      case 'and':
      case 'or': {
        if (value !== 'Yes' && value !== 'No') return 'Reject';
        const theirs = value === 'Yes';
        const r = def.result === 'and' ? theirs && (ours as boolean) : theirs || (ours as boolean);
        this.set(field, r);
        return yesNo(r);
      }
      default: {
        const n = decodeNumber(value);
        if (n === undefined || n < (def.min ?? 0) || n > (def.max ?? Infinity)) return 'Reject';
        const r = def.result === 'max' ? Math.max(n, ours as number) : Math.min(n, ours as number);
        this.set(field, r);
        return String(r);
      }
    }
  }

  private set(field: keyof NegotiatedParams, value: boolean | number): void {
    (this.params as unknown as Record<string, boolean | number>)[field] = value;
  }

  private number(key: string, value: string, min: number, max: number): number {
    const n = decodeNumber(value);
    if (n === undefined || n < min || n > max) this.fail(key, value, `not a number in ${min}..${max}`);
    return n!;
  }

  private fail(key: string, value: string, why: string): never {
    throw new InitiatorError('TGT_ERR_INI_NEGOTIATION', `target answered ${key}=${value}: ${why}`);
  }
}

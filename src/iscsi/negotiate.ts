/**
 * Target-side login key negotiation (RFC 7143 6.2-6.3, 13). Pure: no sockets, no timers.
 *
 * The connection layer feeds the key list of every Login request to one `LoginNegotiator`:
 *
 *   security stage     processSecurity(pairs)    -> AuthMethod answer, CHAP_* keys for TargetChap
 *   operational stage  processOperational(pairs) -> answers for the initiator's offers
 *   initiator sets T   proposals()               -> the target's own offers; stay (T=0) while
 *                                                   any of them awaits the initiator's answer
 *   login done         result()                  -> the negotiated session/connection values
 *
 * Behaviour choices (and where they differ from tgt):
 * - Wire key names match case-sensitively (RFC 7143 6.1); tgt ignores case.
 * - Operational keys in the security stage are answered NotUnderstood, as tgt does; the Linux
 *   kernel initiator and libiscsi send them only in the operational stage (pcap fixtures).
 * - Keys irrelevant to the session (discovery, iSER keys on TCP, FirstBurstLength when
 *   InitialR2T=Yes and ImmediateData=No) are answered Irrelevant; tgt negotiates them anyway.
 * - Out-of-range numbers are answered Reject; tgt silently clamps them.
 * - A key negotiated twice in one login is an initiator error (RFC 7143 6.3), except the
 *   re-declarable MaxRecvDataSegmentLength.
 */
import { TargetParams } from './params.js';
import { lookupKey, isExtensionKey, type KeyDef } from './params.js';
import { decodeNumber, type TextPair } from './text.js';

export type SessionType = 'Normal' | 'Discovery';

/** A login failure to report in the Login Response (RFC 7143 11.13.5). */
export interface LoginStatus {
  readonly statusClass: number;
  readonly statusDetail: number;
  /** Human-readable cause, for the log only. */
  readonly message: string;
}

/** RFC 7143 11.13.5 status class 2 (initiator error) details used during negotiation. */
export const LOGIN_STATUS_INITIATOR_ERROR = 0x00;
export const LOGIN_STATUS_AUTH_FAILED = 0x01;

/** Build an initiator-error status (class 2). */
export function initiatorError(message: string, detail = LOGIN_STATUS_INITIATOR_ERROR): LoginStatus {
  return { statusClass: 2, statusDetail: detail, message };
}

/** The values in force once login completes. */
export interface NegotiatedParams {
  sessionType: SessionType;
  headerDigest: boolean;
  dataDigest: boolean;
  /** Largest data segment the target accepts (the target's declared MaxRecvDataSegmentLength). */
  maxRecvDataSegmentLength: number;
  /** Largest data segment the target may send (the initiator's declared MaxRecvDataSegmentLength). */
  maxXmitDataSegmentLength: number;
  firstBurstLength: number;
  maxBurstLength: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxOutstandingR2T: number;
  dataPDUInOrder: boolean;
  dataSequenceInOrder: boolean;
  errorRecoveryLevel: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  maxConnections: number;
  taskReporting: 'RFC3720';
  iscsiProtocolLevel: number;
  /** Always false: this target speaks iSCSI over TCP only. */
  rdmaExtensions: boolean;
  /** tgt local key MaxQueueCmd: the CmdSN window (tgt §4.15: MaxCmdSN = ExpCmdSN + MaxQueueCmd). */
  maxQueueCmd: number;
}

/** Response pairs for one request, or the status that ends the login. */
export interface NegotiationStep {
  response: TextPair[];
  error?: LoginStatus;
}

/** Result of the security stage keys of one request. */
export interface SecurityStep extends NegotiationStep {
  /** The AuthMethod selected in this request, if the initiator offered one. */
  authMethod?: 'CHAP' | 'None';
  /** CHAP_* keys, in order, for the CHAP state machine. */
  chapPairs: TextPair[];
}

/** Target proposals made when the initiator asks to leave the operational stage. */
export interface ProposalStep {
  /** Keys to add to the Login Response. */
  response: TextPair[];
  /** True while some proposal awaits the initiator's answer: respond with T=0 and stay. */
  awaitingAnswers: boolean;
}

export interface LoginNegotiatorOptions {
  /** The target's configured values (for discovery sessions, a default `new TargetParams()`). */
  params: TargetParams;
  sessionType: SessionType;
  /**
   * For a connection added to an existing session (MC/S): the session's values. Leading-only
   * keys are then answered Irrelevant and the session's values are kept.
   */
  leadingSession?: NegotiatedParams;
}

const IRRELEVANT = 'Irrelevant';
const REJECT = 'Reject';
const NOT_UNDERSTOOD = 'NotUnderstood';

// Declarative keys the connection layer reads itself (tgt's login_keys): never answered.
const LOGIN_KEYS: ReadonlySet<string> = new Set([
  'InitiatorName',
  'InitiatorAlias',
  'TargetName',
  'SessionType',
]);

// Keys sent only by the target, or only in full feature phase: an initiator offering them in login is
// answered NotUnderstood (tgt does the same).
const NOT_NEGOTIABLE_IN_LOGIN: ReadonlySet<string> = new Set([
  'TargetAlias',
  'TargetAddress',
  'TargetPortalGroupTag',
  'SendTargets',
]);

/** Keys the target may propose itself, with how the target's value is read from TargetParams. */
const PROPOSABLE: readonly string[] = [
  'HeaderDigest',
  'DataDigest',
  'InitialR2T',
  'MaxOutstandingR2T',
  'ImmediateData',
  'FirstBurstLength',
  'MaxBurstLength',
  'DataPDUInOrder',
  'DataSequenceInOrder',
  'ErrorRecoveryLevel',
  'DefaultTime2Wait',
  'DefaultTime2Retain',
  'MaxConnections',
];

/** Target-side support for list keys other than the digests. */
const TASK_REPORTING_SUPPORTED = 'RFC3720';
const PROTOCOL_LEVEL_SUPPORTED = 1;

type KeyState =
  { kind: 'done'; value: string } | { kind: 'proposed'; offer: string } | { kind: 'notUnderstood' };

/** Negotiates one connection's login keys against the target's configuration. */
export class LoginNegotiator {
  private readonly params: TargetParams;
  private readonly sessionType: SessionType;
  private readonly leadingSession: NegotiatedParams | undefined;
  private readonly keys = new Map<string, KeyState>();
  private initiatorMrdsl: number | undefined;
  private mrdslDeclared = false;
  private authMethod: 'CHAP' | 'None' | undefined;

  constructor(options: LoginNegotiatorOptions) {
    this.params = options.params;
    this.sessionType = options.sessionType;
    this.leadingSession = options.leadingSession;
  }

  /**
   * Security stage (RFC 7143 6.3.1, 12.1): selects the AuthMethod and collects CHAP keys.
   * `authRequired` (the target has incoming accounts) means only CHAP is acceptable; otherwise
   * only None is (tgt: CHAP is offered only when an account can check it).
   * No acceptable method -> AuthMethod=Reject and an authentication failure (0x0201).
   */
  processSecurity(pairs: readonly TextPair[], authRequired: boolean): SecurityStep {
    const response: TextPair[] = [];
    const chapPairs: TextPair[] = [];
    const dup = firstDuplicate(pairs);
    if (dup) return { response, chapPairs, error: initiatorError(`key ${dup} sent twice in one request`) };
    let selected: 'CHAP' | 'None' | undefined;
    for (const [key, value] of pairs) {
      if (LOGIN_KEYS.has(key)) continue;
      if (key === 'AuthMethod') {
        // RFC 7143 6.3: AuthMethod is negotiated once per login.
        if (this.authMethod !== undefined)
          return { response, chapPairs, error: initiatorError('AuthMethod renegotiated') };
        selected = selectAuthMethod(value, authRequired);
        if (!selected) {
          response.push([key, REJECT]);
          return {
            response,
            chapPairs,
            error: initiatorError('no acceptable AuthMethod', LOGIN_STATUS_AUTH_FAILED),
          };
        }
        this.authMethod = selected;
        response.push([key, selected]);
      } else if (key.startsWith('CHAP_')) {
        chapPairs.push([key, value]);
      } else {
        // tgt answers operational keys offered in the security stage NotUnderstood (observed).
        response.push([key, NOT_UNDERSTOOD]);
      }
    }
    return selected ? { response, chapPairs, authMethod: selected } : { response, chapPairs };
  }

  /** The AuthMethod selected so far (undefined if the security stage was skipped). */
  get selectedAuthMethod(): 'CHAP' | 'None' | undefined {
    return this.authMethod;
  }

  /**
   * Operational stage: answer each of the initiator's keys, in order (RFC 7143 6.2), and check
   * answers to earlier target proposals. A bad answer to a target proposal, or a key negotiated
   * twice, ends the login with an initiator error.
   */
  processOperational(pairs: readonly TextPair[]): NegotiationStep {
    const response: TextPair[] = [];
    const dup = firstDuplicate(pairs);
    if (dup) return { response, error: initiatorError(`key ${dup} sent twice in one request`) };
    for (const [key, value] of pairs) {
      const error = this.processKey(key, value, response);
      if (error) return { response, error };
    }
    this.fixFirstBurstAnswer(response);
    this.declareOwnMrdsl(response);
    return { response };
  }

  /**
   * The target's own offers once the initiator asks to leave the operational stage (tgt's
   * text_check_param): every negotiable key the initiator did not send and whose target value
   * differs from the RFC default, plus the target's MaxRecvDataSegmentLength declaration.
   */
  proposals(): ProposalStep {
    const response: TextPair[] = [];
    this.declareOwnMrdsl(response);
    for (const name of PROPOSABLE) {
      if (this.keys.has(name)) continue;
      const def = lookupKey(name)!;
      if (this.sessionType === 'Discovery' && def.irrelevantInDiscovery) continue;
      // On a connection joining a session only connection-scoped keys are negotiated.
      if (this.leadingSession && def.use === 'LO') continue;
      const offer = this.targetOffer(def);
      if (offer === def.rfcDefault) continue;
      response.push([name, offer]);
      this.keys.set(name, { kind: 'proposed', offer });
    }
    return { response, awaitingAnswers: this.awaitingAnswers };
  }

  /** True while a target proposal has not been answered. */
  get awaitingAnswers(): boolean {
    for (const s of this.keys.values()) if (s.kind === 'proposed') return true;
    return false;
  }

  /** The negotiated values (RFC defaults for keys nobody negotiated). */
  result(): NegotiatedParams {
    const s = this.leadingSession;
    const num = (name: string): number => Number(this.valueOf(name));
    const bool = (name: string): boolean => this.valueOf(name) === 'Yes';
    const maxBurstLength = s ? s.maxBurstLength : num('MaxBurstLength');
    const firstBurstLength = s ? s.firstBurstLength : num('FirstBurstLength');
    return {
      sessionType: this.sessionType,
      headerDigest: this.valueOf('HeaderDigest') === 'CRC32C',
      dataDigest: this.valueOf('DataDigest') === 'CRC32C',
      maxRecvDataSegmentLength: this.params.get('MaxRecvDataSegmentLength'),
      maxXmitDataSegmentLength:
        this.initiatorMrdsl ?? Number(lookupKey('MaxRecvDataSegmentLength')!.rfcDefault),
      // RFC 7143 13.14: FirstBurstLength MUST NOT exceed MaxBurstLength.
      firstBurstLength: Math.min(firstBurstLength, maxBurstLength),
      maxBurstLength,
      initialR2T: s ? s.initialR2T : bool('InitialR2T'),
      immediateData: s ? s.immediateData : bool('ImmediateData'),
      // RFC 7143 13.19: with ErrorRecoveryLevel > 0 and DataSequenceInOrder=Yes only the last R2T
      // can be recovered, so MaxOutstandingR2T is 1 whatever the text exchange said.
      maxOutstandingR2T: s
        ? s.maxOutstandingR2T
        : num('ErrorRecoveryLevel') > 0 && bool('DataSequenceInOrder')
          ? 1
          : num('MaxOutstandingR2T'),
      dataPDUInOrder: s ? s.dataPDUInOrder : bool('DataPDUInOrder'),
      dataSequenceInOrder: s ? s.dataSequenceInOrder : bool('DataSequenceInOrder'),
      errorRecoveryLevel: s ? s.errorRecoveryLevel : num('ErrorRecoveryLevel'),
      defaultTime2Wait: s ? s.defaultTime2Wait : num('DefaultTime2Wait'),
      defaultTime2Retain: s ? s.defaultTime2Retain : num('DefaultTime2Retain'),
      maxConnections: s ? s.maxConnections : num('MaxConnections'),
      taskReporting: 'RFC3720',
      iscsiProtocolLevel: s ? s.iscsiProtocolLevel : num('iSCSIProtocolLevel'),
      rdmaExtensions: false,
      maxQueueCmd: this.params.get('MaxQueueCmd'),
    };
  }

  // -------------------------------------------------------------------------------------------

  /** Negotiated value of a key, or its RFC default when it was not (successfully) negotiated. */
  private valueOf(name: string): string {
    const state = this.keys.get(name);
    if (state?.kind === 'done' && state.value !== IRRELEVANT && state.value !== REJECT) return state.value;
    return lookupKey(name)!.rfcDefault!;
  }

  private processKey(key: string, value: string, response: TextPair[]): LoginStatus | undefined {
    if (LOGIN_KEYS.has(key)) return undefined;
    // tgt ignores AuthMethod outside the security stage.
    if (key === 'AuthMethod') return undefined;
    const def = lookupKey(key);
    if (!def || isExtensionKey(key) || def.stage === 'security' || NOT_NEGOTIABLE_IN_LOGIN.has(key)) {
      response.push([key, NOT_UNDERSTOOD]);
      return undefined;
    }
    const state = this.keys.get(key);
    if (state?.kind === 'proposed') return this.checkAnswer(def, state.offer, value);
    if (key === 'MaxRecvDataSegmentLength') return this.takeInitiatorMrdsl(def, value, response);
    // RFC 7143 6.3: renegotiating a key in the same login is an initiator error.
    if (state?.kind === 'done') return initiatorError(`key ${key} negotiated twice`);

    const answer = this.answer(def, value);
    this.keys.set(key, { kind: 'done', value: answer });
    response.push([key, answer]);
    return undefined;
  }

  /** The responder's value for one offered key. */
  private answer(def: KeyDef, value: string): string {
    if (def.iser) return def.name === 'RDMAExtensions' ? this.answerRdma(value) : IRRELEVANT;
    if (def.obsolete) return this.answerMarker(def, value);
    if (this.sessionType === 'Discovery' && def.irrelevantInDiscovery) return IRRELEVANT;
    if (this.leadingSession && def.use === 'LO') return IRRELEVANT;
    switch (def.type) {
      case 'numerical':
        return this.answerNumber(def, value);
      case 'boolean':
        return this.answerBoolean(def, value);
      case 'list':
        return this.answerList(def, value);
      default:
        return NOT_UNDERSTOOD;
    }
  }

  private answerNumber(def: KeyDef, value: string): string {
    const offered = decodeNumber(value);
    if (offered === undefined || offered < def.min! || offered > def.max!) return REJECT;
    const mine = def.name === 'iSCSIProtocolLevel' ? PROTOCOL_LEVEL_SUPPORTED : this.params.get(def.name);
    switch (def.result) {
      case 'min':
        return String(Math.min(offered, mine));
      case 'max':
        return String(Math.max(offered, mine));
      default:
        return REJECT;
    }
  }

  private answerBoolean(def: KeyDef, value: string): string {
    if (value !== 'Yes' && value !== 'No') return REJECT;
    const offered = value === 'Yes';
    const mine = this.params.getBool(def.name);
    const result = def.result === 'and' ? offered && mine : offered || mine;
    return result ? 'Yes' : 'No';
  }

  /** RFC 7143 6.2: select the first value in the initiator's list that the target supports. */
  private answerList(def: KeyDef, value: string): string {
    for (const item of value.split(',')) {
      if (this.supportsListValue(def, item)) return item;
    }
    return REJECT;
  }

  private supportsListValue(def: KeyDef, item: string): boolean {
    if (def.name === 'HeaderDigest' || def.name === 'DataDigest') {
      const choice = this.params.digest(def.name);
      return (item === 'None' && choice.none) || (item === 'CRC32C' && choice.crc32c);
    }
    if (def.name === 'TaskReporting') return item === TASK_REPORTING_SUPPORTED;
    return false;
  }

  /** RFC 7145 6.3: iSER needs an RDMA transport; on TCP the answer is always No. */
  private answerRdma(value: string): string {
    return value === 'Yes' || value === 'No' ? 'No' : REJECT;
  }

  /**
   * RFC 7143 13.25: markers are obsolete. IFMarker/OFMarker are answered No (never Yes); the
   * intervals Irrelevant once the marker was negotiated off in this login, else Reject (tgt).
   */
  private answerMarker(def: KeyDef, value: string): string {
    if (def.type === 'boolean') return value === 'Yes' || value === 'No' ? 'No' : REJECT;
    const marker = def.name === 'OFMarkInt' ? 'OFMarker' : 'IFMarker';
    return this.keys.get(marker)?.kind === 'done' ? IRRELEVANT : REJECT;
  }

  /** RFC 7143 13.12: the initiator declares what it can receive; the target may send that much. */
  private takeInitiatorMrdsl(def: KeyDef, value: string, response: TextPair[]): LoginStatus | undefined {
    const n = decodeNumber(value);
    if (n === undefined || n < def.min! || n > def.max!) {
      response.push([def.name, REJECT]);
      return undefined;
    }
    this.initiatorMrdsl = n;
    return undefined;
  }

  /** The target declares its own MaxRecvDataSegmentLength once, when it differs from the RFC default. */
  private declareOwnMrdsl(response: TextPair[]): void {
    if (this.mrdslDeclared) return;
    this.mrdslDeclared = true;
    const mine = this.params.get('MaxRecvDataSegmentLength');
    if (String(mine) !== lookupKey('MaxRecvDataSegmentLength')!.rfcDefault) {
      response.push(['MaxRecvDataSegmentLength', String(mine)]);
    }
  }

  /**
   * RFC 7143 13.14: FirstBurstLength is Irrelevant when InitialR2T=Yes and ImmediateData=No, and
   * never exceeds MaxBurstLength. Adjust this request's answer once all its keys are known.
   */
  private fixFirstBurstAnswer(response: TextPair[]): void {
    const entry = response.find(([k]) => k === 'FirstBurstLength');
    if (!entry || entry[1] === IRRELEVANT || entry[1] === REJECT) return;
    if (this.valueOf('InitialR2T') === 'Yes' && this.valueOf('ImmediateData') === 'No') {
      entry[1] = IRRELEVANT;
      this.keys.set('FirstBurstLength', { kind: 'done', value: IRRELEVANT });
      return;
    }
    const mbl = Number(this.valueOf('MaxBurstLength'));
    if (Number(entry[1]) > mbl) {
      entry[1] = String(mbl);
      this.keys.set('FirstBurstLength', { kind: 'done', value: entry[1] });
    }
  }

  /** What the target offers for a key it proposes itself. */
  private targetOffer(def: KeyDef): string {
    if (def.name === 'HeaderDigest' || def.name === 'DataDigest') {
      const choice = this.params.digest(def.name);
      if (choice.crc32c && choice.none) return 'CRC32C,None';
      return choice.crc32c ? 'CRC32C' : 'None';
    }
    return this.params.format(def.name);
  }

  /**
   * Check the initiator's answer to a target proposal (RFC 7143 6.2): it must be a value the
   * target's offer allows. Reject/Irrelevant leave the RFC default in force.
   */
  private checkAnswer(def: KeyDef, offer: string, value: string): LoginStatus | undefined {
    if (value === REJECT || value === IRRELEVANT || value === NOT_UNDERSTOOD) {
      this.keys.set(def.name, { kind: 'done', value: REJECT });
      return undefined;
    }
    if (!answerAllowed(def, offer, value)) {
      return initiatorError(`bad answer ${def.name}=${value} to target offer ${offer}`);
    }
    this.keys.set(def.name, { kind: 'done', value });
    return undefined;
  }
}

/** Is `value` a legal result of the responder's function applied to the target's `offer`? */
function answerAllowed(def: KeyDef, offer: string, value: string): boolean {
  switch (def.type) {
    case 'boolean':
      if (value !== 'Yes' && value !== 'No') return false;
      // AND: an offered No forces No. OR: an offered Yes forces Yes.
      if (def.result === 'and') return offer === 'Yes' || value === 'No';
      return offer === 'No' || value === 'Yes';
    case 'numerical': {
      const n = decodeNumber(value);
      const o = Number(offer);
      if (n === undefined || n < def.min! || n > def.max!) return false;
      return def.result === 'min' ? n <= o : def.result === 'max' ? n >= o : false;
    }
    case 'list':
      return offer.split(',').includes(value);
    default:
      return false;
  }
}

/** RFC 7143 12.1: the first method in the initiator's list that the target accepts. */
function selectAuthMethod(list: string, authRequired: boolean): 'CHAP' | 'None' | undefined {
  for (const item of list.split(',')) {
    if (item === 'CHAP' && authRequired) return 'CHAP';
    if (item === 'None' && !authRequired) return 'None';
  }
  return undefined;
}

function firstDuplicate(pairs: readonly TextPair[]): string | undefined {
  const seen = new Set<string>();
  for (const [k] of pairs) {
    if (seen.has(k)) return k;
    seen.add(k);
  }
  return undefined;
}

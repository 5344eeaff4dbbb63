/**
 * CHAP authentication for iSCSI login (RFC 7143 12.1.3, RFC 1994): the target-side state machine
 * and the initiator-side helpers.
 *
 *   initiator                                  target (TargetChap)
 *   CHAP_A=<a1,a2,...>                   ->    picks the first algorithm it supports
 *                                        <-    CHAP_A=<a>, CHAP_I=<id>, CHAP_C=<challenge>
 *   CHAP_N=<user>, CHAP_R=<response>
 *     [+ CHAP_I, CHAP_C for mutual CHAP] ->    checks R = H(id | secret | challenge)
 *                                        <-    [mutual: CHAP_N=<outgoing user>, CHAP_R=<response>]
 *
 * Algorithm numbers are the IANA "PPP Authentication Algorithms" registry values, as the Linux
 * kernel target (LIO), open-iscsi and iscsi-scst use them: 5 = MD5, 6 = SHA-1, 7 = SHA-256,
 * 8 = SHA3-256. (tgt numbers SHA-1 as 7, which collides with SHA-256; we follow IANA.)
 */
import { Buffer } from 'node:buffer';
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { decodeBinary, decodeNumber, encodeHex, MAX_CHAP_BINARY_LENGTH, type TextPair } from './text.js';
import { initiatorError, LOGIN_STATUS_AUTH_FAILED, type LoginStatus } from './negotiate.js';

/** IANA PPP Authentication Algorithm numbers usable with CHAP_A. */
export const ChapAlgorithm = Object.freeze({ MD5: 5, SHA1: 6, SHA256: 7, SHA3_256: 8 } as const);
export type ChapAlgorithm = (typeof ChapAlgorithm)[keyof typeof ChapAlgorithm];

interface AlgorithmInfo {
  readonly hash: string;
  readonly digestLength: number;
}

const ALGORITHMS: ReadonlyMap<number, AlgorithmInfo> = new Map<number, AlgorithmInfo>([
  [ChapAlgorithm.MD5, { hash: 'md5', digestLength: 16 }],
  [ChapAlgorithm.SHA1, { hash: 'sha1', digestLength: 20 }],
  [ChapAlgorithm.SHA256, { hash: 'sha256', digestLength: 32 }],
  [ChapAlgorithm.SHA3_256, { hash: 'sha3-256', digestLength: 32 }],
]);

/** Every algorithm this implementation knows, strongest first. */
export const ALL_CHAP_ALGORITHMS: readonly ChapAlgorithm[] = Object.freeze([
  ChapAlgorithm.SHA3_256,
  ChapAlgorithm.SHA256,
  ChapAlgorithm.SHA1,
  ChapAlgorithm.MD5,
]);

/** Digest (and so CHAP_R) length of an algorithm, or undefined if unknown. */
export function chapDigestLength(algorithm: number): number | undefined {
  return ALGORITHMS.get(algorithm)?.digestLength;
}

/** RFC 1994 4.1: Response = H(Identifier | secret | Challenge), Identifier being one octet. */
export function computeChapResponse(
  algorithm: ChapAlgorithm,
  identifier: number,
  secret: string | Uint8Array,
  challenge: Uint8Array,
): Buffer {
  const info = ALGORITHMS.get(algorithm);
  if (!info) throw new RangeError(`unsupported CHAP algorithm ${algorithm}`);
  const h = createHash(info.hash);
  h.update(Uint8Array.of(identifier & 0xff));
  h.update(typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret);
  h.update(challenge);
  return h.digest();
}

/** Check a CHAP response in constant time (length mismatch fails without comparing). */
export function verifyChapResponse(
  algorithm: ChapAlgorithm,
  identifier: number,
  secret: string | Uint8Array,
  challenge: Uint8Array,
  response: Uint8Array,
): boolean {
  const expected = computeChapResponse(algorithm, identifier, secret, challenge);
  return response.length === expected.length && timingSafeEqual(expected, response);
}

/** Parse a CHAP_A list ("7,5"), keeping the initiator's order; malformed items are skipped. */
export function parseChapAlgorithmList(value: string): number[] {
  const out: number[] = [];
  for (const item of value.split(',')) {
    const n = decodeNumber(item);
    if (n !== undefined) out.push(n);
  }
  return out;
}

/** Smallest and largest challenge this target generates or accepts (RFC 7143 12.1.3: up to 1024). */
export const MIN_CHALLENGE_LENGTH = 16;
export const MAX_CHALLENGE_LENGTH = MAX_CHAP_BINARY_LENGTH;
/** tgt sends 50-byte challenges; every initiator used with tgt copes with that length. */
export const DEFAULT_CHALLENGE_LENGTH = 50;

export interface TargetChapOptions {
  /**
   * Password of an incoming account bound to this target (or, for discovery, bound globally);
   * undefined when the user is unknown or not bound here.
   */
  lookupIncoming(user: string): string | undefined;
  /** The target's outgoing account, for mutual CHAP. */
  outgoing?: { user: string; password: string } | undefined;
  /** Algorithms the target accepts (default: all four). The initiator's order decides. */
  algorithms?: readonly ChapAlgorithm[];
  /** Challenge length in bytes (default 50, clamped to 16..1024). */
  challengeLength?: number;
  /** Source of random bytes for CHAP_I and CHAP_C (tests); defaults to crypto.randomBytes (a CSPRNG). */
  random?: (length: number) => Buffer;
}

/** The outcome of one step of the target's CHAP exchange. */
export type ChapStep =
  /** Send `response` and wait for the next request (the challenge was issued). */
  | { kind: 'continue'; response: TextPair[] }
  /** The initiator is authenticated; `response` holds the mutual-CHAP answer, if one was asked. */
  | { kind: 'success'; response: TextPair[]; user: string; mutual: boolean }
  /** Authentication failed: end the login with `status` (class 2, detail 0x01 or 0x00). */
  | { kind: 'failure'; response: TextPair[]; status: LoginStatus };

type TargetChapState = 'awaitAlgorithm' | 'awaitResponse' | 'done' | 'failed';

/** Target side of one CHAP exchange (one per connection login). */
export class TargetChap {
  private stateValue: TargetChapState = 'awaitAlgorithm';
  private algorithm: ChapAlgorithm = ChapAlgorithm.MD5;
  private identifier = 0;
  private challenge: Buffer = Buffer.alloc(0);
  private readonly supported: readonly ChapAlgorithm[];
  private readonly challengeLength: number;
  private readonly random: (length: number) => Buffer;

  constructor(private readonly options: TargetChapOptions) {
    this.supported = options.algorithms ?? ALL_CHAP_ALGORITHMS;
    const len = options.challengeLength ?? DEFAULT_CHALLENGE_LENGTH;
    this.challengeLength = Math.min(MAX_CHALLENGE_LENGTH, Math.max(MIN_CHALLENGE_LENGTH, Math.trunc(len)));
    this.random = options.random ?? randomBytes;
  }

  /** Where the exchange stands. */
  get state(): TargetChapState {
    return this.stateValue;
  }

  /** The algorithm selected by the first step. */
  get selectedAlgorithm(): ChapAlgorithm {
    return this.algorithm;
  }

  /** Feed the CHAP_* keys of one Login request. */
  step(pairs: readonly TextPair[]): ChapStep {
    const keys = new Map(pairs);
    switch (this.stateValue) {
      case 'awaitAlgorithm':
        return this.selectAlgorithm(keys);
      case 'awaitResponse':
        return this.checkResponse(keys);
      default:
        return this.fail(initiatorError('CHAP exchange already finished'));
    }
  }

  private selectAlgorithm(keys: Map<string, string>): ChapStep {
    const offered = keys.get('CHAP_A');
    if (offered === undefined) return this.fail(initiatorError('CHAP_A missing'));
    // RFC 7143 12.1.3: the target picks one algorithm from the initiator's list.
    const pick = parseChapAlgorithmList(offered).find(isChapAlgorithm(this.supported));
    if (pick === undefined) {
      return this.fail(authFailure(`no supported CHAP_A in ${offered}`), [['CHAP_A', 'Reject']]);
    }
    this.algorithm = pick;
    // The identifier should differ between challenges (RFC 1994 4.1); draw it from the same CSPRNG.
    this.identifier = this.random(1)[0]!;
    this.challenge = this.random(this.challengeLength);
    this.stateValue = 'awaitResponse';
    return {
      kind: 'continue',
      response: [
        ['CHAP_A', String(pick)],
        ['CHAP_I', String(this.identifier)],
        ['CHAP_C', encodeHex(this.challenge)],
      ],
    };
  }

  private checkResponse(keys: Map<string, string>): ChapStep {
    const user = keys.get('CHAP_N');
    const encoded = keys.get('CHAP_R');
    if (user === undefined || encoded === undefined)
      return this.fail(initiatorError('CHAP_N or CHAP_R missing'));
    // Hex (0x) and base64 (0b) encodings are both legal (RFC 7143 6.1).
    const response = decodeBinary(encoded);
    if (!response) return this.fail(initiatorError('CHAP_R is not a binary value'));
    const secret = this.options.lookupIncoming(user);
    if (secret === undefined) return this.fail(authFailure(`unknown CHAP user ${user}`));
    if (!verifyChapResponse(this.algorithm, this.identifier, secret, this.challenge, response)) {
      return this.fail(authFailure(`CHAP response mismatch for ${user}`));
    }

    const mutualId = keys.get('CHAP_I');
    const mutualChallenge = keys.get('CHAP_C');
    if (mutualId === undefined && mutualChallenge === undefined) {
      this.stateValue = 'done';
      return { kind: 'success', response: [], user, mutual: false };
    }
    if (mutualId === undefined || mutualChallenge === undefined) {
      return this.fail(initiatorError('mutual CHAP needs both CHAP_I and CHAP_C'));
    }
    const id = decodeNumber(mutualId);
    const challenge = decodeBinary(mutualChallenge);
    if (
      id === undefined ||
      id > 255 ||
      !challenge ||
      challenge.length === 0 ||
      challenge.length > MAX_CHALLENGE_LENGTH
    ) {
      return this.fail(initiatorError('malformed mutual CHAP_I/CHAP_C'));
    }
    // RFC 7143 9.2.1 / 12.1.3: a challenge equal to ours is a reflection attack.
    if (challenge.length === this.challenge.length && timingSafeEqual(challenge, this.challenge)) {
      return this.fail(authFailure('initiator reflected the target challenge'));
    }
    const outgoing = this.options.outgoing;
    if (!outgoing) return this.fail(authFailure('mutual CHAP asked but the target has no outgoing account'));
    const answer = computeChapResponse(this.algorithm, id, outgoing.password, challenge);
    this.stateValue = 'done';
    return {
      kind: 'success',
      response: [
        ['CHAP_N', outgoing.user],
        ['CHAP_R', encodeHex(answer)],
      ],
      user,
      mutual: true,
    };
  }

  private fail(status: LoginStatus, response: TextPair[] = []): ChapStep {
    this.stateValue = 'failed';
    return { kind: 'failure', response, status };
  }
}

/** A type guard: is `n` one of `allowed`? */
function isChapAlgorithm(allowed: readonly ChapAlgorithm[]): (n: number) => n is ChapAlgorithm {
  return (n: number): n is ChapAlgorithm => (allowed as readonly number[]).includes(n);
}

function authFailure(message: string): LoginStatus {
  return initiatorError(message, LOGIN_STATUS_AUTH_FAILED);
}

// ---------------------------------------------------------------------------------------------
// Initiator side (the in-repo initiator and tests).

export interface InitiatorChapOptions {
  user: string;
  secret: string;
  /** Set both to ask the target to authenticate itself (mutual CHAP). */
  targetUser?: string;
  targetSecret?: string;
  /** Offered in this order (default: MD5 only, what every target supports). */
  algorithms?: readonly ChapAlgorithm[];
  /** Mutual challenge length in bytes (default 16). */
  challengeLength?: number;
  random?: (length: number) => Buffer;
}

/** Initiator side of one CHAP exchange. */
export class InitiatorChap {
  private mutual: { id: number; challenge: Buffer } | undefined;
  private algorithm: ChapAlgorithm = ChapAlgorithm.MD5;

  constructor(private readonly options: InitiatorChapOptions) {}

  /** First request: the CHAP_A offer. */
  offer(): TextPair[] {
    const algs = this.options.algorithms ?? [ChapAlgorithm.MD5];
    return [['CHAP_A', algs.join(',')]];
  }

  /**
   * Answer the target's CHAP_A/CHAP_I/CHAP_C with CHAP_N/CHAP_R (plus CHAP_I/CHAP_C when mutual).
   * Returns undefined when the target's keys are missing, malformed or name an algorithm not offered.
   */
  respond(target: readonly TextPair[]): TextPair[] | undefined {
    const keys = new Map(target);
    const alg = decodeNumber(keys.get('CHAP_A') ?? '');
    const id = decodeNumber(keys.get('CHAP_I') ?? '');
    const challenge = decodeBinary(keys.get('CHAP_C') ?? '');
    const offered = this.options.algorithms ?? [ChapAlgorithm.MD5];
    if (alg === undefined || !isChapAlgorithm(offered)(alg) || id === undefined || id > 255 || !challenge)
      return undefined;
    this.algorithm = alg;
    const out: TextPair[] = [
      ['CHAP_N', this.options.user],
      ['CHAP_R', encodeHex(computeChapResponse(alg, id, this.options.secret, challenge))],
    ];
    if (this.options.targetUser !== undefined && this.options.targetSecret !== undefined) {
      const random = this.options.random ?? randomBytes;
      this.mutual = { id: randomInt(256), challenge: random(this.options.challengeLength ?? 16) };
      out.push(['CHAP_I', String(this.mutual.id)], ['CHAP_C', encodeHex(this.mutual.challenge)]);
    }
    return out;
  }

  /** Mutual CHAP: check the target's CHAP_N/CHAP_R. True when mutual CHAP was not asked. */
  verifyTarget(target: readonly TextPair[]): boolean {
    if (!this.mutual) return true;
    const keys = new Map(target);
    const response = decodeBinary(keys.get('CHAP_R') ?? '');
    if (keys.get('CHAP_N') !== this.options.targetUser || !response) return false;
    return verifyChapResponse(
      this.algorithm,
      this.mutual.id,
      this.options.targetSecret!,
      this.mutual.challenge,
      response,
    );
  }
}

/**
 * The iSCSI login/text key table (RFC 7143 §12-13, RFC 7144 iSCSIProtocolLevel, RFC 7145 iSER keys)
 * and the per-target parameter set that `tgtadm --mode target --op update/show` edits and prints
 * (tgt-behaviour.md §2.5, §2.6, §4.2).
 */

/** How a key's value is written (RFC 7143 6.1). */
export type KeyType = 'numerical' | 'boolean' | 'list' | 'string' | 'binary';

/**
 * How the responder computes the outcome (RFC 7143 6.2): min/max for numbers, AND/OR for booleans,
 * list selection, or declarative (each side states its own value; no negotiation).
 * `minOrZero` is RFC 7145 MaxOutstandingUnexpectedPDUs: minimum, where 0 means "no limit".
 */
export type ResultFunction = 'min' | 'max' | 'and' | 'or' | 'list' | 'declarative' | 'minOrZero';

/**
 * RFC 7143 13 "Use": LO = leading connection only, IO = initialize only (login),
 * ALL = login and full feature phase, FFPO = full feature phase only (Text requests).
 * SEC marks the security keys of RFC 7143 12 (AuthMethod, CHAP_*), used only in the security stage.
 */
export type KeyUse = 'LO' | 'IO' | 'ALL' | 'FFPO' | 'SEC';

/** Where a key may appear during login. */
export type KeyStage = 'security' | 'operational' | 'any';

/** Who may send the key. */
export type KeySenders = 'initiator' | 'target' | 'both';

/** One entry of the key table. */
export interface KeyDef {
  readonly name: string;
  /** Specification section defining the key. */
  readonly section: string;
  readonly type: KeyType;
  readonly result: ResultFunction;
  /** SW (session-wide) or CO (connection-only), RFC 7143 13. */
  readonly scope: 'session' | 'connection';
  readonly use: KeyUse;
  readonly stage: KeyStage;
  readonly senders: KeySenders;
  /** RFC default, as it is written on the wire; undefined when the key has none. */
  readonly rfcDefault?: string;
  /** Numerical range (inclusive). */
  readonly min?: number;
  readonly max?: number;
  /** Values a list or enumerated key may take. */
  readonly values?: readonly string[];
  /** RFC 7143 13: "Irrelevant when: SessionType=Discovery". */
  readonly irrelevantInDiscovery: boolean;
  /** RFC 7143 13.25: obsoleted RFC 3720 marker keys. */
  readonly obsolete?: boolean;
  /** RFC 7145 iSER keys: irrelevant on iSCSI/TCP. */
  readonly iser?: boolean;
}

const MAX_24BIT = 16777215;
const MAX_32BIT = 4294967295;

function key(def: Omit<KeyDef, 'irrelevantInDiscovery'> & { irrelevantInDiscovery?: boolean }): KeyDef {
  return Object.freeze({ irrelevantInDiscovery: false, ...def });
}

const op = { stage: 'operational', senders: 'both', scope: 'session' } as const;
const decl = { type: 'string', result: 'declarative', scope: 'session', stage: 'any' } as const;
const sec = { use: 'SEC', stage: 'security', scope: 'connection' } as const;

/** Every login/text key this target knows, in RFC section order. */
export const KEY_TABLE: readonly KeyDef[] = Object.freeze([
  // RFC 7143 12.1: security negotiation.
  key({
    name: 'AuthMethod',
    section: 'RFC 7143 12.1',
    type: 'list',
    result: 'list',
    senders: 'both',
    rfcDefault: 'None',
    values: ['KRB5', 'SRP', 'SPKM1', 'SPKM2', 'CHAP', 'None'],
    ...sec,
  }),
  key({ name: 'CHAP_A', section: 'RFC 7143 12.1.3', type: 'list', result: 'list', senders: 'both', ...sec }),
  key({
    name: 'CHAP_I',
    section: 'RFC 7143 12.1.3',
    type: 'numerical',
    result: 'declarative',
    senders: 'both',
    min: 0,
    max: 255,
    ...sec,
  }),
  key({
    name: 'CHAP_C',
    section: 'RFC 7143 12.1.3',
    type: 'binary',
    result: 'declarative',
    senders: 'both',
    ...sec,
  }),
  key({
    name: 'CHAP_N',
    section: 'RFC 7143 12.1.3',
    type: 'string',
    result: 'declarative',
    senders: 'both',
    ...sec,
  }),
  key({
    name: 'CHAP_R',
    section: 'RFC 7143 12.1.3',
    type: 'binary',
    result: 'declarative',
    senders: 'both',
    ...sec,
  }),

  // RFC 7143 13: operational keys.
  key({
    name: 'HeaderDigest',
    section: 'RFC 7143 13.1',
    type: 'list',
    result: 'list',
    scope: 'connection',
    use: 'IO',
    stage: 'operational',
    senders: 'both',
    rfcDefault: 'None',
    values: ['CRC32C', 'None'],
  }),
  key({
    name: 'DataDigest',
    section: 'RFC 7143 13.1',
    type: 'list',
    result: 'list',
    scope: 'connection',
    use: 'IO',
    stage: 'operational',
    senders: 'both',
    rfcDefault: 'None',
    values: ['CRC32C', 'None'],
  }),
  key({
    name: 'MaxConnections',
    section: 'RFC 7143 13.2',
    type: 'numerical',
    result: 'min',
    use: 'LO',
    rfcDefault: '1',
    min: 1,
    max: 65535,
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({ name: 'SendTargets', section: 'RFC 7143 13.3', ...decl, use: 'FFPO', senders: 'initiator' }),
  key({ name: 'TargetName', section: 'RFC 7143 13.4', ...decl, use: 'IO', senders: 'both' }),
  key({ name: 'InitiatorName', section: 'RFC 7143 13.5', ...decl, use: 'IO', senders: 'initiator' }),
  key({ name: 'TargetAlias', section: 'RFC 7143 13.6', ...decl, use: 'ALL', senders: 'target' }),
  key({ name: 'InitiatorAlias', section: 'RFC 7143 13.7', ...decl, use: 'ALL', senders: 'initiator' }),
  key({ name: 'TargetAddress', section: 'RFC 7143 13.8', ...decl, use: 'ALL', senders: 'target' }),
  key({
    name: 'TargetPortalGroupTag',
    section: 'RFC 7143 13.9',
    type: 'numerical',
    result: 'declarative',
    scope: 'session',
    use: 'IO',
    stage: 'any',
    senders: 'target',
    min: 0,
    max: 65535,
  }),
  key({
    name: 'InitialR2T',
    section: 'RFC 7143 13.10',
    type: 'boolean',
    result: 'or',
    use: 'LO',
    rfcDefault: 'Yes',
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({
    name: 'ImmediateData',
    section: 'RFC 7143 13.11',
    type: 'boolean',
    result: 'and',
    use: 'LO',
    rfcDefault: 'Yes',
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({
    name: 'MaxRecvDataSegmentLength',
    section: 'RFC 7143 13.12',
    type: 'numerical',
    result: 'declarative',
    scope: 'connection',
    use: 'ALL',
    stage: 'operational',
    senders: 'both',
    rfcDefault: '8192',
    min: 512,
    max: MAX_24BIT,
  }),
  key({
    name: 'MaxBurstLength',
    section: 'RFC 7143 13.13',
    type: 'numerical',
    result: 'min',
    use: 'LO',
    rfcDefault: '262144',
    min: 512,
    max: MAX_24BIT,
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({
    name: 'FirstBurstLength',
    section: 'RFC 7143 13.14',
    type: 'numerical',
    result: 'min',
    use: 'LO',
    rfcDefault: '65536',
    min: 512,
    max: MAX_24BIT,
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({
    name: 'DefaultTime2Wait',
    section: 'RFC 7143 13.15',
    type: 'numerical',
    result: 'max',
    use: 'LO',
    rfcDefault: '2',
    min: 0,
    max: 3600,
    ...op,
  }),
  key({
    name: 'DefaultTime2Retain',
    section: 'RFC 7143 13.16',
    type: 'numerical',
    result: 'min',
    use: 'LO',
    rfcDefault: '20',
    min: 0,
    max: 3600,
    ...op,
  }),
  key({
    name: 'MaxOutstandingR2T',
    section: 'RFC 7143 13.17',
    type: 'numerical',
    result: 'min',
    use: 'LO',
    rfcDefault: '1',
    min: 1,
    max: 65535,
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({
    name: 'DataPDUInOrder',
    section: 'RFC 7143 13.18',
    type: 'boolean',
    result: 'or',
    use: 'LO',
    rfcDefault: 'Yes',
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({
    name: 'DataSequenceInOrder',
    section: 'RFC 7143 13.19',
    type: 'boolean',
    result: 'or',
    use: 'LO',
    rfcDefault: 'Yes',
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({
    name: 'ErrorRecoveryLevel',
    section: 'RFC 7143 13.20',
    type: 'numerical',
    result: 'min',
    use: 'LO',
    rfcDefault: '0',
    min: 0,
    max: 2,
    ...op,
  }),
  key({
    name: 'SessionType',
    section: 'RFC 7143 13.21',
    type: 'list',
    result: 'declarative',
    scope: 'session',
    use: 'LO',
    stage: 'any',
    senders: 'initiator',
    rfcDefault: 'Normal',
    values: ['Discovery', 'Normal'],
  }),
  key({
    name: 'TaskReporting',
    section: 'RFC 7143 13.23',
    type: 'list',
    result: 'list',
    use: 'LO',
    rfcDefault: 'RFC3720',
    values: ['RFC3720', 'ResponseFence', 'FastAbort'],
    irrelevantInDiscovery: true,
    ...op,
  }),
  key({
    name: 'iSCSIProtocolLevel',
    section: 'RFC 7144 13.24',
    type: 'numerical',
    result: 'min',
    use: 'LO',
    rfcDefault: '1',
    min: 0,
    max: 31,
    ...op,
  }),
  // RFC 7143 13.25: obsoleted RFC 3720 marker keys; never enabled.
  key({
    name: 'IFMarker',
    section: 'RFC 7143 13.25',
    type: 'boolean',
    result: 'and',
    use: 'IO',
    rfcDefault: 'No',
    obsolete: true,
    ...op,
    scope: 'connection',
  }),
  key({
    name: 'OFMarker',
    section: 'RFC 7143 13.25',
    type: 'boolean',
    result: 'and',
    use: 'IO',
    rfcDefault: 'No',
    obsolete: true,
    ...op,
    scope: 'connection',
  }),
  key({
    name: 'OFMarkInt',
    section: 'RFC 7143 13.25',
    type: 'numerical',
    result: 'declarative',
    use: 'IO',
    rfcDefault: '2048',
    min: 1,
    max: 65535,
    obsolete: true,
    ...op,
    scope: 'connection',
  }),
  key({
    name: 'IFMarkInt',
    section: 'RFC 7143 13.25',
    type: 'numerical',
    result: 'declarative',
    use: 'IO',
    rfcDefault: '2048',
    min: 1,
    max: 65535,
    obsolete: true,
    ...op,
    scope: 'connection',
  }),

  // RFC 7145 6: iSER keys.
  key({
    name: 'RDMAExtensions',
    section: 'RFC 7145 6.3',
    type: 'boolean',
    result: 'and',
    use: 'LO',
    rfcDefault: 'No',
    iser: true,
    ...op,
  }),
  key({
    name: 'TargetRecvDataSegmentLength',
    section: 'RFC 7145 6.4',
    type: 'numerical',
    result: 'declarative',
    scope: 'connection',
    use: 'IO',
    stage: 'operational',
    senders: 'target',
    rfcDefault: '8192',
    min: 512,
    max: MAX_24BIT,
    iser: true,
  }),
  key({
    name: 'InitiatorRecvDataSegmentLength',
    section: 'RFC 7145 6.5',
    type: 'numerical',
    result: 'declarative',
    scope: 'connection',
    use: 'IO',
    stage: 'operational',
    senders: 'initiator',
    rfcDefault: '8192',
    min: 512,
    max: MAX_24BIT,
    iser: true,
  }),
  key({
    name: 'MaxOutstandingUnexpectedPDUs',
    section: 'RFC 7145 6.6',
    type: 'numerical',
    result: 'minOrZero',
    use: 'LO',
    rfcDefault: '0',
    min: 0,
    max: MAX_32BIT,
    iser: true,
    ...op,
  }),
]);

const BY_NAME: ReadonlyMap<string, KeyDef> = new Map(KEY_TABLE.map((k) => [k.name, k]));
const BY_LOWER_NAME: ReadonlyMap<string, KeyDef> = new Map(KEY_TABLE.map((k) => [k.name.toLowerCase(), k]));

/** Look a wire key up by its exact (case-sensitive, RFC 7143 6.1) name. */
export function lookupKey(name: string): KeyDef | undefined {
  return BY_NAME.get(name);
}

/** Look a key up ignoring case (tgt's matching, used for admin input only). */
export function lookupKeyIgnoreCase(name: string): KeyDef | undefined {
  return BY_LOWER_NAME.get(name.toLowerCase());
}

/**
 * RFC 7143 6.1/13.22: "X-" private extension keys and "X#" IANA-registered extension keys.
 * We implement none, so the negotiator answers them NotUnderstood.
 */
export function isExtensionKey(name: string): boolean {
  return name.startsWith('X-') || name.startsWith('X#');
}

// ---------------------------------------------------------------------------------------------
// Per-target parameter set (tgt's target->session_param plus its "local" keys).

/** Digest choices a target accepts (tgt's DIGEST_NONE | DIGEST_CRC32C bit mask). */
export interface DigestChoice {
  readonly none: boolean;
  readonly crc32c: boolean;
}

/** What `target update` accepts for one parameter and how `target show` prints it. */
interface SettableParam {
  readonly name: string;
  readonly kind: 'numerical' | 'boolean' | 'digest' | 'marker' | 'minOrZero';
  readonly min: number;
  readonly max: number;
  /** Target default, as tgt sets it in `iscsi_target_create`. */
  readonly targetDefault: number;
  /** Local keys (tgt ISCSI_PARAM_FIRST_LOCAL and beyond) are never sent on the wire. */
  readonly local?: boolean;
}

const DIGEST_NONE = 1;
const DIGEST_CRC32C = 2;

/**
 * The settable session parameters in tgt's table order, which is also the order of
 * `tgtadm --mode target --op show --tid N` (tgt-behaviour.md §2.6), with tgt's target defaults (§4.2).
 */
const SETTABLE: readonly SettableParam[] = Object.freeze([
  { name: 'MaxRecvDataSegmentLength', kind: 'numerical', min: 512, max: MAX_24BIT, targetDefault: 8192 },
  { name: 'HeaderDigest', kind: 'digest', min: 1, max: 3, targetDefault: DIGEST_NONE },
  { name: 'DataDigest', kind: 'digest', min: 1, max: 3, targetDefault: DIGEST_NONE },
  { name: 'InitialR2T', kind: 'boolean', min: 0, max: 1, targetDefault: 1 },
  { name: 'MaxOutstandingR2T', kind: 'numerical', min: 1, max: 65535, targetDefault: 1 },
  { name: 'ImmediateData', kind: 'boolean', min: 0, max: 1, targetDefault: 1 },
  { name: 'FirstBurstLength', kind: 'numerical', min: 512, max: MAX_24BIT, targetDefault: 65536 },
  { name: 'MaxBurstLength', kind: 'numerical', min: 512, max: MAX_24BIT, targetDefault: 262144 },
  { name: 'DataPDUInOrder', kind: 'boolean', min: 0, max: 1, targetDefault: 1 },
  { name: 'DataSequenceInOrder', kind: 'boolean', min: 0, max: 1, targetDefault: 1 },
  { name: 'ErrorRecoveryLevel', kind: 'numerical', min: 0, max: 2, targetDefault: 0 },
  { name: 'IFMarker', kind: 'boolean', min: 0, max: 1, targetDefault: 0 },
  { name: 'OFMarker', kind: 'boolean', min: 0, max: 1, targetDefault: 0 },
  { name: 'DefaultTime2Wait', kind: 'numerical', min: 0, max: 3600, targetDefault: 2 },
  { name: 'DefaultTime2Retain', kind: 'numerical', min: 0, max: 3600, targetDefault: 20 },
  { name: 'OFMarkInt', kind: 'marker', min: 1, max: 65535, targetDefault: 2048 },
  { name: 'IFMarkInt', kind: 'marker', min: 1, max: 65535, targetDefault: 2048 },
  { name: 'MaxConnections', kind: 'numerical', min: 1, max: 65535, targetDefault: 1 },
  { name: 'RDMAExtensions', kind: 'boolean', min: 0, max: 1, targetDefault: 1 },
  { name: 'TargetRecvDataSegmentLength', kind: 'numerical', min: 512, max: MAX_24BIT, targetDefault: 262144 },
  {
    name: 'InitiatorRecvDataSegmentLength',
    kind: 'numerical',
    min: 512,
    max: MAX_24BIT,
    targetDefault: 262144,
  },
  { name: 'MaxOutstandingUnexpectedPDUs', kind: 'minOrZero', min: 2, max: MAX_32BIT, targetDefault: 0 },
  {
    name: 'MaxXmitDataSegmentLength',
    kind: 'numerical',
    min: 512,
    max: MAX_24BIT,
    targetDefault: 8192,
    local: true,
  },
  { name: 'MaxQueueCmd', kind: 'numerical', min: 1, max: 512, targetDefault: 128, local: true },
] satisfies SettableParam[]);

const SETTABLE_BY_LOWER: ReadonlyMap<string, SettableParam> = new Map(
  SETTABLE.map((p) => [p.name.toLowerCase(), p]),
);

/** Names of the parameters `TargetParams.set` accepts besides the iSCSI keys. */
export const TARGET_EXTRA_PARAMS = Object.freeze([
  'nop_interval',
  'nop_count',
  'RedirectAddress',
  'RedirectPort',
  'RedirectReason',
  'RedirectCallback',
] as const);

/** A configured login redirect (tgt-behaviour.md §4.8). */
export interface RedirectSettings {
  address: string;
  port: string;
  reason: 'Temporary' | 'Permanent' | undefined;
  callback: string | undefined;
}

const DECIMAL_OR_HEX = /^(?:[0-9]+|0[xX][0-9a-fA-F]+)$/;

function parseAdminNumber(value: string): number | undefined {
  const v = value.trim();
  if (!DECIMAL_OR_HEX.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The value that makes a target require CRC32C (docs/robustness.md); tgt has no such value. */
export const DIGEST_REQUIRED_VALUE = 'CRC32C-Required';

function parseDigestList(value: string): number | undefined {
  let mask = 0;
  for (const item of value.split(',')) {
    const v = item.trim();
    if (v === 'None') mask |= DIGEST_NONE;
    // tgt compatibility: "CRC32C" stores None|CRC32C, so the target offers but does not require digests.
    else if (v === 'CRC32C') mask |= DIGEST_CRC32C | DIGEST_NONE;
    // Our extension: CRC32C alone, a login without the digest fails (RFC 7143 13.1).
    else if (v === DIGEST_REQUIRED_VALUE) mask |= DIGEST_CRC32C;
    else return undefined;
  }
  return mask;
}

/**
 * One target's iSCSI parameters: the defaults future logins negotiate from, NOP-In settings and
 * the login redirect. Mutated by `tgtadm --mode target --op update`.
 */
export class TargetParams {
  private readonly values = new Map<string, number>();
  /** NOP-In ping interval in seconds (0 = off) and the unanswered-ping limit (§4.10). */
  nopInterval: number;
  nopCount: number;
  readonly redirect: RedirectSettings = { address: '', port: '', reason: undefined, callback: undefined };

  constructor(defaults: { nopInterval?: number; nopCount?: number } = {}) {
    for (const p of SETTABLE) this.values.set(p.name, p.targetDefault);
    this.nopInterval = defaults.nopInterval ?? 0;
    this.nopCount = defaults.nopCount ?? 0;
  }

  /**
   * `target update --name NAME --value VALUE`. iSCSI key names match case-insensitively (tgt);
   * returns false (and changes nothing) for an unknown name or an invalid/out-of-range value.
   */
  set(name: string, value: string): boolean {
    switch (name) {
      case 'nop_interval':
      case 'nop_count': {
        const n = parseAdminNumber(value);
        if (n === undefined || n > 0x7fffffff) return false;
        if (name === 'nop_interval') this.nopInterval = n;
        else this.nopCount = n;
        return true;
      }
      case 'RedirectAddress':
        this.redirect.address = value;
        return true;
      case 'RedirectPort':
        this.redirect.port = value;
        return true;
      case 'RedirectReason':
        if (value !== 'Temporary' && value !== 'Permanent') return false;
        this.redirect.reason = value;
        return true;
      case 'RedirectCallback':
        this.redirect.callback = value === '' ? undefined : value;
        return true;
    }
    const p = SETTABLE_BY_LOWER.get(name.toLowerCase());
    if (!p) return false;
    const v = parseSettable(p, value);
    if (v === undefined) return false;
    this.values.set(p.name, v);
    return true;
  }

  /** Raw numeric value of a settable parameter (booleans 0/1); canonical name, exact case. */
  get(name: string): number {
    const v = this.values.get(name);
    if (v === undefined) throw new RangeError(`unknown target parameter ${name}`);
    return v;
  }

  /** Boolean parameter as a boolean. */
  getBool(name: string): boolean {
    return this.get(name) !== 0;
  }

  /** HeaderDigest/DataDigest: which values the target accepts. */
  digest(name: 'HeaderDigest' | 'DataDigest'): DigestChoice {
    const v = this.get(name);
    return { none: (v & DIGEST_NONE) !== 0, crc32c: (v & DIGEST_CRC32C) !== 0 };
  }

  /** The value written on the wire / in `show` for a settable key. */
  format(name: string): string {
    const p = SETTABLE_BY_LOWER.get(name.toLowerCase());
    if (!p) throw new RangeError(`unknown target parameter ${name}`);
    return formatSettable(p, this.values.get(p.name)!);
  }

  /** True when a static redirect or a redirect callback is configured. */
  get redirected(): boolean {
    return this.redirect.callback !== undefined || this.redirect.address !== '';
  }

  /** `tgtadm --mode target --op show --tid N` output (tgt-behaviour.md §2.6). */
  show(): string {
    const lines: string[] = [];
    if (this.redirect.callback !== undefined) {
      lines.push(`RedirectCallback=${this.redirect.callback}`);
    } else if (this.redirect.address !== '') {
      lines.push(`RedirectAddress=${this.redirect.address}`);
      lines.push(`RedirectPort=${this.redirect.port}`);
      lines.push(`RedirectReason=${this.redirect.reason ?? 'Unknown'}`);
    } else {
      lines.push(`nop_interval=${this.nopInterval}`);
      lines.push(`nop_count=${this.nopCount}`);
      for (const p of SETTABLE) lines.push(`${p.name}=${formatSettable(p, this.values.get(p.name)!)}`);
    }
    return lines.join('\n') + '\n';
  }
}

function parseSettable(p: SettableParam, value: string): number | undefined {
  switch (p.kind) {
    case 'boolean':
      return value === 'Yes' ? 1 : value === 'No' ? 0 : undefined;
    case 'digest':
      return parseDigestList(value);
    case 'minOrZero': {
      const n = parseAdminNumber(value);
      if (n === undefined) return undefined;
      return n === 0 || (n >= p.min && n <= p.max) ? n : undefined;
    }
    case 'numerical':
    case 'marker': {
      const n = parseAdminNumber(value);
      return n !== undefined && n >= p.min && n <= p.max ? n : undefined;
    }
  }
}

function formatSettable(p: SettableParam, v: number): string {
  switch (p.kind) {
    case 'boolean':
      return v ? 'Yes' : 'No';
    case 'digest':
      if (!(v & DIGEST_CRC32C)) return 'None';
      return v & DIGEST_NONE ? 'CRC32C' : DIGEST_REQUIRED_VALUE;
    case 'marker':
      // Markers are not implemented: tgt always prints (and answers) Reject.
      return 'Reject';
    default:
      return String(v);
  }
}

/** Names of every settable iSCSI parameter, in `show` order. */
export const TARGET_PARAM_NAMES: readonly string[] = Object.freeze(SETTABLE.map((p) => p.name));

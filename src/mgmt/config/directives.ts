/**
 * The targets.conf vocabulary (tgt-behaviour.md §3.2-§3.4) and a validation pass that finds
 * every mistake tgt-admin would only hit half-way through configuring the daemon.
 */
import {
  type CgBlock,
  type CgScalar,
  type CgValue,
  ConfigError,
  type Loc,
  sortedKeys,
  valuesOf,
} from './general.js';

/** iSCSI keys tgt-admin passes to `target update` (its regex; `state` matches as a prefix). */
export const ISCSI_KEYS: readonly string[] = [
  'MaxRecvDataSegmentLength',
  'MaxXmitDataSegmentLength',
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
  'IFMarker',
  'OFMarker',
  'DefaultTime2Wait',
  'DefaultTime2Retain',
  'OFMarkInt',
  'IFMarkInt',
  'MaxConnections',
];

/**
 * tgt-ts additions: target parameters `target update` accepts (tgt §2.5) that tgt-admin has no
 * directive for, so that --dump can write them (Debian's tgt-admin ignores unknown keys).
 */
export const EXTRA_TARGET_KEYS: readonly string[] = [
  'MaxQueueCmd',
  'MaxOutstandingUnexpectedPDUs',
  'TargetRecvDataSegmentLength',
  'InitiatorRecvDataSegmentLength',
  'RDMAExtensions',
  'nop_interval',
  'nop_count',
  'RedirectAddress',
  'RedirectPort',
  'RedirectReason',
  'RedirectCallback',
  'acl_match',
];

/** Is `key` passed to `target update --name key` (first value only)? */
export function isTargetUpdateKey(key: string): boolean {
  return ISCSI_KEYS.includes(key) || key.startsWith('state') || EXTRA_TARGET_KEYS.includes(key);
}

/** LU parameters with their own directive, passed as `--params key="value"`. */
export const LU_PARAM_KEYS: readonly string[] = [
  'scsi_id',
  'scsi_sn',
  'vendor_id',
  'product_id',
  'product_rev',
  'sense_format',
  'removable',
  'online',
  'path',
  'mode_page',
  'lbppbe',
  'la_lba',
  'optimal_xfer_gran',
  'optimal_xfer_len',
  'readonly',
];

/** Directives valid for one LUN (in a backing-store block, or at target level as defaults). */
export const LUN_KEYS: readonly string[] = [
  ...LU_PARAM_KEYS,
  'lun',
  'device-type',
  'bs-type',
  'bsopts',
  'bsoflags',
  'block-size',
  'allow-in-use',
  'write-cache',
  'params',
];

/** LUN directives that may be repeated. */
const REPEATABLE_LUN_KEYS = new Set(['mode_page', 'params']);

/** Target-level directives. */
export const TARGET_KEYS: readonly string[] = [
  'backing-store',
  'direct-store',
  'driver',
  'controller_tid',
  'incominguser',
  'outgoinguser',
  'initiator-address',
  'initiator-name',
];

/** Global directives. */
export const GLOBAL_KEYS: readonly string[] = [
  'target',
  'default-driver',
  'include',
  'ignore-errors',
  'control-port',
  'iSNSServerIP',
  'iSNSServerPort',
  'iSNSAccessControl',
  'iSNS',
  'incomingdiscoveryuser',
  'outgoingdiscoveryuser',
];

/** Global directives that must be given at most once. */
const SINGLE_GLOBAL_KEYS = [
  'default-driver',
  'control-port',
  'iSNSServerIP',
  'iSNSServerPort',
  'iSNSAccessControl',
  'iSNS',
];

/** Perl's split(/ /, $s): single-space separated fields, trailing empty fields dropped. */
export function perlSplitSpace(s: string): string[] {
  const parts = s.split(' ');
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** The location of an entry, for messages. */
export function locOf(v: CgValue | undefined): Loc | undefined {
  if (v === undefined) return undefined;
  if (v.kind === 'list') return v.items[0]?.at;
  return v.at;
}

/** The single scalar value of an entry (undefined when absent). Throws when repeated or a block. */
export function single(block: CgBlock, key: string, where: string): string | undefined {
  const v = block.entries.get(key);
  if (v === undefined) return undefined;
  if (v.kind !== 'scalar') {
    throw new ConfigError(
      `multiple '${key}' definitions${where ? ` in ${where}` : ''} are not allowed`,
      locOf(v),
    );
  }
  return v.value ?? undefined;
}

/** Scalar values of an entry in order (blocks are rejected by validation). */
export function scalars(v: CgValue | undefined): string[] {
  return valuesOf(v)
    .filter((x): x is CgScalar => x.kind === 'scalar')
    .map((x) => x.value ?? '');
}

export interface ValidationResult {
  /** Unknown directives (ignored, as tgt-admin does). */
  warnings: string[];
}

function requireValue(key: string, v: CgValue, where: string): void {
  for (const item of valuesOf(v)) {
    if (item.kind === 'scalar' && (item.value === null || item.value === '')) {
      throw new ConfigError(`option ${key} has a missing value (${where})`, item.at);
    }
  }
}

function requireUserPass(key: string, v: CgValue, where: string): void {
  for (const item of valuesOf(v)) {
    if (item.kind !== 'scalar') throw new ConfigError(`${key} must be "${key} <user> <password>"`, item.at);
    const [user, pass] = perlSplitSpace(item.value ?? '');
    if (!user || !pass) throw new ConfigError(`${key} needs a user and a password (${where})`, item.at);
  }
}

function requireNoBlock(key: string, v: CgValue): void {
  for (const item of valuesOf(v)) {
    if (item.kind === 'block') throw new ConfigError(`<${key}> is not a block directive`, item.at);
  }
}

function validateLunOptions(block: CgBlock, where: string, atTargetLevel: boolean, warnings: string[]): void {
  for (const key of sortedKeys(block)) {
    const v = block.entries.get(key)!;
    const known =
      LUN_KEYS.includes(key) || (atTargetLevel && (TARGET_KEYS.includes(key) || isTargetUpdateKey(key)));
    if (!known) {
      const loc = locOf(v);
      warnings.push(
        `${loc ? `${loc.file}:${loc.line}: ` : ''}unknown directive '${key}' in ${where} ignored`,
      );
      continue;
    }
    if (key === 'backing-store' || key === 'direct-store') continue;
    requireNoBlock(key, v);
    requireValue(key, v, where);
    if (LUN_KEYS.includes(key) && !REPEATABLE_LUN_KEYS.has(key)) single(block, key, where);
  }
}

/**
 * Check a parsed targets.conf before anything runs: missing values, repeated single-value
 * directives, malformed accounts, blocks where a value belongs. Throws ConfigError (file:line).
 */
export function validateConfig(conf: CgBlock): ValidationResult {
  const warnings: string[] = [];
  for (const key of sortedKeys(conf)) {
    const v = conf.entries.get(key)!;
    if (!GLOBAL_KEYS.includes(key) && key !== 'account') {
      const loc = locOf(v);
      warnings.push(`${loc ? `${loc.file}:${loc.line}: ` : ''}unknown global directive '${key}' ignored`);
      continue;
    }
    if (key === 'target') continue;
    requireNoBlock(key, v);
    requireValue(key, v, 'global section');
    if (SINGLE_GLOBAL_KEYS.includes(key)) single(conf, key, '');
    if (key === 'incomingdiscoveryuser' || key === 'outgoingdiscoveryuser' || key === 'account')
      requireUserPass(key, v, 'global section');
  }
  const targets = conf.entries.get('target');
  if (targets === undefined) return { warnings };
  if (targets.kind !== 'block')
    throw new ConfigError('"target" must be a block: <target NAME> ... </target>', locOf(targets));
  for (const name of sortedKeys(targets)) {
    const t = targets.entries.get(name)!;
    if (t.kind !== 'block') throw new ConfigError(`<target> needs a name`, locOf(t));
    const where = `target ${name}`;
    validateLunOptions(t, where, true, warnings);
    for (const key of ['incominguser', 'outgoinguser']) {
      const v = t.entries.get(key);
      if (v) requireUserPass(key, v, where);
    }
    for (const store of ['backing-store', 'direct-store']) {
      const v = t.entries.get(store);
      if (v === undefined) continue;
      requireValue(store, v, where);
      if (v.kind === 'block') {
        for (const path of sortedKeys(v)) {
          const lunBlock = v.entries.get(path)!;
          if (lunBlock.kind !== 'block') throw new ConfigError(`<${store}> needs a path`, locOf(lunBlock));
          validateLunOptions(lunBlock, `${store} ${path} of ${where}`, false, warnings);
        }
      }
    }
  }
  return { warnings };
}

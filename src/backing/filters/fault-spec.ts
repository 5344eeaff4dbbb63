/**
 * The fault-injection filter's configuration, read from the LU's --bsopts (docs/robustness.md).
 * --bsopts is a list of `key=value` items separated by `;` (tgt's convention for rbd and glfs);
 * the filter takes its own keys and leaves the rest to the store:
 *
 *   fault=OP:ERROR[@SELECTOR]   OP: read | write | flush | unmap | any
 *                               ERROR: an errno name (EIO, ENOSPC, EDQUOT, ...) or `stall`
 *                               SELECTOR: lba=A[-B] | every=N | after=N (none: every call)
 *   delay=[OP:]N(ms|s)          every call of OP (default any) waits that long first
 */

export type FaultOp = 'read' | 'write' | 'flush' | 'unmap';
const OPS: readonly FaultOp[] = ['read', 'write', 'flush', 'unmap'];

/** Which calls of an operation a rule hits. */
export type FaultSelector =
  | { kind: 'always' }
  /** Calls touching any block in [first, last]. */
  | { kind: 'lba'; first: number; last: number }
  /** The Nth, 2Nth, ... call of the operation. */
  | { kind: 'every'; n: number }
  /** Every call after the first N. */
  | { kind: 'after'; n: number };

export interface FaultRule {
  readonly ops: readonly FaultOp[];
  /** Errno name the failing call rejects with, or 'stall' (never completes until close). */
  readonly error: string;
  readonly selector: FaultSelector;
}

export interface DelayRule {
  readonly ops: readonly FaultOp[];
  readonly ms: number;
}

export interface FaultSpec {
  readonly faults: readonly FaultRule[];
  readonly delays: readonly DelayRule[];
  /** The --bsopts items the filter did not take, for the store underneath. */
  readonly rest: string;
}

const ERROR_NAME = /^(E[A-Z0-9]{1,15}|stall)$/;
const MAX_DELAY_MS = 3_600_000;

/** Split --bsopts into the filter's rules and the rest; throws FaultSpecError on a bad rule. */
export function parseFaultSpec(bsopts: string | undefined): FaultSpec {
  const faults: FaultRule[] = [];
  const delays: DelayRule[] = [];
  const rest: string[] = [];
  for (const item of (bsopts ?? '').split(';')) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? '' : item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (key === 'fault') faults.push(parseFault(value));
    else if (key === 'delay') delays.push(parseDelay(value));
    else if (item !== '') rest.push(item);
  }
  return { faults, delays, rest: rest.join(';') };
}

/** True when the spec changes nothing (the store is then used unwrapped). */
export function isEmptySpec(spec: FaultSpec): boolean {
  return spec.faults.length === 0 && spec.delays.length === 0;
}

/** A --bsopts fault rule that does not parse (the LU is not created: tgtadm "invalid request"). */
export class FaultSpecError extends Error {
  readonly code = 'TGT_ERR_BS_BAD_FAULT_SPEC';
  constructor(message: string) {
    super(message);
    this.name = 'FaultSpecError';
  }
}

function bad(what: string): FaultSpecError {
  return new FaultSpecError(`fault filter: ${what}`);
}

function parseOps(name: string): FaultOp[] {
  if (name === 'any') return [...OPS];
  if ((OPS as readonly string[]).includes(name)) return [name as FaultOp];
  throw bad(`unknown operation '${name}'`);
}

/** A decimal integer within [min, Number.MAX_SAFE_INTEGER]. */
function parseCount(text: string, min: number): number {
  if (!/^\d{1,16}$/.test(text)) throw bad(`'${text}' is not a number`);
  const n = Number(text);
  if (n < min || !Number.isSafeInteger(n)) throw bad(`'${text}' out of range`);
  return n;
}

function parseFault(value: string): FaultRule {
  const m = /^([a-z]+):([A-Za-z0-9]+)(?:@([a-z]+)=([0-9-]+))?$/.exec(value);
  if (!m) throw bad(`bad fault '${value}' (want OP:ERROR[@lba=A-B|every=N|after=N])`);
  const [, op, error, selKey, selValue] = m;
  if (!ERROR_NAME.test(error!)) throw bad(`bad error '${error}'`);
  return { ops: parseOps(op!), error: error!, selector: parseSelector(selKey, selValue) };
}

function parseSelector(key: string | undefined, value: string | undefined): FaultSelector {
  if (key === undefined || value === undefined) return { kind: 'always' };
  if (key === 'lba') {
    const [a, b, extra] = value.split('-');
    if (extra !== undefined) throw bad(`bad LBA range '${value}'`);
    const first = parseCount(a!, 0);
    const last = b === undefined ? first : parseCount(b, first);
    return { kind: 'lba', first, last };
  }
  if (key === 'every') return { kind: 'every', n: parseCount(value, 1) };
  if (key === 'after') return { kind: 'after', n: parseCount(value, 0) };
  throw bad(`unknown selector '${key}'`);
}

function parseDelay(value: string): DelayRule {
  const m = /^(?:([a-z]+):)?(\d{1,10})(ms|s)$/.exec(value);
  if (!m) throw bad(`bad delay '${value}' (want [OP:]N(ms|s))`);
  const ms = Number(m[2]) * (m[3] === 's' ? 1000 : 1);
  if (ms > MAX_DELAY_MS) throw bad(`delay '${value}' over an hour`);
  return { ops: parseOps(m[1] ?? 'any'), ms };
}

/**
 * Login redirection (RFC 7143 11.13.5 status class 1, 13.8 TargetAddress; tgt-behaviour.md §4.8).
 *
 * A target is redirected either statically (RedirectAddress + RedirectPort + RedirectReason) or
 * by a callback program run as `<callback> <targetname> <initiator-ip>`, which prints
 * `addr:port:Temporary|Permanent` (IPv6 as `[addr]:port:...`). The callback runs as an
 * asynchronous child process with a timeout: the event loop never waits for it.
 *
 * As in tgt: a failing or unparsable callback fails the login with a target error; no redirect
 * happens when the initiator's own address is the redirect address (it is already there).
 * Unlike tgt, a host name is accepted as the redirect address (tgt silently ignores it).
 */
import { execFile } from 'node:child_process';
import { LoginStatus } from './spec.js';
import type { RedirectSettings } from './params.js';

/** Where to send the initiator, and why. */
export interface RedirectDestination {
  /** Host as configured ("10.0.0.2", "[fd00::2]", "san2.example"). */
  address: string;
  /** Port text; empty = the initiator's default (3260). */
  port: string;
  reason: 'Temporary' | 'Permanent';
}

/** Outcome of the redirect check for one login. */
export type RedirectDecision =
  | { kind: 'none' }
  | { kind: 'redirect'; status: number; targetAddress: string }
  /** The callback failed: tgt answers the login with a target error. */
  | { kind: 'error'; message: string };

/** How long the callback may run; tgt allows 100 ms, process start-up alone can take longer. */
export const DEFAULT_CALLBACK_TIMEOUT_MS = 2000;
/** The callback's output is one short line; more is an error. */
const MAX_CALLBACK_OUTPUT = 4096;

/** 11.13.5: status for the reason (class 1, detail 1 temporary / 2 permanent). */
export function redirectStatus(reason: 'Temporary' | 'Permanent'): number {
  return reason === 'Temporary' ? LoginStatus.TargetMovedTemporarily : LoginStatus.TargetMovedPermanently;
}

/** 13.8 TargetAddress value: `addr:port` (just `addr` without a port). */
export function targetAddressValue(dest: RedirectDestination): string {
  return dest.port === '' ? dest.address : `${dest.address}:${dest.port}`;
}

/**
 * Parse the callback's output `addr:port:Temporary|Permanent` (tgt's syntax: the reason is
 * matched as a prefix, so a trailing newline or text after it is ignored). Null when invalid.
 */
export function parseCallbackOutput(text: string): RedirectDestination | null {
  let rest = text.replace(/^\s+/, '');
  let address: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') return null;
    address = rest.slice(0, close + 1);
    rest = rest.slice(close + 2);
  } else {
    const colon = rest.indexOf(':');
    if (colon < 0) return null;
    address = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
  }
  const colon = rest.indexOf(':');
  if (colon < 0 || address === '' || address === '[]') return null;
  const port = rest.slice(0, colon);
  if (port !== '' && !/^\d{1,5}$/.test(port)) return null;
  const reasonText = rest.slice(colon + 1);
  const reason = reasonText.startsWith('Temporary')
    ? 'Temporary'
    : reasonText.startsWith('Permanent')
      ? 'Permanent'
      : null;
  return reason ? { address, port, reason } : null;
}

/** The configured static redirect, or null (tgt: no address or no valid reason = none). */
export function staticDestination(settings: RedirectSettings): RedirectDestination | null {
  if (settings.address === '' || settings.reason === undefined) return null;
  return { address: settings.address, port: settings.port, reason: settings.reason };
}

/** Strip brackets and an IPv6 zone, unwrap IPv4-mapped IPv6, lower-case. */
function canonicalHost(host: string): string {
  let h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const zone = h.indexOf('%');
  if (zone >= 0) h = h.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(h);
  return (mapped ? mapped[1]! : h).toLowerCase();
}

/** tgt: the initiator already connected to the redirect address is not redirected again. */
export function isOwnAddress(dest: RedirectDestination, initiatorAddress: string): boolean {
  return canonicalHost(dest.address) === canonicalHost(initiatorAddress);
}

/** Run the callback; resolves with its stdout, rejects on a failure, a non-zero exit or the timeout. */
export function runCallback(
  callback: string,
  targetName: string,
  initiatorAddress: string,
  timeoutMs: number = DEFAULT_CALLBACK_TIMEOUT_MS,
): Promise<string> {
  // tgt splits the configured command on blanks; no shell is involved.
  const [program, ...args] = callback.trim().split(/\s+/);
  return new Promise((resolve, reject) => {
    if (!program) {
      reject(new Error('empty RedirectCallback'));
      return;
    }
    execFile(
      program,
      [...args, targetName, canonicalHost(initiatorAddress)],
      { timeout: timeoutMs, maxBuffer: MAX_CALLBACK_OUTPUT, killSignal: 'SIGKILL', windowsHide: true },
      (err, stdout) => (err ? reject(err) : resolve(String(stdout))),
    );
  });
}

/** Decide the redirect for a login from `initiatorAddress` to `targetName`. Never rejects. */
export async function decideRedirect(
  settings: RedirectSettings,
  targetName: string,
  initiatorAddress: string,
  timeoutMs: number = DEFAULT_CALLBACK_TIMEOUT_MS,
): Promise<RedirectDecision> {
  let dest: RedirectDestination | null;
  if (settings.callback !== undefined) {
    let output: string;
    try {
      output = await runCallback(settings.callback, targetName, initiatorAddress, timeoutMs);
    } catch (e) {
      return { kind: 'error', message: `redirect callback failed: ${(e as Error).message}` };
    }
    dest = parseCallbackOutput(output);
    if (!dest) return { kind: 'error', message: 'redirect callback printed no addr:port:reason' };
  } else {
    dest = staticDestination(settings);
  }
  return redirectFor(dest, initiatorAddress);
}

/** The decision for a known destination (static redirects need no callback and no wait). */
export function redirectFor(dest: RedirectDestination | null, initiatorAddress: string): RedirectDecision {
  if (!dest || isOwnAddress(dest, initiatorAddress)) return { kind: 'none' };
  return { kind: 'redirect', status: redirectStatus(dest.reason), targetAddress: targetAddressValue(dest) };
}

/**
 * SendTargets (RFC 7143 13.3, Appendix C): the text answer listing the targets an initiator
 * may see. Works in discovery sessions and, unlike tgt, in normal sessions too.
 */
import type { TargetSystem } from '../scsi/system.js';
import { formatHostPort } from './portal.js';
import type { TextPair } from './text.js';

export interface SendTargetsContext {
  system: TargetSystem;
  /** Fabric driver name: only its targets are listed. */
  lld: string;
  initiatorName: string;
  initiatorAddress: string;
  /** The address and port this connection reached us on (advertised as TargetAddress). */
  localAddress: string;
  localPort: number;
  /** In a normal session, only the session's own target may be listed (13.3). */
  sessionTargetName?: string;
}

/**
 * Answer `SendTargets=<value>`: "All" lists every target the initiator passes the ACL of,
 * an IQN lists that target only (if allowed), an empty value lists the session's target.
 */
export function sendTargets(ctx: SendTargetsContext, value: string): TextPair[] {
  const pairs: TextPair[] = [];
  const address = `${formatHostPort(ctx.localAddress, ctx.localPort)},1`;
  for (const target of ctx.system.targetsInOrder()) {
    if (target.lld !== ctx.lld) continue;
    if (ctx.sessionTargetName !== undefined) {
      // 13.3: in a normal session only the session's target is reported ("All" is not allowed).
      if (target.name !== ctx.sessionTargetName) continue;
      if (value !== '' && value !== 'All' && value !== target.name) continue;
    } else if (value !== 'All' && value !== target.name) {
      continue;
    }
    if (!target.aclAllows(ctx.initiatorAddress, ctx.initiatorName)) continue;
    pairs.push(['TargetName', target.name]);
    pairs.push(['TargetAddress', address]);
  }
  return pairs;
}

/**
 * A small iSCSI initiator for tests, benchmarks and tools, built on src/iscsi's codec.
 *
 *   const s = await Session.login({ host: '127.0.0.1', port: 3260, targetName: 'iqn...' });
 *   const r = await s.read16(1, 0n, 8, 512);   // { status, data, sense?, residual? }
 *   await s.logout();
 */
import { Session, type DiscoveredTarget, type SessionOptions } from './session.js';

export {
  Session,
  serialLt,
  type AuthOptions,
  type DiscoveredTarget,
  type Residual,
  type ScsiRequest,
  type ScsiResult,
  type SessionOptions,
} from './session.js';
export { IscsiConnection, type ConnectOptions } from './connection.js';
export { InitiatorError, LoginFailedError, RejectedError, type InitiatorErrorCode } from './errors.js';
export {
  LoginNegotiator,
  DEFAULT_PROPOSALS,
  type LoginProposals,
  type NegotiatedParams,
} from './negotiation.js';
export { decodeSense, type Sense } from './sense.js';
export * from './cdb.js';

/** Defaults shared by the sessions an initiator opens (name, auth, proposals, timeouts). */
export class IscsiInitiator {
  constructor(readonly defaults: Omit<SessionOptions, 'host' | 'port' | 'targetName' | 'sessionType'> = {}) {}

  /** Log in to a target (Normal session). */
  login(
    host: string,
    port: number,
    targetName: string,
    options: Partial<SessionOptions> = {},
  ): Promise<Session> {
    return Session.login({ ...this.defaults, ...options, host, port, targetName, sessionType: 'Normal' });
  }

  /** Discovery session: SendTargets=<value>, then logout. */
  discover(
    host: string,
    port = 3260,
    value = 'All',
    options: Partial<SessionOptions> = {},
  ): Promise<DiscoveredTarget[]> {
    return discover({ ...this.defaults, ...options, host, port }, value);
  }
}

/** Log in a Discovery session, ask SendTargets=<value> (default All), log out. */
export async function discover(options: SessionOptions, value = 'All'): Promise<DiscoveredTarget[]> {
  const session = await Session.login({ ...options, sessionType: 'Discovery', targetName: undefined });
  try {
    return await session.sendTargets(value);
  } finally {
    if (session.state === 'full-feature') await session.logout().catch(() => session.destroy());
  }
}

/**
 * Target-initiated logout (RFC 7143 11.9.1, AsyncEvent 1 "logout requested"): used when a
 * target with sessions is deleted with --force, and for every session when tgtd stops. Each connection of the session gets an
 * Asynchronous Message whose Parameter3 is the time (seconds) the initiator has to log out;
 * the session is closed when that time is up, whether or not the initiator complied.
 */
import { Buffer } from 'node:buffer';
import { encodeAsyncMessage } from './pdu.js';
import { AsyncEvent } from './spec.js';

/** Default time given to initiators to log out before their connections are closed. */
export const DEFAULT_LOGOUT_GRACE_SECONDS = 5;

/** Default time tgtd gives sessions to log out when it stops (SIGTERM/SIGINT). */
export const DEFAULT_SHUTDOWN_GRACE_MS = 2000;

/** How often a shutdown looks whether the sessions it asked to log out have gone. */
const SHUTDOWN_POLL_MS = 20;

/** What a connection needs to ask for a logout. */
export interface LogoutRequestable {
  /** Send the Async Message on this connection (no-op unless in full feature phase). */
  requestLogout(seconds: number): void;
}

/** What a session needs for a requested logout. */
export interface LogoutSession {
  readonly connections: Iterable<LogoutRequestable>;
  readonly isClosed: boolean;
  close(reason: string): void;
}

/**
 * Encode the Async Message "logout requested" (11.9.1): Parameter3 = seconds to log out
 * within (16 bits); Parameter1/2 and the LUN are reserved for this event.
 */
export function encodeLogoutRequest(
  bhs: Buffer,
  f: { statSN: number; expCmdSN: number; maxCmdSN: number; seconds: number },
): Buffer {
  return encodeAsyncMessage(bhs, {
    asyncEvent: AsyncEvent.LogoutRequest,
    statSN: f.statSN,
    expCmdSN: f.expCmdSN,
    maxCmdSN: f.maxCmdSN,
    parameter3: Math.max(0, Math.min(0xffff, Math.floor(f.seconds))),
  });
}

/**
 * Ask every connection of `session` to log out within `seconds`, and close the session when
 * the time is up (11.9.1: "If the initiator does not log out in Parameter3 seconds, the target
 * should ... terminate the transport connection"). Returns the timer (unref'd).
 */
export function requestSessionLogout(session: LogoutSession, seconds: number): NodeJS.Timeout {
  for (const conn of session.connections) conn.requestLogout(seconds);
  const timer = setTimeout(
    () => {
      if (!session.isClosed) session.close('logout request timed out');
    },
    Math.max(0, seconds) * 1000,
  );
  timer.unref();
  return timer;
}

/**
 * Resolve once every session in `sessions` has closed (the initiators logged out or dropped),
 * or after `graceMs`, whichever comes first.
 */
export async function waitForSessionsToEnd(
  sessions: readonly Pick<LogoutSession, 'isClosed'>[],
  graceMs: number,
): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (sessions.some((s) => !s.isClosed) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(SHUTDOWN_POLL_MS, graceMs)));
  }
}

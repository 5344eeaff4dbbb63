/** Shared helpers for the integration tests (real tgtd + in-repo initiator). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { LoginFailedError, Session, type SessionOptions } from '../../src/initiator/index.js';
import type { TgtDaemon } from '../helpers/daemon.js';

/** IQN prefix for the targets the integration tests create. */
export const IQN = 'iqn.2026-01.org.tgt-ts.it';
export const BLOCK = 512;
export const GOOD = 0x00;
export const CHECK_CONDITION = 0x02;

/** Log in to `targetName` on `daemon` with a short timeout (tests fail fast instead of hanging). */
export function login(
  daemon: TgtDaemon,
  targetName: string,
  options: Partial<SessionOptions> = {},
): Promise<Session> {
  return Session.login({ host: daemon.host, port: daemon.port, targetName, timeoutMs: 10_000, ...options });
}

/**
 * Consume the POWER ON / RESET unit attention every new I_T nexus starts with (SAM-5 5.14,
 * tgt §5.1), so later commands see GOOD.
 */
export async function clearUnitAttention(session: Session, lun: number): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const r = await session.testUnitReady(lun);
    if (r.status === GOOD) return;
    assert.equal(r.sense?.key, 0x06, `TEST UNIT READY: status ${r.status}, sense key ${r.sense?.key}`);
  }
  assert.fail('unit attentions never cleared');
}

/** Log in and clear the unit attention on `lun`. */
export async function loginReady(
  daemon: TgtDaemon,
  targetName: string,
  lun: number,
  options: Partial<SessionOptions> = {},
): Promise<Session> {
  const s = await login(daemon, targetName, options);
  await clearUnitAttention(s, lun);
  return s;
}

/** Expect a login to fail with the given Status-Class/Status-Detail (RFC 7143 11.13.5). */
export async function expectLoginStatus(
  attempt: Promise<Session>,
  status: number,
  what: string,
): Promise<void> {
  let session: Session | undefined;
  try {
    session = await attempt;
  } catch (e) {
    assert.ok(e instanceof LoginFailedError, `${what}: expected a login failure, got ${String(e)}`);
    assert.equal(
      hex4(e.status),
      hex4(status),
      `${what}: login status 0x${hex4(e.status)}, expected 0x${hex4(status)}`,
    );
    return;
  }
  session.destroy();
  assert.fail(`${what}: login succeeded, expected status 0x${hex4(status)}`);
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** Deterministic test data: `length` bytes derived from `seed` (distinct per block). */
export function pattern(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i + 4 <= length; i += 4) {
    // xorshift32: cheap, no repeats within a test's range.
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (let i = length & ~3; i < length; i++) out[i] = seed & 0xff;
  return out;
}

/** sha256 hex of a buffer. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Log out, or drop the connection when the session is already unusable. */
export async function closeSession(s: Session | undefined): Promise<void> {
  if (!s) return;
  if (s.state === 'full-feature') await s.logout().catch(() => s.destroy());
  else s.destroy();
}

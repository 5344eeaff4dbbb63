/**
 * An in-process iSCSI target for fabric tests that need non-default limits (limits.ts): a
 * TargetSystem with the iscsi driver on an ephemeral loopback portal, one target with a memory
 * LUN 1, open to every initiator.
 */
import { connect, type Socket } from 'node:net';
import { storeTypes } from '../../../../src/backing/index.js';
import { Session, type SessionOptions } from '../../../../src/initiator/index.js';
import { IscsiDriver, type IscsiDriverOptions } from '../../../../src/iscsi/driver.js';
import type { IscsiLimits } from '../../../../src/iscsi/limits.js';
import { TargetSystem } from '../../../../src/scsi/system.js';

export const TARGET = 'iqn.2026-01.org.tgt-ts.unit:fabric';
export const LUN = 1;
export const BLOCK = 512;

export interface FabricHarness {
  system: TargetSystem;
  driver: IscsiDriver;
  host: string;
  port: number;
  /** Log in to the target (10 s timeout). */
  login(options?: Partial<SessionOptions>): Promise<Session>;
  /** A plain TCP connection to the portal. */
  rawSocket(): Promise<Socket>;
  close(): Promise<void>;
}

/** Start the target with `limits` (and other driver options) applied. */
export async function startFabric(
  limits: Partial<IscsiLimits> = {},
  options: Omit<IscsiDriverOptions, 'limits'> = {},
): Promise<FabricHarness> {
  const system = new TargetSystem({ storeTypes: storeTypes.values() });
  const driver = new IscsiDriver(system, { ...options, limits });
  system.registerDriver(driver);
  const err = system.createTarget('iscsi', 1, TARGET);
  if (err !== 0) throw new Error(`createTarget: ${err}`);
  const luErr = await system.createLu(1, BigInt(LUN), { bstype: 'memory', path: '16M' });
  if (luErr !== 0) throw new Error(`createLu: ${luErr}`);
  system.bindAcl(1, 'address', 'ALL');
  const portal = await driver.listen('127.0.0.1:0');
  const host = '127.0.0.1';
  const port = portal.address.port;
  const sessions: Session[] = [];
  const sockets: Socket[] = [];
  return {
    system,
    driver,
    host,
    port,
    async login(options = {}) {
      const s = await Session.login({ host, port, targetName: TARGET, timeoutMs: 10_000, ...options });
      sessions.push(s);
      return s;
    },
    rawSocket() {
      return new Promise((resolve, reject) => {
        const sock = connect({ host, port }, () => resolve(sock));
        sock.on('error', reject);
        sockets.push(sock);
      });
    },
    async close() {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      await driver.shutdown();
    },
  };
}

/** Resolves true when the peer closes `sock` within `ms`, false otherwise. */
export function closedWithin(sock: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (sock.destroyed || sock.readableEnded) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    sock.once('close', done);
    sock.once('end', done);
    sock.on('error', () => {});
    sock.resume();
  });
}

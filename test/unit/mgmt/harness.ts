/** Test helpers: a stub fabric driver and a control server on a private temp socket. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memoryStoreType, nullStoreType, rdwrStoreType } from '../../../src/backing/index.js';
import { AdminError } from '../../../src/scsi/admin-error.js';
import type { DriverState, TargetDriver } from '../../../src/scsi/driver.js';
import type { ScsiTarget } from '../../../src/scsi/target.js';
import { TargetSystem } from '../../../src/scsi/system.js';
import type { DriverStatHooks } from '../../../src/mgmt/dispatch.js';
import { type ControlServer, startControlServer } from '../../../src/mgmt/server.js';
import { formatConnectionShow, formatPortalShow, type ConnStatRow } from '../../../src/mgmt/show.js';

/** A fabric driver that records what management asked of it. */
export class StubDriver implements TargetDriver, DriverStatHooks {
  state: DriverState = 'ready';
  readonly calls: string[] = [];
  portals: { host: string; port: number; tpgt: number }[] = [{ host: '127.0.0.1', port: 3260, tpgt: 1 }];
  nop = new Map<number, number>();
  connections: { tid: number; sid: number; cid: number; initiator: string; address: string }[] = [];

  constructor(readonly name = 'iscsi') {}

  targetCreated(target: ScsiTarget): void {
    this.calls.push(`created ${target.tid}`);
  }
  targetDestroy(target: ScsiTarget, force: boolean): AdminError {
    this.calls.push(`destroy ${target.tid} ${force}`);
    return AdminError.Success;
  }
  targetUpdate(target: ScsiTarget, name: string, value: string): AdminError {
    this.calls.push(`update ${target.tid} ${name}=${value}`);
    if (name === 'nop_interval') {
      this.nop.set(target.tid, Number(value));
      return AdminError.Success;
    }
    return name === 'MaxRecvDataSegmentLength' ? AdminError.Success : AdminError.InvalidRequest;
  }
  targetShowParams(target: ScsiTarget): string {
    return `nop_interval=${this.nop.get(target.tid) ?? 0}\nnop_count=0\n`;
  }
  targetShowSystemInfo(target: ScsiTarget): string[] {
    const n = this.nop.get(target.tid);
    return n ? [`Nop interval: ${n}`, 'Nop count: 0'] : [];
  }
  async portalCreate(spec: string): Promise<AdminError> {
    this.calls.push(`portal+ ${spec}`);
    const m = /^([\d.]+):(\d+)$/.exec(spec);
    if (!m) return AdminError.UnknownErr;
    this.portals.push({ host: m[1]!, port: Number(m[2]), tpgt: 1 });
    return AdminError.Success;
  }
  async portalDestroy(spec: string): Promise<AdminError> {
    this.calls.push(`portal- ${spec}`);
    return AdminError.Success;
  }
  portalShow(): string {
    return formatPortalShow(this.portals);
  }
  connectionShow(target: ScsiTarget): string {
    return formatConnectionShow(this.connections.filter((c) => c.tid === target.tid));
  }
  connectionDelete(target: ScsiTarget, sid: bigint, cid: number): AdminError {
    this.calls.push(`conn- ${target.tid} ${sid} ${cid}`);
    return AdminError.NoSession;
  }
  systemShow(): string {
    return 'iSNS:\n    iSNS=Off\n';
  }
  systemUpdate(name: string, value: string): AdminError {
    this.calls.push(`sys ${name}=${value}`);
    return AdminError.InvalidRequest;
  }
  sessionConnectionStats(sid: bigint): ConnStatRow[] | null {
    return this.connections
      .filter((c) => BigInt(c.sid) === sid)
      .map((c) => ({
        sid: c.sid,
        cid: c.cid,
        rxDataOctets: 1,
        txDataOctets: 2,
        dataOutPdus: 0,
        dataInPdus: 0,
        commandPdus: 0,
        responsePdus: 0,
      }));
  }
  async shutdown(): Promise<void> {
    this.calls.push('shutdown');
    this.state = 'stopped';
  }
}

export interface TestDaemon {
  dir: string;
  /** TGT_IPC_SOCKET value (socket is `${prefix}.0`). */
  prefix: string;
  env: NodeJS.ProcessEnv;
  system: TargetSystem;
  driver: StubDriver;
  server: ControlServer;
  deleted: () => boolean;
  stop(): Promise<void>;
}

/** A TargetSystem with the stub driver and real stores, served on `<tmp>/socket.0`. */
export async function startTestDaemon(): Promise<TestDaemon> {
  const dir = await mkdtemp(join(tmpdir(), 'tgt-mgmt-'));
  const prefix = join(dir, 'socket');
  const env = { ...process.env, TGT_IPC_SOCKET: prefix };
  const system = new TargetSystem({ storeTypes: [rdwrStoreType, nullStoreType, memoryStoreType] });
  const driver = new StubDriver();
  system.registerDriver(driver);
  let deleted = false;
  const server = await startControlServer(system, {
    controlPort: 0,
    env,
    onSystemDelete: () => {
      deleted = true;
    },
  });
  return {
    dir,
    prefix,
    env,
    system,
    driver,
    server,
    deleted: () => deleted,
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** How to run our tgtadm as a child process (from the sources under tsx, or from dist). */
export function ourTgtadm(): { command: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    return {
      command: process.execPath,
      args: ['--import', 'tsx', join(here, '../../../../src/bin/tgtadm.ts')],
    };
  }
  return { command: process.execPath, args: [join(here, '../../../../src/bin/tgtadm.js')] };
}

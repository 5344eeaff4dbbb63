/** Test harness: a TargetSystem with a stub fabric driver, memory-backed LUs, and a submit helper. */
import { AdminError } from '../../../src/scsi/admin-error.js';
import { DataDirection, ScsiCommand, ScsiStatus, TaskAttribute } from '../../../src/scsi/command.js';
import type { TargetDriver } from '../../../src/scsi/driver.js';
import { lunField } from '../../../src/scsi/lun-address.js';
import type { ItNexus } from '../../../src/scsi/nexus.js';
import { parseSense, type SenseCode } from '../../../src/scsi/sense.js';
import { TargetSystem } from '../../../src/scsi/system.js';
import type { BackingStore, StoreType } from '../../../src/backing/store.js';
import { MemoryStore } from '../../../src/backing/memory.js';

/** A fabric driver that does nothing (management hooks only). */
export function stubDriver(name = 'iscsi'): TargetDriver {
  return {
    name,
    state: 'ready',
    targetCreated: () => undefined,
    targetDestroy: () => AdminError.Success,
    targetUpdate: () => AdminError.Success,
    targetShowParams: () => '',
    targetShowSystemInfo: () => [],
    portalCreate: async () => AdminError.Success,
    portalDestroy: async () => AdminError.Success,
    portalShow: () => '',
    connectionShow: () => '',
    connectionDelete: () => AdminError.Success,
    systemShow: () => '',
    systemUpdate: () => AdminError.Success,
    shutdown: async () => undefined,
  };
}

/** "memory"-like store type whose path is a size in bytes; the last opened store is kept. */
export function testStoreType(
  opened: BackingStore[] = [],
  wrap: (s: MemoryStore) => BackingStore = (s) => s,
): StoreType {
  return {
    name: 'rdwr',
    supportedOflags: ['sync', 'direct'],
    async open(path: string) {
      if (!/^\d+$/.test(path)) throw new Error('bad path');
      const s = wrap(new MemoryStore(path, Number(path), false));
      opened.push(s);
      return s;
    },
  };
}

export interface Harness {
  system: TargetSystem;
  stores: BackingStore[];
  nexus: ItNexus;
}

/** Target 1 with a 1 MiB disk at LUN 1 (512-byte blocks) and one nexus (UAs already drained). */
export async function makeHarness(
  opts: { size?: number; blocksize?: number; keepUa?: boolean; wrap?: (s: MemoryStore) => BackingStore } = {},
): Promise<Harness> {
  const stores: BackingStore[] = [];
  const system = new TargetSystem({ storeTypes: [testStoreType(stores, opts.wrap)] });
  system.registerDriver(stubDriver());
  if (system.createTarget('iscsi', 1, 'iqn.2024-01.test:t1') !== AdminError.Success)
    throw new Error('createTarget');
  const err = await system.createLu(1, 1n, {
    path: String(opts.size ?? 1024 * 1024),
    blocksize: opts.blocksize,
  });
  if (err !== AdminError.Success) throw new Error(`createLu ${err}`);
  const nexus = system.targets.get(1)!.createNexus(1, 'iqn.2024-01.test:init', 'info');
  if (!opts.keepUa) {
    for (const lu of system.targets.get(1)!.luns) nexus.luInfo(lu).unitAttentions.length = 0;
  }
  return { system, stores, nexus };
}

export interface SubmitOptions {
  lun?: number;
  dataOut?: Buffer | Buffer[];
  readLength?: number;
  writeLength?: number;
  attribute?: TaskAttribute;
  tag?: number;
}

/** Build a command from CDB bytes (padded to 16). */
export function makeCommand(
  cdb: readonly number[] | Buffer,
  o: SubmitOptions = {},
  onComplete: (c: ScsiCommand) => void = () => undefined,
): ScsiCommand {
  const cdbBuf = Buffer.alloc(Math.max(16, cdb.length));
  Buffer.from(cdb as number[]).copy(cdbBuf);
  const segs = o.dataOut === undefined ? [] : Array.isArray(o.dataOut) ? o.dataOut : [o.dataOut];
  const outLen = segs.reduce((n, s) => n + s.length, 0);
  const writing = outLen > 0 || (o.writeLength ?? 0) > 0;
  const cmd = new ScsiCommand(
    {
      cdb: cdbBuf,
      lun: lunField(o.lun ?? 1),
      tag: o.tag ?? 0,
      attribute: o.attribute ?? TaskAttribute.Simple,
      direction: writing ? DataDirection.Write : DataDirection.Read,
      expectedReadLength: o.readLength ?? (writing ? 0 : 65536),
      expectedWriteLength: o.writeLength ?? outLen,
    },
    onComplete,
  );
  for (const s of segs) cmd.addDataOut(s);
  return cmd;
}

/** Submit and wait for completion; checks onComplete is called exactly once. */
export function submit(
  nexus: ItNexus,
  cdb: readonly number[] | Buffer,
  o: SubmitOptions = {},
): Promise<ScsiCommand> {
  return new Promise((resolve, reject) => {
    let calls = 0;
    const cmd = makeCommand(cdb, o, (c) => {
      calls++;
      if (calls > 1) reject(new Error('onComplete called twice'));
      else setImmediate(() => (calls === 1 ? resolve(c) : undefined));
    });
    nexus.submit(cmd);
  });
}

/** Data-In bytes the initiator would see. */
export function dataIn(cmd: ScsiCommand): Buffer {
  if (!cmd.dataIn) return Buffer.alloc(0);
  return cmd.dataIn.subarray(0, Math.min(cmd.dataInLength, cmd.expectedReadLength, cmd.dataIn.length));
}

/** Sense key/ASC/ASCQ of a CHECK CONDITION (throws if the status is something else). */
export function senseOf(cmd: ScsiCommand): SenseCode & { information?: number } {
  if (cmd.status !== ScsiStatus.CheckCondition || !cmd.sense)
    throw new Error(`status ${cmd.status}, no sense`);
  return parseSense(cmd.sense);
}

/** Compact "key/asc/ascq" of a CHECK CONDITION, e.g. "5/24/0" (hex). */
export function senseText(cmd: ScsiCommand): string {
  const s = senseOf(cmd);
  return `${s.key.toString(16)}/${s.asc.toString(16)}/${s.ascq.toString(16)}`;
}

/** 10-byte READ/WRITE-family CDB. */
export function cdb10(op: number, lba: number, blocks: number, byte1 = 0): number[] {
  return [
    op,
    byte1,
    (lba >>> 24) & 0xff,
    (lba >>> 16) & 0xff,
    (lba >>> 8) & 0xff,
    lba & 0xff,
    0,
    (blocks >> 8) & 0xff,
    blocks & 0xff,
    0,
  ];
}

/** 16-byte READ/WRITE-family CDB. */
export function cdb16(op: number, lba: number, blocks: number, byte1 = 0): number[] {
  const b = Buffer.alloc(16);
  b[0] = op;
  b[1] = byte1;
  b.writeBigUInt64BE(BigInt(lba), 2);
  b.writeUInt32BE(blocks, 10);
  return [...b];
}

/** A store whose I/O waits until released (ordering and TMF tests), or fails on demand. */
export class GatedStore implements BackingStore {
  readonly type = 'gated';
  gated = false;
  failReads = false;
  failWrites = false;
  capabilitiesOverride: Partial<BackingStore['capabilities']> = {};
  readonly log: string[] = [];
  writeCalls: { offset: number; length: number; fua: boolean }[] = [];
  flushes = 0;
  private waiting: (() => void)[] = [];

  constructor(readonly inner: MemoryStore) {}

  get path(): string {
    return this.inner.path;
  }
  get size(): number {
    return this.inner.size;
  }
  get capabilities(): BackingStore['capabilities'] {
    return { ...this.inner.capabilities, ...this.capabilitiesOverride };
  }
  /** Let every held I/O continue. */
  release(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const fn of w) fn();
  }
  get held(): number {
    return this.waiting.length;
  }
  private async gate(): Promise<void> {
    if (this.gated) await new Promise<void>((r) => this.waiting.push(r));
  }
  async read(into: Buffer, offset: number): Promise<void> {
    this.log.push(`read ${offset}`);
    await this.gate();
    if (this.failReads) throw new Error('EIO');
    return this.inner.read(into, offset);
  }
  async write(segments: readonly Buffer[], offset: number, fua: boolean): Promise<void> {
    const length = segments.reduce((n, s) => n + s.length, 0);
    this.log.push(`write ${offset}`);
    this.writeCalls.push({ offset, length, fua });
    await this.gate();
    if (this.failWrites) throw new Error('EIO');
    return this.inner.write(segments, offset, fua);
  }
  async flush(): Promise<void> {
    this.flushes++;
  }
  async unmap(offset: number, length: number): Promise<void> {
    this.log.push(`unmap ${offset} ${length}`);
    return this.inner.unmap(offset, length);
  }
  async close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * tgt's global state: targets, fabric drivers, CHAP accounts (with the discovery bindings of
 * GLOBAL_TID), registered backing store types, and the management operations on them. Every
 * operation answers an AdminError exactly where tgt does (tgt-behaviour §2.1, §2.3, §2.4).
 */
import type { BackingStore, StoreType } from '../backing/store.js';
import { AdminError, GLOBAL_TID } from './admin-error.js';
import { isValidAddressRule } from './acl.js';
import { controllerDeviceType } from './device/controller.js';
import { deviceTypes } from './device/index.js';
import { modeParametersChanged } from './device/spc.js';
import type { TargetDriver } from './driver.js';
import { blockShiftOf, IDENTITY_LIMITS, LogicalUnit, type LuIdentity } from './lu.js';
import type { PrSnapshot } from './pr.js';
import { prStatePath, PrStateFile } from './pr-store.js';
import { SenseReason } from './sense.js';
import { ScsiTarget } from './target.js';

/** `logicalunit new` options (tgtadm -b -E -S -f -y -Y). */
export interface LuCreateOptions {
  path?: string;
  bstype?: string;
  bsopts?: string;
  bsoflags?: string;
  blocksize?: number;
  deviceType?: number;
}

/** Default --bstype when a path is given (tgt's driver default_bst). */
export const DEFAULT_BSTYPE = 'rdwr';
/** Default logical block size. */
export const DEFAULT_BLOCK_SIZE = 512;
/** Store types whose reopening would start from an empty medium (no `resize=1` for them). */
const REOPEN_LOSES_DATA: ReadonlySet<string> = new Set(['memory']);
/** RFC 3720 3.2.6.1: iSCSI names are at most 223 bytes. */
const MAX_TARGET_NAME = 223;

/** tgt accepts letters, digits, ':', '.', '-' (no '_': RFC 3720 names never contain it). */
function validTargetName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_TARGET_NAME && /^[A-Za-z0-9:.-]+$/.test(name);
}

/** Parse --bsoflags ("sync", "direct", "sync:direct"); undefined when invalid. */
function parseOflags(text: string): ('sync' | 'direct')[] | undefined {
  if (text === '') return [];
  const out: ('sync' | 'direct')[] = [];
  for (const f of text.split(':')) {
    if (f !== 'sync' && f !== 'direct') return undefined;
    if (!out.includes(f)) out.push(f);
  }
  return out;
}

/** tgt's boolean params take 0/1 (any integer, non-zero = on). */
/**
 * Open an LU's store. The logical block size rides along for store filters that count in
 * blocks (the fault filter's `lba=`); stores ignore it (StoreOpenOptions has no such field yet).
 */
function openStore(
  type: StoreType,
  path: string,
  oflags: readonly string[],
  bsopts: string | undefined,
  blockSize: number,
): Promise<BackingStore> {
  const options = { sync: oflags.includes('sync'), direct: oflags.includes('direct'), bsopts, blockSize };
  return type.open(path, options);
}

function parseFlag(v: string): boolean | undefined {
  if (!/^\d+$/.test(v)) return undefined;
  return Number(v) !== 0;
}

function parseUint(v: string, max: number): number | undefined {
  if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(v)) return undefined;
  const n = Number(v);
  return n <= max ? n : undefined;
}

/** `mode_page=pcode:subpage:len:b0:b1:...` (values decimal or 0x..). */
function parseModePage(v: string): { page: number; subpage: number; body: number[] } | undefined {
  const parts = v.split(':').map((p) => parseUint(p, 0xffff));
  if (parts.length < 3 || parts.some((p) => p === undefined)) return undefined;
  const [page, subpage, len, ...bytes] = parts as number[];
  if (
    page! > 0x3e ||
    subpage! > 0xfe ||
    len! > (subpage === 0 ? 0xff : 0xfffb) ||
    bytes.some((b) => b > 0xff)
  )
    return undefined;
  const body = new Array<number>(len!).fill(0);
  bytes.slice(0, len).forEach((b, i) => (body[i] = b));
  return { page: page!, subpage: subpage!, body };
}

export class TargetSystem {
  state: 'ready' | 'offline' = 'ready';
  debug = false;
  readonly drivers = new Map<string, TargetDriver>();
  readonly targets = new Map<number, ScsiTarget>();
  /** user -> password, in creation order. */
  readonly accounts = new Map<string, string>();
  /** Discovery-session accounts (`account bind` without --tid, GLOBAL_TID). */
  readonly discoveryAccounts: { incoming: string[]; outgoing?: string } = { incoming: [] };
  readonly storeTypes = new Map<string, StoreType>();
  /**
   * Called by management after every successful configuration change and awaited before the
   * answer goes out (tgtd --state saves the configuration here). A rejection is reported to
   * the administrator; the change itself stays in effect.
   */
  onConfigChange: (() => Promise<void>) | null = null;
  /**
   * Directory of the LUs' APTPL files (SPC-4 5.13.5, `pr-store.ts`); null = APTPL unsupported
   * (PTPL_C = 0). tgtd sets it to the folder of its --state file. LUs created afterwards restore
   * their saved persistent reservations.
   */
  prStateDir: string | null = null;
  /** LUNs being created (between the existence check and the store open). */
  private readonly pendingLuns = new Set<string>();

  constructor(options: { storeTypes?: Iterable<StoreType> } = {}) {
    for (const t of options.storeTypes ?? []) this.registerStoreType(t);
  }

  /** Register a fabric driver (`--lld` name). */
  registerDriver(driver: TargetDriver): void {
    this.drivers.set(driver.name, driver);
  }

  /** Register a backing store type (`--bstype` name). */
  registerStoreType(type: StoreType): void {
    this.storeTypes.set(type.name, type);
  }

  /** Targets in ascending tid order (the order `target show` lists them). */
  targetsInOrder(): ScsiTarget[] {
    return [...this.targets.values()].sort((a, b) => a.tid - b.tid);
  }

  findTargetByName(name: string): ScsiTarget | undefined {
    for (const t of this.targets.values()) if (t.name === name) return t;
    return undefined;
  }

  /** `target new`: validates the name, refuses duplicate tid/name, creates LUN 0 (controller). */
  createTarget(lld: string, tid: number, name: string): AdminError {
    const driver = this.drivers.get(lld);
    if (!driver) return AdminError.NoDriver;
    if (!Number.isInteger(tid) || tid <= 0 || tid > 0x7fffffff) return AdminError.InvalidRequest;
    if (!validTargetName(name)) return AdminError.InvalidRequest;
    if (this.targets.has(tid) || this.findTargetByName(name)) return AdminError.TargetExist;
    const target = new ScsiTarget(tid, name, lld);
    target.daemonTargets = () => this.targetsInOrder();
    const lun0 = new LogicalUnit(
      target,
      0n,
      controllerDeviceType,
      null,
      { storeType: 'null', bsopts: '', bsoflags: '' },
      1,
    );
    target.addLu(lun0);
    this.targets.set(tid, target);
    driver.targetCreated(target);
    return AdminError.Success;
  }

  /** `target delete`: refused with I_T nexuses unless forced; the driver closes sessions. */
  deleteTarget(tid: number, force: boolean): AdminError {
    const target = this.targets.get(tid);
    if (!target) return AdminError.NoTarget;
    if (target.nexuses.size > 0 && !force) return AdminError.TargetActive;
    const driver = this.drivers.get(target.lld);
    if (driver) {
      const err = driver.targetDestroy(target, force);
      if (err !== AdminError.Success) return err;
    }
    const closing = [...target.nexuses.values()].map((nexus) => nexus.close());
    this.targets.delete(tid);
    const luns = target.luns;
    target.luns = [];
    // Commands already running finish on their store before it is closed (no EBADF mid-write).
    void Promise.all(closing).then(() => {
      for (const lu of luns) void lu.store?.close().catch(() => undefined);
    });
    return AdminError.Success;
  }

  /** `logicalunit new` (tgt's tgt_device_create). */
  async createLu(tid: number, lun: bigint, opts: LuCreateOptions): Promise<AdminError> {
    const target = this.targets.get(tid);
    if (!target) return AdminError.NoTarget;
    const key = `${tid}:${lun}`;
    if (lun < 0n || lun > 0xffff_ffff_ffff_ffffn) return AdminError.InvalidRequest;
    if (target.findLu(lun) || this.pendingLuns.has(key)) return AdminError.LunExist;
    const deviceType = deviceTypes.get(opts.deviceType ?? 0x00);
    if (!deviceType || deviceType === controllerDeviceType) return AdminError.InvalidRequest;
    const hasPath = opts.path !== undefined && opts.path !== '';
    const bstype = opts.bstype ?? DEFAULT_BSTYPE;
    const storeType = this.storeTypes.get(bstype);
    if (hasPath && !storeType) return AdminError.InvalidRequest;
    const oflags = parseOflags(opts.bsoflags ?? '');
    if (!oflags) return AdminError.InvalidRequest;
    if (storeType && oflags.some((f) => !storeType.supportedOflags.includes(f)))
      return AdminError.InvalidRequest;
    // tgt: an invalid block size is only logged and 512 is used
    const blockSize =
      opts.blocksize !== undefined && blockShiftOf(opts.blocksize) >= 9 && opts.blocksize <= 65536
        ? opts.blocksize
        : DEFAULT_BLOCK_SIZE;

    this.pendingLuns.add(key);
    try {
      // SPC-4 5.13.5: the persistent reservations saved with APTPL come back with the LU; an
      // unusable file refuses the LU rather than silently dropping someone's reservation.
      let prFile: PrStateFile | null = null;
      let prState: PrSnapshot | null = null;
      if (this.prStateDir !== null) {
        prFile = new PrStateFile(prStatePath(this.prStateDir, target.name, lun), target.name, lun);
        try {
          prState = await prFile.load();
        } catch {
          return AdminError.InvalidRequest;
        }
      }
      let store: BackingStore | null = null;
      if (hasPath) {
        try {
          store = await openStore(storeType!, opts.path!, oflags, opts.bsopts, blockSize);
        } catch {
          return AdminError.InvalidRequest;
        }
        if (this.targets.get(tid) !== target) {
          await store.close().catch(() => undefined);
          return AdminError.NoTarget;
        }
      }
      const backing = { storeType: bstype, bsopts: opts.bsopts ?? '', bsoflags: oflags.join(':') };
      const lu = new LogicalUnit(target, lun, deviceType, store, backing, blockSize);
      lu.pr.persistence = prFile;
      if (prState) lu.pr.restore(prState);
      if (!store) {
        // tgt: a disk created without a backing store is removable with no medium
        lu.removable = true;
        lu.online = false;
      }
      target.addLu(lu);
      return AdminError.Success;
    } finally {
      this.pendingLuns.delete(key);
    }
  }

  /** `logicalunit delete`: LUN 0 is refused, as is an LU with commands in flight. */
  async deleteLu(tid: number, lun: bigint): Promise<AdminError> {
    const target = this.targets.get(tid);
    if (!target) return AdminError.NoTarget;
    if (lun === 0n) return AdminError.InvalidRequest;
    const lu = target.findLu(lun);
    if (!lu) return AdminError.NoLun;
    if (lu.activeCommands > 0 || lu.sanitize !== null) return AdminError.LunActive;
    target.removeLu(lu);
    await lu.store?.close().catch(() => undefined);
    lu.store = null;
    return AdminError.Success;
  }

  /**
   * `logicalunit update --params k=v,...` (tgt §2.4). All keys are checked before anything
   * changes; an unknown key or bad value is InvalidRequest; `online=0` under PREVENT is
   * PreventRemoval; `path` only while offline.
   */
  async updateLu(tid: number, lun: bigint, params: Record<string, string>): Promise<AdminError> {
    const target = this.targets.get(tid);
    if (!target) return AdminError.NoTarget;
    const lu = target.findLu(lun);
    if (!lu) return AdminError.NoLun;

    const apply: (() => void)[] = [];
    let newPath: string | undefined;
    let modeChanged = false;
    let resize = false;
    const identityKeys: Record<string, keyof LuIdentity> = {
      vendor_id: 'vendorId',
      product_id: 'productId',
      product_rev: 'productRev',
      scsi_id: 'scsiId',
      scsi_sn: 'scsiSn',
    };
    for (const [k, v] of Object.entries(params)) {
      const field = identityKeys[k];
      if (field) {
        if (v.length > IDENTITY_LIMITS[field]) return AdminError.InvalidRequest;
        apply.push(() => (lu.identity[field] = v));
        continue;
      }
      switch (k) {
        case 'readonly':
        case 'removable':
        case 'thin_provisioning':
        case 'online':
        case 'sense_format': {
          const on = parseFlag(v);
          if (on === undefined) return AdminError.InvalidRequest;
          if (k === 'readonly') apply.push(() => (lu.readonly = on));
          else if (k === 'removable') apply.push(() => (lu.removable = on));
          else if (k === 'thin_provisioning') apply.push(() => (lu.thinProvisioning = on));
          else if (k === 'sense_format') apply.push(() => (lu.descriptorSense = on));
          else {
            if (!on && lu.preventRemoval) return AdminError.PreventRemoval;
            apply.push(() => setOnline(lu, on && lu.store !== null));
          }
          break;
        }
        case 'rotation_rate':
        case 'lbppbe':
        case 'la_lba':
        case 'optimal_xfer_gran':
        case 'optimal_xfer_len': {
          const max = {
            rotation_rate: 0xffff,
            lbppbe: 0x0f,
            la_lba: 0x3fff,
            optimal_xfer_gran: 0xffff,
            optimal_xfer_len: 0xffffffff,
          }[k];
          const n = parseUint(v, max);
          if (n === undefined) return AdminError.InvalidRequest;
          if (k === 'rotation_rate') apply.push(() => (lu.rotationRate = n));
          else if (k === 'lbppbe') apply.push(() => (lu.lbppbe = n));
          else if (k === 'la_lba') apply.push(() => (lu.laLba = n));
          else if (k === 'optimal_xfer_gran') apply.push(() => (lu.optimalXferGran = n));
          else apply.push(() => (lu.optimalXferLen = n));
          break;
        }
        case 'abandon_timeout': {
          const n = parseUint(v, 3_600_000);
          if (n === undefined) return AdminError.InvalidRequest;
          apply.push(() => (lu.abandonTimeoutMs = n));
          break;
        }
        case 'mode_page': {
          const mp = parseModePage(v);
          if (!mp) return AdminError.InvalidRequest;
          apply.push(() => lu.modePages.set(mp.page, mp.subpage, mp.body));
          modeChanged = true;
          break;
        }
        case 'resize': {
          // tgt-ts: re-read the backing store's size after it was grown (docs/live-changes.md).
          if (parseFlag(v) !== true || !lu.store || REOPEN_LOSES_DATA.has(lu.backing.storeType))
            return AdminError.InvalidRequest;
          resize = true;
          break;
        }
        case 'path':
          if (lu.online || v === '' || lu.deviceType === controllerDeviceType)
            return AdminError.InvalidRequest;
          newPath = v;
          break;
        default:
          return AdminError.InvalidRequest;
      }
    }
    if (newPath !== undefined) {
      const err = await this.loadMedium(lu, newPath);
      if (err !== AdminError.Success) return err;
    }
    if (resize) {
      const err = await this.reloadStore(lu);
      if (err !== AdminError.Success) return err;
    }
    for (const fn of apply) fn();
    if (modeChanged) modeParametersChanged(lu, null);
    return AdminError.Success;
  }

  /**
   * `--params resize=1`: reopen the LU's backing store to learn its new size (a store's size is
   * fixed while open) and, when it changed, report CAPACITY DATA HAS CHANGED to every I_T nexus
   * (SBC-4 4.6). Commands already running finish on the old handle, which is closed after them.
   */
  private async reloadStore(lu: LogicalUnit): Promise<AdminError> {
    const old = lu.store;
    const type = this.storeTypes.get(lu.backing.storeType);
    if (!old || !type) return AdminError.InvalidRequest;
    const oflags = lu.backing.bsoflags.split(':');
    let store: BackingStore;
    try {
      store = await openStore(type, old.path, oflags, lu.backing.bsopts, lu.blockSize);
    } catch {
      return AdminError.InvalidRequest;
    }
    if (lu.store !== old) {
      // The medium was replaced while we reopened it: keep the new one.
      await store.close().catch(() => undefined);
      return AdminError.InvalidRequest;
    }
    const running = lu.taskSet.runningCommands();
    lu.store = store;
    if (store.size !== old.size)
      for (const n of lu.target.nexuses.values())
        n.luInfo(lu).addUnitAttention(SenseReason.CapacityDataChanged);
    void lu.taskSet
      .whenFinished(running)
      .then(() => old.close())
      .catch(() => undefined);
    return AdminError.Success;
  }

  /** Replace an offline LU's medium (tgt's tgt_device_path_update): the LU comes online. */
  private async loadMedium(lu: LogicalUnit, path: string): Promise<AdminError> {
    const type = this.storeTypes.get(lu.backing.storeType);
    if (!type) return AdminError.InvalidRequest;
    const oflags = lu.backing.bsoflags.split(':');
    let store: BackingStore;
    try {
      store = await openStore(type, path, oflags, lu.backing.bsopts, lu.blockSize);
    } catch {
      return AdminError.InvalidRequest;
    }
    const old = lu.store;
    lu.store = store;
    await old?.close().catch(() => undefined);
    setOnline(lu, true);
    return AdminError.Success;
  }

  /** `target bind -I/-Q`: ACL rules; duplicates are AclExist, bad addresses InvalidRequest. */
  bindAcl(tid: number, kind: 'address' | 'name', value: string): AdminError {
    const target = this.targets.get(tid);
    if (!target) return AdminError.NoTarget;
    const list = kind === 'address' ? target.acl.addresses : target.acl.names;
    if (value === '' || (kind === 'address' && !isValidAddressRule(value))) return AdminError.InvalidRequest;
    if (list.includes(value)) return AdminError.AclExist;
    list.push(value);
    return AdminError.Success;
  }

  /** `target unbind -I/-Q`. */
  unbindAcl(tid: number, kind: 'address' | 'name', value: string): AdminError {
    const target = this.targets.get(tid);
    if (!target) return AdminError.NoTarget;
    const list = kind === 'address' ? target.acl.addresses : target.acl.names;
    const i = list.indexOf(value);
    if (i < 0) return AdminError.AclNoExist;
    list.splice(i, 1);
    return AdminError.Success;
  }

  /** `account new`. */
  accountNew(user: string, password: string): AdminError {
    if (user === '' || password === '') return AdminError.InvalidRequest;
    if (this.accounts.has(user)) return AdminError.UserExist;
    this.accounts.set(user, password);
    return AdminError.Success;
  }

  /** `account delete`: also unbinds the account from every target and from discovery. */
  accountDelete(user: string): AdminError {
    if (!this.accounts.has(user)) return AdminError.NoUser;
    for (const holder of [this.discoveryAccounts, ...[...this.targets.values()].map((t) => t.accounts)]) {
      holder.incoming = holder.incoming.filter((u) => u !== user);
      if (holder.outgoing === user) delete holder.outgoing;
    }
    this.accounts.delete(user);
    return AdminError.Success;
  }

  /** Account bindings of a target, or the discovery bindings for GLOBAL_TID. */
  private bindingsOf(tid: number): { incoming: string[]; outgoing?: string } | undefined {
    return tid === GLOBAL_TID ? this.discoveryAccounts : this.targets.get(tid)?.accounts;
  }

  /** `account bind [--tid] [--outgoing]` (tgt's account_ctl). */
  accountBind(tid: number, user: string, outgoing: boolean): AdminError {
    const holder = this.bindingsOf(tid);
    if (!holder) return AdminError.NoTarget;
    if (!this.accounts.has(user)) return AdminError.NoUser;
    if (outgoing) {
      if (holder.outgoing !== undefined) return AdminError.OutAccountExist;
      holder.outgoing = user;
    } else {
      if (holder.incoming.includes(user)) return AdminError.UserExist;
      holder.incoming.push(user);
    }
    return AdminError.Success;
  }

  /** `account unbind [--tid] [--outgoing]`. */
  accountUnbind(tid: number, user: string, outgoing: boolean): AdminError {
    const holder = this.bindingsOf(tid);
    if (!holder) return AdminError.NoTarget;
    if (!this.accounts.has(user)) return AdminError.NoUser;
    if (outgoing) {
      if (holder.outgoing !== user) return AdminError.NoUser;
      delete holder.outgoing;
    } else {
      const i = holder.incoming.indexOf(user);
      if (i < 0) return AdminError.NoUser;
      holder.incoming.splice(i, 1);
    }
    return AdminError.Success;
  }

  /** Password of an account. */
  lookupAccount(user: string): string | undefined {
    return this.accounts.get(user);
  }
}

/** Media present/absent; bringing it online tells every nexus the medium may have changed. */
function setOnline(lu: LogicalUnit, online: boolean): void {
  if (online && !lu.online)
    for (const n of lu.target.nexuses.values())
      n.luInfo(lu).addUnitAttention(SenseReason.NotReadyToReadyChange);
  lu.online = online;
}

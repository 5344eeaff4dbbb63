/**
 * A logical unit (tgt's scsi_lu): device type, backing store, identity, flags, mode pages,
 * geometry, the SPC-2 reservation holder, persistent reservations and the task set.
 */
import type { BackingStore } from '../backing/store.js';
import type { DeviceType } from './device/types.js';
import type { SanitizeOperation } from './device/sanitize.js';
import { executeCommand } from './execute.js';
import { ModePages } from './mode-pages.js';
import type { ItNexus } from './nexus.js';
import { PersistentReservations, registrationCovers } from './pr.js';
import { TaskSet } from './task-set.js';
import type { ScsiTarget } from './target.js';

/** INQUIRY / VPD identity, changeable with `logicalunit update --params`. */
export interface LuIdentity {
  vendorId: string;
  productId: string;
  productRev: string;
  scsiId: string;
  scsiSn: string;
}

/** Field limits of the identity strings (tgt §2.4). */
export const IDENTITY_LIMITS: Readonly<Record<keyof LuIdentity, number>> = {
  vendorId: 8,
  productId: 16,
  productRev: 4,
  scsiId: 36,
  scsiSn: 36,
};

/** Where the LU's media comes from (shown by `target show`). */
export interface LuBacking {
  /** Backing store type name ("rdwr", "memory", "null"). */
  storeType: string;
  /** Store-specific options (--bsopts). */
  bsopts: string;
  /** "" | "sync" | "direct" | "sync:direct" (--bsoflags). */
  bsoflags: string;
}

/** WRITE ATOMIC(16) limit in bytes: the LU runs nothing else meanwhile, so keep it short. */
export const MAX_ATOMIC_BYTES = 1024 * 1024;

/** log2 of a power of two, or -1. */
export function blockShiftOf(size: number): number {
  if (!Number.isInteger(size) || size < 1 || (size & (size - 1)) !== 0) return -1;
  return 31 - Math.clz32(size);
}

/** Default `abandon_timeout`: long enough for a slow disk, short of initiators' TMF timeouts. */
export const DEFAULT_ABANDON_TIMEOUT_MS = 10_000;

export class LogicalUnit {
  readonly target: ScsiTarget;
  readonly lun: bigint;
  readonly deviceType: DeviceType;
  /** The medium; null when there is none (offline removable disk, controller). */
  store: BackingStore | null;
  backing: LuBacking;
  blockSize: number;
  blockShift: number;
  readonly identity: LuIdentity;

  /** Media present and usable (`online` param; START STOP UNIT load/eject). */
  online = true;
  removable = false;
  /** The `readonly` param (the store may also be read-only: see writeProtected). */
  readonly = false;
  thinProvisioning = false;
  /** VPD B1 MEDIUM ROTATION RATE (0 not reported, 1 non-rotating). */
  rotationRate = 0;
  /**
   * How long task management waits for a command stuck in the store before abandoning it
   * (`--params abandon_timeout=MS`, 0: wait for ever); see TaskSet.whenFinished.
   */
  abandonTimeoutMs = DEFAULT_ABANDON_TIMEOUT_MS;
  /** READ CAPACITY(16) LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT. */
  lbppbe = 0;
  /** READ CAPACITY(16) LOWEST ALIGNED LOGICAL BLOCK ADDRESS. */
  laLba = 0;
  /** VPD B0 OPTIMAL TRANSFER LENGTH GRANULARITY / OPTIMAL TRANSFER LENGTH (blocks). */
  optimalXferGran = 0;
  optimalXferLen = 0;

  /** The sanitize operation in progress (SBC-4 4.11), or null. */
  sanitize: SanitizeOperation | null = null;
  /** Set when the last sanitize failed (failure mode, SBC-4 4.11.4); `ause` as it was asked. */
  sanitizeFailure: { ause: boolean } | null = null;

  readonly modePages = new ModePages();
  /** SPC-2 RESERVE holder (SPC-2 7.21), or null. */
  reservation: ItNexus | null = null;
  /**
   * Persistent reservations (SPC-4 5.13); unit attentions go to the nexuses of the registered
   * port, or of every port of the name for a name-only registration.
   */
  readonly pr = new PersistentReservations((port, reason) => {
    for (const nexus of this.target.nexuses.values())
      if (registrationCovers(port, nexus.initiatorPort)) nexus.luInfo(this).addUnitAttention(reason);
  });
  readonly taskSet: TaskSet;

  constructor(
    target: ScsiTarget,
    lun: bigint,
    deviceType: DeviceType,
    store: BackingStore | null,
    backing: LuBacking,
    blockSize: number,
  ) {
    this.target = target;
    this.lun = lun;
    this.deviceType = deviceType;
    this.store = store;
    this.backing = backing;
    this.blockSize = blockSize;
    this.blockShift = Math.max(0, blockShiftOf(blockSize));
    this.identity = {
      vendorId: 'IET',
      productId: deviceType.productId,
      productRev: '0001',
      // tgt §1.5 default ids: "IET     " + tid (4 hex) + lun (4 hex); "beaf" + tid + lun (decimal)
      scsiId: `IET     ${target.tid.toString(16).padStart(4, '0')}${lun.toString(16).padStart(4, '0')}`.slice(
        0,
        36,
      ),
      scsiSn: `beaf${target.tid}${lun}`.slice(0, 36),
    };
    this.taskSet = new TaskSet((cmd, nexus) => {
      const sharing = this.target.sharing;
      if (sharing === null) executeCommand(cmd, nexus, this);
      else sharing.start(cmd, nexus, this);
    });
    deviceType.initModePages(this);
  }

  /** Backing store path as shown by tgtadm ("None" without media). */
  get path(): string {
    return this.store?.path ?? 'None';
  }

  /** Capacity in bytes (whole blocks only). */
  get size(): number {
    return this.blocks * this.blockSize;
  }

  /** Capacity in logical blocks. */
  get blocks(): number {
    return this.store ? Math.floor(this.store.size / this.blockSize) : 0;
  }

  /** Control mode page SWP (software write protect, SPC-4 7.5.8). */
  get swp(): boolean {
    const p = this.modePages.get(0x0a, 0);
    return p !== undefined && (p.current[4]! & 0x08) !== 0;
  }

  /** Descriptor-format sense: `sense_format=1` or control mode page D_SENSE. */
  get descriptorSense(): boolean {
    const p = this.modePages.get(0x0a, 0);
    return p !== undefined && (p.current[2]! & 0x04) !== 0;
  }

  /** Set D_SENSE in the control page (what `sense_format` changes). */
  set descriptorSense(on: boolean) {
    const p = this.modePages.get(0x0a, 0);
    if (p) p.current[2] = on ? p.current[2]! | 0x04 : p.current[2]! & ~0x04;
  }

  /** Caching mode page WCE (SBC-4 6.5.5); without a caching page writes are write-through. */
  get writeCacheEnabled(): boolean {
    const p = this.modePages.get(0x08, 0);
    return p !== undefined && (p.current[2]! & 0x04) !== 0;
  }

  /** Writes refused with DATA PROTECT: readonly param, read-only store or SWP. */
  get writeProtected(): boolean {
    return this.readonly || this.swp || (this.store?.capabilities.readonly ?? false);
  }

  /** Thin provisioning is advertised only when the store can really deallocate. */
  get unmapSupported(): boolean {
    return this.thinProvisioning && (this.store?.capabilities.unmap ?? false) && !!this.store?.unmap;
  }

  /** MAXIMUM ATOMIC TRANSFER LENGTH in blocks (VPD B0): 1 MiB, at least one block. */
  get maxAtomicBlocks(): number {
    return Math.max(1, Math.floor(MAX_ATOMIC_BYTES / this.blockSize));
  }

  /** OPTIMAL UNMAP GRANULARITY in blocks: the store's allocation unit (at least one block). */
  get unmapGranularity(): number {
    const bytes = this.store?.allocationGranularity ?? this.blockSize;
    return Math.max(1, Math.floor(bytes / this.blockSize));
  }

  /** Some I_T nexus holds PREVENT ALLOW MEDIUM REMOVAL (shown as "Prevent removal"). */
  get preventRemoval(): boolean {
    for (const nexus of this.target.nexuses.values()) if (nexus.peekLuInfo(this)?.prevent) return true;
    return false;
  }

  /** Commands running or queued on this LU. */
  get activeCommands(): number {
    return this.taskSet.size;
  }
}

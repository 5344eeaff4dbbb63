/**
 * The fabric ("LLD", low-level driver) interface: what management needs from a transport,
 * after tgt's `struct tgt_driver`. The iSCSI fabric implements it; the core and management
 * only ever see this interface, so a second fabric (iSER, a loopback) plugs in beside it.
 */
import type { AdminError } from './admin-error.js';
import type { ScsiTarget } from './target.js';

/** Per-connection counters for `session stat` / `connection stat` (tgt's iscsi_conn stats). */
export interface ConnectionStats {
  sid: number;
  cid: number;
  rxDataOctets: number | bigint;
  txDataOctets: number | bigint;
  dataOutPdus: number;
  dataInPdus: number;
  commandPdus: number;
  responsePdus: number;
}

export type DriverState = 'uninitialized' | 'ready' | 'error' | 'stopped';

/** Result of a management hook: an AdminError, plus text to print on success. */
export interface DriverReply {
  err: AdminError;
  text?: string;
}

export interface TargetDriver {
  /** Name used by `--lld` ("iscsi"). */
  readonly name: string;
  readonly state: DriverState;

  /** A target of this driver was created (set up per-target parameters). */
  targetCreated(target: ScsiTarget): void;
  /**
   * A target is about to be deleted. Return TargetActive if it has sessions and `force` is
   * false; with `force`, close its connections first.
   */
  targetDestroy(target: ScsiTarget, force: boolean): AdminError;
  /** `target update --name N --value V` for names the core does not handle (not "state"). */
  targetUpdate(target: ScsiTarget, name: string, value: string): AdminError;
  /** `target show --tid N`: the driver's per-target parameter listing. */
  targetShowParams(target: ScsiTarget): string;
  /** Extra lines under "System information:" in `target show` (tgt: Nop interval/count). */
  targetShowSystemInfo(target: ScsiTarget): string[];

  /** `portal new/delete --param portal=ADDR:PORT`. */
  portalCreate(spec: string): Promise<AdminError>;
  portalDestroy(spec: string): Promise<AdminError>;
  /** `portal show`. */
  portalShow(): string;

  /** `connection show --tid N`. */
  connectionShow(target: ScsiTarget): string;
  /** `connection delete --tid --sid --cid`. */
  connectionDelete(target: ScsiTarget, sid: bigint, cid: number): AdminError;

  /** Lines appended to `system show` (tgt's iSCSI driver prints its iSNS block). */
  systemShow(): string;
  /** `system update --name N --value V` for names the core does not handle. */
  systemUpdate(name: string, value: string): AdminError;

  /** Connection counters of session `sid`; null when there is no such session. */
  sessionConnectionStats?(sid: bigint): ConnectionStats[] | null;
  /** One connection's counters, or NoSession / NoConnection. */
  connectionStats?(sid: bigint, cid: number): ConnectionStats | AdminError;

  /** Stop listening and close every connection (daemon shutdown). */
  shutdown(): Promise<void>;
}

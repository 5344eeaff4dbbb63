/**
 * A SCSI target (tgt's struct target): its LUs in ascending order, I_T nexuses, initiator ACL
 * and CHAP account bindings.
 */
import { type AclMatch, aclAllows } from './acl.js';
import type { LogicalUnit } from './lu.js';
import { ItNexus, type NexusInfo } from './nexus.js';
import { SenseReason } from './sense.js';
import type { TargetSharing } from './sharing/hooks.js';

export type TargetState = 'ready' | 'offline';

export class ScsiTarget {
  readonly tid: number;
  readonly name: string;
  /** Fabric driver name ("iscsi"). */
  readonly lld: string;
  state: TargetState = 'ready';
  /** LUs in ascending LUN order (LUN 0 first). */
  luns: LogicalUnit[] = [];
  readonly nexuses = new Map<number, ItNexus>();
  /** Address rules then name rules, each in bind order (tgt §4.6). */
  readonly acl: { addresses: string[]; names: string[] } = { addresses: [], names: [] };
  /** How address and name rules combine (`target update --name acl_match`); tgt's OR by default. */
  aclMatch: AclMatch = 'any';
  /** CHAP accounts bound to this target: incoming in bind order, at most one outgoing. */
  readonly accounts: { incoming: string[]; outgoing?: string } = { incoming: [] };
  /**
   * Every target of the daemon (set by TargetSystem): EXTENDED COPY finds its copy targets among
   * their LUs.
   */
  daemonTargets: () => Iterable<ScsiTarget> = () => [this];
  /** Set when the target is shared between processes (sharing/hooks.ts). */
  sharing: TargetSharing | null = null;
  /** Small LUNs (what initiators can address) for the per-command lookup. */
  private readonly byNumber = new Map<number, LogicalUnit>();

  constructor(tid: number, name: string, lld: string) {
    this.tid = tid;
    this.name = name;
    this.lld = lld;
  }

  /** tgt §4.6 (ANY address rule OR ANY name rule), or both kinds with acl_match=all. */
  aclAllows(initiatorAddress: string, initiatorName: string): boolean {
    return aclAllows(this.acl, initiatorAddress, initiatorName, this.aclMatch);
  }

  /**
   * Create the I_T nexus for a new session; every LU starts with POWER ON, RESET pending.
   * `initiatorPort` identifies it for persistent reservations (iSCSI: "<name>,i,0x<ISID>").
   */
  createNexus(id: number, initiatorName: string, info: NexusInfo, initiatorPort?: string): ItNexus {
    if (this.nexuses.has(id)) throw new Error(`I_T nexus ${id} already exists on target ${this.tid}`);
    const nexus = new ItNexus(id, this, initiatorName, info, initiatorPort);
    this.nexuses.set(id, nexus);
    this.sharing?.nexusOpened(nexus);
    return nexus;
  }

  /** The LU with this number, if any. */
  findLu(lun: bigint): LogicalUnit | undefined {
    if (lun <= BigInt(Number.MAX_SAFE_INTEGER)) return this.byNumber.get(Number(lun));
    return this.luns.find((lu) => lu.lun === lun);
  }

  /** Data path lookup by decoded LUN number. */
  luByNumber(n: number): LogicalUnit | undefined {
    return this.byNumber.get(n);
  }

  /** Insert an LU in LUN order; other LUs report REPORTED LUNS DATA HAS CHANGED (SPC-4 5.14). */
  addLu(lu: LogicalUnit): void {
    const i = this.luns.findIndex((l) => l.lun > lu.lun);
    if (i < 0) this.luns.push(lu);
    else this.luns.splice(i, 0, lu);
    if (lu.lun <= BigInt(Number.MAX_SAFE_INTEGER)) this.byNumber.set(Number(lu.lun), lu);
    for (const nexus of this.nexuses.values()) {
      for (const other of this.luns)
        if (other !== lu) nexus.luInfo(other).addUnitAttention(SenseReason.ReportedLunsDataChanged);
      nexus.luInfo(lu).addUnitAttention(SenseReason.PowerOnReset);
    }
  }

  /** Remove an LU; the remaining LUs report REPORTED LUNS DATA HAS CHANGED. */
  removeLu(lu: LogicalUnit): void {
    this.luns = this.luns.filter((l) => l !== lu);
    if (this.byNumber.get(Number(lu.lun)) === lu) this.byNumber.delete(Number(lu.lun));
    for (const nexus of this.nexuses.values()) {
      nexus.dropLu(lu);
      for (const other of this.luns)
        nexus.luInfo(other).addUnitAttention(SenseReason.ReportedLunsDataChanged);
    }
  }
}

/**
 * tgtd --workers with shared targets: the sessions of a target tgtd serves itself are spread
 * over tgtd and its workers (docs/multicore.md, "sessions spread"). tgtd stays the target's
 * home (src/scsi/sharing/home.ts): its LUs' SCSI state lives here. Each worker holds a copy of
 * the target (configuration and LUs, on the same backing files) and serves the sessions it is
 * given as a guest (src/scsi/sharing/guest.ts).
 *
 * - A worker gets copies of every shared target before it serves anything (seed), and each
 *   management change to a shared target is made here, then on the copies (route.ts).
 * - A new session goes to the process with the fewest sessions of the target, counting logins
 *   on their way; a login of an initiator port (InitiatorName + ISID) that has a session there
 *   goes where that session is, so that reinstatement (RFC 7143 6.3.5) finds it. A target with
 *   an LU that cannot be leased (a memory store) keeps its new sessions here.
 */
import type { Buffer } from 'node:buffer';
import { LoginRequestView } from '../../iscsi/pdu.js';
import { findKey, parseText } from '../../iscsi/text.js';
import type { IscsiDriver } from '../../iscsi/driver.js';
import { leasable } from '../../scsi/sharing/fast-path.js';
import { SharingHome } from '../../scsi/sharing/home.js';
import type { ScsiTarget } from '../../scsi/target.js';
import type { TargetSystem } from '../../scsi/system.js';
import { captureState, partialState } from '../state.js';
import { defaultRequest, MgmtMode, MgmtOp } from '../wire.js';
import type { WorkerPool } from './pool.js';

/** How long a login counts as a session of the process it was placed on before it shows up. */
const PLACEMENT_TTL_MS = 5_000;

/** `here` stands for this process in placements. */
const HERE = -1;

export class SessionSharing {
  readonly home = new SharingHome();
  /** Running workers that hold a copy of each shared target (new sessions may go there). */
  private readonly copies = new Map<number, Set<number>>();
  /** Workers whose copy refused a change (copyDiverged): they keep the sessions they have. */
  private readonly diverged = new Map<number, Set<number>>();
  /** Logins placed and not yet sessions: per target, where and when. */
  private readonly placing = new Map<number, Array<{ where: number; at: number }>>();

  constructor(
    private readonly system: TargetSystem,
    private readonly pool: WorkerPool,
    private readonly report: (message: string) => void,
  ) {
    pool.onShare = (index, m) => {
      if (m.kind === 'share') this.home.receive(index, m.m);
      else this.coldReset(m.tid, index);
    };
    this.home.onNexusOpened = (tid, guest) => this.settled(tid, guest ?? HERE);
  }

  isShared(tid: number): boolean {
    return this.copies.has(tid);
  }

  get any(): boolean {
    return this.copies.size > 0;
  }

  /** The running workers holding a copy of `tid` that new sessions may go to. */
  copyHolders(tid: number): number[] {
    return [...(this.copies.get(tid) ?? [])].filter((i) => this.pool.isAlive(i));
  }

  /** The running workers that may serve sessions of `tid`, diverged copies included (views, resets). */
  servers(tid: number): number[] {
    return [...(this.copies.get(tid) ?? []), ...(this.diverged.get(tid) ?? [])].filter((i) =>
      this.pool.isAlive(i),
    );
  }

  /** Whether `tsih` names a nexus of a shared target here (a guest's session may still be draining). */
  nexusExists(tsih: number): boolean {
    for (const tid of this.copies.keys()) if (this.system.targets.get(tid)?.nexuses.has(tsih)) return true;
    return false;
  }

  /** Share target `tid` (served here) with every worker; starts the workers not running yet. */
  async share(tid: number): Promise<void> {
    const target = this.system.targets.get(tid);
    if (!target || this.copies.has(tid)) return;
    this.home.share(target);
    this.copies.set(tid, new Set());
    // New workers get the copy as they are prepared (seed).
    await this.pool.fill().catch((e: Error) => this.report(`can't start workers: ${e.message}`));
    for (const index of this.pool.live()) if (!this.copies.get(tid)!.has(index)) await this.copy(index, tid);
  }

  /** Target `tid` is deleted (here and in the copies). */
  unshare(tid: number): void {
    this.copies.delete(tid);
    this.diverged.delete(tid);
    this.placing.delete(tid);
    this.home.unshare(tid);
  }

  /** A new worker, before it serves anything: copies of every shared target. */
  async seed(index: number): Promise<void> {
    this.home.addGuest(index, (m) => this.pool.tell(index, { kind: 'share', m }));
    for (const tid of this.copies.keys()) await this.copy(index, tid);
  }

  /** Worker `index` is gone: its sessions are lost (its nexuses here close). */
  workerGone(index: number): void {
    this.home.removeGuest(index);
    for (const holders of [...this.copies.values(), ...this.diverged.values()]) holders.delete(index);
  }

  /** The guest serving session `sid` (a nexus id) of a shared target; undefined: none does. */
  guestOfSession(sid: bigint): number | undefined {
    for (const tid of this.copies.keys()) {
      const nexus = this.system.targets.get(tid)?.nexuses.get(Number(sid));
      const guest = nexus ? this.home.guestOfNexus(tid, nexus) : undefined;
      if (guest !== undefined) return guest;
    }
    return undefined;
  }

  /**
   * A management change made here failed on worker `index`'s copy of `tid`: it no longer is
   * one, so no new session goes there, and those it serves keep going with every command run
   * here (no lease on a copy that may not match).
   */
  copyDiverged(index: number, tid: number, err: number): void {
    // Its sessions run nothing under a lease any more: tgtd runs every command of theirs.
    this.home.distrust(tid, index);
    if (!this.copies.get(tid)?.delete(index)) return;
    let set = this.diverged.get(tid);
    if (!set) this.diverged.set(tid, (set = new Set()));
    set.add(index);
    this.report(
      `worker ${index} refused a change to its copy of target ${tid} (error ${err}); new sessions stay here`,
    );
  }

  /** Ends this process's sessions of a target (set by tgtd: its iSCSI driver). */
  endSessionsHere: ((tid: number) => void) | null = null;

  /**
   * A TARGET COLD RESET was answered by worker `from` (null: here, which has ended its own
   * sessions already): every other process ends its sessions of `tid` (RFC 7143 11.5.1).
   */
  coldReset(tid: number, from: number | null): void {
    if (!this.copies.has(tid)) return;
    if (from !== null) this.endSessionsHere?.(tid);
    for (const index of this.copyHolders(tid))
      if (index !== from) this.pool.tell(index, { kind: 'cold-reset', tid });
  }

  /** Make a copy of `tid` on worker `index` and make it a guest of it. */
  private async copy(index: number, tid: number): Promise<void> {
    const saved = captureState(this.system).targets.find((t) => t.tid === tid);
    if (!saved) return;
    // A copy an earlier delete did not reach (timed out) would make the restore fail.
    await this.pool.call(index, { ...defaultRequest(MgmtMode.Target, MgmtOp.Delete), tid, force: 1 }, '');
    try {
      await this.pool.restore(index, partialState({ targets: [saved] }));
    } catch (e) {
      // Its sessions stay here: the worker is simply not a place for them.
      this.report(`worker ${index} can't serve sessions of target ${tid}: ${(e as Error).message}`);
      return;
    }
    this.pool.tell(index, { kind: 'guest', tid, join: true });
    this.copies.get(tid)?.add(index);
  }

  /**
   * Where the connection whose first Login PDU is `pdu` goes, for shared target `target`: a
   * worker index, or undefined for this process.
   */
  place(target: ScsiTarget, pdu: Buffer, driver: IscsiDriver): number | undefined {
    const login = new LoginRequestView(pdu);
    const holders = this.copyHolders(target.tid);
    const serving = this.servers(target.tid);
    if (login.tsih !== 0) {
      // A connection joining a session (RFC 7143 6.3.4): where that session is.
      const guest = this.guestOf(target, login.tsih);
      return guest !== undefined && serving.includes(guest) ? guest : undefined;
    }
    const name = initiatorName(pdu);
    if (name === undefined) return undefined;
    // A target with an LU no guest can run commands of (a RAM disk is one process's memory):
    // its new sessions stay here, where they need no hop.
    if (!target.luns.every((lu) => lu.store === null || leasable(lu))) return undefined;
    const isid = login.isid.toString('hex');
    if (driver.findSession(name, isid, target)) return undefined;
    // Reinstatement (RFC 7143 6.3.5) happens where the old session is.
    const guest = this.home.guestOfPort(target.tid, `${name},i,0x${isid}`);
    if (guest !== undefined) return serving.includes(guest) ? guest : undefined;
    return this.leastLoaded(target, holders);
  }

  private guestOf(target: ScsiTarget, tsih: number): number | undefined {
    const nexus = target.nexuses.get(tsih);
    if (!nexus) return undefined;
    return this.home.guestOfNexus(target.tid, nexus);
  }

  /** The process with the fewest sessions of `target` and logins on their way; here on a tie. */
  private leastLoaded(target: ScsiTarget, holders: number[]): number | undefined {
    const now = Date.now();
    const placing = (this.placing.get(target.tid) ?? []).filter((p) => now - p.at < PLACEMENT_TTL_MS);
    const byGuest = this.home.sessionsByGuest(target.tid);
    let remote = 0;
    for (const n of byGuest.values()) remote += n;
    const load = (where: number): number =>
      (where === HERE ? target.nexuses.size - remote : (byGuest.get(where) ?? 0)) +
      placing.filter((p) => p.where === where).length;
    let best = HERE;
    let bestLoad = load(HERE);
    for (const index of holders) {
      const l = load(index);
      if (l < bestLoad) {
        best = index;
        bestLoad = l;
      }
    }
    placing.push({ where: best, at: now });
    this.placing.set(target.tid, placing);
    return best === HERE ? undefined : best;
  }

  /** A session started (its nexus appeared) where a login was placed: it counts as a session now. */
  settled(tid: number, where: number): void {
    const placing = this.placing.get(tid);
    const i = placing?.findIndex((p) => p.where === where) ?? -1;
    if (i >= 0) placing!.splice(i, 1);
  }
}

/** InitiatorName of a first Login PDU (RFC 7143 13.6), undefined when it cannot be read. */
function initiatorName(pdu: Buffer): string | undefined {
  const ahs = pdu[4]! * 4;
  const length = pdu.readUIntBE(5, 3);
  try {
    return findKey(parseText(pdu.subarray(48 + ahs, 48 + ahs + length)), 'InitiatorName');
  } catch {
    return undefined;
  }
}

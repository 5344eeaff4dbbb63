/**
 * The guest side of shared targets (hooks.ts): a process serving some of the sessions of a
 * target whose SCSI state another process (its home) holds. The guest has a copy of the target,
 * its LUs opened on the same backing files.
 *
 * - Its sessions' nexuses are announced to the home (`open`, `close`).
 * - A command runs here only if it arrived while its nexus held a lease on the LU, and only if
 *   fast-path.ts lists it; the others go to the home, which answers with status, sense and
 *   Data-In. Commands that will go home are announced there as they arrive, before their data
 *   (SAM-5 8.6): they are older tasks for every command of every process that arrives after.
 * - The local task set still orders this process's commands (an ORDERED command waits here for
 *   this guest's older ones, then at home for everyone else's).
 * - A nexus asks for a lease on an LU when a command that could use one comes without it. A
 *   command that must not be overtaken (not SIMPLE) gives up every lease of the guest on its
 *   LU before it goes home, so that nothing younger runs here before it. A lease given up or
 *   revoked is let go once the commands admitted under it have ended, those still waiting
 *   for their data included.
 * - Task management that reaches beyond the nexus's own commands (CLEAR TASK SET, resets) and
 *   QUERY ASYNCHRONOUS EVENT is carried out at home; ABORT TASK and ABORT TASK SET here, with
 *   the home asked to drop the copies of commands that still wait there.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { debuglog } from 'node:util';
import { TaskAttribute, type ScsiCommand, type ScsiStatus } from '../command.js';
import { completeCommand, executeCommand, finishAborted } from '../execute.js';
import type { LogicalUnit } from '../lu.js';
import { lunField } from '../lun-address.js';
import { isExclusive, type ItNexus, type NexusLuInfo } from '../nexus.js';
import type { ScsiTarget } from '../target.js';
import { TmfFunction, TmfResult, type TmfAnswer } from '../tmf.js';
import { leasable, runsUnderLease } from './fast-path.js';
import type { TargetSharing } from './hooks.js';
import {
  bufferOf,
  NO_LEASE_HERE,
  type CommandHeader,
  type GuestToHome,
  type HomeToGuest,
  type LuSnapshot,
} from './messages.js';

const debug = debuglog('tgt:sharing');

/** Sends to the home; it may hold the message (payloads in it are copies). */
export type HomeChannel = (m: GuestToHome) => void;

/**
 * After a denied request a nexus runs its commands through the home for a while before asking
 * again: not at all after the first denial (a unit attention was pending, reported since), then
 * doubling from 1 ms up to this (a reservation, an ORDERED task, a management change).
 */
const MAX_ASK_DELAY_MS = 100;

/** A nexus's lease requests on one LU. */
interface Asking {
  /** When it may ask again (Infinity: an answer is awaited). */
  next: number;
  /** The wait after the next denial. */
  delay: number;
}

/** A command the home runs for this guest. */
interface AtHome {
  readonly target: GuestTarget;
  readonly cmd: ScsiCommand;
  readonly nexus: ItNexus;
  readonly lu: LogicalUnit;
  /** Sent with its data (`cmd`), not only announced. */
  sent: boolean;
  unregister: () => void;
}

/** Task management functions the home carries out. */
const AT_HOME = new Set([
  TmfFunction.ClearTaskSet,
  TmfFunction.LogicalUnitReset,
  TmfFunction.TargetWarmReset,
  TmfFunction.ItNexusReset,
  TmfFunction.QueryAsyncEvent,
]);

export class SharingGuest {
  private readonly targets = new Map<number, GuestTarget>();
  /** Commands announced or sent home, by id, and their ids by command. */
  private readonly atHome = new Map<number, AtHome>();
  private readonly idOf = new Map<ScsiCommand, number>();
  private readonly tmfs = new Map<number, (a: TmfAnswer) => void>();
  private nextId = 1;
  /**
   * Ends the tasks of `nexus`'s session that never reached the core (set by the fabric):
   * task management at home reaches them first, as it would in one process.
   */
  abortFabric: ((nexus: ItNexus, lun: Buffer | null, issuer: ItNexus | null) => void) | null = null;

  constructor(private readonly channel: HomeChannel) {}

  /** Serve `target` as a guest (it is a copy of the home's). */
  join(target: ScsiTarget): void {
    const t = new GuestTarget(this, target);
    this.targets.set(target.tid, t);
    target.sharing = t;
  }

  leave(tid: number): void {
    const t = this.targets.get(tid);
    if (!t) return;
    this.targets.delete(tid);
    if (t.target.sharing === t) t.target.sharing = null;
  }

  /** Lease requests remembered, over every target (tests: nothing leaks). */
  pendingCount(): number {
    let n = 0;
    for (const t of this.targets.values()) n += t.askedCount;
    return n;
  }

  /** The targets served as a guest. */
  tids(): number[] {
    return [...this.targets.keys()];
  }

  isGuestOf(tid: number): boolean {
    return this.targets.has(tid);
  }

  send(m: GuestToHome): void {
    try {
      this.channel(m);
    } catch (e) {
      debug('send to home failed: %s', e);
    }
  }

  /** Tell the home that `at`'s nexus holds no lease on its LU now (see GuestToHome 'released'). */
  released(
    at: { tid: number; nexus: number; lun: number },
    seq: number,
    revoke: number,
    aborted = false,
  ): void {
    this.send({ t: 'released', tid: at.tid, nexus: at.nexus, lun: at.lun, seq, revoke, aborted });
  }

  /** Announce a command that will run at home (before its data). */
  announce(target: GuestTarget, cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): void {
    const id = this.track(target, cmd, nexus, lu);
    this.send({ t: 'announce', id, tid: nexus.target.tid, nexus: nexus.id, header: header(cmd) });
  }

  /** Send a command home with its data (announced before, or not). */
  forward(target: GuestTarget, cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): void {
    const known = this.idOf.get(cmd);
    const id = known ?? this.track(target, cmd, nexus, lu);
    this.atHome.get(id)!.sent = true;
    this.send({
      t: 'cmd',
      id,
      tid: nexus.target.tid,
      nexus: nexus.id,
      header: header(cmd),
      announced: known !== undefined,
      // A copy: the channel may hold the message, and the fabric reuses its receive buffers.
      data: cmd.dataOutLength > 0 ? new Uint8Array(cmd.gatherDataOut()) : null,
    });
    cmd.dataOutConsumed = true;
  }

  private track(target: GuestTarget, cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): number {
    const id = this.nextId++;
    const entry: AtHome = { target, cmd, nexus, lu, sent: false, unregister: () => undefined };
    this.atHome.set(id, entry);
    this.idOf.set(cmd, id);
    return id;
  }

  /**
   * Once running here (sent home), task management here (ABORT TASK, ABORT TASK SET, nexus
   * loss) waits for it: the home ends it at once if it has not started there.
   */
  watchAborts(cmd: ScsiCommand, lu: LogicalUnit): void {
    const id = this.idOf.get(cmd);
    const entry = id === undefined ? undefined : this.atHome.get(id);
    if (entry) entry.unregister = lu.taskSet.onInterrupt(cmd, () => this.send({ t: 'abort', id: id! }));
  }

  /** Whether the home runs `cmd`. */
  isAtHome(cmd: ScsiCommand): boolean {
    return this.idOf.has(cmd);
  }

  /** Whether `cmd` is announced at home and its data not sent yet. */
  announcedOnly(cmd: ScsiCommand): boolean {
    const id = this.idOf.get(cmd);
    return id !== undefined && !this.atHome.get(id)!.sent;
  }

  /** A command the home was told of ended here without being sent (withdrawn, aborted). */
  endedHere(cmd: ScsiCommand): void {
    const id = this.idOf.get(cmd);
    if (id === undefined) return;
    const entry = this.atHome.get(id)!;
    if (entry.sent) return;
    this.forget(id, entry);
    this.send({ t: 'withdraw', id });
  }

  private forget(id: number, entry: AtHome): void {
    this.atHome.delete(id);
    this.idOf.delete(entry.cmd);
    entry.unregister();
    entry.target.homeEnded(entry.cmd, entry.lu);
  }

  tmf(nexus: ItNexus, fn: TmfFunction, lun: Buffer, refTag: number): Promise<TmfAnswer> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.tmfs.set(id, resolve);
      this.send({ t: 'tmf', id, tid: nexus.target.tid, nexus: nexus.id, fn, lun, refTag });
    });
  }

  /** A message from the home. */
  receive(m: HomeToGuest): void {
    switch (m.t) {
      case 'done':
        this.done(m);
        return;
      case 'tmf-done': {
        const resolve = this.tmfs.get(m.id);
        this.tmfs.delete(m.id);
        resolve?.({ result: m.result as TmfResult, additionalInfo: m.additionalInfo });
        return;
      }
      default: {
        const t = this.targets.get(m.tid);
        if (t) t.receive(m);
        else if (m.t === 'revoke') this.released(m, NO_LEASE_HERE, m.id);
        else if (m.t === 'grant') this.released(m, m.seq, 0);
      }
    }
  }

  /**
   * The home is gone: commands sent there will not be answered. They end as aborted (no
   * response: the initiator's timeouts and task management take over, as with a lost command).
   */
  homeGone(): void {
    for (const [id, entry] of this.atHome) {
      this.forget(id, entry);
      finishAborted(entry.cmd, entry.nexus, entry.lu, entry.nexus);
    }
    for (const resolve of this.tmfs.values()) resolve({ result: TmfResult.Rejected, additionalInfo: 0 });
    this.tmfs.clear();
  }

  private done(m: Extract<HomeToGuest, { t: 'done' }>): void {
    const entry = this.atHome.get(m.id);
    if (!entry) return;
    this.forget(m.id, entry);
    const cmd = entry.cmd;
    cmd.status = m.status as ScsiStatus;
    cmd.sense = m.sense ? bufferOf(m.sense) : null;
    cmd.dataIn = m.data ? bufferOf(m.data) : null;
    cmd.dataInLength = m.dataInLength;
    cmd.writeTransferLength = m.writeTransferLength;
    // Task management here may have given up on it already (abandon_timeout): it stays silent.
    cmd.aborted ||= m.aborted;
    completeCommand(cmd, entry.nexus, entry.lu);
  }
}

/** One target served as a guest. */
class GuestTarget implements TargetSharing {
  /** Lease requests, per nexus and LU (absent: it may ask now). */
  private readonly asked = new Map<NexusLuInfo, Asking>();
  /** Commands sent home that younger ones must not overtake, per LU (no lease meanwhile). */
  private readonly barriers = new Map<LogicalUnit, number>();
  /** Commands admitted under a lease and not ended, with their nexus: they run here. */
  private readonly leased = new Map<ScsiCommand, ItNexus>();
  /** Leases let go once the commands admitted under them of that nexus and LU have ended. */
  private drains: Array<{ nexus: ItNexus; lu: LogicalUnit; done: () => void }> = [];
  /** Nexuses closed here whose leased commands may still run: revocations still reach them. */
  private readonly closing = new Map<number, ItNexus>();

  constructor(
    private readonly guest: SharingGuest,
    readonly target: ScsiTarget,
  ) {}

  get askedCount(): number {
    return this.asked.size;
  }

  route(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit, announced: boolean): boolean {
    const info = nexus.luInfo(lu);
    if (info.lease !== 0 && runsUnderLease(cmd)) {
      this.leased.set(cmd, nexus);
      return false;
    }
    if (cmd.attribute !== TaskAttribute.Simple || isExclusive(lu, cmd)) {
      this.barriers.set(lu, (this.barriers.get(lu) ?? 0) + 1);
      this.giveUp(lu);
    } else if (info.lease === 0 && runsUnderLease(cmd)) {
      this.ask(nexus, lu, info);
    }
    lu.taskSet.adopt(cmd);
    if (announced) this.guest.announce(this, cmd, nexus, lu);
    else this.guest.forward(this, cmd, nexus, lu);
    this.guest.watchAborts(cmd, lu);
    return true;
  }

  dataIn(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): boolean {
    if (!this.guest.isAtHome(cmd)) return false;
    this.guest.forward(this, cmd, nexus, lu);
    return true;
  }

  withdrawn(cmd: ScsiCommand, lu: LogicalUnit): boolean {
    // Once its data went home it runs there: as a running command here, it is not withdrawn.
    if (!this.guest.announcedOnly(cmd)) return false;
    lu.taskSet.finish(cmd);
    return true;
  }

  start(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): void {
    // Only commands admitted under a lease go through the task set here (route); anything else
    // the home runs, with the checks this copy cannot make.
    if (this.leased.has(cmd)) executeCommand(cmd, nexus, lu, true);
    else {
      this.guest.forward(this, cmd, nexus, lu);
      this.guest.watchAborts(cmd, lu);
    }
  }

  ended(cmd: ScsiCommand): void {
    if (this.leased.delete(cmd)) {
      if (this.drains.length > 0) this.checkDrains();
      return;
    }
    this.guest.endedHere(cmd);
  }

  /** A command the home was told of has ended (answered, withdrawn, or the home is gone). */
  homeEnded(cmd: ScsiCommand, lu: LogicalUnit): void {
    if (!this.barriers.has(lu) || (cmd.attribute === TaskAttribute.Simple && !isExclusive(lu, cmd))) return;
    const left = this.barriers.get(lu)! - 1;
    if (left > 0) this.barriers.set(lu, left);
    else this.barriers.delete(lu);
  }

  nexusOpened(nexus: ItNexus): void {
    this.guest.send({
      t: 'open',
      tid: this.target.tid,
      nexus: nexus.id,
      initiatorName: nexus.initiatorName,
      initiatorPort: nexus.initiatorPort,
      info: nexus.info,
    });
  }

  nexusClosed(nexus: ItNexus, drained: Promise<void>): void {
    for (const info of this.asked.keys()) if (info.nexus === nexus) this.asked.delete(info);
    this.closing.set(nexus.id, nexus);
    // After its last command, leased ones included even past an abandon_timeout (they could
    // still write): the home closes its copy of the nexus (reservations released).
    void drained
      .then(() =>
        Promise.all(this.target.luns.map((lu) => new Promise<void>((ok) => this.drained(nexus, lu, ok)))),
      )
      .then(() => {
        this.closing.delete(nexus.id);
        this.guest.send({ t: 'close', tid: this.target.tid, nexus: nexus.id });
      });
  }

  unitAttentionAdded(nexus: ItNexus, lu: LogicalUnit): void {
    // The home holds this nexus's unit attentions; the copies here are never reported.
    nexus.luInfo(lu).unitAttentions.length = 0;
  }

  taskManagement(nexus: ItNexus, fn: TmfFunction, lun: Buffer, refTag: number): Promise<TmfAnswer> | null {
    return AT_HOME.has(fn) ? this.guest.tmf(nexus, fn, lun, refTag) : null;
  }

  beforeTaskManagement(): Promise<Set<ItNexus>> {
    return Promise.resolve(new Set());
  }

  receive(m: HomeToGuest): void {
    const nexus = 'nexus' in m ? (this.target.nexuses.get(m.nexus) ?? this.closing.get(m.nexus)) : undefined;
    const lu = 'lun' in m ? this.target.findLu(BigInt(m.lun)) : undefined;
    switch (m.t) {
      case 'grant': {
        const info = nexus && lu ? nexus.luInfo(lu) : undefined;
        if (info) this.asked.delete(info);
        if (!info || !lu || nexus!.closed || !this.accept(lu, m.snapshot)) {
          if (info) this.denied(info);
          this.guest.released(m, m.seq, 0);
          return;
        }
        info.lease = m.seq;
        return;
      }
      case 'deny': {
        const info = nexus && lu ? nexus.peekLuInfo(lu) : undefined;
        if (info) this.denied(info);
        return;
      }
      case 'revoke':
        this.revoke(m, nexus, lu);
        return;
    }
  }

  private ask(nexus: ItNexus, lu: LogicalUnit, info: NexusLuInfo): void {
    let asking = this.asked.get(info);
    if ((asking !== undefined && performance.now() < asking.next) || this.barriers.has(lu) || !leasable(lu))
      return;
    if (!asking) this.asked.set(info, (asking = { next: 0, delay: 0 }));
    asking.next = Infinity;
    this.guest.send({ t: 'lease', tid: this.target.tid, nexus: nexus.id, lun: Number(lu.lun) });
  }

  private denied(info: NexusLuInfo): void {
    const asking = this.asked.get(info) ?? { next: 0, delay: 0 };
    asking.next = performance.now() + asking.delay;
    asking.delay = Math.min(Math.max(asking.delay * 2, 1), MAX_ASK_DELAY_MS);
    this.asked.set(info, asking);
  }

  /** Take a lease only if the LU here is the one the home leases (same geometry) and nothing waits on a barrier. */
  private accept(lu: LogicalUnit, snapshot: LuSnapshot): boolean {
    if (this.barriers.has(lu) || !leasable(lu)) return false;
    if (lu.blockSize !== snapshot.blockSize || lu.blocks !== snapshot.blocks) return false;
    applySnapshot(lu, snapshot);
    return true;
  }

  /** Stop admitting commands on `lu` under this guest's leases; tell the home once those admitted have ended. */
  private giveUp(lu: LogicalUnit): void {
    for (const nexus of this.target.nexuses.values()) {
      const info = nexus.peekLuInfo(lu);
      if (!info || info.lease === 0) continue;
      const seq = info.lease;
      info.lease = 0;
      const at = { tid: this.target.tid, nexus: nexus.id, lun: Number(lu.lun) };
      this.drained(nexus, lu, () => this.guest.released(at, seq, 0));
    }
  }

  private revoke(
    m: Extract<HomeToGuest, { t: 'revoke' }>,
    nexus: ItNexus | undefined,
    lu: LogicalUnit | undefined,
  ): void {
    // No such nexus or LU here (any more): nothing of it runs here under any lease.
    if (!nexus || !lu) return this.guest.released(m, NO_LEASE_HERE, m.id);
    applySnapshot(lu, m.snapshot);
    const info = nexus.peekLuInfo(lu);
    const seq = info?.lease ?? 0;
    if (info) info.lease = 0;
    let aborted = false;
    if (m.abort) {
      // Task management at home: what this nexus holds waiting ends as it would there.
      const issuer = m.issuer === nexus.id ? nexus : null;
      this.guest.abortFabric?.(nexus, lunField(Number(lu.lun)), issuer);
      const removed = lu.taskSet.removeWaiting((_c, n) => n === nexus);
      for (const w of removed) finishAborted(w.cmd, w.nexus, lu, issuer);
      aborted = removed.length > 0;
    }
    this.drained(nexus, lu, () => this.guest.released(m, seq, m.id, aborted));
  }

  /** Call `done` once no command admitted under a lease of `nexus` on `lu` is left. */
  private drained(nexus: ItNexus, lu: LogicalUnit, done: () => void): void {
    if (this.holdsLeased(nexus, lu)) this.drains.push({ nexus, lu, done });
    else done();
  }

  private holdsLeased(nexus: ItNexus, lu: LogicalUnit): boolean {
    for (const [cmd, n] of this.leased) if (n === nexus && cmd.outLu === lu) return true;
    return false;
  }

  private checkDrains(): void {
    const waiting = this.drains;
    this.drains = [];
    for (const d of waiting) this.drained(d.nexus, d.lu, d.done);
  }
}

/** Make the LU here behave as the home's: mode pages (WCE, SWP, D_SENSE, TAS) and `readonly`. */
function applySnapshot(lu: LogicalUnit, s: LuSnapshot): void {
  lu.readonly = s.readonly;
  copyPage(lu, 0x08, s.caching);
  copyPage(lu, 0x0a, s.control);
}

function copyPage(lu: LogicalUnit, page: number, current: Uint8Array | null): void {
  const here = lu.modePages.get(page, 0);
  if (here && current && current.length === here.current.length) here.current.set(current);
}

function header(cmd: ScsiCommand): CommandHeader {
  return {
    lun: cmd.lun,
    cdb: cmd.cdb,
    tag: cmd.tag,
    attribute: cmd.attribute,
    direction: cmd.direction,
    expectedReadLength: cmd.expectedReadLength,
    expectedWriteLength: cmd.expectedWriteLength,
  };
}

/**
 * The guest side of shared targets (hooks.ts): a process serving some of the sessions of a
 * target whose SCSI state another process (its home) holds. The guest has a copy of the target,
 * its LUs opened on the same backing files.
 *
 * - Its sessions' nexuses are announced to the home (`open`, `close`).
 * - Commands run here only under a lease, and only those fast-path.ts lists; the others go to
 *   the home and their result comes back. The local task set still orders this process's
 *   commands (an ORDERED command waits here for this guest's older ones, then at home for
 *   everyone else's).
 * - A nexus asks for a lease on an LU when a command that could use one comes without it. A
 *   command that must not be overtaken (not SIMPLE) gives up every lease of the guest on its
 *   LU before it goes home, so that nothing younger runs here before it.
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
import type { ItNexus, NexusLuInfo } from '../nexus.js';
import type { ScsiTarget } from '../target.js';
import { TmfFunction, TmfResult, type TmfAnswer } from '../tmf.js';
import { leasable, runsUnderLease } from './fast-path.js';
import type { TargetSharing } from './hooks.js';
import type { GuestToHome, HomeToGuest, LuSnapshot } from './messages.js';

const debug = debuglog('tgt:sharing');

/** Sends to the home. The message must be copied (serialized) before send returns. */
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

interface Forwarded {
  readonly target: GuestTarget;
  readonly cmd: ScsiCommand;
  readonly nexus: ItNexus;
  readonly lu: LogicalUnit;
  readonly unregister: () => void;
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
  /** Commands sent home, by id. */
  readonly forwarded = new Map<number, Forwarded>();
  /** The same, by command (to tell them from the ones running here). */
  readonly forwardedCmds = new Set<ScsiCommand>();
  private readonly tmfs = new Map<number, (a: TmfAnswer) => void>();
  private nextId = 1;

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

  forward(target: GuestTarget, cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): void {
    const id = this.nextId++;
    // Task management here (ABORT TASK, ABORT TASK SET, nexus loss) waits for it: the home
    // ends it at once if it has not started there.
    const unregister = lu.taskSet.onInterrupt(cmd, () => this.send({ t: 'abort', id }));
    this.forwarded.set(id, { target, cmd, nexus, lu, unregister });
    this.forwardedCmds.add(cmd);
    this.send({
      t: 'cmd',
      id,
      tid: nexus.target.tid,
      nexus: nexus.id,
      lun: cmd.lun,
      cdb: cmd.cdb,
      tag: cmd.tag,
      attribute: cmd.attribute,
      direction: cmd.direction,
      expectedReadLength: cmd.expectedReadLength,
      expectedWriteLength: cmd.expectedWriteLength,
      data: cmd.dataOutLength > 0 ? cmd.gatherDataOut() : null,
    });
    // send() copied the Data-Out: the fabric may reuse its receive buffers.
    cmd.dataOutConsumed = true;
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
        else if (m.t === 'revoke') this.released(m, 0, m.id);
        else if (m.t === 'grant') this.released(m, m.seq, 0);
      }
    }
  }

  /**
   * The home is gone: commands sent there will not be answered. They end as aborted (no
   * response: the initiator's timeouts and task management take over, as with a lost command).
   */
  homeGone(): void {
    for (const [id, f] of this.forwarded) {
      this.forwarded.delete(id);
      this.forwardedCmds.delete(f.cmd);
      f.unregister();
      f.target.ended(f.cmd, f.lu);
      finishAborted(f.cmd, f.nexus, f.lu, f.nexus);
    }
    for (const resolve of this.tmfs.values()) resolve({ result: TmfResult.Rejected, additionalInfo: 0 });
    this.tmfs.clear();
  }

  private done(m: Extract<HomeToGuest, { t: 'done' }>): void {
    const f = this.forwarded.get(m.id);
    if (!f) return;
    this.forwarded.delete(m.id);
    this.forwardedCmds.delete(f.cmd);
    f.unregister();
    f.target.ended(f.cmd, f.lu);
    const cmd = f.cmd;
    cmd.status = m.status as ScsiStatus;
    cmd.sense = m.sense ? view(m.sense) : null;
    cmd.dataIn = m.data ? view(m.data) : null;
    cmd.dataInLength = m.dataInLength;
    cmd.writeTransferLength = m.writeTransferLength;
    cmd.aborted = m.aborted;
    completeCommand(cmd, f.nexus, f.lu);
  }
}

/** One target served as a guest. */
class GuestTarget implements TargetSharing {
  /** Lease requests, per nexus and LU (absent: it may ask now). */
  private readonly asked = new Map<NexusLuInfo, Asking>();
  /** Commands sent home that younger ones must not overtake, per LU (no lease meanwhile). */
  private readonly barriers = new Map<LogicalUnit, number>();

  constructor(
    private readonly guest: SharingGuest,
    readonly target: ScsiTarget,
  ) {}

  start(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): void {
    const info = nexus.luInfo(lu);
    if (info.lease !== 0 && runsUnderLease(cmd)) {
      executeCommand(cmd, nexus, lu, true);
      return;
    }
    if (cmd.attribute !== TaskAttribute.Simple) {
      this.barriers.set(lu, (this.barriers.get(lu) ?? 0) + 1);
      this.giveUp(lu);
    } else if (info.lease === 0 && runsUnderLease(cmd)) {
      this.ask(nexus, lu, info);
    }
    this.guest.forward(this, cmd, nexus, lu);
  }

  /** A command sent home has ended. */
  ended(cmd: ScsiCommand, lu: LogicalUnit): void {
    if (cmd.attribute === TaskAttribute.Simple) return;
    const left = (this.barriers.get(lu) ?? 1) - 1;
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
    // After its last command: the home closes its copy of the nexus (reservations released).
    void drained.then(() => this.guest.send({ t: 'close', tid: this.target.tid, nexus: nexus.id }));
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
    const nexus = 'nexus' in m ? this.target.nexuses.get(m.nexus) : undefined;
    const lu = 'lun' in m ? this.target.findLu(BigInt(m.lun)) : undefined;
    switch (m.t) {
      case 'grant': {
        const info = nexus && lu ? nexus.luInfo(lu) : undefined;
        if (info) this.asked.delete(info);
        if (!info || !lu || !this.accept(lu, m.snapshot)) {
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

  /** Stop running commands on `lu` under this guest's leases, and tell the home once they have finished. */
  private giveUp(lu: LogicalUnit): void {
    for (const nexus of this.target.nexuses.values()) {
      const info = nexus.peekLuInfo(lu);
      if (!info || info.lease === 0) continue;
      const seq = info.lease;
      info.lease = 0;
      void this.drained(nexus, lu).then(() =>
        this.guest.released({ tid: this.target.tid, nexus: nexus.id, lun: Number(lu.lun) }, seq, 0),
      );
    }
  }

  private revoke(
    m: Extract<HomeToGuest, { t: 'revoke' }>,
    nexus: ItNexus | undefined,
    lu: LogicalUnit | undefined,
  ): void {
    const reply = (seq: number, aborted: boolean): void => this.guest.released(m, seq, m.id, aborted);
    const info = nexus && lu ? nexus.peekLuInfo(lu) : undefined;
    if (!nexus || !lu) return reply(0, false);
    applySnapshot(lu, m.snapshot);
    const seq = info?.lease ?? 0;
    if (info) info.lease = 0;
    let aborted = false;
    if (m.abort) {
      const removed = lu.taskSet.removeWaiting((_c, n) => n === nexus);
      for (const w of removed) finishAborted(w.cmd, w.nexus, lu, m.issuer === nexus.id ? nexus : null);
      aborted = removed.length > 0;
    }
    void this.drained(nexus, lu).then(() => reply(seq, aborted));
  }

  /** Resolves when no command of `nexus` runs on `lu` here (those sent home do not count). */
  private drained(nexus: ItNexus, lu: LogicalUnit): Promise<void> {
    const here: ScsiCommand[] = [];
    for (const cmd of nexus.outstanding.toArray())
      if (cmd.outLu === lu && lu.taskSet.isRunning(cmd) && !this.guest.forwardedCmds.has(cmd)) here.push(cmd);
    return lu.taskSet.whenFinished(here);
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

function view(a: Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

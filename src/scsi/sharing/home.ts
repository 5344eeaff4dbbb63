/**
 * The home side of shared targets (hooks.ts): the process that holds the targets' SCSI state
 * and leases their LUs to the guests that serve some of the sessions.
 *
 * - A guest's I_T nexus exists here too (`open`/`close`), so reservations, persistent
 *   reservations and unit attentions treat it as any other, and `show` lists it.
 * - A guest sends here every command it may not run itself (fast-path.ts); it runs here on the
 *   guest's nexus, in the LU's one task set, and its status, sense and Data-In go back.
 * - Leases: a guest nexus asks for one per LU; it is granted while nothing a command under it
 *   could miss is going on (no unit attention pending for the nexus, no reservation, no
 *   sanitize, no command in the task set that must see the guests' commands finished, QERR 0).
 *   Before such a command runs here, before task management and management changes, the home
 *   revokes the LU's leases and waits until the guests have drained what they run under them.
 */
import { Buffer } from 'node:buffer';
import { debuglog } from 'node:util';
import { ScsiCommand, ScsiStatus, TaskAttribute, type DataDirection } from '../command.js';
import { executeCommand, finishAborted } from '../execute.js';
import type { LogicalUnit } from '../lu.js';
import { isExclusive, type ItNexus } from '../nexus.js';
import type { ScsiTarget } from '../target.js';
import { TmfFunction } from '../tmf.js';
import { leasable, runsAlongsideLeases } from './fast-path.js';
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

/** Sends to one guest; it may hold the message (payloads in it are copies). */
export type GuestChannel = (m: HomeToGuest) => void;

/** What the LU looks like to a command running under a lease. */
export function luSnapshot(lu: LogicalUnit): LuSnapshot {
  const caching = lu.modePages.get(0x08, 0)?.current ?? null;
  const control = lu.modePages.get(0x0a, 0)?.current ?? null;
  return { blocks: lu.blocks, blockSize: lu.blockSize, readonly: lu.readonly, caching, control };
}

interface Revocation {
  readonly guest: number;
  readonly target: HomeTarget;
  readonly nexus: ItNexus;
  readonly lu: LogicalUnit;
  readonly resolve: (aborted: boolean) => void;
}

export class SharingHome {
  private readonly guests = new Map<number, GuestChannel>();
  private readonly shared = new Map<number, HomeTarget>();
  /** Revocations sent and not answered, by id. */
  readonly revocations = new Map<number, Revocation>();
  /** Commands guests sent here, by guest, then by the guest's id. */
  private readonly forwarded = new Map<
    number,
    Map<number, { cmd: ScsiCommand; nexus: ItNexus; submitted: boolean }>
  >();
  private nextSeq = 1;
  private nextRevocation = 1;
  /**
   * Ends the tasks of `nexus`'s session that never reached the core (set by the fabric), for
   * task management a guest's session asks for that reaches this process's sessions.
   */
  abortFabric: ((nexus: ItNexus, lun: Buffer | null, issuer: ItNexus | null) => void) | null = null;
  /** A nexus appeared on a shared target: of a session here (guest null), or of a guest's. */
  onNexusOpened: ((tid: number, guest: number | null) => void) | null = null;

  /** A guest process to lease to; `channel` reaches it. */
  addGuest(guest: number, channel: GuestChannel): void {
    this.guests.set(guest, channel);
    this.forwarded.set(guest, new Map());
  }

  /**
   * A guest is gone (its process died): its nexuses are lost (I_T nexus loss, as when a
   * connection drops), its leases with them.
   */
  removeGuest(guest: number): void {
    this.guests.delete(guest);
    this.forwarded.delete(guest);
    for (const [id, r] of this.revocations) {
      if (r.guest !== guest) continue;
      this.revocations.delete(id);
      r.resolve(false);
    }
    for (const t of this.shared.values()) t.guestGone(guest);
  }

  /** Commands of `guest` this process holds (tests: nothing leaks). */
  forwardedCount(guest: number): number {
    return this.forwarded.get(guest)?.size ?? 0;
  }

  /** Whether `guest` is known and running. */
  hasGuest(guest: number): boolean {
    return this.guests.has(guest);
  }

  /** Share `target` with the guests. */
  share(target: ScsiTarget): void {
    if (this.shared.has(target.tid)) return;
    const t = new HomeTarget(this, target);
    this.shared.set(target.tid, t);
    target.sharing = t;
  }

  /** Stop sharing a target (deleted). */
  unshare(tid: number): void {
    const t = this.shared.get(tid);
    if (!t) return;
    this.shared.delete(tid);
    if (t.target.sharing === t) t.target.sharing = null;
  }

  isShared(tid: number): boolean {
    return this.shared.has(tid);
  }

  /** The guest that serves `nexus` of `tid`; undefined: a session of this process. */
  guestOfNexus(tid: number, nexus: ItNexus): number | undefined {
    return this.shared.get(tid)?.remote.get(nexus);
  }

  /** Sessions of `tid` served by each guest (nexus counts), for placing a new one. */
  sessionsByGuest(tid: number): Map<number, number> {
    const counts = new Map<number, number>();
    for (const guest of this.shared.get(tid)?.remote.values() ?? [])
      counts.set(guest, (counts.get(guest) ?? 0) + 1);
    return counts;
  }

  /** The guest that serves the I_T nexus of initiator port `port` on `tid`, if one does. */
  guestOfPort(tid: number, port: string): number | undefined {
    const t = this.shared.get(tid);
    if (!t) return undefined;
    for (const [nexus, guest] of t.remote) if (nexus.initiatorPort === port) return guest;
    return undefined;
  }

  /**
   * Guest `guest`'s copy of `tid` may not match this target any more (it refused a change):
   * its leases are revoked and it gets no more; its sessions' commands all run here.
   */
  distrust(tid: number, guest: number): void {
    const t = this.shared.get(tid);
    if (!t) return;
    t.distrusted.add(guest);
    const theirs = [...t.remote].filter(([, g]) => g === guest).map(([nexus]) => nexus);
    if (theirs.length > 0) void t.revokeAll(t.target.luns, false, null, theirs);
  }

  /**
   * Management is about to change `tid` (its LUs, parameters, state): revoke its leases and
   * grant none until the returned function is called.
   */
  async quiesce(tid: number): Promise<() => void> {
    const t = this.shared.get(tid);
    if (!t) return () => undefined;
    t.blocked++;
    await t.revokeAll(t.target.luns, false, null);
    let done = false;
    return () => {
      if (!done) t.blocked--;
      done = true;
    };
  }

  send(guest: number, m: HomeToGuest): void {
    const channel = this.guests.get(guest);
    if (!channel) return;
    try {
      channel(m);
    } catch (e) {
      debug('send to guest %d failed: %s', guest, e);
    }
  }

  newSeq(): number {
    return this.nextSeq++;
  }

  newRevocation(r: Revocation): number {
    const id = this.nextRevocation++;
    this.revocations.set(id, r);
    return id;
  }

  /** A message from guest `guest`. */
  receive(guest: number, m: GuestToHome): void {
    if (!this.guests.has(guest)) return;
    switch (m.t) {
      case 'abort':
        this.abort(guest, m.id);
        return;
      case 'withdraw': {
        // Announced and never sent: out of the task set (if the core still holds it), forgotten.
        const entry = this.forwarded.get(guest)!.get(m.id);
        if (entry && !entry.submitted) {
          entry.nexus.withdraw(entry.cmd);
          this.forwarded.get(guest)!.delete(m.id);
        }
        return;
      }
      case 'released': {
        const r = m.revoke !== 0 ? this.revocations.get(m.revoke) : undefined;
        if (r) {
          this.revocations.delete(m.revoke);
          r.target.released(r.nexus, r.lu, m.seq, true);
          r.resolve(m.aborted);
          return;
        }
        const t = this.shared.get(m.tid);
        const nexus = t?.target.nexuses.get(m.nexus);
        const lu = t?.target.findLu(BigInt(m.lun));
        if (t && nexus && lu) t.released(nexus, lu, m.seq, false);
        return;
      }
      default:
        break;
    }
    const t = this.shared.get(m.tid);
    if (m.t === 'open') {
      if (!t) return debug('guest %d opened a nexus on unshared target %d', guest, m.tid);
      t.open(guest, m.nexus, m.initiatorName, m.initiatorPort, m.info);
      return;
    }
    const nexus = t?.target.nexuses.get(m.nexus);
    const ours = nexus !== undefined && t!.remote.get(nexus) === guest;
    switch (m.t) {
      case 'close':
        if (ours) t!.close(nexus);
        return;
      case 'announce':
        if (ours) this.run(guest, nexus, m.id, m.header, null, false);
        return;
      case 'cmd': {
        const announced = m.announced ? this.forwarded.get(guest)!.get(m.id) : undefined;
        if (announced) {
          announced.submitted = true;
          if (m.data) announced.cmd.addDataOut(bufferOf(m.data));
          announced.nexus.submit(announced.cmd);
          return;
        }
        // Announced and ended here since (the guest has its answer), unless its nexus is gone.
        if (m.announced && ours) return;
        if (!ours) {
          this.send(guest, {
            t: 'done',
            id: m.id,
            status: ScsiStatus.Busy,
            sense: null,
            data: null,
            dataInLength: 0,
            writeTransferLength: 0,
            aborted: false,
          });
          return;
        }
        this.run(guest, nexus, m.id, m.header, m.data, true);
        return;
      }
      case 'tmf':
        if (!ours) {
          this.send(guest, { t: 'tmf-done', id: m.id, result: 255, additionalInfo: 0 });
          return;
        }
        void this.taskManagement(guest, nexus, m);
        return;
      case 'lease': {
        const lu = t?.target.findLu(BigInt(m.lun));
        if (ours && lu && t!.grant(guest, nexus, lu)) return;
        this.send(guest, { t: 'deny', tid: m.tid, nexus: m.nexus, lun: m.lun });
        return;
      }
    }
  }

  /**
   * A guest's command on its nexus here: submitted with its data, or only announced (SAM-5 8.6)
   * until its `cmd` brings the data.
   */
  private run(
    guest: number,
    nexus: ItNexus,
    id: number,
    h: CommandHeader,
    data: Uint8Array | null,
    submit: boolean,
  ): void {
    const running = this.forwarded.get(guest)!;
    const cmd = new ScsiCommand(
      {
        cdb: bufferOf(h.cdb),
        lun: bufferOf(h.lun),
        tag: h.tag,
        attribute: h.attribute as TaskAttribute,
        direction: h.direction as DataDirection,
        expectedReadLength: h.expectedReadLength,
        expectedWriteLength: h.expectedWriteLength,
      },
      (c) => {
        running.delete(id);
        // A copy: the channel may hold the message (Node queues it behind a handle in flight).
        const data =
          c.dataIn && c.dataInLength > 0
            ? new Uint8Array(c.dataIn.subarray(0, Math.min(c.dataInLength, c.expectedReadLength)))
            : null;
        this.send(guest, {
          t: 'done',
          id,
          status: c.status,
          sense: c.sense,
          data,
          dataInLength: c.dataInLength,
          writeTransferLength: c.writeTransferLength,
          aborted: c.aborted,
        });
        c.releaseBuffers();
      },
    );
    if (data) cmd.addDataOut(bufferOf(data));
    running.set(id, { cmd, nexus, submitted: submit });
    if (submit) nexus.submit(cmd);
    else nexus.announce(cmd);
  }

  /** The guest's task management ended its copy of a command: end this one if it has not started. */
  private abort(guest: number, id: number): void {
    const entry = this.forwarded.get(guest)?.get(id);
    const lu = entry?.cmd.outLu;
    if (!entry || !lu) return;
    if (lu.taskSet.removeWaiting((c) => c === entry.cmd).length > 0)
      finishAborted(entry.cmd, entry.nexus, lu, entry.nexus);
  }

  private async taskManagement(
    guest: number,
    nexus: ItNexus,
    m: Extract<GuestToHome, { t: 'tmf' }>,
  ): Promise<void> {
    let result = 255;
    let additionalInfo = 0;
    try {
      if (m.fn === TmfFunction.QueryAsyncEvent) {
        ({ result, additionalInfo } = nexus.queryAsyncEvent(bufferOf(m.lun)));
      } else {
        const everyLun = m.fn === TmfFunction.TargetWarmReset;
        if (everyLun || m.fn === TmfFunction.LogicalUnitReset || m.fn === TmfFunction.ClearTaskSet) {
          const remote = this.shared.get(m.tid)?.remote;
          for (const other of nexus.target.nexuses.values())
            if (!remote?.has(other)) this.abortFabric?.(other, everyLun ? null : bufferOf(m.lun), nexus);
        }
        result = await nexus.taskManagement(m.fn as TmfFunction, bufferOf(m.lun), m.refTag);
      }
    } catch (e) {
      debug('task management for guest %d failed: %s', guest, e);
    }
    this.send(guest, { t: 'tmf-done', id: m.id, result, additionalInfo });
  }
}

/** One shared target at home. */
class HomeTarget implements TargetSharing {
  /** Nexuses of guests' sessions, and which guest serves each. */
  readonly remote = new Map<ItNexus, number>();
  /** Leases out (their sequence numbers), per LU and nexus. */
  private readonly leases = new Map<LogicalUnit, Map<ItNexus, number>>();
  /** Revocations not answered yet, per LU and nexus (no grant meanwhile). */
  private readonly unanswered = new Map<LogicalUnit, Map<ItNexus, number>>();
  /**
   * LUs whose guests did not answer a revocation within the LU's abandon_timeout (a store call
   * that does not return): every command here waits until they do, as behind an abandoned
   * command in one process (task-set.ts), so that none of their writes lands after a newer one.
   */
  private readonly stuck = new Map<LogicalUnit, Promise<void>>();
  /** Management changes in progress (no grants meanwhile). */
  blocked = 0;
  /** Guests whose copy of the target may not match (SharingHome.distrust): no leases. */
  readonly distrusted = new Set<number>();
  /** Set while a guest's nexus is being created (nexusOpened then knows it is not ours). */
  private opening = false;

  constructor(
    private readonly home: SharingHome,
    readonly target: ScsiTarget,
  ) {}

  open(guest: number, id: number, initiatorName: string, initiatorPort: string, info: string): void {
    let nexus: ItNexus;
    this.opening = true;
    try {
      nexus = this.target.createNexus(id, initiatorName, info, initiatorPort);
    } catch (e) {
      debug('guest %d nexus %d: %s', guest, id, e);
      return;
    } finally {
      this.opening = false;
    }
    this.remote.set(nexus, guest);
    this.home.onNexusOpened?.(this.target.tid, guest);
  }

  close(nexus: ItNexus): void {
    this.dropLeases(nexus);
    void nexus.close();
  }

  guestGone(guest: number): void {
    for (const [nexus, g] of this.remote) if (g === guest) this.close(nexus);
  }

  // --- TargetSharing ------------------------------------------------------------------------

  start(cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit): void {
    const stuck = this.stuck.get(lu);
    if (stuck !== undefined) {
      this.hold(cmd, nexus, lu, stuck, () => this.start(cmd, nexus, lu));
      return;
    }
    const out = this.leases.get(lu);
    if (out === undefined || out.size === 0 || runsAlongsideLeases(cmd)) {
      executeCommand(cmd, nexus, lu);
      return;
    }
    // It must see every guest command before it finished, and none after it started.
    this.hold(cmd, nexus, lu, this.revokeAll([lu], false, null), () => executeCommand(cmd, nexus, lu));
  }

  /**
   * Run `then` for a started command once `until` settles; task management meanwhile (ABORT
   * TASK, resets, nexus loss) ends it at once, as aborted, and it never runs.
   */
  private hold(
    cmd: ScsiCommand,
    nexus: ItNexus,
    lu: LogicalUnit,
    until: Promise<unknown>,
    then: () => void,
  ): void {
    let ended = false;
    const unregister = lu.taskSet.onInterrupt(cmd, () => {
      if (ended) return;
      ended = true;
      finishAborted(cmd, nexus, lu, nexus);
    });
    void until.then(() => {
      unregister();
      if (ended) return;
      ended = true;
      then();
    });
  }

  route(cmd: ScsiCommand, _nexus: ItNexus, lu: LogicalUnit): boolean {
    // SAM-5 8.6: what arrives after an ORDERED, HEAD OF QUEUE or exclusive command waits for
    // it, in the guests too: their leases go now, not when it starts (it may wait a while).
    if (this.leases.get(lu)?.size && (cmd.attribute !== TaskAttribute.Simple || isExclusive(lu, cmd)))
      void this.revokeAll([lu], false, null);
    return false;
  }

  dataIn(): boolean {
    return false;
  }

  withdrawn(): boolean {
    return false;
  }

  ended(): void {}

  nexusOpened(): void {
    if (!this.opening) this.home.onNexusOpened?.(this.target.tid, null);
  }

  nexusClosed(nexus: ItNexus): void {
    this.remote.delete(nexus);
    this.dropLeases(nexus);
  }

  unitAttentionAdded(nexus: ItNexus, lu: LogicalUnit): void {
    // Changes that raise unit attentions revoke first; this one came from elsewhere.
    if (this.leases.get(lu)?.has(nexus)) void this.revokeAll([lu], false, null, [nexus]);
  }

  taskManagement(): null {
    return null;
  }

  async beforeTaskManagement(
    lus: readonly LogicalUnit[],
    fn: TmfFunction,
    issuer: ItNexus,
  ): Promise<Set<ItNexus>> {
    // No grant until the function has taken effect (its unit attentions then refuse them).
    this.blocked++;
    try {
      if (fn !== TmfFunction.ItNexusReset) return await this.revokeAll(lus, true, issuer);
      return this.remote.has(issuer) ? await this.revokeAll(lus, true, issuer, [issuer]) : new Set();
    } finally {
      this.blocked--;
    }
  }

  // --- leases ---------------------------------------------------------------------------------

  /** Grant `nexus` (of `guest`) a lease on `lu` if nothing stands in the way; false otherwise. */
  grant(guest: number, nexus: ItNexus, lu: LogicalUnit): boolean {
    if (this.distrusted.has(guest)) return false;
    if (this.blocked > 0 || nexus.closed || this.target.state !== 'ready' || !leasable(lu) || !lu.online)
      return false;
    if (lu.reservation !== null || lu.pr.reservationType !== null) return false;
    if (lu.sanitize !== null || lu.sanitizeFailure !== null || lu.taskSet.abandonedCount > 0) return false;
    if ((nexus.peekLuInfo(lu)?.unitAttentions.length ?? 0) > 0) return false;
    const control = lu.modePages.get(0x0a, 0)?.current;
    if (control && ((control[3]! >> 1) & 0x03) !== 0) return false; // QERR: see fast-path.ts
    if (this.stuck.has(lu) || (this.unanswered.get(lu)?.get(nexus) ?? 0) > 0) return false;
    if (lu.taskSet.someCommand((c) => !runsAlongsideLeases(c))) return false;
    let out = this.leases.get(lu);
    if (!out) this.leases.set(lu, (out = new Map()));
    // A fresh number each time: a late release of an older lease must not end this one.
    const seq = this.home.newSeq();
    out.set(nexus, seq);
    // The guest's writes do not reach this process's allocation map (GET LBA STATUS).
    lu.store?.writtenElsewhere?.();
    this.home.send(guest, {
      t: 'grant',
      tid: this.target.tid,
      nexus: nexus.id,
      lun: Number(lu.lun),
      seq,
      snapshot: luSnapshot(lu),
    });
    return true;
  }

  /**
   * The guest holds no lease `seq` of `nexus` on `lu` any more: it gave it up, or answered a
   * revocation (`answer`) holding `seq` (0: none).
   */
  released(nexus: ItNexus, lu: LogicalUnit, seq: number, answer: boolean): void {
    if (answer) count(this.unanswered, lu, nexus, -1);
    const out = this.leases.get(lu);
    if (!out?.has(nexus) || (seq !== NO_LEASE_HERE && out.get(nexus) !== seq)) return;
    out.delete(nexus);
    if (out.size === 0) this.leases.delete(lu);
  }

  /**
   * Revoke the leases on `lus` and wait until their guests have let go. With `abort`, every
   * guest nexus on them (leased or not; only `only` if given) also ends the commands it holds
   * waiting, as `issuer`'s task management; resolves with the nexuses that had some. A guest
   * that has not answered within the LU's abandon_timeout leaves the LU stuck (see `stuck`).
   */
  async revokeAll(
    lus: readonly LogicalUnit[],
    abort: boolean,
    issuer: ItNexus | null,
    only?: readonly ItNexus[],
  ): Promise<Set<ItNexus>> {
    const aborted = new Set<ItNexus>();
    const waits: Array<Promise<unknown>> = [];
    for (const lu of lus) {
      const nexuses = only ?? (abort ? [...this.remote.keys()] : [...(this.leases.get(lu)?.keys() ?? [])]);
      const pending = nexuses.map((nexus) =>
        this.revoke(nexus, lu, abort, issuer).then((a) => a && aborted.add(nexus)),
      );
      if (pending.length > 0) waits.push(this.within(lu, Promise.all(pending)));
    }
    await Promise.all(waits);
    return aborted;
  }

  /** `answered`, or after the LU's abandon_timeout the LU marked stuck until then. */
  private within(lu: LogicalUnit, answered: Promise<unknown>): Promise<void> {
    const ms = lu.abandonTimeoutMs;
    if (ms <= 0) return answered.then(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        debug('target %d LU %s: a guest did not let go within %d ms', this.target.tid, lu.lun, ms);
        // Held until this and any earlier late answers are in.
        const done = Promise.all([this.stuck.get(lu), answered]).then(() => {
          if (this.stuck.get(lu) === done) this.stuck.delete(lu);
        });
        this.stuck.set(lu, done);
        resolve();
      }, ms);
    });
    return Promise.race([answered.then(() => clearTimeout(timer)), late]);
  }

  /** Revoke one nexus's lease on `lu` (see revokeAll); resolves with whether commands were aborted. */
  private revoke(nexus: ItNexus, lu: LogicalUnit, abort: boolean, issuer: ItNexus | null): Promise<boolean> {
    const guest = this.remote.get(nexus);
    if (guest === undefined || !this.home.hasGuest(guest)) return Promise.resolve(false);
    if (!abort && !this.leases.get(lu)?.has(nexus)) return Promise.resolve(false);
    count(this.unanswered, lu, nexus, +1);
    return new Promise((resolve) => {
      const id = this.home.newRevocation({ guest, target: this, nexus, lu, resolve });
      this.home.send(guest, {
        t: 'revoke',
        id,
        tid: this.target.tid,
        nexus: nexus.id,
        lun: Number(lu.lun),
        abort,
        issuer: issuer?.id ?? 0,
        snapshot: luSnapshot(lu),
      });
    });
  }

  private dropLeases(nexus: ItNexus): void {
    for (const map of [this.leases, this.unanswered])
      for (const [lu, out] of map) {
        out.delete(nexus);
        if (out.size === 0) map.delete(lu);
      }
  }
}

/** Add `delta` to the count of (`lu`, `nexus`), forgetting it at 0. */
function count(
  map: Map<LogicalUnit, Map<ItNexus, number>>,
  lu: LogicalUnit,
  nexus: ItNexus,
  delta: number,
): void {
  let out = map.get(lu);
  if (!out) map.set(lu, (out = new Map()));
  const n = (out.get(nexus) ?? 0) + delta;
  if (n > 0) out.set(nexus, n);
  else out.delete(nexus);
  if (out.size === 0) map.delete(lu);
}

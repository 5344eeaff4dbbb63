/**
 * The "iscsi" fabric driver (tgt's iscsi LLD): portals, sessions and connections, per-target
 * iSCSI parameters, and the management hooks of TargetDriver.
 */
import type * as net from 'node:net';
import { AdminError } from '../scsi/admin-error.js';
import type { ConnectionStats, DriverState, TargetDriver } from '../scsi/driver.js';
import type { TargetSystem } from '../scsi/system.js';
import type { ScsiTarget } from '../scsi/target.js';
import {
  DEFAULT_LOGOUT_GRACE_SECONDS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  requestSessionLogout,
  waitForSessionsToEnd,
} from './async.js';
import { abortSessionLocalTasks, IscsiConnection } from './connection.js';
import type { ItNexus } from '../scsi/nexus.js';
import { BusyPoller } from './busy-poll.js';
import { DataOutBudget, resolveLimits, type IscsiLimits } from './limits.js';
import { TARGET_PARAM_NAMES, TargetParams } from './params.js';
import { parsePortal, Portal, formatHostPort } from './portal.js';
import { DEFAULT_CALLBACK_TIMEOUT_MS } from './redirect.js';
import type { IscsiSession } from './session.js';

export interface IscsiDriverOptions {
  /** Defaults for new targets (tgtd --iscsi nop_interval=,nop_count=). */
  nopInterval?: number;
  nopCount?: number;
  /** Diagnostic log (debug level). */
  log?: (message: string) => void;
  /** Seconds initiators get to log out when their target is deleted with --force (async.ts). */
  logoutGraceSeconds?: number;
  /** Milliseconds sessions get to log out when tgtd stops (SIGTERM/SIGINT, async.ts). */
  shutdownGraceMs?: number;
  /** How long a RedirectCallback may run (redirect.ts). */
  redirectCallbackTimeoutMs?: number;
  /** Resource limits (limits.ts); unset fields keep their defaults. */
  limits?: Partial<IscsiLimits>;
  /** Longest the event loop polls for new work after work (busy-poll.ts), in us; 0 (default): never. */
  busyPollUs?: number;
  /**
   * tgtd --workers: offered each normal session's connection at its first Login Request, with
   * the target's name and that PDU's bytes; returns true when it took the connection (the
   * socket then no longer has its descriptor). Not offered: discovery sessions, and first
   * requests whose keys continue in another PDU (C bit) or that have bytes after them.
   */
  handOff?: (targetName: string, socket: net.Socket, firstPdu: Buffer, driver: IscsiDriver) => boolean;
  /** TSIHs this driver gives out (tgtd --workers gives each process its own range); default all. */
  tsihRange?: { first: number; last: number };
  /**
   * tgtd --workers: whether this process serves `target` itself (tgtd keeps a copy of the
   * targets its workers serve); logins to the others are refused with 0x0301. Default: all.
   */
  serves?: (target: ScsiTarget) => boolean;
  /** Whether discovery sessions are answered here (default true; tgtd's workers: false). */
  servesDiscovery?: boolean;
  /** TSIHs in use elsewhere (tgtd --workers: lent to a worker), which allocateTsih skips. */
  tsihTaken?: (tsih: number) => boolean;
  /** Called when a session's TSIH, or one offered to a connection (adopt), is free again. */
  onTsihReleased?: (tsih: number) => void;
  /**
   * tgtd --spread sessions: a TARGET COLD RESET was answered here and this process's
   * connections to `target` are ending; other processes serving its sessions must end theirs.
   */
  onColdReset?: (target: ScsiTarget) => void;
}

/** TSIHs are 16-bit and never 0 (RFC 7143 11.12.6). */
const MAX_TSIH = 0xffff;
const ALL_TSIHS = { first: 1, last: MAX_TSIH };

export class IscsiDriver implements TargetDriver {
  readonly name = 'iscsi';
  state: DriverState = 'ready';
  readonly portals: Portal[] = [];
  readonly sessions = new Map<number, IscsiSession>();
  readonly connections = new Set<IscsiConnection>();
  /** Parameters for discovery sessions (not tied to a target). */
  readonly discoveryParams: TargetParams;
  private readonly targetParams = new Map<number, TargetParams>();
  private readonly tsihRange: { first: number; last: number };
  private nextTsih: number;
  /** Portals added with `portal new`, with the spec they were given (for --state). */
  private readonly addedPortals = new Map<Portal, string>();
  readonly log: (message: string) => void;
  readonly redirectCallbackTimeoutMs: number;
  readonly logoutGraceSeconds: number;
  /** Resource limits every connection applies (limits.ts). */
  readonly limits: IscsiLimits;
  /** Polls the event loop between commands (tgtd --iscsi busy_poll=). */
  readonly busyPoll: BusyPoller;
  /** Data-Out bytes held by all connections together. */
  readonly dataOutBudget: DataOutBudget;

  constructor(
    readonly system: TargetSystem,
    private readonly options: IscsiDriverOptions = {},
  ) {
    this.log = options.log ?? (() => {});
    this.redirectCallbackTimeoutMs = options.redirectCallbackTimeoutMs ?? DEFAULT_CALLBACK_TIMEOUT_MS;
    this.logoutGraceSeconds = options.logoutGraceSeconds ?? DEFAULT_LOGOUT_GRACE_SECONDS;
    this.tsihRange = options.tsihRange ?? ALL_TSIHS;
    if (
      this.tsihRange.first < 1 ||
      this.tsihRange.last > MAX_TSIH ||
      this.tsihRange.first > this.tsihRange.last
    )
      throw new RangeError(`invalid TSIH range ${this.tsihRange.first}-${this.tsihRange.last}`);
    this.nextTsih = this.tsihRange.first;
    this.discoveryParams = this.newParams();
    this.limits = resolveLimits(options.limits);
    this.busyPoll = new BusyPoller(options.busyPollUs ?? 0);
    this.dataOutBudget = new DataOutBudget(this.limits.maxDataOutBytesTotal);
  }

  private newParams(): TargetParams {
    return new TargetParams({
      nopInterval: this.options.nopInterval ?? 0,
      nopCount: this.options.nopCount ?? 0,
    });
  }

  /** Listen on a portal spec ("ADDR:PORT"); rejects on a malformed spec or a bind error. */
  async listen(spec: string): Promise<Portal> {
    const addr = parsePortal(spec);
    if (!addr) throw new Error(`invalid portal '${spec}'`);
    const portal = await Portal.listen(addr, (socket) => this.accept(socket));
    this.portals.push(portal);
    return portal;
  }

  /**
   * A connection another process accepted and read `head` from (tgtd --workers), with the TSIH
   * it allocated should the connection start a new session (0: none).
   */
  adopt(socket: net.Socket, head: Buffer, offeredTsih: number): void {
    if (this.state !== 'ready' || this.connections.size >= this.limits.maxConnections) {
      socket.destroy();
      if (offeredTsih !== 0) this.releaseTsih(offeredTsih);
      return;
    }
    const conn = this.addConnection(socket);
    conn.offeredTsih = offeredTsih;
    conn.pushReceived(head);
  }

  /** See IscsiDriverOptions.onTsihReleased. */
  releaseTsih(tsih: number): void {
    this.options.onTsihReleased?.(tsih);
  }

  /** See IscsiDriverOptions.serves. */
  serves(target: ScsiTarget): boolean {
    return this.options.serves?.(target) ?? true;
  }

  /** See IscsiDriverOptions.servesDiscovery. */
  get servesDiscovery(): boolean {
    return this.options.servesDiscovery ?? true;
  }

  /** Whether connections are offered to options.handOff. */
  get handsOff(): boolean {
    return this.options.handOff !== undefined;
  }

  /** See IscsiDriverOptions.handOff. */
  handOff(targetName: string, socket: net.Socket, firstPdu: Buffer): boolean {
    return this.options.handOff?.(targetName, socket, firstPdu, this) ?? false;
  }

  private addConnection(socket: net.Socket): IscsiConnection {
    const conn = new IscsiConnection(this, socket);
    this.connections.add(conn);
    conn.onClose = () => this.connections.delete(conn);
    return conn;
  }

  private accept(socket: net.Socket): void {
    // tgt §3.5: while the system is offline, or has no target at all, connections are accepted
    // and closed at once.
    if (this.system.state !== 'ready' || this.system.targets.size === 0 || this.state !== 'ready') {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.limits.maxConnections) {
      this.log(`iscsi: refusing a connection from ${socket.remoteAddress}: ${this.connections.size} open`);
      socket.destroy();
      return;
    }
    this.addConnection(socket);
  }

  /** The iSCSI parameters of a target (created on first use). */
  paramsFor(target: ScsiTarget): TargetParams {
    let p = this.targetParams.get(target.tid);
    if (!p) {
      p = this.newParams();
      this.targetParams.set(target.tid, p);
    }
    return p;
  }

  /** The target still exists (it may be deleted while one of its logins is in progress). */
  isLive(target: ScsiTarget): boolean {
    return this.system.targets.get(target.tid) === target;
  }

  /** A fresh TSIH not used by a live session. */
  allocateTsih(): number {
    const { first, last } = this.tsihRange;
    for (let i = first; i <= last; i++) {
      const tsih = this.nextTsih;
      this.nextTsih = this.nextTsih >= last ? first : this.nextTsih + 1;
      if (!this.sessions.has(tsih) && !this.options.tsihTaken?.(tsih)) return tsih;
    }
    return 0;
  }

  /** Closed sessions whose commands are still running in the core (see retireSession). */
  private readonly drainingSessions = new Set<IscsiSession>();

  /**
   * Forget a closed session. While commands it submitted still run, a new login of the same
   * initiator to the same target waits for them (drainingFor): otherwise a write the initiator
   * saw fail with the connection could land after it logged in again and wrote newer data.
   */
  retireSession(session: IscsiSession): void {
    if (this.sessions.get(session.tsih) === session) {
      this.sessions.delete(session.tsih);
      this.releaseTsih(session.tsih);
    }
    if (session.isDiscovery) return;
    this.drainingSessions.add(session);
    void session.drained.then(() => this.drainingSessions.delete(session));
  }

  /** Resolves when no closed session of `initiatorName` on `target` has commands running; null if none has. */
  drainingFor(target: ScsiTarget, initiatorName: string): Promise<void> | null {
    const waits: Promise<void>[] = [];
    for (const s of this.drainingSessions)
      if (s.target === target && s.initiatorName === initiatorName) waits.push(s.drained);
    return waits.length === 0 ? null : Promise.all(waits).then(() => undefined);
  }

  /** The live session with this initiator name and ISID on this target (for reinstatement). */
  findSession(initiatorName: string, isid: string, target: ScsiTarget | null): IscsiSession | undefined {
    for (const s of this.sessions.values()) {
      if (s.initiatorName === initiatorName && s.isid === isid && s.target === target && !s.isClosed)
        return s;
    }
    return undefined;
  }

  /**
   * RFC 7143 11.5.1: after a TARGET COLD RESET every TCP connection to the target closes (once
   * what is queued on it is sent), which ends its sessions.
   */
  endSessionsOf(target: ScsiTarget, reason: string): void {
    for (const s of this.sessionsOf(target)) {
      for (const conn of s.connections) conn.endUnrecoverably(reason);
    }
  }

  /**
   * Task management from another process (tgtd --spread sessions) reaches `nexus`'s session:
   * its tasks that never reached the core end first (see IscsiConnection.abortLocalTasks).
   */
  abortFabricTasks(nexus: ItNexus, lun: Buffer | null, issuer: ItNexus | null): void {
    for (const s of this.sessions.values()) if (s.nexus === nexus) abortSessionLocalTasks(s, lun, issuer);
  }

  /** See IscsiDriverOptions.onColdReset. */
  coldReset(target: ScsiTarget): void {
    this.endSessionsOf(target, 'target cold reset');
    this.options.onColdReset?.(target);
  }

  /** The live sessions logged in to `target`. */
  sessionsOf(target: ScsiTarget): IscsiSession[] {
    return [...this.sessions.values()].filter((s) => s.target === target && !s.isClosed);
  }

  // --- TargetDriver -------------------------------------------------------------------------

  targetCreated(target: ScsiTarget): void {
    this.targetParams.set(target.tid, this.newParams());
  }

  /**
   * `target delete [--force]`. Forced: every session is asked to log out (Async Message,
   * RFC 7143 11.9.1) and closed after the grace period; tgt drops the connections at once.
   */
  targetDestroy(target: ScsiTarget, force: boolean): AdminError {
    const sessions = [...this.sessions.values()].filter((s) => s.target === target && !s.isClosed);
    if (sessions.length > 0 && !force) return AdminError.TargetActive;
    for (const s of sessions) {
      this.log(`iscsi: target ${target.tid} deleted: asking session ${s.tsih} to log out`);
      requestSessionLogout(s, this.logoutGraceSeconds);
    }
    this.targetParams.delete(target.tid);
    return AdminError.Success;
  }

  targetUpdate(target: ScsiTarget, name: string, value: string): AdminError {
    return this.paramsFor(target).set(name, value) ? AdminError.Success : AdminError.InvalidRequest;
  }

  targetShowParams(target: ScsiTarget): string {
    return this.paramsFor(target).show();
  }

  targetShowSystemInfo(target: ScsiTarget): string[] {
    const p = this.paramsFor(target);
    return p.nopInterval !== 0 ? [`Nop interval: ${p.nopInterval}`, `Nop count: ${p.nopCount}`] : [];
  }

  async portalCreate(spec: string): Promise<AdminError> {
    if (!parsePortal(spec)) return AdminError.InvalidRequest;
    try {
      this.addedPortals.set(await this.listen(spec), spec);
      return AdminError.Success;
    } catch {
      return AdminError.InvalidRequest;
    }
  }

  async portalDestroy(spec: string): Promise<AdminError> {
    const addr = parsePortal(spec);
    if (!addr) return AdminError.InvalidRequest;
    const i = this.portals.findIndex((p) => {
      const a = p.address;
      return (p.requested.host === addr.host || a.host === addr.host) && a.port === addr.port;
    });
    if (i < 0) return AdminError.InvalidRequest;
    const [portal] = this.portals.splice(i, 1);
    this.addedPortals.delete(portal!);
    await portal!.close();
    return AdminError.Success;
  }

  portalShow(): string {
    return this.portals.map((p) => `Portal: ${p.describe()},1\n`).join('');
  }

  connectionShow(target: ScsiTarget): string {
    let out = '';
    for (const s of this.sessions.values()) {
      if (s.target !== target) continue;
      for (const c of s.connections) {
        out += `Session: ${s.tsih}\n    Connection: ${c.cid}\n        Initiator: ${s.initiatorName}\n`;
        out += `        IP Address: ${c.remoteAddress}\n`;
      }
    }
    return out;
  }

  connectionDelete(target: ScsiTarget, sid: bigint, cid: number): AdminError {
    const s = this.sessions.get(Number(sid));
    if (!s || s.target !== target) return AdminError.NoSession;
    for (const c of s.connections) {
      if (c.cid === cid) {
        c.dropAnnounced('deleted by tgtadm');
        return AdminError.Success;
      }
    }
    return AdminError.NoConnection;
  }

  sessionConnectionStats(sid: bigint): ConnectionStats[] | null {
    const s = this.sessions.get(Number(sid));
    if (!s) return null;
    return [...s.connections].map((c) => c.stats(s.tsih));
  }

  connectionStats(sid: bigint, cid: number): ConnectionStats | AdminError {
    const s = this.sessions.get(Number(sid));
    if (!s) return AdminError.NoSession;
    for (const c of s.connections) if (c.cid === cid) return c.stats(s.tsih);
    return AdminError.NoConnection;
  }

  // --- state export (src/mgmt/state.ts) -------------------------------------------------------

  /**
   * Every per-target setting as `target update` name/value pairs that recreate it (unlike
   * `target show --tid`, which hides the iSCSI keys while a redirect is configured).
   */
  exportTargetParams(target: ScsiTarget): Array<[string, string]> {
    const p = this.paramsFor(target);
    const out: Array<[string, string]> = [
      ['nop_interval', String(p.nopInterval)],
      ['nop_count', String(p.nopCount)],
    ];
    for (const name of TARGET_PARAM_NAMES) {
      const shown = p.format(name);
      // Markers are shown as "Reject" (not implemented) but set as numbers.
      out.push([name, shown === 'Reject' ? String(p.get(name)) : shown]);
    }
    const r = p.redirect;
    if (r.address !== '') out.push(['RedirectAddress', r.address]);
    if (r.port !== '') out.push(['RedirectPort', r.port]);
    if (r.reason !== undefined) out.push(['RedirectReason', r.reason]);
    if (r.callback !== undefined) out.push(['RedirectCallback', r.callback]);
    return out;
  }

  /** Portals added at run time (`portal new`), as the specs they were given, in order. */
  runtimePortals(): string[] {
    return this.portals.flatMap((p) => {
      const spec = this.addedPortals.get(p);
      return spec === undefined ? [] : [spec];
    });
  }

  systemShow(): string {
    return 'iSNS:\n    iSNS=Off\n    iSNSServerIP=\n    iSNSServerPort=3205\n    iSNSAccessControl=Off\n';
  }

  systemUpdate(_name: string, _value: string): AdminError {
    return AdminError.InvalidRequest;
  }

  /**
   * Stop the fabric (tgtd on SIGTERM/SIGINT): stop listening and drop connections still logging
   * in, ask every session to log out (Async Message, RFC 7143 11.9.1) while its commands keep
   * running, then, when all have gone or the grace period is over, close what is left (queued
   * commands are aborted; the core lets running ones finish on their store).
   */
  async shutdown(graceMs = this.options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS): Promise<void> {
    this.state = 'stopped';
    const portalsClosed = Promise.all(this.portals.splice(0).map((p) => p.close()));
    for (const c of [...this.connections]) if (!c.session) c.close('shutdown');
    // ERL 2: sessions whose connections all failed are only waiting for a reassignment: end them.
    for (const s of [...this.sessions.values()]) if (s.connections.size === 0) s.close('shutdown');
    const sessions = [...this.sessions.values()].filter((s) => !s.isClosed);
    if (sessions.length > 0) {
      this.log(`iscsi: shutdown: asking ${sessions.length} session(s) to log out`);
      for (const s of sessions) s.connections.forEach((c) => c.requestLogout(Math.ceil(graceMs / 1000)));
      await waitForSessionsToEnd(sessions, graceMs);
    }
    for (const s of [...this.sessions.values()]) s.close('shutdown');
    for (const c of [...this.connections]) c.close('shutdown');
    await portalsClosed;
  }

  /** "addr:port" of a portal for SendTargets, IPv6 bracketed. */
  static targetAddress(host: string, port: number): string {
    return `${formatHostPort(host, port)},1`;
  }
}

/**
 * Persistent reservations of one logical unit (SPC-4 5.13): registrations keyed by I_T nexus
 * identity, the reservation and its holder, the PRgeneration counter, the conflict rules each
 * command is checked against, and the SPC-3 5.6.3 exceptions for SPC-2 RESERVE/RELEASE.
 *
 * This module knows no CDBs: `device/pr.ts` decodes PERSISTENT RESERVE IN/OUT and calls the
 * operations here. An operation returns false for RESERVATION CONFLICT, throws a SenseError for
 * CHECK CONDITION, and reports unit attentions through the `notify` callback given by the LU.
 *
 * Identity: every LU of a target sits behind the same single target port (relative target
 * port 1), so an I_T nexus is identified by its initiator port name alone ("<InitiatorName>,i,
 * 0x<ISID>" for iSCSI, or the bare name when the fabric does not tell the ISID). Registrations
 * survive I_T nexus loss and LU reset (SPC-4 5.13.1). A registration made through a name-only
 * TransportID (SPEC_I_PT, format 00b) covers every initiator port with that iSCSI name.
 *
 * Persistence (SPC-4 5.13.5, APTPL): when the LU has a `persistence` (see `pr-store.ts`) and the
 * last REGISTER / REGISTER AND IGNORE EXISTING KEY / REGISTER AND MOVE had APTPL set, the whole
 * state is saved after every change (`persist()`) and restored at LU creation (`restore()`).
 */
import { Buffer } from 'node:buffer';
import { SenseError, SenseReason } from './sense.js';

/** SPC-4 6.16.3.4 Table 193: persistent reservation TYPE codes. */
export enum PrType {
  WriteExclusive = 0x1,
  ExclusiveAccess = 0x3,
  WriteExclusiveRegistrantsOnly = 0x5,
  ExclusiveAccessRegistrantsOnly = 0x6,
  WriteExclusiveAllRegistrants = 0x7,
  ExclusiveAccessAllRegistrants = 0x8,
}

/** True for the six TYPE codes SPC-4 defines. */
export function isPrType(n: number): n is PrType {
  return n === 1 || n === 3 || (n >= 5 && n <= 8);
}

/** All-registrants types: every registered I_T nexus is a reservation holder (SPC-4 5.13.10). */
export function isAllRegistrants(t: PrType): boolean {
  return t === PrType.WriteExclusiveAllRegistrants || t === PrType.ExclusiveAccessAllRegistrants;
}

/** Registrants-only types. */
export function isRegistrantsOnly(t: PrType): boolean {
  return t === PrType.WriteExclusiveRegistrantsOnly || t === PrType.ExclusiveAccessRegistrantsOnly;
}

/** Exclusive Access flavours: reads conflict too. */
function isExclusiveAccess(t: PrType): boolean {
  return (
    t === PrType.ExclusiveAccess ||
    t === PrType.ExclusiveAccessRegistrantsOnly ||
    t === PrType.ExclusiveAccessAllRegistrants
  );
}

/**
 * How a command fares when sent through an I_T nexus that does not hold the persistent
 * reservation (SPC-4 5.13.1 Table 63 for SPC commands, SBC-4 4.17 for block commands).
 */
export enum PrAccess {
  /** Allowed under every reservation (INQUIRY, REPORT LUNS, TEST UNIT READY, PR IN/OUT...). */
  Allowed,
  /** Reads: conflict only under the Exclusive Access types. */
  Read,
  /** Writes and state changes: conflict under every type. */
  Write,
}

/** One registered I_T nexus. */
export interface Registration {
  /** Initiator port name (see the module comment). */
  readonly port: string;
  key: bigint;
  /** ALL_TG_PT was set (reported by READ FULL STATUS; we have one target port anyway). */
  allTargetPorts: boolean;
}

/** Unit attention delivery: to every I_T nexus whose initiator port is `port`. */
export type PrNotify = (port: string, reason: SenseReason) => void;

/** Outcome of PREEMPT: false = RESERVATION CONFLICT, else the ports whose registrations were removed. */
export type PreemptResult = false | string[];

/** How an SPC-2 RESERVE/RELEASE is handled next to persistent reservations (SPC-3 5.6.3). */
export type Spc2Handling = 'normal' | 'noop' | 'conflict';

/** Normalised identity: iSCSI names compare case-insensitively (RFC 3722 stringprep lowercases). */
export function normalizePort(port: string): string {
  return port.toLowerCase();
}

/** The iSCSI name of an initiator port ("name,i,0xISID" -> "name"; a bare name stays as is). */
export function initiatorNameOf(port: string): string {
  const m = /^(.+),i,0x[0-9a-f]+$/i.exec(port);
  return m ? m[1]! : port;
}

/**
 * Is the I_T nexus of initiator port `nexusPort` covered by a registration made for `registered`:
 * the same port, or (name-only TransportID, SPC-4 7.6.4.6 format 00b) any port of that name?
 */
export function registrationCovers(registered: string, nexusPort: string): boolean {
  const r = normalizePort(registered);
  const n = normalizePort(nexusPort);
  return r === n || (initiatorNameOf(r) === r && initiatorNameOf(n) === r);
}

/** Everything APTPL preserves (SPC-4 5.13.5): registrations, reservation, generation. */
export interface PrSnapshot {
  generation: number;
  /** The last APTPL value received with a registration. */
  aptpl: boolean;
  type: PrType | null;
  /** Initiator port of the holder of a non all-registrants reservation. */
  holder: string | null;
  registrations: { port: string; key: bigint; allTargetPorts: boolean }[];
}

/** Where an LU's PR state is kept across restarts; `save(null)` forgets it. */
export interface PrPersistence {
  save(state: PrSnapshot | null): Promise<void>;
}

/** Persistent reservation state of one LU. */
export class PersistentReservations {
  private gen = 0;
  /** By normalised initiator port, in registration order (READ KEYS lists them so). */
  private readonly regs = new Map<string, Registration>();
  private type: PrType | null = null;
  /** The holder of a non all-registrants reservation. */
  private holder: Registration | null = null;
  /** APTPL of the last registration (SPC-4 5.13.5): the state must survive power loss. */
  private ptplActive = false;
  /** A saved state exists that the next `persist()` must replace or remove. */
  private saved = false;
  /** Where the state is saved; null = APTPL is not supported (PTPL_C = 0). */
  persistence: PrPersistence | null = null;

  constructor(private readonly notify: PrNotify = () => undefined) {}

  /** PRGENERATION (SPC-4 6.16.2): a 32-bit wrapping counter. */
  get generation(): number {
    return this.gen;
  }

  /** The reservation TYPE, or null when the LU is not reserved. */
  get reservationType(): PrType | null {
    return this.type;
  }

  /** READ RESERVATION's key: the holder's, or 0 for all-registrants types (SPC-4 6.16.3.2). */
  get reservationKey(): bigint {
    return this.holder?.key ?? 0n;
  }

  /** Registrations in registration order. */
  registrations(): Registration[] {
    return [...this.regs.values()];
  }

  /** Any I_T nexus registered. */
  get hasRegistrations(): boolean {
    return this.regs.size > 0;
  }

  /**
   * The registration of an initiator port, if any: its own, else one made for its iSCSI name
   * alone (a format 00b TransportID).
   */
  registrationOf(port: string): Registration | undefined {
    const own = this.regs.get(normalizePort(port));
    if (own !== undefined || this.regs.size === 0) return own;
    return this.regs.get(normalizePort(initiatorNameOf(port)));
  }

  /** PTPL_A (SPC-4 6.15.4): persist through power loss is activated. */
  get aptpl(): boolean {
    return this.ptplActive;
  }

  /**
   * Record the APTPL bit of a successful REGISTER, REGISTER AND IGNORE EXISTING KEY or REGISTER
   * AND MOVE (SPC-4 6.16.3.1: ignored for the other service actions). Setting it without a
   * `persistence` is INVALID FIELD IN PARAMETER LIST (PTPL_C = 0).
   */
  setAptpl(aptpl: boolean): void {
    if (aptpl && this.persistence === null) throw new SenseError(SenseReason.InvalidFieldInParameterList);
    this.ptplActive = aptpl;
  }

  /**
   * Save the state after a change while APTPL is active (SPC-4 5.13.5), or remove the saved
   * state once it is not; resolves when the state is durable.
   */
  async persist(): Promise<void> {
    const store = this.persistence;
    if (store === null || (!this.ptplActive && !this.saved)) return;
    const state = this.ptplActive ? this.snapshot() : null;
    this.saved = state !== null;
    await store.save(state);
  }

  /** The state as APTPL preserves it. */
  snapshot(): PrSnapshot {
    return {
      generation: this.gen,
      aptpl: this.ptplActive,
      type: this.type,
      holder: this.holder?.port ?? null,
      registrations: this.registrations().map((r) => ({
        port: r.port,
        key: r.key,
        allTargetPorts: r.allTargetPorts,
      })),
    };
  }

  /** Replace the state with a saved one (LU creation at tgtd start). */
  restore(state: PrSnapshot): void {
    this.regs.clear();
    for (const r of state.registrations)
      this.regs.set(normalizePort(r.port), { port: r.port, key: r.key, allTargetPorts: r.allTargetPorts });
    this.gen = state.generation >>> 0;
    this.type = state.type;
    this.holder =
      state.type === null || isAllRegistrants(state.type) || state.holder === null
        ? null
        : (this.regs.get(normalizePort(state.holder)) ?? null);
    // a holder-type reservation whose holder is not registered cannot exist
    if (this.type !== null && !isAllRegistrants(this.type) && this.holder === null) this.type = null;
    this.ptplActive = state.aptpl;
    this.saved = true;
  }

  /** The I_T nexus is a reservation holder (SPC-4 5.13.10). */
  isHolder(port: string): boolean {
    const reg = this.registrationOf(port);
    return reg !== undefined && this.holds(reg);
  }

  /**
   * SPC-4 5.13.1: does a command of class `access` from `port` conflict with the persistent
   * reservation? Holders never conflict; registered I_T nexuses do not under the
   * registrants-only and all-registrants types.
   */
  conflicts(port: string, access: PrAccess): boolean {
    const type = this.type;
    if (type === null || access === PrAccess.Allowed) return false;
    const reg = this.registrationOf(port);
    if (reg && (this.holds(reg) || isRegistrantsOnly(type) || isAllRegistrants(type))) return false;
    return access === PrAccess.Write || isExclusiveAccess(type);
  }

  /**
   * SPC-3 5.6.3 (CRH = 1): RESERVE/RELEASE(6/10) from a holder, or from a registered I_T nexus
   * under a registrants-only or all-registrants reservation, completes GOOD and changes
   * nothing; otherwise, while any I_T nexus is registered, it conflicts (SPC-2 5.5.1).
   */
  spc2Handling(port: string): Spc2Handling {
    if (this.regs.size === 0) return 'normal';
    const reg = this.registrationOf(port);
    const type = this.type;
    if (reg && type !== null && (this.holds(reg) || isRegistrantsOnly(type) || isAllRegistrants(type)))
      return 'noop';
    return 'conflict';
  }

  /**
   * REGISTER (SPC-4 5.13.7) and REGISTER AND IGNORE EXISTING KEY (`ignoreKey`): register
   * `sark`, change the key, or unregister when `sark` is zero. The reservation key must match
   * the registration (zero when not registered) unless `ignoreKey`.
   */
  register(
    port: string,
    reservationKey: bigint,
    sark: bigint,
    ignoreKey: boolean,
    allTargetPorts: boolean,
  ): boolean {
    const reg = this.registrationOf(port);
    if (!ignoreKey && reservationKey !== (reg?.key ?? 0n)) return false;
    if (!reg) {
      if (sark !== 0n) this.regs.set(normalizePort(port), { port, key: sark, allTargetPorts });
    } else if (sark === 0n) {
      this.unregister(reg);
    } else {
      reg.key = sark;
    }
    this.bump();
    return true;
  }

  /**
   * REGISTER with SPEC_I_PT (SPC-4 5.13.7, 6.16.3.1): register the issuing I_T nexus and every
   * initiator port of `others` (from the parameter list's TransportIDs) with `sark`, all or none.
   * A registered issuer gets INVALID FIELD IN CDB; a port named twice or already registered gets
   * INVALID FIELD IN PARAMETER LIST.
   */
  registerSpecified(
    port: string,
    reservationKey: bigint,
    sark: bigint,
    allTargetPorts: boolean,
    others: readonly string[],
  ): boolean {
    const reg = this.registrationOf(port);
    if (reservationKey !== (reg?.key ?? 0n)) return false;
    if (reg) throw new SenseError(SenseReason.InvalidFieldInCdb);
    // SPC-4 5.13.7: an unregistered I_T nexus registering key zero changes nothing
    if (sark === 0n) return true;
    const wanted = new Set([normalizePort(port)]);
    for (const other of others) {
      const id = normalizePort(other);
      if (wanted.has(id) || this.registrationOf(other))
        throw new SenseError(SenseReason.InvalidFieldInParameterList);
      wanted.add(id);
    }
    for (const p of [port, ...others])
      this.regs.set(normalizePort(p), { port: p, key: sark, allTargetPorts });
    this.bump();
    return true;
  }

  /** RESERVE (SPC-4 5.13.9): create the reservation, or succeed again for its holder with the same type. */
  reserve(port: string, reservationKey: bigint, type: PrType): boolean {
    const reg = this.checkKey(port, reservationKey);
    if (!reg) return false;
    if (this.type === null) {
      this.type = type;
      this.holder = isAllRegistrants(type) ? null : reg;
      return true;
    }
    // SPC-4 5.13.9: another holder, or a different TYPE -> RESERVATION CONFLICT
    return this.holds(reg) && this.type === type;
  }

  /**
   * RELEASE (SPC-4 5.13.11.2): only a holder releases; a non-holder gets a GOOD that changes
   * nothing. A TYPE other than the reservation's -> INVALID RELEASE OF PERSISTENT RESERVATION.
   */
  release(port: string, reservationKey: bigint, type: PrType): boolean {
    const reg = this.checkKey(port, reservationKey);
    if (!reg) return false;
    const current = this.type;
    if (current === null || !this.holds(reg)) return true;
    if (current !== type) throw new SenseError(SenseReason.InvalidReleaseOfPersistentReservation);
    this.clearReservation();
    // SPC-4 5.13.11.2: registrants-only / all-registrants -> RESERVATIONS RELEASED to the others
    if (isRegistrantsOnly(current) || isAllRegistrants(current))
      this.notifyOthers(reg, SenseReason.ReservationsReleased);
    return true;
  }

  /** CLEAR (SPC-4 5.13.11.3): drop every registration and the reservation. */
  clear(port: string, reservationKey: bigint): boolean {
    const reg = this.checkKey(port, reservationKey);
    if (!reg) return false;
    this.notifyOthers(reg, SenseReason.ReservationsPreempted);
    this.regs.clear();
    this.clearReservation();
    this.bump();
    return true;
  }

  /**
   * PREEMPT / PREEMPT AND ABORT (SPC-4 5.13.11.4). With SARK naming the holder of a
   * reservation (or zero under an all-registrants one) the reservation passes to this I_T
   * nexus with the new TYPE; otherwise only the registrations with key SARK are removed.
   * Returns the removed ports (the caller aborts their commands for PREEMPT AND ABORT).
   */
  preempt(port: string, reservationKey: bigint, sark: bigint, type: PrType): PreemptResult {
    const reg = this.checkKey(port, reservationKey);
    if (!reg) return false;
    const current = this.type;
    const takesReservation =
      current !== null && (isAllRegistrants(current) ? sark === 0n : this.holder!.key === sark);
    if (takesReservation) {
      const removed = this.removeWhere((r) => r !== reg && (sark === 0n || r.key === sark));
      this.type = type;
      this.holder = isAllRegistrants(type) ? null : reg;
      for (const r of removed) this.notify(r.port, SenseReason.RegistrationsPreempted);
      // SPC-4 5.13.11.4.3: a changed TYPE releases the old reservation for the remaining registrants
      if (current !== type) this.notifyOthers(reg, SenseReason.ReservationsReleased);
      this.bump();
      return removed.map((r) => r.port);
    }
    // SPC-4 5.13.11.4.4: no reservation to take: SARK zero is invalid, else remove its registrations
    if (sark === 0n) throw new SenseError(SenseReason.InvalidFieldInParameterList);
    const matching = [...this.regs.values()].filter((r) => r.key === sark);
    if (matching.length === 0) return false;
    for (const r of matching) this.unregister(r);
    for (const r of matching) if (r !== reg) this.notify(r.port, SenseReason.RegistrationsPreempted);
    this.bump();
    return matching.map((r) => r.port);
  }

  /**
   * REGISTER AND MOVE (SPC-4 5.13.8): the holder of a (non all-registrants) reservation
   * registers `destPort` with `sark`, hands it the reservation, and unregisters itself when
   * `unregister`.
   */
  registerAndMove(
    port: string,
    reservationKey: bigint,
    sark: bigint,
    destPort: string,
    unregister: boolean,
  ): boolean {
    const reg = this.checkKey(port, reservationKey);
    if (!reg) return false;
    if (this.type === null || isAllRegistrants(this.type) || this.holder !== reg) return false;
    if (sark === 0n || normalizePort(destPort) === normalizePort(port))
      throw new SenseError(SenseReason.InvalidFieldInParameterList);
    let dest = this.registrationOf(destPort);
    if (dest) dest.key = sark;
    else {
      dest = { port: destPort, key: sark, allTargetPorts: false };
      this.regs.set(normalizePort(destPort), dest);
    }
    this.holder = dest;
    if (unregister) this.regs.delete(normalizePort(reg.port));
    this.bump();
    return true;
  }

  private holds(reg: Registration): boolean {
    if (this.type === null) return false;
    return isAllRegistrants(this.type) ? this.regs.get(normalizePort(reg.port)) === reg : this.holder === reg;
  }

  /** The registration of `port` when `key` matches it (SPC-4 5.13.1: else RESERVATION CONFLICT). */
  private checkKey(port: string, key: bigint): Registration | undefined {
    const reg = this.registrationOf(port);
    return reg && reg.key === key ? reg : undefined;
  }

  /**
   * Remove one registration (SPC-4 5.13.11.2.3): the holder's removal releases the reservation
   * (for all-registrants types only when nobody is left); registrants-only types then report
   * RESERVATIONS RELEASED to the remaining registrants.
   */
  private unregister(reg: Registration): void {
    this.regs.delete(normalizePort(reg.port));
    const type = this.type;
    if (type === null) return;
    if (isAllRegistrants(type)) {
      if (this.regs.size === 0) this.clearReservation();
    } else if (this.holder === reg) {
      this.clearReservation();
      if (isRegistrantsOnly(type)) this.notifyOthers(reg, SenseReason.ReservationsReleased);
    }
  }

  private removeWhere(match: (r: Registration) => boolean): Registration[] {
    const removed = [...this.regs.values()].filter(match);
    for (const r of removed) this.regs.delete(normalizePort(r.port));
    return removed;
  }

  private clearReservation(): void {
    this.type = null;
    this.holder = null;
  }

  private notifyOthers(except: Registration, reason: SenseReason): void {
    for (const r of this.regs.values()) if (r !== except) this.notify(r.port, reason);
  }

  private bump(): void {
    this.gen = (this.gen + 1) >>> 0;
  }
}

/** SPC-4 7.6.4.6: iSCSI TransportID, format 00b (name) or 01b (initiator port: name,i,0xISID). */
export function encodeIscsiTransportId(port: string): Buffer {
  const isPort = /,i,0x[0-9a-f]+$/i.test(port);
  const name = Buffer.from(port, 'utf8');
  // NUL terminated, padded to a multiple of 4, at least 20 bytes (SPC-4 7.6.4.6)
  const len = Math.max(20, (name.length + 1 + 3) & ~3);
  const t = Buffer.alloc(4 + len);
  t[0] = (isPort ? 0x40 : 0x00) | 0x05;
  t.writeUInt16BE(len, 2);
  name.copy(t, 4);
  return t;
}

/**
 * Decode an iSCSI TransportID (SPC-4 7.6.4.6) into an initiator port name: "name" for format
 * 00b, "name,i,0xISID" for 01b. Throws INVALID FIELD IN PARAMETER LIST for anything else.
 * Returns the name and the TransportID's total length.
 */
export function decodeIscsiTransportId(buf: Buffer): { port: string; length: number } {
  const bad = () => new SenseError(SenseReason.InvalidFieldInParameterList);
  if (buf.length < 4) throw bad();
  const protocol = buf[0]! & 0x0f;
  const format = buf[0]! >> 6;
  if (protocol !== 0x05 || format > 1) throw bad();
  const len = buf.readUInt16BE(2);
  if (len < 4 || 4 + len > buf.length) throw bad();
  const body = buf.subarray(4, 4 + len);
  const nul = body.indexOf(0);
  const text = body.subarray(0, nul < 0 ? body.length : nul).toString('utf8');
  if (text.length === 0) throw bad();
  const m = /^(.+),i,0x([0-9a-f]{1,12})$/i.exec(text);
  if (format === 1) {
    if (!m) throw bad();
    return { port: `${m[1]},i,0x${m[2]!.toLowerCase()}`, length: 4 + len };
  }
  if (m) throw bad();
  return { port: text, length: 4 + len };
}

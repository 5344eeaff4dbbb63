/**
 * Request dispatch: one tgtadm request (mode x op, tgt-behaviour.md §2.3) -> calls on the core
 * (TargetSystem) and the fabric drivers (TargetDriver hooks) -> AdminError + response text.
 * Error choices follow tgt's usr/mgmt.c so that scripts see the same messages; where tgt is
 * plainly broken the deviation is commented here and listed in docs/errors.md.
 */
import { isAclMatch } from '../scsi/acl.js';
import { AdminError, GLOBAL_TID } from '../scsi/admin-error.js';
import type { DriverState, TargetDriver } from '../scsi/driver.js';
import { deviceTypes as registeredDeviceTypes } from '../scsi/device/index.js';
import type { LogicalUnit } from '../scsi/lu.js';
import type { LuCreateOptions } from '../scsi/system.js';
import type { ScsiTarget } from '../scsi/target.js';
import { isSnapshotRequest, snapshotResponse } from './config/snapshot.js';
import { strtoull } from './cstr.js';
import {
  type ConnStatRow,
  type LuShowInfo,
  type LuStatRow,
  type TargetShowInfo,
  formatAccountList,
  formatLldShow,
  formatSessionStats,
  formatStats,
  formatSystemShow,
  formatTargetShowAll,
  CONN_STAT_HEADER,
  formatConnStatLine,
} from './show.js';
import {
  AccountDirection,
  type AdminRequest,
  LUN_NOT_GIVEN,
  MgmtMode,
  MgmtOp,
  type ParsedPayload,
  parseParamList,
  payloadValue,
} from './wire.js';

export type { LuCreateOptions };

/**
 * What management needs from the core's TargetSystem (src/scsi/system.ts). Declared here
 * structurally so the mgmt layer states its contract (and tests can stub it); TargetSystem
 * satisfies it.
 */
export interface MgmtSystem {
  state: 'ready' | 'offline';
  debug: boolean;
  readonly drivers: ReadonlyMap<string, TargetDriver>;
  /** Targets by tid (insertion order = creation order, used by `lld show`). */
  readonly targets: ReadonlyMap<number, ScsiTarget>;
  targetsInOrder(): ScsiTarget[];
  createTarget(lld: string, tid: number, name: string): AdminError;
  deleteTarget(tid: number, force: boolean): AdminError;
  createLu(tid: number, lun: bigint, opts: LuCreateOptions): Promise<AdminError>;
  deleteLu(tid: number, lun: bigint): Promise<AdminError>;
  updateLu(tid: number, lun: bigint, params: Record<string, string>): Promise<AdminError>;
  bindAcl(tid: number, kind: 'address' | 'name', value: string): AdminError;
  unbindAcl(tid: number, kind: 'address' | 'name', value: string): AdminError;
  accountNew(user: string, password: string): AdminError;
  accountDelete(user: string): AdminError;
  accountBind(tid: number, user: string, outgoing: boolean): AdminError;
  accountUnbind(tid: number, user: string, outgoing: boolean): AdminError;
  /** user -> password, insertion order. */
  readonly accounts: ReadonlyMap<string, string>;
  /** Discovery (GLOBAL_TID) bindings. */
  readonly discoveryAccounts?: { incoming: readonly string[]; outgoing?: string | undefined };
  readonly storeTypes: ReadonlyMap<
    string,
    { readonly name: string; readonly supportedOflags: readonly string[] }
  >;
  /** Runs after each successful configuration change (tgtd --state); see TargetSystem. */
  onConfigChange?: (() => Promise<void>) | null;
  /** Device types for `system show` (default: the core's registry). */
  readonly deviceTypes?: Iterable<{ readonly code: number }>;
}

/**
 * Driver hooks for the iSCSI statistics tgt prints (session/connection stat). Optional until
 * TargetDriver grows them; without them those requests answer "invalid request".
 */
export interface DriverStatHooks {
  /** Connection counters of session `sid` (TSIH); null when there is no such session. */
  sessionConnectionStats?(sid: bigint): ConnStatRow[] | null;
  /** One connection's counters, or NoSession / NoConnection. */
  connectionStats?(sid: bigint, cid: number): ConnStatRow | AdminError;
  /** (Re)start a stopped driver (`lld start`). */
  start?(): Promise<AdminError>;
}

export interface DispatchResult {
  err: AdminError;
  text?: string;
  /** Run once the response has been written (system delete -> daemon exit). */
  afterResponse?: () => void;
}

export interface DispatchContext {
  system: MgmtSystem;
  /** Called after a successful `system delete` has been answered. */
  onSystemDelete: () => void;
}

type Driver = TargetDriver & DriverStatHooks;

const result = (err: AdminError, text?: string): DispatchResult =>
  text === undefined ? { err } : { err, text };

/** Execute one request. Never throws: unexpected exceptions become UnknownErr. */
export async function dispatch(
  ctx: DispatchContext,
  req: AdminRequest,
  payload: ParsedPayload,
): Promise<DispatchResult> {
  let res: DispatchResult;
  try {
    res = await dispatchUnsafe(ctx, req, payload);
  } catch {
    return result(AdminError.UnknownErr);
  }
  const hook = ctx.system.onConfigChange;
  if (hook && res.err === AdminError.Success && changesConfiguration(req)) {
    try {
      await hook();
    } catch {
      // The change is in effect but could not be saved: say so rather than pretend it is safe.
      return result(AdminError.UnknownErr);
    }
  }
  return res;
}

/** Requests whose success changes what `tgtd --state` saves (not sessions, stats or debug). */
export function changesConfiguration(req: AdminRequest): boolean {
  switch (req.mode) {
    case MgmtMode.Target:
    case MgmtMode.Device:
    case MgmtMode.Account:
      return [MgmtOp.New, MgmtOp.Delete, MgmtOp.Bind, MgmtOp.Unbind, MgmtOp.Update].includes(req.op);
    case MgmtMode.Portal:
      return req.op === MgmtOp.New || req.op === MgmtOp.Delete;
    default:
      return false;
  }
}

async function dispatchUnsafe(
  ctx: DispatchContext,
  req: AdminRequest,
  p: ParsedPayload,
): Promise<DispatchResult> {
  // tgt-ts extension for a lossless `tgt-admin --dump` (config/snapshot.ts); tgtadm never sends it.
  if (isSnapshotRequest(req.mode, req.op))
    return result(AdminError.Success, snapshotResponse(ctx.system, p.raw));
  const driver = resolveDriver(ctx.system, req);
  if (!driver) return result(AdminError.NoDriver);
  switch (req.mode) {
    case MgmtMode.System:
      return systemMgmt(ctx, driver, req, p);
    case MgmtMode.Target:
      return targetMgmt(ctx.system, driver, req, p);
    case MgmtMode.Portal:
      return portalMgmt(driver, req, p);
    case MgmtMode.Device:
      return deviceMgmt(ctx.system, driver, req, p);
    case MgmtMode.Account:
      return accountMgmt(ctx.system, req, p);
    case MgmtMode.Session:
      return sessionMgmt(ctx.system, driver, req);
    case MgmtMode.Connection:
      return connectionMgmt(ctx.system, driver, req);
    case MgmtMode.Lld:
      return lldMgmt(ctx.system, driver, req);
    default:
      return result(AdminError.InvalidRequest);
  }
}

/** "" selects the first registered driver; a named one must be ready except in lld mode (tgt). */
function resolveDriver(system: MgmtSystem, req: AdminRequest): Driver | undefined {
  if (req.lld === '') return system.drivers.values().next().value as Driver | undefined;
  const d = system.drivers.get(req.lld) as Driver | undefined;
  if (!d) return undefined;
  if (d.state !== 'ready' && req.mode !== MgmtMode.Lld) return undefined;
  return d;
}

function driverOf(system: MgmtSystem, target: ScsiTarget, fallback: Driver): Driver {
  return (system.drivers.get(target.lld) as Driver | undefined) ?? fallback;
}

/** Split the whole payload as "name=value" (value may contain commas), as tgt's update does. */
function nameValue(p: ParsedPayload): [string, string] | null {
  const eq = p.raw.indexOf('=');
  return eq < 0 ? null : [p.raw.slice(0, eq), p.raw.slice(eq + 1)];
}

// ---------------------------------------------------------------------------------------------
// system

function systemMgmt(
  ctx: DispatchContext,
  driver: Driver,
  req: AdminRequest,
  p: ParsedPayload,
): DispatchResult {
  const system = ctx.system;
  switch (req.op) {
    case MgmtOp.Update: {
      const nv = nameValue(p);
      if (!nv) return result(AdminError.InvalidRequest);
      const [name, value] = nv;
      if (name === 'debug') {
        // tgt accepts any value starting with "on"/"off"; only the words themselves here.
        if (value !== 'on' && value !== 'off') return result(AdminError.InvalidRequest);
        system.debug = value === 'on';
        return result(AdminError.Success);
      }
      if (name === 'State') {
        if (value !== 'ready' && value !== 'offline') return result(AdminError.InvalidRequest);
        system.state = value;
        return result(AdminError.Success);
      }
      return result(driver.systemUpdate(name, value));
    }
    case MgmtOp.Show:
      return result(AdminError.Success, formatSystemShow(systemShowInfo(system, driver)));
    case MgmtOp.Stats: {
      const rows: LuStatRow[] = [];
      for (const t of system.targetsInOrder()) rows.push(...targetStatRows(t));
      return result(AdminError.Success, formatStats(rows));
    }
    case MgmtOp.Delete:
      // tgt §1.1: the daemon exits only through this, and only with no targets left.
      if (system.targets.size > 0) return result(AdminError.InvalidRequest);
      return { err: AdminError.Success, afterResponse: ctx.onSystemDelete };
    default:
      return result(AdminError.InvalidRequest);
  }
}

function systemShowInfo(system: MgmtSystem, driver: Driver): Parameters<typeof formatSystemShow>[0] {
  const stores = [...system.storeTypes.values()].map((s) => ({
    name: s.name,
    oflags: ['sync', 'direct'].filter((f) => s.supportedOflags.includes(f)).join(':'),
  }));
  return {
    state: system.state,
    debug: system.debug,
    drivers: [...system.drivers.values()].map((d) => ({ name: d.name, state: d.state })),
    backingStores: stores,
    deviceTypes: [...(system.deviceTypes ?? registeredDeviceTypes.values())].map((t) => t.code),
    discovery: system.discoveryAccounts ?? { incoming: [] },
    driverText: driver.systemShow(),
  };
}

// ---------------------------------------------------------------------------------------------
// target

const TARGET_NAME = /^[A-Za-z0-9:.-]+$/;

/** `target update --name acl_match --value any|all` (tgt-ts; see AclMatch in src/scsi/acl.ts). */
export const ACL_MATCH_PARAM = 'acl_match';

function targetMgmt(system: MgmtSystem, driver: Driver, req: AdminRequest, p: ParsedPayload): DispatchResult {
  switch (req.op) {
    case MgmtOp.New: {
      const name = payloadValue(p, 'targetname');
      // tgt §2.2: letters, digits, ':', '.', '-' only (server-side check).
      if (name === undefined || !TARGET_NAME.test(name)) return result(AdminError.InvalidRequest);
      if (req.tid <= 0) return result(AdminError.InvalidRequest);
      return result(system.createTarget(driver.name, req.tid, name));
    }
    case MgmtOp.Delete:
      return result(system.deleteTarget(req.tid, req.force !== 0));
    case MgmtOp.Bind:
    case MgmtOp.Unbind:
      return aclMgmt(system, req, p);
    case MgmtOp.Update: {
      const nv = nameValue(p);
      if (!nv) return result(AdminError.UnsupportedOperation);
      const [name, value] = nv;
      const target = system.targets.get(req.tid);
      if (!target) return result(AdminError.NoTarget);
      if (name === 'state') {
        if (value !== 'ready' && value !== 'offline') return result(AdminError.InvalidRequest);
        target.state = value;
        return result(AdminError.Success);
      }
      if (name === ACL_MATCH_PARAM) {
        if (!isAclMatch(value)) return result(AdminError.InvalidRequest);
        target.aclMatch = value;
        return result(AdminError.Success);
      }
      return result(driverOf(system, target, driver).targetUpdate(target, name, value));
    }
    case MgmtOp.Show: {
      if (req.tid < 0)
        return result(
          AdminError.Success,
          formatTargetShowAll(system.targetsInOrder().map(targetShowInfo(system))),
        );
      const target = system.targets.get(req.tid);
      if (!target) return result(AdminError.NoTarget);
      // acl_match is listed only when it differs from tgt's behaviour, so the layout stays tgt's.
      const aclMatch = target.aclMatch === 'any' ? '' : `${ACL_MATCH_PARAM}=${target.aclMatch}\n`;
      return result(AdminError.Success, driverOf(system, target, driver).targetShowParams(target) + aclMatch);
    }
    case MgmtOp.Stats: {
      const target = system.targets.get(req.tid);
      if (!target) return result(AdminError.NoTarget);
      return result(AdminError.Success, formatStats(targetStatRows(target)));
    }
    default:
      return result(AdminError.InvalidRequest);
  }
}

/**
 * ACL bind/unbind. tgt finds "initiator-address=" with strstr and takes the rest of the payload,
 * so `-I addr -Q name` binds the address "addr,initiator-name=name"; here both are bound.
 */
function aclMgmt(system: MgmtSystem, req: AdminRequest, p: ParsedPayload): DispatchResult {
  const address = payloadValue(p, 'initiator-address');
  const name = payloadValue(p, 'initiator-name');
  if (address === undefined && name === undefined) {
    // No payload: tgt's legacy --host binding for kernel LLDs, meaningless for iSCSI.
    return result(p.raw === '' ? AdminError.UnsupportedOperation : AdminError.InvalidRequest);
  }
  const op = req.op === MgmtOp.Bind ? system.bindAcl.bind(system) : system.unbindAcl.bind(system);
  if (address !== undefined) {
    const err = op(req.tid, 'address', address);
    if (err !== AdminError.Success) return result(err);
  }
  if (name !== undefined) return result(op(req.tid, 'name', name));
  return result(AdminError.Success);
}

function targetShowInfo(system: MgmtSystem): (t: ScsiTarget) => TargetShowInfo {
  return (t) => {
    const driver = system.drivers.get(t.lld);
    return {
      tid: t.tid,
      name: t.name,
      lld: t.lld,
      state: t.state,
      systemInfo: driver ? driver.targetShowSystemInfo(t) : [],
      nexuses: [...t.nexuses.values()].map((n) => ({ id: n.id, info: n.info })),
      luns: t.luns.map(luShowInfo),
      accounts: t.accounts,
      acl: t.acl,
    };
  };
}

/** The `target show` view of an LU. */
export function luShowInfo(lu: LogicalUnit): LuShowInfo {
  const path = lu.store ? lu.store.path : null;
  return {
    lun: lu.lun,
    deviceType: lu.deviceType.code,
    scsiId: lu.identity.scsiId,
    scsiSn: lu.identity.scsiSn,
    size: lu.size,
    blockSize: lu.blockSize,
    online: lu.online,
    removable: lu.removable,
    preventRemoval: lu.preventRemoval,
    readonly: lu.readonly,
    swp: lu.swp,
    thinProvisioning: lu.thinProvisioning,
    bstype: lu.backing.storeType,
    path: path === 'None' ? null : path,
    // tgt prints the flags in one order whatever order they were given in.
    bsoflags: ['sync', 'direct'].filter((f) => lu.backing.bsoflags.split(':').includes(f)).join(':'),
  };
}

function luStatRows(target: ScsiTarget, lu: LogicalUnit): LuStatRow[] {
  const rows: LuStatRow[] = [];
  for (const nexus of target.nexuses.values()) {
    const info = nexus.peekLuInfo(lu);
    if (!info) continue;
    const s = info.stats;
    rows.push({
      tid: target.tid,
      lun: lu.lun,
      sid: nexus.id,
      readSubmittedBytes: s.readSubmittedBytes,
      readSubmittedCommands: s.readSubmittedCommands,
      readDoneBytes: s.readDoneBytes,
      readDoneCommands: s.readDoneCommands,
      writeSubmittedBytes: s.writeSubmittedBytes,
      writeSubmittedCommands: s.writeSubmittedCommands,
      writeDoneBytes: s.writeDoneBytes,
      writeDoneCommands: s.writeDoneCommands,
      errors: s.errors,
    });
  }
  return rows;
}

function targetStatRows(target: ScsiTarget): LuStatRow[] {
  return target.luns.flatMap((lu) => luStatRows(target, lu));
}

// ---------------------------------------------------------------------------------------------
// portal

async function portalMgmt(driver: Driver, req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
  switch (req.op) {
    case MgmtOp.Show:
      return result(AdminError.Success, driver.portalShow());
    case MgmtOp.New:
    case MgmtOp.Delete: {
      const spec = portalSpec(p);
      if (spec === undefined) return result(AdminError.InvalidRequest);
      const err = req.op === MgmtOp.New ? await driver.portalCreate(spec) : await driver.portalDestroy(spec);
      // tgt reports every driver-side portal failure as "invalid request".
      return result(err === AdminError.Success ? err : AdminError.InvalidRequest);
    }
    default:
      return result(AdminError.InvalidRequest);
  }
}

/** The value of `portal=` in `--params` (portalOps, or a plain item from a raw client). */
function portalSpec(p: ParsedPayload): string | undefined {
  const fromOps =
    p.portalOps !== undefined ? parseParamList(p.portalOps).find(([k]) => k === 'portal') : undefined;
  return fromOps ? fromOps[1] : payloadValue(p, 'portal');
}

// ---------------------------------------------------------------------------------------------
// logicalunit

async function deviceMgmt(
  system: MgmtSystem,
  driver: Driver,
  req: AdminRequest,
  p: ParsedPayload,
): Promise<DispatchResult> {
  switch (req.op) {
    case MgmtOp.New: {
      if (req.lun === LUN_NOT_GIVEN) return result(AdminError.InvalidRequest);
      const opts: LuCreateOptions = { deviceType: req.deviceType };
      const path = payloadValue(p, 'path');
      const bstype = payloadValue(p, 'bstype');
      const bsopts = payloadValue(p, 'bsopts');
      const bsoflags = payloadValue(p, 'bsoflags');
      const blocksize = payloadValue(p, 'blocksize');
      if (path !== undefined) opts.path = path;
      if (bstype !== undefined) opts.bstype = bstype;
      if (bsopts !== undefined) opts.bsopts = bsopts;
      if (bsoflags !== undefined) opts.bsoflags = bsoflags;
      if (blocksize !== undefined) {
        // tgt: strtoul(.., 0); a bad value is logged and the default block size kept.
        const { value, consumed } = strtoull(blocksize);
        if (consumed > 0 && value <= 0xffff_ffffn) opts.blocksize = Number(value);
      }
      return result(await system.createLu(req.tid, req.lun, opts));
    }
    case MgmtOp.Delete:
      return result(await system.deleteLu(req.tid, req.lun));
    case MgmtOp.Update: {
      const params: Record<string, string> = {};
      for (const [k, v] of p.items) params[k] = v;
      if (p.targetOps !== undefined) for (const [k, v] of parseParamList(p.targetOps)) params[k] = v;
      return result(await system.updateLu(req.tid, req.lun, params));
    }
    case MgmtOp.Stats: {
      if (req.sid !== 0n) return sessionStats(system, driver, req.sid);
      const target = system.targets.get(req.tid);
      if (!target) return result(AdminError.NoTarget);
      const lu = target.findLu(req.lun);
      if (!lu) return result(AdminError.NoLun);
      return result(AdminError.Success, formatStats(luStatRows(target, lu)));
    }
    default:
      return result(AdminError.UnsupportedOperation);
  }
}

// ---------------------------------------------------------------------------------------------
// account

function accountMgmt(system: MgmtSystem, req: AdminRequest, p: ParsedPayload): DispatchResult {
  if (req.op === MgmtOp.Show) {
    return result(AdminError.Success, formatAccountList([...system.accounts.keys()].reverse()));
  }
  if (
    req.op !== MgmtOp.New &&
    req.op !== MgmtOp.Delete &&
    req.op !== MgmtOp.Bind &&
    req.op !== MgmtOp.Unbind
  ) {
    return result(AdminError.UnsupportedOperation);
  }
  const user = payloadValue(p, 'user');
  if (user === undefined) return result(AdminError.InvalidRequest);
  const outgoing = req.acDir === AccountDirection.Outgoing;
  const tid = req.tid === -1 ? GLOBAL_TID : req.tid;
  switch (req.op) {
    case MgmtOp.New: {
      const password = passwordOf(p.raw);
      if (password === undefined) return result(AdminError.InvalidRequest);
      return result(system.accountNew(user, password));
    }
    case MgmtOp.Delete:
      return result(system.accountDelete(user));
    case MgmtOp.Bind:
      return result(system.accountBind(tid, user, outgoing));
    default:
      return result(system.accountUnbind(tid, user, outgoing));
  }
}

/** The password is tgtadm's last item, so it may contain commas: take the rest of the payload. */
function passwordOf(raw: string): string | undefined {
  const at = raw.startsWith('password=') ? 0 : raw.indexOf(',password=');
  if (at < 0) return undefined;
  return raw.slice(at + (at === 0 ? 0 : 1) + 'password='.length);
}

// ---------------------------------------------------------------------------------------------
// session, connection

function sessionMgmt(system: MgmtSystem, driver: Driver, req: AdminRequest): DispatchResult {
  switch (req.op) {
    case MgmtOp.Stats:
      return sessionStats(system, driver, req.sid);
    case MgmtOp.Show: {
      // tgt answers "invalid request" here (its handler routes show to update); we list the
      // sessions with their connections, the same text as `connection show`.
      if (req.tid < 0) {
        const text = system
          .targetsInOrder()
          .map((t) => driverOf(system, t, driver).connectionShow(t))
          .join('');
        return result(AdminError.Success, text);
      }
      const target = system.targets.get(req.tid);
      if (!target) return result(AdminError.NoTarget);
      return result(AdminError.Success, driverOf(system, target, driver).connectionShow(target));
    }
    default:
      return result(AdminError.InvalidRequest);
  }
}

/** `session stat --sid N`: the nexus's LU counters, then its connections' counters. */
function sessionStats(system: MgmtSystem, driver: Driver, sid: bigint): DispatchResult {
  let rows: LuStatRow[] | null = null;
  for (const t of system.targets.values()) {
    for (const nexus of t.nexuses.values()) {
      if (BigInt(nexus.id) !== sid) continue;
      rows = t.luns.flatMap((lu) => luStatRows(t, lu).filter((r) => BigInt(r.sid) === sid));
    }
  }
  if (rows === null) return result(AdminError.NoSession);
  const conns = driver.sessionConnectionStats?.(sid) ?? [];
  return result(AdminError.Success, formatSessionStats(rows, conns));
}

function connectionMgmt(system: MgmtSystem, driver: Driver, req: AdminRequest): DispatchResult {
  switch (req.op) {
    case MgmtOp.Show: {
      const target = system.targets.get(req.tid);
      if (!target) return result(AdminError.NoTarget);
      return result(AdminError.Success, driverOf(system, target, driver).connectionShow(target));
    }
    case MgmtOp.Stats: {
      if (!driver.connectionStats) {
        const known = [...system.targets.values()].some((t) =>
          [...t.nexuses.keys()].some((id) => BigInt(id) === req.sid),
        );
        return result(known ? AdminError.UnsupportedOperation : AdminError.NoSession);
      }
      const row = driver.connectionStats(req.sid, req.cid);
      if (typeof row === 'number') return result(row);
      return result(AdminError.Success, CONN_STAT_HEADER + formatConnStatLine(row));
    }
    case MgmtOp.Delete: {
      const target = system.targets.get(req.tid);
      if (!target) return result(AdminError.NoTarget);
      return result(driverOf(system, target, driver).connectionDelete(target, req.sid, req.cid));
    }
    default:
      return result(AdminError.InvalidRequest);
  }
}

// ---------------------------------------------------------------------------------------------
// lld

async function lldMgmt(system: MgmtSystem, driver: Driver, req: AdminRequest): Promise<DispatchResult> {
  const ready: DriverState = 'ready';
  switch (req.op) {
    case MgmtOp.Start:
      if (driver.state === ready) return result(AdminError.Success);
      return result(driver.start ? await driver.start() : AdminError.UnknownErr);
    case MgmtOp.Stop: {
      if (driver.state !== ready) return result(AdminError.Success);
      for (const t of system.targets.values())
        if (t.lld === driver.name) return result(AdminError.DriverActive);
      await driver.shutdown();
      return result(AdminError.Success);
    }
    case MgmtOp.Show: {
      const drivers = [...system.drivers.values()].map((d) => ({
        name: d.name,
        state: d.state,
        targets: [...system.targets.values()]
          .filter((t) => t.lld === d.name)
          .map((t) => ({ tid: t.tid, name: t.name })),
      }));
      return result(AdminError.Success, formatLldShow(drivers));
    }
    default:
      return result(AdminError.InvalidRequest);
  }
}

/**
 * `tgtd --state FILE`: the running configuration saved after every successful change and
 * restored at start (tgt keeps nothing across restarts). The file is JSON holding targets, LUNs
 * with their parameters, ACLs, accounts with their passwords, account bindings, per-target
 * iSCSI parameters and the portals added at run time; it is written atomically (temporary
 * file, fsync, rename, fsync of the directory) with mode 0600 because it holds CHAP secrets.
 *
 * A file that cannot be read, parsed or replayed is an error (StateFileError): tgtd stops
 * rather than start with less configuration than it had (docs/service.md).
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type AclMatch, isAclMatch } from '../scsi/acl.js';
import { AdminError, GLOBAL_TID } from '../scsi/admin-error.js';
import type { TargetDriver } from '../scsi/driver.js';
import type { ScsiTarget } from '../scsi/target.js';
import { buildSnapshot, type SnapshotLu } from './config/snapshot.js';
import type { MgmtSystem } from './dispatch.js';

export const STATE_FORMAT = 'tgt-ts-state';
export const STATE_VERSION = 1;

/** One target as saved. */
export interface SavedTarget {
  tid: number;
  name: string;
  lld: string;
  state: 'ready' | 'offline';
  /** `target update` name/value pairs, replayed in order. */
  params: Array<[string, string]>;
  luns: SnapshotLu[];
  /** `match` absent means tgt's `any` (files written before acl_match existed). */
  acl: { addresses: string[]; names: string[]; match?: AclMatch };
  accounts: { incoming: string[]; outgoing?: string | undefined };
}

/** The whole saved configuration. */
export interface SavedState {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  accounts: Array<{ user: string; password: string }>;
  discovery: { incoming: string[]; outgoing?: string | undefined };
  targets: SavedTarget[];
  /** Portals added at run time, per driver name, as given to `portal new`. */
  portals: Record<string, string[]>;
}

/** A state holding only `parts` (nothing else to restore): accounts, or some targets. */
export function partialState(parts: Partial<Omit<SavedState, 'format' | 'version'>>): SavedState {
  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    accounts: [],
    discovery: { incoming: [] },
    targets: [],
    portals: {},
    ...parts,
  };
}

/** The state file cannot be used; the message says why and where. */
export class StateFileError extends Error {
  override name = 'StateFileError';
}

/** Optional driver hooks for a lossless export (the iSCSI driver implements both). */
interface ExportingDriver extends TargetDriver {
  exportTargetParams?(target: ScsiTarget): Array<[string, string]>;
  runtimePortals?(): string[];
}

/** tgtadm --device-type names (snapshot.ts writes them) back to SCSI peripheral type codes. */
const DEVICE_TYPE_CODES: ReadonlyMap<string, number> = new Map([
  ['disk', 0x00],
  ['tape', 0x01],
  ['cd', 0x05],
  ['changer', 0x08],
  ['osd', 0x11],
  ['pt', 0xff],
]);

/** The running configuration as SavedState. */
export function captureState(system: MgmtSystem): SavedState {
  const snap = buildSnapshot(system, true);
  const portals: Record<string, string[]> = {};
  for (const d of system.drivers.values() as Iterable<ExportingDriver>) {
    const list = d.runtimePortals?.() ?? [];
    if (list.length) portals[d.name] = list;
  }
  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    accounts: snap.accounts.map((a) => ({ user: a.user, password: a.password ?? '' })),
    discovery: snap.discovery,
    targets: snap.targets.map((t) => {
      const target = system.targets.get(t.tid);
      const driver = system.drivers.get(t.lld) as ExportingDriver | undefined;
      const params =
        target && driver?.exportTargetParams
          ? driver.exportTargetParams(target)
          : (Object.entries(t.params) as Array<[string, string]>);
      return {
        tid: t.tid,
        name: t.name,
        lld: t.lld,
        state: t.state === 'offline' ? 'offline' : 'ready',
        params,
        luns: t.luns,
        acl: t.acl,
        accounts: t.accounts,
      };
    }),
    portals,
  };
}

// ---------------------------------------------------------------------------------------------
// reading and checking

const isString = (v: unknown): v is string => typeof v === 'string';
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isPairs = (v: unknown): v is Array<[string, string]> =>
  Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && isString(p[0]) && isString(p[1]));

function isBindings(v: unknown): v is { incoming: string[]; outgoing?: string } {
  if (typeof v !== 'object' || v === null) return false;
  const b = v as Record<string, unknown>;
  return isStringArray(b.incoming) && (b.outgoing === undefined || isString(b.outgoing));
}

function checkLu(v: unknown, where: string): void {
  const lu = v as Record<string, unknown>;
  const ok =
    typeof lu === 'object' &&
    lu !== null &&
    isString(lu.lun) &&
    /^\d+$/.test(lu.lun) &&
    isString(lu.deviceType) &&
    (lu.path === null || isString(lu.path)) &&
    isString(lu.bstype) &&
    isString(lu.bsopts) &&
    isString(lu.bsoflags) &&
    Number.isInteger(lu.blockSize) &&
    isPairs(lu.params);
  if (!ok) throw new StateFileError(`${where}: malformed logical unit`);
}

function isOptionalAclMatch(v: unknown): boolean {
  return v === undefined || (typeof v === 'string' && isAclMatch(v));
}

function checkTarget(v: unknown, where: string): void {
  const t = v as Record<string, unknown>;
  const ok =
    typeof t === 'object' &&
    t !== null &&
    Number.isInteger(t.tid) &&
    isString(t.name) &&
    isString(t.lld) &&
    (t.state === 'ready' || t.state === 'offline') &&
    isPairs(t.params) &&
    Array.isArray(t.luns) &&
    typeof t.acl === 'object' &&
    t.acl !== null &&
    isStringArray((t.acl as Record<string, unknown>).addresses) &&
    isStringArray((t.acl as Record<string, unknown>).names) &&
    isOptionalAclMatch((t.acl as Record<string, unknown>).match) &&
    isBindings(t.accounts);
  if (!ok) throw new StateFileError(`${where}: malformed target`);
  (t.luns as unknown[]).forEach((lu, i) => checkLu(lu, `${where} lun #${i}`));
}

/** Parse and check state text; throws StateFileError naming what is wrong. */
export function parseState(text: string, source = 'state file'): SavedState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new StateFileError(`${source} is corrupt (${(e as Error).message})`);
  }
  const s = data as Record<string, unknown>;
  if (typeof s !== 'object' || s === null || s.format !== STATE_FORMAT)
    throw new StateFileError(`${source} is not a tgt-ts state file`);
  if (s.version !== STATE_VERSION)
    throw new StateFileError(`${source} has version ${String(s.version)}, this tgtd reads ${STATE_VERSION}`);
  const accountsOk =
    Array.isArray(s.accounts) &&
    s.accounts.every(
      (a: unknown) =>
        typeof a === 'object' &&
        a !== null &&
        isString((a as Record<string, unknown>).user) &&
        isString((a as Record<string, unknown>).password),
    );
  if (!accountsOk) throw new StateFileError(`${source}: malformed accounts`);
  if (!isBindings(s.discovery)) throw new StateFileError(`${source}: malformed discovery bindings`);
  if (!Array.isArray(s.targets)) throw new StateFileError(`${source}: malformed targets`);
  s.targets.forEach((t: unknown, i: number) => checkTarget(t, `${source} target #${i}`));
  const portals = s.portals as Record<string, unknown>;
  if (typeof portals !== 'object' || portals === null || !Object.values(portals).every(isStringArray))
    throw new StateFileError(`${source}: malformed portals`);
  return data as SavedState;
}

/** Read the state file: null when it does not exist yet (first start). */
export async function readStateFile(path: string): Promise<SavedState | null> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateFileError(`can't read state file ${path}: ${(e as Error).message}`);
  }
  return parseState(text, `state file ${path}`);
}

// ---------------------------------------------------------------------------------------------
// writing

/** Write `text` to `path` atomically and durably, mode 0600. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp`);
  // A leftover temporary file may have other permissions: never reuse it.
  await fsp.unlink(tmp).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  const fh = await fsp.open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path);
  const dh = await fsp.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Serializes saves of one system's state to one file (the newest configuration wins). */
export class StateSaver {
  private chain: Promise<void> = Promise.resolve();
  private readonly capture: () => SavedState | Promise<SavedState>;

  /** `from`: the system, or how to capture the state (tgtd --workers gathers it, workers/state.ts). */
  constructor(
    readonly path: string,
    from: MgmtSystem | (() => SavedState | Promise<SavedState>),
  ) {
    this.capture = typeof from === 'function' ? from : () => captureState(from);
  }

  /** Capture the configuration and write it after any save in progress. */
  save(): Promise<void> {
    const next = this.chain.then(async () =>
      writeFileAtomic(this.path, JSON.stringify(await this.capture(), null, 1) + '\n'),
    );
    this.chain = next.catch(() => undefined);
    return next;
  }
}

// ---------------------------------------------------------------------------------------------
// restoring

function must(err: AdminError, what: string): void {
  if (err !== AdminError.Success)
    throw new StateFileError(`can't restore ${what}: ${AdminError[err] ?? `error ${err}`}`);
}

function deviceTypeCode(name: string, where: string): number {
  const code = DEVICE_TYPE_CODES.get(name) ?? (/^\d+$/.test(name) ? Number(name) : undefined);
  if (code === undefined) throw new StateFileError(`${where}: unknown device type ${name}`);
  return code;
}

/**
 * Recreate the saved configuration on an empty system, in dependency order: accounts,
 * discovery bindings, targets (parameters, LUNs, ACLs, bindings, state), then run-time portals.
 * Throws StateFileError at the first step that fails.
 */
export async function restoreState(system: MgmtSystem, state: SavedState): Promise<void> {
  for (const a of state.accounts) must(system.accountNew(a.user, a.password), `account ${a.user}`);
  for (const u of state.discovery.incoming)
    must(system.accountBind(GLOBAL_TID, u, false), `discovery account ${u}`);
  if (state.discovery.outgoing !== undefined)
    must(system.accountBind(GLOBAL_TID, state.discovery.outgoing, true), `discovery outgoing account`);

  for (const t of state.targets) {
    const where = `target ${t.tid} (${t.name})`;
    must(system.createTarget(t.lld, t.tid, t.name), where);
    const target = system.targets.get(t.tid)!;
    const driver = system.drivers.get(t.lld)!;
    for (const [name, value] of t.params) must(driver.targetUpdate(target, name, value), `${where} ${name}`);
    for (const lu of t.luns) {
      const lun = BigInt(lu.lun);
      const at = `${where} lun ${lu.lun}`;
      const err = await system.createLu(t.tid, lun, {
        ...(lu.path !== null ? { path: lu.path } : {}),
        bstype: lu.bstype,
        bsopts: lu.bsopts,
        bsoflags: lu.bsoflags,
        blocksize: lu.blockSize,
        deviceType: deviceTypeCode(lu.deviceType, at),
      });
      must(err, `${at} (backing store ${lu.path ?? 'none'})`);
      // One parameter per update: mode_page may repeat and order matters (online last).
      for (const [k, v] of lu.params) must(await system.updateLu(t.tid, lun, { [k]: v }), `${at} ${k}`);
    }
    for (const a of t.acl.addresses) must(system.bindAcl(t.tid, 'address', a), `${where} ACL ${a}`);
    for (const n of t.acl.names) must(system.bindAcl(t.tid, 'name', n), `${where} ACL ${n}`);
    for (const u of t.accounts.incoming) must(system.accountBind(t.tid, u, false), `${where} account ${u}`);
    if (t.accounts.outgoing !== undefined)
      must(system.accountBind(t.tid, t.accounts.outgoing, true), `${where} outgoing account`);
    target.aclMatch = t.acl.match ?? 'any';
    target.state = t.state;
  }
}

/** Listen on the saved run-time portals that are not listening yet. */
export async function restorePortals(system: MgmtSystem, state: SavedState): Promise<void> {
  for (const [lld, specs] of Object.entries(state.portals)) {
    const driver = system.drivers.get(lld) as ExportingDriver | undefined;
    if (!driver) throw new StateFileError(`can't restore portals of driver ${lld}: no such driver`);
    const present = new Set(driver.runtimePortals?.() ?? []);
    const shown = driver.portalShow();
    for (const spec of specs) {
      // Already listening: added again at run time, or now given on the command line.
      if (present.has(spec) || shown.includes(`Portal: ${spec},`)) continue;
      must(await driver.portalCreate(spec), `portal ${spec}`);
    }
  }
}

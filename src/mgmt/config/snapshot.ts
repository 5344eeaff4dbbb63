/**
 * The running configuration as data, for a lossless `tgt-admin --dump`.
 *
 * `target show` leaves out what a dump needs (LU parameters such as vendor_id or mode pages,
 * bsopts, which ACL entries are names, account passwords), so tgt-ts answers one extra
 * management request, which Debian's tgtadm cannot send (its --op names map to 0..8 only):
 *
 *   mode = system (0), op = CONFIG_SNAPSHOT_OP (0x7473), payload "" or "passwords=yes"
 *   -> JSON text of a ConfigSnapshot (passwords included only when asked for).
 *
 * tgt's tgtd answers it with an error, and tgt-admin then falls back to parsing `show` output
 * (snapshotFromShow in dump.ts). The request travels on the control socket, which only root
 * (the daemon's owner) can open; `account new` already sends passwords over it.
 */
import { Buffer } from 'node:buffer';
import type { AclMatch } from '../../scsi/acl.js';
import { DEFAULT_ABANDON_TIMEOUT_MS, type LogicalUnit } from '../../scsi/lu.js';
import { ModePages } from '../../scsi/mode-pages.js';
import type { ScsiTarget } from '../../scsi/target.js';
import { sendRequest } from '../client.js';
import type { MgmtSystem } from '../dispatch.js';
import { MgmtMode, defaultRequest } from '../wire.js';

/** The op number of the snapshot request (ASCII "ts"; tgt's ops end at 8). */
export const CONFIG_SNAPSHOT_OP = 0x7473;
/** Payload asking for account passwords. */
export const SNAPSHOT_WITH_PASSWORDS = 'passwords=yes';
export const SNAPSHOT_VERSION = 1;

/** One logical unit (never LUN 0, the controller). */
export interface SnapshotLu {
  /** Decimal LUN. */
  lun: string;
  /** tgtadm --device-type name: disk, cd, tape, changer, osd, pt (or the code as text). */
  deviceType: string;
  /** null: no medium. */
  path: string | null;
  bstype: string;
  bsopts: string;
  bsoflags: string;
  blockSize: number;
  /** tgt `--params` that turn a fresh LU of this type into this one, in replay order. */
  params: Array<[string, string]>;
}

export interface SnapshotTarget {
  tid: number;
  name: string;
  lld: string;
  state: string;
  /** iSCSI and driver parameters as `target show --tid` prints them (Name -> value). */
  params: Record<string, string>;
  luns: SnapshotLu[];
  accounts: { incoming: string[]; outgoing?: string | undefined };
  /** `match` only when it is not tgt's `any` (acl_match, tgt-ts). */
  acl: { addresses: string[]; names: string[]; match?: AclMatch };
}

export interface ConfigSnapshot {
  version: number;
  /** Every account in creation order; passwords only when asked for (and known). */
  accounts: Array<{ user: string; password?: string }>;
  discovery: { incoming: string[]; outgoing?: string | undefined };
  targets: SnapshotTarget[];
  /** False when built from `show` output: LU parameters and ACL kinds are partly guessed. */
  exact: boolean;
}

const DEVICE_TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, 'disk'],
  [0x01, 'tape'],
  [0x05, 'cd'],
  [0x08, 'changer'],
  [0x11, 'osd'],
  [0xff, 'pt'],
]);

/** tgtadm's --device-type name for a SCSI peripheral type code. */
export function deviceTypeOption(code: number): string {
  return DEVICE_TYPE_NAMES.get(code) ?? String(code);
}

/** `mode_page=` value of a formatted page: pcode:subpage:len:b0:b1... (tgt §2.4 syntax). */
export function modePageParam(page: number, subpage: number, body: Buffer): string {
  const bytes = [...body].map((b) => (b === 0 ? '0' : `0x${b.toString(16)}`));
  return [String(page), String(subpage), String(body.length), ...bytes].join(':');
}

/** The page body (without its 2- or 4-byte header). */
function pageBody(subpage: number, page: Buffer): Buffer {
  return page.subarray(subpage === 0 ? 2 : 4);
}

/** Mode pages a fresh LU of this device type starts with. */
function builtInModePages(lu: LogicalUnit): ModePages {
  const scratch = { modePages: new ModePages() } as unknown as LogicalUnit;
  try {
    lu.deviceType.initModePages(scratch);
  } catch {
    // a device type that needs more of the LU than its mode pages: compare against nothing
  }
  return scratch.modePages;
}

// D_SENSE lives in the control page but is replayed as sense_format, so it is masked here.
const CONTROL_PAGE = 0x0a;
const D_SENSE_BYTE = 2;
const D_SENSE_BIT = 0x04;

/** The `--params` that reproduce `lu` from a fresh LU with the same tid, LUN and type. */
export function luParams(lu: LogicalUnit): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  // mode_page first, as tgt-admin replays them first
  const builtIn = builtInModePages(lu);
  for (const p of lu.modePages.list()) {
    // `defaults` holds what `mode_page=` set last; MODE SELECT from initiators changes only
    // `current`, and a dump describes configuration, not initiator state.
    const configured = Buffer.from(p.defaults);
    if (p.page === CONTROL_PAGE && p.subpage === 0) configured[D_SENSE_BYTE]! &= ~D_SENSE_BIT;
    const base = builtIn.get(p.page, p.subpage);
    const baseBytes = base ? Buffer.from(base.defaults) : undefined;
    if (baseBytes && p.page === CONTROL_PAGE && p.subpage === 0) baseBytes[D_SENSE_BYTE]! &= ~D_SENSE_BIT;
    if (baseBytes && baseBytes.equals(configured)) continue;
    out.push(['mode_page', modePageParam(p.page, p.subpage, pageBody(p.subpage, configured))]);
  }
  const id = lu.identity;
  const tid = lu.target.tid;
  const defaults = {
    vendor_id: 'IET',
    product_id: lu.deviceType.productId,
    product_rev: '0001',
    scsi_id: `IET     ${tid.toString(16).padStart(4, '0')}${lu.lun.toString(16).padStart(4, '0')}`.slice(
      0,
      36,
    ),
    scsi_sn: `beaf${tid}${lu.lun}`.slice(0, 36),
  };
  const identity: Array<[keyof typeof defaults, string]> = [
    ['scsi_id', id.scsiId],
    ['scsi_sn', id.scsiSn],
    ['vendor_id', id.vendorId],
    ['product_id', id.productId],
    ['product_rev', id.productRev],
  ];
  for (const [k, v] of identity) if (v !== defaults[k]) out.push([k, v]);
  if (lu.descriptorSense) out.push(['sense_format', '1']);
  if (lu.removable) out.push(['removable', '1']);
  if (lu.readonly) out.push(['readonly', '1']);
  if (lu.thinProvisioning) out.push(['thin_provisioning', '1']);
  const numbers: Array<[string, number]> = [
    ['rotation_rate', lu.rotationRate],
    ['lbppbe', lu.lbppbe],
    ['la_lba', lu.laLba],
    ['optimal_xfer_gran', lu.optimalXferGran],
    ['optimal_xfer_len', lu.optimalXferLen],
  ];
  for (const [k, v] of numbers) if (v !== 0) out.push([k, String(v)]);
  if (lu.abandonTimeoutMs !== DEFAULT_ABANDON_TIMEOUT_MS)
    out.push(['abandon_timeout', String(lu.abandonTimeoutMs)]);
  // online last: taking the medium away must not stop the other parameters from applying
  if (!lu.online && lu.store !== null) out.push(['online', '0']);
  return out;
}

function targetParams(system: MgmtSystem, t: ScsiTarget): Record<string, string> {
  const driver = system.drivers.get(t.lld);
  const params: Record<string, string> = {};
  if (!driver) return params;
  for (const line of driver.targetShowParams(t).split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) params[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return params;
}

function snapshotLu(lu: LogicalUnit): SnapshotLu {
  const path = lu.store ? lu.store.path : null;
  return {
    lun: lu.lun.toString(),
    deviceType: deviceTypeOption(lu.deviceType.code),
    path: path === 'None' ? null : path,
    bstype: lu.backing.storeType,
    bsopts: lu.backing.bsopts,
    bsoflags: lu.backing.bsoflags,
    blockSize: lu.blockSize,
    params: luParams(lu),
  };
}

/** Build the snapshot in the daemon (the handler of CONFIG_SNAPSHOT_OP). */
export function buildSnapshot(system: MgmtSystem, withPasswords: boolean): ConfigSnapshot {
  const discovery = system.discoveryAccounts ?? { incoming: [] };
  return {
    version: SNAPSHOT_VERSION,
    exact: true,
    accounts: [...system.accounts].map(([user, password]) => (withPasswords ? { user, password } : { user })),
    discovery: { incoming: [...discovery.incoming], outgoing: discovery.outgoing },
    targets: system.targetsInOrder().map((t) => ({
      tid: t.tid,
      name: t.name,
      lld: t.lld,
      state: t.state,
      params: targetParams(system, t),
      luns: t.luns.filter((lu) => lu.lun !== 0n).map(snapshotLu),
      accounts: { incoming: [...t.accounts.incoming], outgoing: t.accounts.outgoing },
      acl: {
        addresses: [...t.acl.addresses],
        names: [...t.acl.names],
        ...(t.aclMatch === 'any' ? {} : { match: t.aclMatch }),
      },
    })),
  };
}

/** True for the snapshot request (mode system, op CONFIG_SNAPSHOT_OP). */
export function isSnapshotRequest(mode: number, op: number): boolean {
  return mode === MgmtMode.System && op === CONFIG_SNAPSHOT_OP;
}

/** Response text for the snapshot request; `payload` is the raw request payload. */
export function snapshotResponse(system: MgmtSystem, payload: string): string {
  const withPasswords = payload.split(',').includes(SNAPSHOT_WITH_PASSWORDS);
  return JSON.stringify(buildSnapshot(system, withPasswords)) + '\n';
}

/**
 * Ask a daemon for its snapshot: null when it does not know the request (tgt's tgtd) or the
 * answer is not a snapshot. Rejects with a ClientError when the daemon cannot be reached.
 */
export async function fetchSnapshot(
  socketPath: string,
  withPasswords: boolean,
): Promise<ConfigSnapshot | null> {
  const req = defaultRequest(MgmtMode.System, CONFIG_SNAPSHOT_OP);
  const rsp = await sendRequest(socketPath, req, withPasswords ? SNAPSHOT_WITH_PASSWORDS : '');
  if (rsp.err !== 0) return null;
  try {
    const snap = JSON.parse(rsp.text) as ConfigSnapshot;
    return snap && snap.version === SNAPSHOT_VERSION && Array.isArray(snap.targets) ? snap : null;
  } catch {
    return null;
  }
}

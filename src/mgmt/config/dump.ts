/**
 * `tgt-admin --dump`: the running configuration written as targets.conf.
 *
 * tgt's dump keeps only backing-store paths, account names and ACL entries (tgt-behaviour.md
 * §3.1, §7 #9). This one writes everything `tgt-admin -e` needs to rebuild the same `show`
 * output on an empty daemon: tids (controller_tid), LUN numbers, device and store types,
 * bsopts/bsoflags/block-size, LU parameters and mode pages (write-cache), iSCSI keys and
 * target parameters that differ from the defaults, state, ACLs (addresses and names told
 * apart), accounts (passwords only when asked for), discovery accounts.
 */
import { WRITE_CACHE_OFF_PAGE } from './admin.js';
import type { ConfigSnapshot, SnapshotLu, SnapshotTarget } from './snapshot.js';
import { type ShownLu, type ShownTarget, isAddressAcl } from './show-parse.js';

/** The placeholder tgt-admin writes instead of a password it does not know. */
export const PASSWORD_PLACEHOLDER = 'PLEASE_CORRECT_THE_PASSWORD';

/** Target parameters of a fresh target (tgt-behaviour.md §4.2, §2.6); others are dumped. */
export const TARGET_PARAM_DEFAULTS: Readonly<Record<string, string>> = {
  nop_interval: '0',
  nop_count: '0',
  MaxRecvDataSegmentLength: '8192',
  HeaderDigest: 'None',
  DataDigest: 'None',
  InitialR2T: 'Yes',
  MaxOutstandingR2T: '1',
  ImmediateData: 'Yes',
  FirstBurstLength: '65536',
  MaxBurstLength: '262144',
  DataPDUInOrder: 'Yes',
  DataSequenceInOrder: 'Yes',
  ErrorRecoveryLevel: '0',
  IFMarker: 'No',
  OFMarker: 'No',
  DefaultTime2Wait: '2',
  DefaultTime2Retain: '20',
  OFMarkInt: 'Reject',
  IFMarkInt: 'Reject',
  MaxConnections: '1',
  RDMAExtensions: 'Yes',
  TargetRecvDataSegmentLength: '262144',
  InitiatorRecvDataSegmentLength: '262144',
  MaxOutstandingUnexpectedPDUs: '0',
  MaxXmitDataSegmentLength: '8192',
  MaxQueueCmd: '128',
};

/** Values `target show --tid` prints that `target update` would not take back. */
const UNSETTABLE_VALUES = new Set(['Reject', 'Irrelevant', 'NotUnderstood']);

/** LU parameters written as `params k=v` (they have no directive of their own in tgt). */
const PARAMS_ONLY = new Set(['thin_provisioning', 'rotation_rate', 'abandon_timeout']);

/** Write a value so that Config::General reads it back unchanged. */
export function confValue(v: string): string {
  const escaped = v.replace(/[\\#"$]/g, (c) => `\\${c}`);
  return v === '' || /^\s|\s$/.test(v) ? `"${escaped}"` : escaped;
}

export interface DumpOptions {
  /** Write account passwords (needs a snapshot taken with passwords). */
  withPasswords: boolean;
}

/** Render a snapshot as targets.conf text. */
export function renderDump(snap: ConfigSnapshot, opts: DumpOptions): string {
  const out: string[] = [];
  const passwords = new Map(snap.accounts.map((a) => [a.user, a.password]));
  const secret = (user: string): string => {
    const p = opts.withPasswords ? passwords.get(user) : undefined;
    return p === undefined ? PASSWORD_PLACEHOLDER : confValue(p);
  };
  if (!snap.exact) {
    out.push('# Rebuilt from tgtadm show output: LU parameters such as vendor_id, mode pages and');
    out.push('# bsopts are not known, and initiator-address/initiator-name are told apart by their form.');
  }
  const drivers = [...new Set(snap.targets.map((t) => t.lld))];
  if (drivers.length === 1) out.push(`default-driver ${drivers[0]}`, '');

  const bound = new Set<string>();
  for (const t of snap.targets) {
    for (const u of t.accounts.incoming) bound.add(u);
    if (t.accounts.outgoing !== undefined) bound.add(t.accounts.outgoing);
  }
  const globals: string[] = [];
  for (const u of snap.discovery.incoming) {
    bound.add(u);
    globals.push(`incomingdiscoveryuser ${u} ${secret(u)}`);
  }
  if (snap.discovery.outgoing !== undefined) {
    bound.add(snap.discovery.outgoing);
    globals.push(`outgoingdiscoveryuser ${snap.discovery.outgoing} ${secret(snap.discovery.outgoing)}`);
  }
  // tgt-ts directive: an account bound to nothing
  for (const a of snap.accounts) if (!bound.has(a.user)) globals.push(`account ${a.user} ${secret(a.user)}`);
  if (globals.length > 0) out.push(...globals, '');

  for (const t of snap.targets) out.push(...renderTarget(t, drivers.length > 1, secret), '');
  return out.map((l) => `${l}\n`).join('');
}

function renderTarget(t: SnapshotTarget, withDriver: boolean, secret: (user: string) => string): string[] {
  const out = [`<target ${t.name}>`];
  out.push(`\tcontroller_tid ${t.tid}`);
  if (withDriver) out.push(`\tdriver ${t.lld}`);
  const seen = new Set<string>();
  for (const lu of t.luns) {
    if (lu.path === null) {
      out.push(`\t# LUN ${lu.lun} has no medium: targets.conf cannot describe it`);
      continue;
    }
    if (seen.has(lu.path)) {
      out.push(`\t# LUN ${lu.lun} uses ${lu.path} again: targets.conf allows one LUN per path`);
      continue;
    }
    seen.add(lu.path);
    out.push(...renderLu(lu));
  }
  for (const u of t.accounts.incoming) out.push(`\tincominguser ${u} ${secret(u)}`);
  if (t.accounts.outgoing !== undefined)
    out.push(`\toutgoinguser ${t.accounts.outgoing} ${secret(t.accounts.outgoing)}`);
  const onlyAll = t.acl.addresses.length === 1 && t.acl.addresses[0] === 'ALL' && t.acl.names.length === 0;
  if (!onlyAll) {
    for (const a of t.acl.addresses) out.push(`\tinitiator-address ${a}`);
    for (const n of t.acl.names) out.push(`\tinitiator-name ${n}`);
  }
  if (t.acl.match !== undefined && t.acl.match !== 'any') out.push(`\tacl_match ${t.acl.match}`);
  if (t.acl.addresses.length === 0 && t.acl.names.length === 0) {
    out.push('\t# no ACL entry: tgt-admin -e would bind initiator-address ALL');
  }
  for (const [k, v] of Object.entries(t.params)) {
    const def = TARGET_PARAM_DEFAULTS[k];
    if (v === def || UNSETTABLE_VALUES.has(v)) continue;
    if (def === undefined && !k.startsWith('Redirect')) continue;
    if (v === '') continue;
    out.push(`\t${k} ${confValue(v)}`);
  }
  if (t.state !== 'ready' && t.state !== '') out.push(`\tstate ${t.state}`);
  out.push('</target>');
  return out;
}

function renderLu(lu: SnapshotLu): string[] {
  const out = [`\t<backing-store ${lu.path}>`, `\t\tlun ${lu.lun}`];
  if (lu.deviceType !== 'disk') out.push(`\t\tdevice-type ${lu.deviceType}`);
  if (lu.bstype !== 'rdwr' && lu.bstype !== '') out.push(`\t\tbs-type ${lu.bstype}`);
  if (lu.bsopts !== '') out.push(`\t\tbsopts ${confValue(lu.bsopts)}`);
  if (lu.bsoflags !== '') out.push(`\t\tbsoflags ${lu.bsoflags}`);
  if (lu.blockSize !== 512) out.push(`\t\tblock-size ${lu.blockSize}`);
  for (const [k, v] of lu.params) {
    if (k === 'mode_page' && v === WRITE_CACHE_OFF_PAGE) out.push('\t\twrite-cache off');
    else if (PARAMS_ONLY.has(k)) out.push(`\t\tparams ${k}=${confValue(v)}`);
    else out.push(`\t\t${k} ${confValue(v)}`);
  }
  out.push('\t</backing-store>');
  return out;
}

const DEVICE_TYPE_OPTIONS: Readonly<Record<string, string>> = {
  disk: 'disk',
  tape: 'tape',
  'cd/dvd': 'cd',
  changer: 'changer',
  osd: 'osd',
  passthrough: 'pt',
};

/** What `show` tells about an LU, as --params relative to a fresh LU. */
function luFromShow(tid: number, lu: ShownLu): SnapshotLu {
  const params: Array<[string, string]> = [];
  const defaultId = `IET     ${tid.toString(16).padStart(4, '0')}${BigInt(lu.lun).toString(16).padStart(4, '0')}`;
  if (lu.scsiId !== defaultId.slice(0, 36)) params.push(['scsi_id', lu.scsiId]);
  if (lu.scsiSn !== `beaf${tid}${lu.lun}`.slice(0, 36)) params.push(['scsi_sn', lu.scsiSn]);
  if (lu.removable) params.push(['removable', '1']);
  if (lu.readonly) params.push(['readonly', '1']);
  if (lu.thinProvisioning) params.push(['thin_provisioning', '1']);
  if (!lu.online && lu.path !== null) params.push(['online', '0']);
  return {
    lun: lu.lun,
    deviceType: DEVICE_TYPE_OPTIONS[lu.type] ?? lu.type,
    path: lu.path,
    bstype: lu.bstype,
    bsopts: '',
    bsoflags: lu.bsoflags,
    blockSize: lu.blockSize,
    params,
  };
}

/**
 * A snapshot from `show` output, for daemons without the snapshot request (tgt's tgtd):
 * no LU parameters beyond what `show` prints, ACL kinds guessed, no passwords.
 */
export function snapshotFromShow(
  targets: readonly ShownTarget[],
  targetParams: ReadonlyMap<number, Record<string, string>>,
  accounts: readonly string[],
  discovery: { incoming: string[]; outgoing?: string },
): ConfigSnapshot {
  return {
    version: 1,
    exact: false,
    // `account show` lists the newest first
    accounts: [...accounts].reverse().map((user) => ({ user })),
    discovery,
    targets: targets.map((t) => {
      const outgoing = t.accounts.find((a) => a.endsWith(' (outgoing)'));
      return {
        tid: t.tid,
        name: t.name,
        lld: t.driver,
        state: t.state,
        params: targetParams.get(t.tid) ?? {},
        luns: t.luns.filter((lu) => lu.lun !== '0').map((lu) => luFromShow(t.tid, lu)),
        accounts: {
          incoming: t.accounts.filter((a) => !a.endsWith(' (outgoing)')),
          outgoing: outgoing?.slice(0, -' (outgoing)'.length),
        },
        acl: { addresses: t.acl.filter(isAddressAcl), names: t.acl.filter((a) => !isAddressAcl(a)) },
      };
    }),
  };
}

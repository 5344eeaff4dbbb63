/**
 * The text tgtd sends back for show/stat requests, byte for byte as tgt 1.0.x prints it
 * (tgt-behaviour.md §2.6). The formatters take plain data, so they can be tested against tgt's
 * captured output without a running core; dispatch.ts builds that data from the core objects.
 */

const TAB1 = '    ';
const TAB2 = TAB1 + TAB1;
const TAB3 = TAB2 + TAB1;

/** One logical unit as `target show` lists it. */
export interface LuShowInfo {
  lun: bigint;
  /** SCSI peripheral device type code. */
  deviceType: number;
  scsiId: string;
  scsiSn: string;
  /** Capacity in bytes. */
  size: bigint | number;
  blockSize: number;
  online: boolean;
  removable: boolean;
  preventRemoval: boolean;
  readonly: boolean;
  swp: boolean;
  thinProvisioning: boolean;
  /** Backing store type name; null prints "None" (no store template at all). */
  bstype: string | null;
  /** Backing store path; null prints "None". */
  path: string | null;
  /** "" | "sync" | "direct" | "sync:direct". */
  bsoflags: string;
}

/** One I_T nexus: its id (iSCSI TSIH) and the info text captured at session creation. */
export interface NexusShowInfo {
  id: number | bigint;
  /** Pre-formatted lines (see formatNexusInfo), each ending in "\n". */
  info: string;
}

/** One target as `target show` lists it. */
export interface TargetShowInfo {
  tid: number;
  name: string;
  lld: string;
  state: string;
  /** Extra "System information" lines from the driver (tgt: "Nop interval: N"), unindented. */
  systemInfo: readonly string[];
  nexuses: readonly NexusShowInfo[];
  luns: readonly LuShowInfo[];
  accounts: { incoming: readonly string[]; outgoing?: string | undefined };
  acl: { addresses: readonly string[]; names: readonly string[] };
}

// tgt's disk_type_names table (usr/target.c): SCSI peripheral type -> name in `show` output.
const DEVICE_TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, 'disk'],
  [0x01, 'tape'],
  [0x02, 'printer'],
  [0x03, 'processor'],
  [0x04, 'worm'],
  [0x05, 'cd/dvd'],
  [0x06, 'scanner'],
  [0x07, 'optical'],
  [0x08, 'changer'],
  [0x09, 'communication'],
  [0x0c, 'controller'],
  [0x0d, 'enclosure'],
  [0x0e, 'rbc'],
  [0x11, 'osd'],
  [0x7f, 'No LUN'],
  [0xff, 'passthrough'],
]);

/** Name of a SCSI device type as tgtadm prints it ("(null)" for codes tgt has no name for). */
export function deviceTypeName(code: number): string {
  return DEVICE_TYPE_NAMES.get(code) ?? '(null)';
}

const U64 = (v: bigint): bigint => BigInt.asUintN(64, v);

/**
 * tgt's print_disksize(): with s = size/512, MB = (s - (s/625 - 974)) / 1950 in unsigned 64-bit
 * arithmetic. Odd, but every tgt user and script has seen these numbers (64 MiB -> "67 MB").
 */
export function formatSize(bytes: bigint | number): string {
  const s = U64(BigInt(bytes)) / 512n;
  const mb = U64(s - U64(s / 625n - 974n)) / 1950n;
  return `${mb} MB`;
}

/** The nexus text iSCSI captures at login ("Initiator: ... alias: ...", first connection). */
export function formatNexusInfo(
  initiator: string,
  alias: string | null,
  cid: number,
  address: string,
): string {
  return (
    `${TAB3}Initiator: ${initiator} alias: ${alias ?? 'none'}\n` +
    `${TAB3}Connection: ${cid}\n` +
    `${TAB3}${TAB1}IP Address: ${address}\n`
  );
}

const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');

function formatLu(lu: LuShowInfo): string {
  return (
    `${TAB2}LUN: ${lu.lun}\n` +
    `${TAB3}Type: ${deviceTypeName(lu.deviceType)}\n` +
    `${TAB3}SCSI ID: ${lu.scsiId}\n` +
    `${TAB3}SCSI SN: ${lu.scsiSn}\n` +
    `${TAB3}Size: ${formatSize(lu.size)}, Block size: ${lu.blockSize}\n` +
    `${TAB3}Online: ${yesNo(lu.online)}\n` +
    `${TAB3}Removable media: ${yesNo(lu.removable)}\n` +
    `${TAB3}Prevent removal: ${yesNo(lu.preventRemoval)}\n` +
    `${TAB3}Readonly: ${yesNo(lu.readonly)}\n` +
    `${TAB3}SWP: ${yesNo(lu.swp)}\n` +
    `${TAB3}Thin-provisioning: ${yesNo(lu.thinProvisioning)}\n` +
    `${TAB3}Backing store type: ${lu.bstype === null ? 'None' : lu.bstype || 'Unknown'}\n` +
    `${TAB3}Backing store path: ${lu.path ?? 'None'}\n` +
    `${TAB3}Backing store flags: ${lu.bsoflags}\n`
  );
}

/** `tgtadm --mode target --op show`: every target, ascending tid (tgt-behaviour.md §2.6). */
export function formatTargetShowAll(targets: readonly TargetShowInfo[]): string {
  let out = '';
  for (const t of targets) {
    out += `Target ${t.tid}: ${t.name}\n${TAB1}System information:\n${TAB2}Driver: ${t.lld}\n${TAB2}State: ${t.state}\n`;
    for (const line of t.systemInfo) out += `${TAB2}${line.trimStart()}\n`;
    out += `${TAB1}I_T nexus information:\n`;
    for (const n of t.nexuses) out += `${TAB2}I_T nexus: ${n.id}\n${n.info}`;
    out += `${TAB1}LUN information:\n`;
    for (const lu of t.luns) out += formatLu(lu);
    // tgt prints account bindings only for its iSCSI drivers.
    if (t.lld === 'iscsi' || t.lld === 'iser') {
      out += `${TAB1}Account information:\n`;
      for (const user of t.accounts.incoming) out += `${TAB2}${user}\n`;
      if (t.accounts.outgoing !== undefined) out += `${TAB2}${t.accounts.outgoing} (outgoing)\n`;
    }
    out += `${TAB1}ACL information:\n`;
    for (const a of t.acl.addresses) out += `${TAB2}${a}\n`;
    for (const n of t.acl.names) out += `${TAB2}${n}\n`;
  }
  return out;
}

export interface SystemShowInfo {
  state: string;
  debug: boolean;
  drivers: ReadonlyArray<{ name: string; state: string }>;
  backingStores: ReadonlyArray<{ name: string; oflags: string }>;
  /** Device type codes, in registration order. */
  deviceTypes: readonly number[];
  /** Discovery (global) CHAP accounts. */
  discovery: { incoming: readonly string[]; outgoing?: string | undefined };
  /** Driver lines appended at the end (tgt's iSCSI driver: the iSNS block). */
  driverText: string;
}

/** `tgtadm --mode system --op show` (tgt-behaviour.md §2.6). */
export function formatSystemShow(s: SystemShowInfo): string {
  let out = `System:\n${TAB1}State: ${s.state}\n${TAB1}debug: ${s.debug ? 'on' : 'off'}\n`;
  out += 'LLDs:\n';
  for (const d of s.drivers) out += `${TAB1}${d.name}: ${d.state}\n`;
  out += 'Backing stores:\n';
  for (const b of s.backingStores)
    out += b.oflags ? `${TAB1}${b.name} (bsoflags ${b.oflags})\n` : `${TAB1}${b.name}\n`;
  out += 'Device types:\n';
  for (const code of s.deviceTypes) out += `${TAB1}${deviceTypeName(code)}\n`;
  // tgt prints this block only when a discovery incoming account exists, with a stray blank
  // line after the heading (it formats "Account information:\n" through "%s\n"). Kept as is
  // because scripts compare this output.
  if (s.discovery.incoming.length > 0) {
    out += `${TAB1}Account information:\n\n`;
    for (const user of s.discovery.incoming) out += `${TAB1}${user}\n`;
    if (s.discovery.outgoing !== undefined) out += `${TAB1}${s.discovery.outgoing} (outgoing)\n`;
  }
  return out + s.driverText;
}

/** `tgtadm --mode account --op show`: users, most recently created first; nothing when none. */
export function formatAccountList(usersNewestFirst: readonly string[]): string {
  if (usersNewestFirst.length === 0) return '';
  return 'Account list:\n' + usersNewestFirst.map((u) => `${TAB1}${u}\n`).join('');
}

export interface LldShowInfo {
  name: string;
  state: string;
  /** The driver's targets in creation order (tgt's per-driver list). */
  targets: ReadonlyArray<{ tid: number; name: string }>;
}

/** `tgtadm --mode lld --op show`. */
export function formatLldShow(drivers: readonly LldShowInfo[]): string {
  let out = 'LLDs:\n';
  for (const d of drivers) {
    out += `${TAB1}${d.name}: ${d.state}\n`;
    for (const t of d.targets) out += `${TAB2}Target ${t.tid}: ${t.name}\n`;
  }
  return out;
}

/** Per I_T nexus per LU counters (tgt's struct lu_stat). */
export interface LuStatRow {
  tid: number;
  lun: bigint;
  sid: number | bigint;
  readSubmittedBytes: number | bigint;
  readSubmittedCommands: number;
  readDoneBytes: number | bigint;
  readDoneCommands: number;
  writeSubmittedBytes: number | bigint;
  writeSubmittedCommands: number;
  writeDoneBytes: number | bigint;
  writeDoneCommands: number;
  errors: number;
}

export const STAT_HEADER =
  'tgt lun sid rd_subm(bytes,cmds) rd_done(bytes,cmds) wr_subm(bytes,cmds) wr_done(bytes,cmds) errs\n';

/** printf("%<width>d") for non-negative integers. */
export const pad = (v: number | bigint, width: number): string => String(v).padStart(width);

/** One stat row: "%3d %3lu %3lu %12lu %6u %12lu %6u %12lu %6u %12lu %6u %4u\n". */
export function formatStatLine(r: LuStatRow): string {
  return (
    `${pad(r.tid, 3)} ${pad(r.lun, 3)} ${pad(r.sid, 3)} ` +
    `${pad(r.readSubmittedBytes, 12)} ${pad(r.readSubmittedCommands, 6)} ` +
    `${pad(r.readDoneBytes, 12)} ${pad(r.readDoneCommands, 6)} ` +
    `${pad(r.writeSubmittedBytes, 12)} ${pad(r.writeSubmittedCommands, 6)} ` +
    `${pad(r.writeDoneBytes, 12)} ${pad(r.writeDoneCommands, 6)} ` +
    `${pad(r.errors, 4)}\n`
  );
}

/** Header plus rows (target/system/logicalunit stat). */
export function formatStats(rows: readonly LuStatRow[]): string {
  return STAT_HEADER + rows.map(formatStatLine).join('');
}

/** iSCSI per-connection counters (tgt's iscsi_conn stats), for session/connection stat. */
export interface ConnStatRow {
  sid: number;
  cid: number;
  rxDataOctets: number | bigint;
  txDataOctets: number | bigint;
  dataOutPdus: number;
  dataInPdus: number;
  commandPdus: number;
  responsePdus: number;
}

export const CONN_STAT_HEADER =
  'sid cid rxdata_octets txdata_octets dataout_pdus datain_pdus cmd_pdus rsp_pdus\n';

/** One connection row: "%3d %3d %13lu %13lu %12u %11u %8u %8u\n". */
export function formatConnStatLine(r: ConnStatRow): string {
  return (
    `${pad(r.sid, 3)} ${pad(r.cid, 3)} ${pad(r.rxDataOctets, 13)} ${pad(r.txDataOctets, 13)} ` +
    `${pad(r.dataOutPdus, 12)} ${pad(r.dataInPdus, 11)} ${pad(r.commandPdus, 8)} ${pad(r.responsePdus, 8)}\n`
  );
}

/**
 * `session stat`: the nexus's LU rows, then (when the session has connections) a blank line and
 * the connection rows (tgt's _stat_iscsi_session).
 */
export function formatSessionStats(luRows: readonly LuStatRow[], conns: readonly ConnStatRow[]): string {
  let out = formatStats(luRows);
  if (conns.length > 0) out += '\n' + CONN_STAT_HEADER + conns.map(formatConnStatLine).join('');
  return out;
}

/** `connection show --tid N`: one block per connection. */
export function formatConnectionShow(
  conns: ReadonlyArray<{ sid: number; cid: number; initiator: string; address: string }>,
): string {
  return conns
    .map(
      (c) =>
        `Session: ${c.sid}\n${TAB1}Connection: ${c.cid}\n${TAB2}Initiator: ${c.initiator}\n${TAB2}IP Address: ${c.address}\n`,
    )
    .join('');
}

/** `portal show`: "Portal: ADDR:PORT,TPGT" with IPv6 in brackets. */
export function formatPortalShow(
  portals: ReadonlyArray<{ host: string; port: number; tpgt: number }>,
): string {
  return portals
    .map((p) => `Portal: ${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port},${p.tpgt}\n`)
    .join('');
}

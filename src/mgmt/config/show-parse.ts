/**
 * Parsers for the tgtadm `show` texts tgt-admin reads (layouts in tgt-behaviour.md §2.6):
 * `target show`, `account show`, `system show`. They work on tgt's output as well as ours.
 */

/** One LU as `target show` lists it. */
export interface ShownLu {
  lun: string;
  type: string;
  scsiId: string;
  scsiSn: string;
  blockSize: number;
  online: boolean;
  removable: boolean;
  readonly: boolean;
  thinProvisioning: boolean;
  bstype: string;
  /** null when "None". */
  path: string | null;
  bsoflags: string;
}

/** One target as `target show` lists it. */
export interface ShownTarget {
  tid: number;
  name: string;
  driver: string;
  state: string;
  /** I_T nexus id -> the last connection id listed for it. */
  sessions: Map<string, string>;
  luns: ShownLu[];
  /** Account lines, outgoing ones with their " (outgoing)" suffix. */
  accounts: string[];
  /** ACL lines: addresses first, then names (the text cannot tell them apart). */
  acl: string[];
  /** The target's part of the show text. */
  text: string;
}

/** Split `target show` output into targets (ascending tid, as tgtd prints them). */
export function parseTargetShow(text: string): ShownTarget[] {
  const out: ShownTarget[] = [];
  let cur: ShownTarget | undefined;
  let section = '';
  let lu: ShownLu | undefined;
  let sid: string | undefined;
  for (const line of text.split('\n')) {
    const head = /^Target (\d*): (.+)$/.exec(line);
    if (head) {
      cur = {
        tid: Number(head[1]),
        name: head[2]!,
        driver: '',
        state: '',
        sessions: new Map(),
        luns: [],
        accounts: [],
        acl: [],
        text: '',
      };
      out.push(cur);
      section = '';
      lu = undefined;
      sid = undefined;
    }
    if (!cur) continue;
    cur.text += `${line}\n`;
    if (head) continue;
    const indent = /^ */.exec(line)![0].length;
    const body = line.trim();
    if (body === '') continue;
    if (indent === 4) {
      section = body;
      continue;
    }
    switch (section) {
      case 'System information:': {
        const m = /^(Driver|State): (.*)$/.exec(body);
        if (m) {
          if (m[1] === 'Driver') cur.driver = m[2]!;
          else cur.state = m[2]!;
        }
        break;
      }
      case 'I_T nexus information:': {
        const n = /^I_T nexus: (.+)$/.exec(body);
        if (n) sid = n[1]!;
        const c = /^Connection: (.+)$/.exec(body);
        if (c && sid !== undefined) cur.sessions.set(sid, c[1]!);
        break;
      }
      case 'LUN information:':
        lu = parseLuLine(cur, lu, body);
        break;
      case 'Account information:':
        cur.accounts.push(body);
        break;
      case 'ACL information:':
        cur.acl.push(body);
        break;
      default:
        break;
    }
  }
  return out;
}

function parseLuLine(target: ShownTarget, lu: ShownLu | undefined, body: string): ShownLu | undefined {
  const start = /^LUN: (\d+)$/.exec(body);
  if (start) {
    const fresh: ShownLu = {
      lun: start[1]!,
      type: '',
      scsiId: '',
      scsiSn: '',
      blockSize: 512,
      online: true,
      removable: false,
      readonly: false,
      thinProvisioning: false,
      bstype: '',
      path: null,
      bsoflags: '',
    };
    target.luns.push(fresh);
    return fresh;
  }
  if (!lu) return lu;
  const kv = /^([^:]+): ?(.*)$/.exec(body);
  if (!kv) return lu;
  const [, key, value] = kv as unknown as [string, string, string];
  const yes = value === 'Yes';
  switch (key) {
    case 'Type':
      lu.type = value;
      break;
    case 'SCSI ID':
      lu.scsiId = value;
      break;
    case 'SCSI SN':
      lu.scsiSn = value;
      break;
    case 'Size': {
      const bs = /Block size: (\d+)/.exec(value);
      if (bs) lu.blockSize = Number(bs[1]);
      break;
    }
    case 'Online':
      lu.online = yes;
      break;
    case 'Removable media':
      lu.removable = yes;
      break;
    case 'Readonly':
      lu.readonly = yes;
      break;
    case 'Thin-provisioning':
      lu.thinProvisioning = yes;
      break;
    case 'Backing store type':
      lu.bstype = value;
      break;
    case 'Backing store path':
      lu.path = value === 'None' ? null : value;
      break;
    case 'Backing store flags':
      lu.bsoflags = value;
      break;
    default:
      break;
  }
  return lu;
}

/** `account show`: the user names (tgt-admin's /^\s+(.*?)$/). */
export function parseAccountShow(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s+(.*?)$/.exec(line);
    if (m && m[1] !== '') out.push(m[1]!);
  }
  return out;
}

/** Discovery accounts listed by `system show` ("Account information:" under Device types). */
export function parseDiscoveryAccounts(text: string): { incoming: string[]; outgoing?: string } {
  const out: { incoming: string[]; outgoing?: string } = { incoming: [] };
  let inside = false;
  for (const line of text.split('\n')) {
    if (/^\S/.test(line)) inside = false;
    if (/^\s+Account information:\s*$/.test(line)) {
      inside = true;
      continue;
    }
    if (!inside) continue;
    const name = line.trim();
    if (name === '') continue;
    const out1 = /^(.*) \(outgoing\)$/.exec(name);
    if (out1) out.outgoing = out1[1]!;
    else out.incoming.push(name);
  }
  return out;
}

/** tgt-admin's check_isns: is iSNS already on? */
export function isnsEnabled(systemShow: string): boolean {
  return /iSNS=On/.test(systemShow);
}

/** `target show --tid N`: Name=Value lines. */
export function parseTargetParams(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/;
const IPV6 = /^\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?(\/\d{1,3})?$/;

/**
 * Is an ACL entry an initiator address (ALL, IPv4, IPv6, with an optional prefix length)?
 * tgt-admin's /^[0-9,.E]+$/ calls IPv6 addresses and CIDRs names; this does not.
 */
export function isAddressAcl(entry: string): boolean {
  return entry === 'ALL' || IPV4.test(entry) || IPV6.test(entry);
}

/**
 * Initiator access control rules (tgt §4.6, usr/iscsi/target.c): address rules are "ALL", an
 * IPv4/IPv6 address, "addr/bits" (IPv4 bits 0-31 with no host bits set, IPv6 bits 0-127) or
 * "[IPv6]/bits"; name rules are exact, case-sensitive InitiatorName matches.
 */
// node:net's isIP is off limits in the core (no socket module); these parsers are small.

interface ParsedRule {
  all: boolean;
  v6: boolean;
  /** Address bytes (4 or 16). */
  bytes: Uint8Array;
  /** Prefix length; -1 = exact match. */
  bits: number;
}

/** Dotted-quad IPv4 to 4 bytes; undefined when not one. */
export function parseIpv4(addr: string): Uint8Array | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (!m) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const v = Number(m[i + 1]);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

/** RFC 4291 2.2 text form (incl. "::" and an IPv4 tail) to 16 bytes; undefined when invalid. */
export function parseIpv6(addr: string): Uint8Array | undefined {
  let text = addr;
  let tail: Uint8Array | undefined;
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail = parseIpv4(v4[2]!);
    if (!tail) return undefined;
    text = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1);
  }
  const want = tail ? 6 : 8;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !rest) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    if (head.length + rest.length > want - 1) return undefined;
    groups = [...head, ...new Array<number>(want - head.length - rest.length).fill(0), ...rest];
  } else {
    if (head.length !== want) return undefined;
    groups = head;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tail) out.set(tail, 12);
  return out;
}

/** Parse an address rule; undefined when it is not valid. */
function parseAddressRule(rule: string): ParsedRule | undefined {
  if (rule === 'ALL') return { all: true, v6: false, bytes: new Uint8Array(0), bits: -1 };
  let addr = rule;
  let bitsText: string | undefined;
  if (addr.startsWith('[')) {
    const close = addr.indexOf(']');
    if (close < 0) return undefined;
    const rest = addr.slice(close + 1);
    addr = addr.slice(1, close);
    if (rest !== '') {
      if (!rest.startsWith('/')) return undefined;
      bitsText = rest.slice(1);
    }
  } else {
    const slash = addr.indexOf('/');
    if (slash >= 0) {
      bitsText = addr.slice(slash + 1);
      addr = addr.slice(0, slash);
    }
  }
  const v4bytes = parseIpv4(addr);
  const v4 = v4bytes !== undefined;
  const parsed = v4bytes ?? parseIpv6(addr);
  if (!parsed) return undefined;
  let bits = -1;
  if (bitsText !== undefined) {
    if (!/^\d+$/.test(bitsText)) return undefined;
    bits = Number(bitsText);
    // tgt: /32 and /128 are not accepted (use the bare address)
    if (bits > (v4 ? 31 : 127)) return undefined;
  }
  const bytes = parsed;
  if (v4 && bits >= 0 && !prefixMatches(bytes, new Uint8Array(4), bits, true)) return undefined;
  return { all: false, v6: !v4, bytes, bits };
}

/**
 * Compare the first `bits` bits of a and b; with `hostBitsZero`, instead check that a has no
 * bits set after the prefix.
 */
function prefixMatches(a: Uint8Array, b: Uint8Array, bits: number, hostBitsZero = false): boolean {
  for (let i = 0; i < a.length; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    const mask = (0xff00 >> take) & 0xff;
    if (hostBitsZero) {
      if ((a[i]! & ~mask & 0xff) !== 0) return false;
    } else if ((a[i]! & mask) !== (b[i]! & mask)) return false;
  }
  return true;
}

/** True when `rule` is a valid address rule. */
export function isValidAddressRule(rule: string): boolean {
  return parseAddressRule(rule) !== undefined;
}

/** Normalise a peer address: strip an IPv6 zone, unwrap IPv4-mapped IPv6 ("::ffff:a.b.c.d"). */
function normalisePeer(address: string): string {
  let a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return mapped ? mapped[1]! : a;
}

/** Does the initiator at `address` match the address rule? */
export function addressRuleMatches(rule: string, address: string): boolean {
  const r = parseAddressRule(rule);
  if (!r) return false;
  if (r.all) return true;
  const peer = normalisePeer(address);
  const v4bytes = parseIpv4(peer);
  const v4 = v4bytes !== undefined;
  const bytes = v4bytes ?? parseIpv6(peer);
  if (!bytes || v4 === r.v6) return false;
  if (r.bits < 0) return prefixMatches(r.bytes, bytes, r.bytes.length * 8);
  return prefixMatches(r.bytes, bytes, r.bits);
}

/**
 * How address rules and name rules combine. `any` (tgt §4.6): an initiator may log in when ANY
 * address rule OR ANY name rule matches. `all` (tgt-ts): it must match an address rule AND a name
 * rule; a kind with no rule bound does not restrict. In both modes an empty ACL allows nobody.
 */
export type AclMatch = 'any' | 'all';

/** Is `value` an ACL match mode (`target update --name acl_match --value any|all`)? */
export function isAclMatch(value: string): value is AclMatch {
  return value === 'any' || value === 'all';
}

/** May the initiator named `initiatorName` at `initiatorAddress` log in (see AclMatch)? */
export function aclAllows(
  acl: { readonly addresses: readonly string[]; readonly names: readonly string[] },
  initiatorAddress: string,
  initiatorName: string,
  match: AclMatch = 'any',
): boolean {
  const addressOk = acl.addresses.some((rule) => addressRuleMatches(rule, initiatorAddress));
  const nameOk = acl.names.includes(initiatorName);
  if (match === 'any') return addressOk || nameOk;
  if (acl.addresses.length === 0 && acl.names.length === 0) return false;
  return (acl.addresses.length === 0 || addressOk) && (acl.names.length === 0 || nameOk);
}

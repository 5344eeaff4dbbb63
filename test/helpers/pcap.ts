/**
 * Minimal classic-libpcap reader and TCP stream reassembler for test fixtures.
 *
 * Public API:
 *   readPcap(file: Buffer): PcapCapture                 (packets with their link type)
 *   tcpConnections(file: Buffer | PcapCapture): TcpConnection[]
 *   readTcpConnections(path: string): TcpConnection[]   (reads the file, then tcpConnections)
 *
 * Link types: Ethernet (1, with 802.1Q tags), Linux cooked SLL (113) and SLL2 (276), raw IP
 * (101, 12, 14), BSD loopback (0, 108). IPv4 and IPv6 (no extension headers). Per direction,
 * TCP payload is placed by sequence number relative to the SYN (or the first segment seen);
 * retransmitted and overlapping bytes are ignored, and the stream stops at the first gap.
 */
import { readFileSync } from 'node:fs';

export interface PcapPacket {
  /** Seconds since the epoch, with fraction. */
  time: number;
  /** Captured bytes (a view of the file buffer). */
  data: Buffer;
  /** Length on the wire (larger than data.length when truncated by the snap length). */
  originalLength: number;
}

export interface PcapCapture {
  linkType: number;
  packets: PcapPacket[];
}

export interface TcpEndpoint {
  address: string;
  port: number;
}

export interface TcpDirection {
  /** Reassembled payload bytes, in order, up to the first gap. */
  bytes: Buffer;
  /** True when a hole in the sequence space cut the stream short. */
  gap: boolean;
}

export interface TcpConnection {
  /** The side that sent the SYN (or, without a SYN, the side not on port 3260). */
  client: TcpEndpoint;
  server: TcpEndpoint;
  clientToServer: TcpDirection;
  serverToClient: TcpDirection;
}

const LINKTYPE_NULL = 0;
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LOOP = 108;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;

/** Parse a classic pcap file (either byte order, micro- or nanosecond timestamps). */
export function readPcap(file: Buffer): PcapCapture {
  if (file.length < 24) throw new Error('pcap: file too short');
  const magic = file.readUInt32LE(0);
  let le: boolean;
  let nano: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) {
    le = true;
    nano = magic === 0xa1b23c4d;
  } else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) {
    le = false;
    nano = magic === 0x4d3cb2a1;
  } else {
    throw new Error(`pcap: bad magic 0x${magic.toString(16)} (pcapng is not supported)`);
  }
  const u32 = (off: number): number => (le ? file.readUInt32LE(off) : file.readUInt32BE(off));
  const linkType = u32(20) & 0x0fffffff;
  const packets: PcapPacket[] = [];
  let off = 24;
  while (off + 16 <= file.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const capLen = u32(off + 8);
    const origLen = u32(off + 12);
    off += 16;
    if (off + capLen > file.length) break; // truncated file
    packets.push({
      time: sec + frac / (nano ? 1e9 : 1e6),
      data: file.subarray(off, off + capLen),
      originalLength: origLen,
    });
    off += capLen;
  }
  return { linkType, packets };
}

interface TcpSegment {
  src: TcpEndpoint;
  dst: TcpEndpoint;
  seq: number;
  flags: number;
  payload: Buffer;
  /** The packet was cut by the snap length, so payload is incomplete. */
  truncated: boolean;
}

const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;

/** Network-layer payload and its ethertype for one captured frame, or null if not IP. */
function networkLayer(linkType: number, frame: Buffer): { type: number; ip: Buffer } | null {
  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      let off = 12;
      let type = frame.readUInt16BE(off);
      while (type === 0x8100 || type === 0x88a8) {
        off += 4;
        type = frame.readUInt16BE(off);
      }
      return { type, ip: frame.subarray(off + 2) };
    }
    case LINKTYPE_LINUX_SLL:
      return { type: frame.readUInt16BE(14), ip: frame.subarray(16) };
    case LINKTYPE_LINUX_SLL2:
      return { type: frame.readUInt16BE(0), ip: frame.subarray(20) };
    case LINKTYPE_RAW:
    case 12:
    case 14:
      return { type: frame[0]! >> 4 === 6 ? 0x86dd : 0x0800, ip: frame };
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      const family = frame.readUInt32LE(0) > 0xffff ? frame.readUInt32BE(0) : frame.readUInt32LE(0);
      return { type: family === 2 ? 0x0800 : 0x86dd, ip: frame.subarray(4) };
    }
    default:
      throw new Error(`pcap: unsupported link type ${linkType}`);
  }
}

function ipv6String(b: Buffer): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
  return parts.join(':');
}

/** Decode one frame down to its TCP segment, or null for anything else. */
function tcpSegment(linkType: number, pkt: PcapPacket): TcpSegment | null {
  const net = networkLayer(linkType, pkt.data);
  if (!net) return null;
  let srcAddr: string;
  let dstAddr: string;
  let tcp: Buffer;
  const ip = net.ip;
  if (net.type === 0x0800) {
    const ihl = (ip[0]! & 0x0f) * 4;
    if (ip[9] !== 6) return null;
    const total = ip.readUInt16BE(2);
    srcAddr = Array.from(ip.subarray(12, 16)).join('.');
    dstAddr = Array.from(ip.subarray(16, 20)).join('.');
    // Trim Ethernet padding using the IP total length.
    tcp = ip.subarray(ihl, Math.min(ip.length, total));
  } else if (net.type === 0x86dd) {
    if (ip[6] !== 6) return null;
    srcAddr = ipv6String(ip.subarray(8, 24));
    dstAddr = ipv6String(ip.subarray(24, 40));
    tcp = ip.subarray(40, Math.min(ip.length, 40 + ip.readUInt16BE(4)));
  } else {
    return null;
  }
  const dataOffset = (tcp[12]! >> 4) * 4;
  return {
    src: { address: srcAddr, port: tcp.readUInt16BE(0) },
    dst: { address: dstAddr, port: tcp.readUInt16BE(2) },
    seq: tcp.readUInt32BE(4),
    flags: tcp[13]!,
    payload: tcp.subarray(dataOffset),
    truncated: pkt.data.length < pkt.originalLength,
  };
}

/** One direction being reassembled. */
class DirectionBuilder {
  private isn: number | null = null;
  private readonly pieces: { start: number; bytes: Buffer; truncated: boolean }[] = [];

  add(seg: TcpSegment): void {
    if (seg.flags & TCP_SYN) {
      this.isn = (seg.seq + 1) >>> 0;
      return;
    }
    if (seg.payload.length === 0) return;
    if (this.isn === null) this.isn = seg.seq;
    this.pieces.push({ start: (seg.seq - this.isn) >>> 0, bytes: seg.payload, truncated: seg.truncated });
  }

  build(): TcpDirection {
    const sorted = [...this.pieces].sort((a, b) => a.start - b.start);
    const out: Buffer[] = [];
    let next = 0;
    let gap = false;
    for (const p of sorted) {
      const end = p.start + p.bytes.length;
      if (end <= next) continue; // retransmission of bytes we already have
      if (p.start > next) {
        gap = true;
        break;
      }
      out.push(p.bytes.subarray(next - p.start));
      next = end;
      if (p.truncated) {
        gap = true;
        break;
      }
    }
    return { bytes: Buffer.concat(out), gap };
  }
}

interface ConnectionBuilder {
  client: TcpEndpoint;
  server: TcpEndpoint;
  c2s: DirectionBuilder;
  s2c: DirectionBuilder;
  closed: boolean;
}

const ISCSI_PORT = 3260;

function endpointKey(e: TcpEndpoint): string {
  return `${e.address}:${e.port}`;
}

/** Reassemble every TCP connection in a capture, in order of first appearance. */
export function tcpConnections(input: Buffer | PcapCapture): TcpConnection[] {
  const capture = Buffer.isBuffer(input) ? readPcap(input) : input;
  const active = new Map<string, ConnectionBuilder>();
  const all: ConnectionBuilder[] = [];
  for (const pkt of capture.packets) {
    const seg = tcpSegment(capture.linkType, pkt);
    if (!seg) continue;
    const a = endpointKey(seg.src);
    const b = endpointKey(seg.dst);
    const key = a < b ? `${a}|${b}` : `${b}|${a}`;
    let conn = active.get(key);
    const isInitialSyn = (seg.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    if (!conn || (isInitialSyn && conn.closed)) {
      // The SYN sender is the client; without a SYN, guess from the iSCSI port.
      const srcIsClient = isInitialSyn || seg.dst.port === ISCSI_PORT || seg.src.port !== ISCSI_PORT;
      conn = {
        client: srcIsClient ? seg.src : seg.dst,
        server: srcIsClient ? seg.dst : seg.src,
        c2s: new DirectionBuilder(),
        s2c: new DirectionBuilder(),
        closed: false,
      };
      active.set(key, conn);
      all.push(conn);
    }
    if (seg.flags & (TCP_FIN | TCP_RST)) conn.closed = true;
    const fromClient = endpointKey(seg.src) === endpointKey(conn.client);
    (fromClient ? conn.c2s : conn.s2c).add(seg);
  }
  return all.map((c) => ({
    client: c.client,
    server: c.server,
    clientToServer: c.c2s.build(),
    serverToClient: c.s2c.build(),
  }));
}

/** Read a pcap file and reassemble its TCP connections. */
export function readTcpConnections(path: string): TcpConnection[] {
  return tcpConnections(readFileSync(path));
}

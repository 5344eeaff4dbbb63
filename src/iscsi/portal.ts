/**
 * iSCSI portals: TCP listeners. `portal=ADDR[:PORT]` as tgt parses it (tgt-behaviour.md §1.7):
 * IPv6 addresses in brackets, port 3260 when omitted, port 0 picks a free port. With no portal
 * configured the daemon listens on the wildcard address (IPv4 and IPv6) on 3260.
 */
import * as net from 'node:net';
import { withSharedReads } from './socket-reads.js';

export const ISCSI_DEFAULT_PORT = 3260;

export interface PortalAddress {
  host: string;
  port: number;
}

/** Parse "ADDR:PORT", "[V6]:PORT", "ADDR", "[V6]"; null when malformed. */
export function parsePortal(spec: string): PortalAddress | null {
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
    if (net.isIPv6(host.split('%')[0]!) === false) return null;
  } else {
    const colon = spec.lastIndexOf(':');
    if (colon >= 0 && spec.indexOf(':') !== colon) {
      // Bare IPv6 without brackets: accept only without a port.
      if (!net.isIPv6(spec)) return null;
      return { host: spec, port: ISCSI_DEFAULT_PORT };
    }
    host = colon >= 0 ? spec.slice(0, colon) : spec;
    portText = colon >= 0 ? spec.slice(colon + 1) : undefined;
    if (host !== '' && net.isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host)) return null;
  }
  if (portText !== undefined && !/^\d{1,5}$/.test(portText)) return null;
  const port = portText === undefined ? ISCSI_DEFAULT_PORT : Number(portText);
  if (port > 65535) return null;
  return { host, port };
}

/** "addr:port" with IPv6 in brackets, as tgt prints portals and SendTargets addresses. */
export function formatHostPort(host: string, port: number): string {
  const bare = host.split('%')[0]!; // zone ids are stripped (tgt §4.4)
  return net.isIPv6(bare) ? `[${bare}]:${port}` : `${bare}:${port}`;
}

/** A listening portal. */
export class Portal {
  readonly server: net.Server;
  /** The address asked for ("" = wildcard). */
  readonly requested: PortalAddress;

  private constructor(server: net.Server, requested: PortalAddress) {
    this.server = server;
    this.requested = requested;
  }

  /** Start listening; resolves once bound (rejects with the socket error otherwise). */
  static listen(addr: PortalAddress, onConnection: (socket: net.Socket) => void): Promise<Portal> {
    const server = net.createServer({
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: 1_800_000,
      pauseOnConnect: true, // withSharedReads starts reading
    });
    server.on('connection', (socket: net.Socket) => onConnection(withSharedReads(socket)));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      const options: net.ListenOptions = { port: addr.port, backlog: 128 };
      if (addr.host !== '') options.host = addr.host;
      // The wildcard listener takes IPv4 and IPv6 (dual stack) like tgt's pair of sockets.
      server.listen(options, () => {
        server.off('error', reject);
        server.on('error', () => {
          /* accept errors (EMFILE...) must not kill the daemon */
        });
        resolve(new Portal(server, addr));
      });
    });
  }

  /** The bound address (port resolved when 0 was asked for). */
  get address(): PortalAddress {
    const a = this.server.address() as net.AddressInfo;
    return { host: this.requested.host === '' ? a.address : this.requested.host, port: a.port };
  }

  /** As `portal show` prints it. */
  describe(): string {
    const a = this.address;
    return formatHostPort(a.host, a.port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

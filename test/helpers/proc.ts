/** Where a tgtd's connections live: its worker processes and their sockets, read from /proc. */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { Session } from '../../src/initiator/index.js';
import type { TgtDaemon } from './daemon.js';

/** Child processes of `pid` (the workers of a tgtd). */
export function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(' ').map(Number);
}

/** The inode of the daemon's end of the TCP connection whose peer port is `peerPort`. */
function socketInode(daemonPort: number, peerPort: number): string {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = parseInt(f[1]!.split(':')[1]!, 16);
      const remote = parseInt(f[2]!.split(':')[1]!, 16);
      if (local === daemonPort && remote === peerPort) return f[9]!;
    }
  }
  throw new Error(`no connection from port ${peerPort}`);
}

/** The processes among `pids` that hold the daemon's end of `session`'s connection. */
export function holders(d: TgtDaemon, session: Session, pids: number[]): number[] {
  return holdersOfPeer(d, session.connection.socket.localPort!, pids);
}

/** The processes among `pids` that hold the daemon's end of the connection from `peerPort`. */
export function holdersOfPeer(d: TgtDaemon, peerPort: number, pids: number[]): number[] {
  const inode = socketInode(d.port, peerPort);
  return pids.filter((pid) =>
    readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
      } catch {
        return false;
      }
    }),
  );
}

/**
 * The control socket server (tgt's usr/mgmt.c; tgt-behaviour.md §2.1): AF_UNIX stream socket
 * at `<prefix>.<port>`, one request per connection (header, payload, response, close).
 *
 * Differences from tgt, all forced by Node or deliberate:
 * - Peer credentials: tgt checks SO_PEERCRED (uid and gid must equal tgtd's). Node cannot read
 *   them, so the socket is created mode 0600 instead: only the owner (and root) can connect.
 * - Single instance: tgt lockf()s `<path>.lock`. Node has no lockf, so the lock file is created
 *   exclusively and holds our pid; a lock whose pid is dead (or that is empty, as tgt leaves it)
 *   is stale and taken over, unless a daemon still answers on the socket.
 * - Requests run one at a time in arrival order (tgt's single thread gives the same guarantee).
 */
import { Buffer } from 'node:buffer';
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { dirname } from 'node:path';
import { AdminError } from '../scsi/admin-error.js';
import { DEFAULT_SOCKET_PREFIX, MAX_SOCKET_PATH, controlSocketPath, probeDaemon } from './client.js';
import { type DispatchResult, type MgmtSystem, dispatch } from './dispatch.js';
import {
  type AdminRequest,
  MAX_PAYLOAD,
  REQ_HEADER_SIZE,
  decodeRequestHeader,
  encodeResponse,
  type ParsedPayload,
  parsePayload,
  payloadText,
} from './wire.js';

export interface ControlServerOptions {
  /** tgtd -C N: the socket is `<prefix>.N`. */
  controlPort: number;
  /** Called after a successful `system delete` has been answered: the daemon should exit. */
  onSystemDelete: () => void;
  /** Environment to read TGT_IPC_SOCKET from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Diagnostics (tgtd -f prints them on stderr). */
  log?: (message: string) => void;
  /** A client that sends nothing for this long is dropped (default 30 s). */
  idleTimeoutMs?: number;
  /** Runs requests instead of dispatch() on `system` (tgtd --workers routes them, workers/route.ts). */
  dispatcher?: (req: AdminRequest, payload: ParsedPayload) => Promise<DispatchResult>;
}

export interface ControlServer {
  /** The socket path. */
  readonly path: string;
  /** Stop accepting requests and release the lock (the socket file is left, as tgt does). */
  close(): Promise<void>;
}

/** Error thrown when the control socket cannot be set up (tgtd prints it and exits). */
export class ControlServerError extends Error {
  override name = 'ControlServerError';
}

/** Start the control socket server for `system`. */
/**
 * Create (or tighten) the default socket directory to 0700: with the 0600 socket inside, only
 * root reaches the control socket, twice over (tgt makes the directory 0755). Not used for a
 * TGT_IPC_SOCKET path, whose directory (say /tmp) is not ours to change.
 */
export async function ensurePrivateDirectory(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await fsp.chmod(dir, 0o700);
}

export async function startControlServer(
  system: MgmtSystem,
  opts: ControlServerOptions,
): Promise<ControlServer> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => {});
  const path = controlSocketPath(opts.controlPort, env);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH)
    throw new ControlServerError(`managment path too long: ${path}`);
  if (env.TGT_IPC_SOCKET === undefined) await ensurePrivateDirectory(dirname(DEFAULT_SOCKET_PREFIX));

  const lockPath = `${path}.lock`;
  await acquireLock(lockPath, path);

  let server: net.Server;
  try {
    await fsp.unlink(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    server = await listenPrivate(path);
  } catch (e) {
    await fsp.unlink(lockPath).catch(() => {});
    throw new ControlServerError(`can't bind a socket, ${(e as Error).message}`);
  }

  const sockets = new Set<net.Socket>();
  const queue = new RequestQueue();
  const idleMs = opts.idleTimeoutMs ?? 30_000;
  const ctx = { system, onSystemDelete: opts.onSystemDelete };
  const run = opts.dispatcher ?? ((req: AdminRequest, payload: ParsedPayload) => dispatch(ctx, req, payload));
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    handleConnection(sock, run, queue, log, idleMs);
  });
  server.on('error', (e) => log(`control socket error: ${e.message}`));

  let closed: Promise<void> | null = null;
  return {
    path,
    close() {
      closed ??= closeServer(server, sockets, path, lockPath);
      return closed;
    },
  };
}

/** Listen with umask 0177 so the socket is never connectable by others, even briefly. */
function listenPrivate(path: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: false });
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    const old = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off('error', onError);
        fsp.chmod(path, 0o600).then(
          () => resolve(server),
          (e: Error) => {
            server.close();
            reject(e);
          },
        );
      });
    } finally {
      process.umask(old);
    }
  });
}

/** Exclusive-create the lock file with our pid; take over a stale one (see header comment). */
async function acquireLock(lockPath: string, socketPath: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await fsp.open(lockPath, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ControlServerError(
          `unable to get lock of management IPC: ${lockPath} (${(e as Error).message})`,
        );
      }
    }
    const text = await fsp.readFile(lockPath, 'utf8').catch(() => '');
    const pid = Number.parseInt(text, 10);
    const owner = Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid);
    if (owner || (await probeDaemon(socketPath)) === 'alive') {
      throw new ControlServerError(`another tgtd is using ${lockPath}`);
    }
    await fsp.unlink(lockPath).catch(() => {});
  }
  throw new ControlServerError(`another tgtd is using ${lockPath}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function closeServer(
  server: net.Server,
  sockets: Set<net.Socket>,
  path: string,
  lockPath: string,
): Promise<void> {
  // libuv unlinks a listening socket's path on close. tgt leaves it in place, and Debian's
  // tgtadm waits after `system delete` until connect() fails with ECONNREFUSED (ENOENT makes it
  // retry), so keep the inode under its name via a hard link: connecting then gets ECONNREFUSED.
  const keep = `${path}.${process.pid}.keep`;
  const kept = await fsp.link(path, keep).then(
    () => true,
    () => false,
  );
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
  if (kept) await fsp.rename(keep, path).catch(() => fsp.unlink(keep).catch(() => {}));
  await fsp.unlink(lockPath).catch(() => {});
}

/** Runs requests one at a time, in arrival order. */
export class RequestQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const next = this.tail.then(job, job);
    this.tail = next.catch(() => {});
    return next;
  }
}

/** Read one request (header then payload), dispatch it, answer, close. Garbage closes quietly. */
function handleConnection(
  sock: net.Socket,
  run: (req: AdminRequest, payload: ParsedPayload) => Promise<DispatchResult>,
  queue: RequestQueue,
  log: (m: string) => void,
  idleMs: number,
): void {
  const chunks: Buffer[] = [];
  let have = 0;
  let header: AdminRequest | null = null;
  let done = false;
  sock.setTimeout(idleMs, () => sock.destroy());
  sock.on('error', () => sock.destroy());
  sock.on('data', (d: Buffer) => {
    if (done) return;
    chunks.push(d);
    have += d.length;
    if (!header) {
      if (have < REQ_HEADER_SIZE) return;
      const all = Buffer.concat(chunks);
      chunks.length = 0;
      chunks.push(all);
      header = decodeRequestHeader(all);
      const payloadLen = header.len - REQ_HEADER_SIZE;
      // tgt drops requests with an impossible length or a payload over 8 KiB.
      if (payloadLen < 0 || payloadLen > MAX_PAYLOAD) {
        log(`mtask buffer len: ${payloadLen} too large`);
        done = true;
        sock.destroy();
        return;
      }
    }
    if (have < header.len) return;
    done = true;
    sock.setTimeout(0);
    const all = Buffer.concat(chunks);
    const req = header;
    const payload = parsePayload(payloadText(all.subarray(REQ_HEADER_SIZE, req.len)));
    sock.pause();
    void queue
      .run(() => run(req, payload))
      .then(
        (res) => respond(sock, res, log),
        () => respond(sock, { err: AdminError.UnknownErr }, log),
      );
  });
}

function respond(sock: net.Socket, res: DispatchResult, log: (m: string) => void): void {
  // The follow-up (system delete -> exit) runs once the answer is out or the connection is
  // gone: the operation itself has happened either way.
  let ran = false;
  const after = (): void => {
    if (ran) return;
    ran = true;
    try {
      res.afterResponse?.();
    } catch (e) {
      log(`after-response hook failed: ${(e as Error).message}`);
    }
  };
  if (sock.destroyed) {
    after();
    return;
  }
  sock.once('close', after);
  // Like tgtd, close as soon as the answer is written: do not wait for the client to hang up
  // (tgtadm keeps its end open while it polls for the daemon's exit after `system delete`).
  sock.end(encodeResponse(res.err, res.text ?? ''), () => {
    sock.destroy();
    after();
  });
}

/**
 * Receive path of accepted connections: the kernel reads into one shared buffer, and the
 * connection's framer copies each PDU field out of it straight into where it is used (a pooled
 * payload buffer for SCSI data, a small buffer for headers). No buffer is allocated per read.
 *
 * Why: Node's default read path mallocs a 64 KiB buffer per read, copies the bytes read into a
 * right-sized one, and pushes it through the Readable stream machinery before 'data' fires.
 * Each of those right-sized buffers is external memory to V8; at hundreds of MB/s of writes
 * they made V8 run a full mark-compact every ~150 ms ("external memory pressure"), with a
 * small heap (BENCHMARKS.md, "Receive buffers"). Reading with `onread` into a buffer of ours
 * skips the per-read allocation and the stream machinery.
 *
 * One buffer serves every connection: reads run one at a time on the event loop and each
 * receiver is done with the bytes when its callback returns (PduFramer.push copies what it
 * keeps), and an idle connection holds no receive memory at all.
 *
 * net.Server has no `onread` option, so the accepted socket's handle is moved into a new Socket
 * that has one (`pauseOnConnect` keeps the first socket from reading). Node 20's net.Socket
 * accepts `handle` in its constructor; when a socket has no handle the socket is used as it is.
 */
import { Buffer } from 'node:buffer';
import * as net from 'node:net';

/** Largest single read; also the size of the shared buffer. */
const RECEIVE_BUFFER_BYTES = 256 * 1024;
let receiveBuffer: Buffer | null = null;

/** Where a socket from withSharedReads() hands its bytes (a view valid only during the call). */
export const kReceive = Symbol('tgt.receive');

/** A socket that may deliver its reads to a receiver instead of 'data' events. */
export interface SharedReadSocket extends net.Socket {
  /** Gets the shared buffer and how many bytes of it this read filled (no view per read). */
  [kReceive]?: (buffer: Buffer, length: number) => void;
}

interface HandleCarrier {
  _handle?: object | null;
}

/**
 * `accepted` (from a server created with pauseOnConnect) as a socket that reads into the shared
 * buffer: each read goes to `socket[kReceive]` (valid only during the call) once one is set, and
 * until then is copied out and emitted as 'data'.
 */
export function withSharedReads(accepted: net.Socket): SharedReadSocket {
  const carrier = accepted as unknown as HandleCarrier;
  const handle = carrier._handle;
  if (!handle) return accepted;
  carrier._handle = null;
  accepted.destroy(); // has no handle now: only releases the server's count of it
  return sharedReadSocket(handle);
}

/**
 * A socket around a raw TCP handle that another process passed over IPC (tgtd --workers,
 * src/mgmt/workers/pool.ts), reading into the shared buffer like an accepted one.
 */
export function sharedReadSocket(handle: object): SharedReadSocket {
  const shared = (receiveBuffer ??= Buffer.allocUnsafeSlow(RECEIVE_BUFFER_BYTES));
  const options = {
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: shared,
      callback: (bytes: number): void => {
        const receive = socket[kReceive];
        if (receive) receive(shared, bytes);
        else socket.emit('data', Buffer.from(shared.subarray(0, bytes)));
      },
    },
  };
  const socket: SharedReadSocket = new net.Socket(options as net.SocketConstructorOpts);
  return socket;
}

interface ReadableHandle {
  readStop(): number;
}

/**
 * Stop reading `socket` and take its TCP handle out of it, to pass to another process
 * (`ChildProcess.send(message, handle)` sends a raw handle as is). The socket is left without
 * a handle, so destroying it does not close the connection. null when it has none.
 */
export function detachHandle(socket: net.Socket): object | null {
  const carrier = socket as unknown as HandleCarrier;
  const handle = carrier._handle as (object & Partial<ReadableHandle>) | null | undefined;
  if (!handle || typeof handle.readStop !== 'function') return null;
  handle.readStop();
  carrier._handle = null;
  return handle;
}

/**
 * Receive path of accepted connections: the kernel reads into one shared buffer and each read is
 * copied out at once into a buffer of exactly its size.
 *
 * Why: Node's default read path mallocs a 64 KiB buffer per read, copies the bytes read into a
 * right-sized one, and pushes it through the Readable stream machinery before 'data' fires.
 * Reading with `onread` into a buffer of ours skips the per-read 64 KiB allocation and the stream
 * machinery; the one copy left replaces Node's. Measured (BENCHMARKS.md, "Socket reads"): the
 * per-read saving matters most for small PDUs (randwrite-4k-qd32 +16-24 % in same-run compares);
 * for 128 KiB writes it is about 10 % of the receive CPU (benchmarks/socket-reads.ts).
 *
 * One buffer serves every connection: reads run one at a time on the event loop and each
 * callback copies its bytes out before the next read starts, and an idle connection holds no
 * receive memory at all (unlike per-connection buffers or slabs, which a retained view pins).
 *
 * net.Server has no `onread` option, so the accepted socket's handle is moved into a new Socket
 * that has one (`pauseOnConnect` keeps the first socket from reading). Node 20's net.Socket
 * accepts `handle` in its constructor; when a socket has no handle the socket is used as it is.
 */
import * as net from 'node:net';

/** Largest single read; also the size of the shared buffer. */
const RECEIVE_BUFFER_BYTES = 256 * 1024;
let receiveBuffer: Buffer | null = null;

interface HandleCarrier {
  _handle?: object | null;
}

/** `accepted` (from a server created with pauseOnConnect) as a socket whose reads are copied out of the shared buffer; it emits 'data' as usual. */
export function withCopiedReads(accepted: net.Socket): net.Socket {
  const carrier = accepted as unknown as HandleCarrier;
  const handle = carrier._handle;
  if (!handle) return accepted;
  const shared = (receiveBuffer ??= Buffer.allocUnsafeSlow(RECEIVE_BUFFER_BYTES));
  carrier._handle = null;
  accepted.destroy(); // has no handle now: only releases the server's count of it
  const options = {
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: shared,
      callback: (bytes: number): void => {
        const chunk = Buffer.allocUnsafe(bytes);
        shared.copy(chunk, 0, 0, bytes);
        socket.emit('data', chunk);
      },
    },
  };
  const socket: net.Socket = new net.Socket(options as net.SocketConstructorOpts);
  return socket;
}

/**
 * Sending a batch of PDU pieces with one writev(2) on the socket's descriptor, bypassing the
 * Writable stream while the stream has nothing queued. Why: for each batch the stream allocates
 * a request per piece, an array of chunks, a write request and a completion tick (about 0.7 KiB
 * of heap and a dozen calls per response at QD 1; BENCHMARKS.md, fifth session), only to make
 * the same writev call. When the kernel takes only part of the batch (socket buffer full), the
 * rest goes through the stream as before, which then owns ordering, backpressure and errors.
 *
 * Safe only while the stream has no write of its own in flight or queued (writableLength 0):
 * then libuv's write queue is empty and nothing can interleave with our bytes.
 */
import { writevSync } from 'node:fs';
import type { Buffer } from 'node:buffer';
import type * as net from 'node:net';

/** Writes `pieces` now; returns the bytes the kernel took (0..all), or -1 when not possible. */
export type DirectWritev = (pieces: readonly Buffer[]) => number;

interface HandleWithFd {
  fd?: number;
}

/** Most iovecs handed to one writev (Linux IOV_MAX is 1024). */
const MAX_PIECES = 1024;

/** A DirectWritev for `socket`, or null when its descriptor cannot be reached (tests' fakes). */
export function directWritev(socket: net.Socket): DirectWritev | null {
  const handle = (socket as unknown as { _handle?: HandleWithFd | null })._handle;
  if (!handle || typeof handle.fd !== 'number' || handle.fd < 0) return null;
  return (pieces) => {
    const current = (socket as unknown as { _handle?: HandleWithFd | null })._handle;
    if (current !== handle || socket.writableLength > 0 || !socket.writable || pieces.length > MAX_PIECES)
      return -1;
    const fd = handle.fd;
    if (typeof fd !== 'number' || fd < 0) return -1;
    try {
      return writevSync(fd, pieces as Buffer[]);
    } catch (err) {
      // EAGAIN: the socket buffer is full, all goes through the stream (which waits for room).
      // Anything else (EPIPE, ECONNRESET): the stream's own write reports it the usual way.
      return (err as NodeJS.ErrnoException).code === 'EAGAIN' ? 0 : -1;
    }
  };
}

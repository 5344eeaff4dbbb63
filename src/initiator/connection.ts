/**
 * One TCP connection to a target: socket + PduFramer (receive) + PduWriter (send). It knows
 * nothing about sessions; `Session` installs a PDU handler, and protocol tests can use it raw
 * (hand-built PDUs out, every received PDU queued for `receive()`).
 */
import { Buffer } from 'node:buffer';
import { connect as netConnect, type Socket } from 'node:net';
import { PduFramer, type FramingError } from '../iscsi/framer.js';
import { PduWriter, type DataSegment } from '../iscsi/pdu-writer.js';
import type { Pdu } from '../iscsi/pdu.js';
import { InitiatorError } from './errors.js';

export interface ConnectOptions {
  host: string;
  port?: number;
  /** Give up connecting after this long (default 10 s). */
  connectTimeoutMs?: number;
}

export class IscsiConnection {
  /**
   * Receives every PDU as it is framed (buffers of its own: the framer keeps nothing of the
   * socket's reads). When null, PDUs go into a queue read by `receive()`.
   */
  onPdu: ((pdu: Pdu) => void) | null = null;
  /** Why the connection ended: undefined while open, null after an orderly close. */
  closeReason: Error | null | undefined = undefined;
  /** The first framing error (digest mismatch, oversize PDU), if any. */
  framingError: FramingError | undefined;

  private readonly framer: PduFramer;
  private readonly writer: PduWriter;
  private readonly queue: Pdu[] = [];
  private waiters: { resolve: (p: Pdu) => void; reject: (e: Error) => void }[] = [];
  private closeListeners: ((reason: Error | null) => void)[] = [];

  private constructor(readonly socket: Socket) {
    this.writer = new PduWriter(socket);
    this.framer = new PduFramer(
      (pdu) => this.deliver(pdu),
      (err) => this.onFramingError(err),
    );
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (!this.framer.push(chunk) && !this.framer.stopped) socket.pause();
    });
    socket.on('error', (err) => this.finish(err));
    socket.on('close', () => this.finish(null));
  }

  /** Open a TCP connection to a portal. */
  static connect(options: ConnectOptions): Promise<IscsiConnection> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: options.host, port: options.port ?? 3260 });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new InitiatorError('TGT_ERR_INI_TIMEOUT', `connect to ${options.host} timed out`));
      }, options.connectTimeoutMs ?? 10_000);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new IscsiConnection(socket));
      });
    });
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Send one PDU (DataSegmentLength/TotalAHSLength are set from what is sent). */
  send(bhs: Buffer, data: DataSegment = null, ahs: Buffer | null = null): boolean {
    if (this.closed) throw this.closedError();
    return this.writer.send(bhs, data, ahs);
  }

  /** Send arbitrary bytes as they are: for malformed-PDU tests. */
  sendBytes(bytes: Buffer): boolean {
    if (this.closed) throw this.closedError();
    return this.socket.write(bytes);
  }

  /** Send several PDUs in one batch (one writev). */
  batch<T>(fn: () => T): T {
    return this.writer.batch(fn);
  }

  /** Resolve when the socket has room again (after send() returned false). */
  async drain(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.closed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.closeListeners = this.closeListeners.filter((l) => l !== done);
        resolve();
      };
      this.socket.on('drain', done);
      this.closeListeners.push(done);
    });
  }

  /** Turn CRC32C digests on/off in both directions (RFC 7143 13.1: after the final Login Response). */
  setDigests(header: boolean, data: boolean): void {
    this.framer.setDigests(header, data);
    this.writer.setDigests(header, data);
  }

  /** Our MaxRecvDataSegmentLength: longer PDUs from the target are a fatal framing error. */
  setMaxRecvDataSegmentLength(n: number): void {
    this.framer.setMaxDataSegmentLength(n);
  }

  /**
   * The next queued PDU (only while `onPdu` is null). Rejects with TGT_ERR_INI_TIMEOUT, or
   * TGT_ERR_INI_CONNECTION_CLOSED once the connection is closed and the queue is empty.
   */
  receive(timeoutMs = 30_000): Promise<Pdu> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (p: Pdu) => {
          clearTimeout(timer);
          resolve(p);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new InitiatorError('TGT_ERR_INI_TIMEOUT', `no PDU within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Put a PDU on the receive queue (the session's raw mode uses this). */
  enqueue(pdu: Pdu): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(pdu);
    else this.queue.push(pdu);
  }

  /** Take every PDU waiting in the receive queue. */
  takeQueued(): Pdu[] {
    return this.queue.splice(0);
  }

  /** Call `listener` once when the connection closes (at once if it already has). */
  onClose(listener: (reason: Error | null) => void): void {
    if (this.closeReason !== undefined) listener(this.closeReason);
    else this.closeListeners.push(listener);
  }

  /** Resolve when the connection is closed, with the error that closed it (null: orderly). */
  waitClosed(timeoutMs = 30_000): Promise<Error | null> {
    if (this.closeReason !== undefined) return Promise.resolve(this.closeReason);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new InitiatorError('TGT_ERR_INI_TIMEOUT', `connection still open after ${timeoutMs} ms`));
      }, timeoutMs);
      this.closeListeners.push((reason) => {
        clearTimeout(timer);
        resolve(reason);
      });
    });
  }

  /** Half-close our side and wait for the target to close (or destroy after timeoutMs). */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    this.socket.end();
    try {
      await this.waitClosed(timeoutMs);
    } catch {
      this.socket.destroy();
    }
  }

  /** Drop the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  private deliver(pdu: Pdu): void {
    if (this.onPdu) this.onPdu(pdu);
    else this.enqueue(pdu);
  }

  private onFramingError(err: FramingError): void {
    this.framingError ??= err;
    if (err.fatal) this.socket.destroy(err);
  }

  private closedError(): InitiatorError {
    const why = this.closeReason ? `: ${this.closeReason.message}` : '';
    return new InitiatorError('TGT_ERR_INI_CONNECTION_CLOSED', `connection closed${why}`);
  }

  private finish(reason: Error | null): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    this.framer.stop();
    const err = this.closedError();
    for (const w of this.waiters.splice(0)) w.reject(err);
    for (const l of this.closeListeners.splice(0)) l(reason);
  }
}

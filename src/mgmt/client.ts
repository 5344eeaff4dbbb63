/**
 * Control socket client: one request per connection, as tgtadm does (tgt-behaviour.md §2.1).
 * Used by our tgtadm and by tgt-admin.
 */
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import {
  type AdminRequest,
  RSP_HEADER_SIZE,
  decodeResponseHeader,
  encodeRequest,
  payloadText,
} from './wire.js';

/** Default control socket prefix (tgt's TGT_IPC_NAMESPACE). */
export const DEFAULT_SOCKET_PREFIX = '/var/run/tgtd/socket';
/** Longest path that fits sockaddr_un.sun_path (108 bytes with the NUL). */
export const MAX_SOCKET_PATH = 107;

/** `<prefix>.<port>`, prefix = $TGT_IPC_SOCKET or /var/run/tgtd/socket. */
export function controlSocketPath(controlPort: number, env: NodeJS.ProcessEnv = process.env): string {
  return `${env.TGT_IPC_SOCKET ?? DEFAULT_SOCKET_PREFIX}.${controlPort}`;
}

/** Why a request got no answer. */
export type ClientFailure =
  /** Could not connect (no daemon, stale socket, permission); tgtadm exits 107. */
  | 'connect'
  /** tgtd closed the connection before sending a response header. */
  | 'closed'
  /** tgtd sent fewer than 8 header bytes. */
  | 'partial'
  /** The response text was cut short. */
  | 'short-text';

export class ClientError extends Error {
  constructor(
    readonly failure: ClientFailure,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

export interface AdminResponse {
  /** AdminError number (0 = success). */
  err: number;
  /** Response text up to its NUL ("" when none). */
  text: string;
}

/**
 * Send one request and read the answer. Rejects with a ClientError when there is no usable
 * answer; a daemon-side error is a resolved response with `err != 0`.
 */
export function sendRequest(socketPath: string, req: AdminRequest, payload = ''): Promise<AdminResponse> {
  const bytes = encodeRequest(req, payload);
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    const chunks: Buffer[] = [];
    let received = 0;
    let connected = false;
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      sock.destroy();
      fn();
    };
    sock.on('connect', () => {
      connected = true;
      sock.write(bytes);
    });
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      received += d.length;
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (all.length < RSP_HEADER_SIZE) return;
      const hdr = decodeResponseHeader(all);
      const textLen = Math.max(0, hdr.len - RSP_HEADER_SIZE);
      if (hdr.err !== 0 || all.length >= RSP_HEADER_SIZE + textLen) {
        const text =
          hdr.err === 0 ? payloadText(all.subarray(RSP_HEADER_SIZE, RSP_HEADER_SIZE + textLen)) : '';
        finish(() => resolve({ err: hdr.err, text }));
      }
    });
    sock.on('end', () => {
      if (received === 0) finish(() => reject(new ClientError('closed', 'tgtd closed the socket')));
      else if (received < RSP_HEADER_SIZE)
        finish(() => reject(new ClientError('partial', 'a partial response')));
      else finish(() => reject(new ClientError('short-text', 'failed to read from tgtd')));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) {
        finish(() => reject(new ClientError('connect', `can't connect to tgt daemon, ${e.message}`, e.code)));
      } else if (received === 0) {
        finish(() => reject(new ClientError('closed', 'tgtd closed the socket', e.code)));
      } else {
        finish(() => reject(new ClientError('partial', 'a partial response', e.code)));
      }
    });
  });
}

/**
 * Try to connect once: 'refused' when nothing listens (ECONNREFUSED) or the socket is gone
 * (ENOENT), 'alive' when a daemon accepted. Used to wait for tgtd to exit after `system delete`.
 */
export function probeDaemon(socketPath: string): Promise<'alive' | 'refused' | 'error'> {
  return new Promise((resolve) => {
    const sock = net.createConnection(socketPath);
    sock.on('connect', () => {
      sock.destroy();
      resolve('alive');
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      sock.destroy();
      resolve(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? 'refused' : 'error');
    });
  });
}

/** After a successful `system delete`, poll every 100 ms until the daemon is gone (as tgtadm). */
export async function waitForDaemonExit(socketPath: string, intervalMs = 100): Promise<void> {
  for (;;) {
    const state = await probeDaemon(socketPath);
    if (state !== 'alive') return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

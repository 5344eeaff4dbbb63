/**
 * Messages between tgtd's main process and its workers (tgtd --workers, pool.ts), over the
 * child_process IPC channel with 'advanced' serialization.
 */
import type { AdminError } from '../../scsi/admin-error.js';
import type { SavedState } from '../state.js';
import type { AdminRequest } from '../wire.js';

/** Requests that the worker answers with a reply carrying the same id. */
export type WorkerRequest =
  /** Run a management request (the worker's own dispatch). */
  | { kind: 'mgmt'; id: number; req: AdminRequest; payload: string }
  /** The configuration of the worker's targets, as tgtd --state saves it. */
  | { kind: 'capture'; id: number }
  /** Recreate these accounts and targets (tgtd --state at start). */
  | { kind: 'restore'; id: number; state: SavedState };

/** A request without its id (the pool numbers them). */
export type WorkerRequestBody = WorkerRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never;

export type MainToWorker =
  | WorkerRequest
  /** Sent with a TCP handle: a connection, and the bytes already read from it. */
  | { kind: 'connection'; head: Uint8Array }
  /** Log sessions out, close stores, exit. */
  | { kind: 'stop' };

export type WorkerReply =
  | { kind: 'mgmt'; id: number; err: AdminError; text?: string }
  | { kind: 'capture'; id: number; state: SavedState }
  /** error: why the state could not be restored (StateFileError's message). */
  | { kind: 'restore'; id: number; error?: string };

export type WorkerToMain = { kind: 'ready' } | WorkerReply;

/** The environment variable that makes tgtd run as worker INDEX of COUNT ("INDEX/COUNT"). */
export const WORKER_ENV = 'TGTD_TS_WORKER';

/** How long a worker may take to report ready. */
export const WORKER_READY_TIMEOUT_MS = 10_000;

/**
 * The TSIHs worker `index` of `count` gives out: disjoint ranges, so a session id (tgtadm
 * --sid) names one session across all processes. The main process's discovery sessions use
 * the range after the workers' (index = count).
 */
export function tsihRangeOf(index: number, count: number): { first: number; last: number } {
  const span = Math.floor(0xffff / (count + 1));
  const first = 1 + index * span;
  return { first, last: first + span - 1 };
}

/** Parse WORKER_ENV; null when absent or malformed. */
export function parseWorkerEnv(value: string | undefined): { index: number; count: number } | null {
  const m = /^(\d+)\/(\d+)$/.exec(value ?? '');
  if (!m) return null;
  const index = Number(m[1]);
  const count = Number(m[2]);
  // Each of count + 1 processes needs at least one TSIH.
  return count >= 1 && count < 0xffff && index < count ? { index, count } : null;
}

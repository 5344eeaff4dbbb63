/**
 * Messages between tgtd's main process and its workers (tgtd --workers, pool.ts), over the
 * child_process IPC channel with 'advanced' serialization.
 */
import type { AdminError } from '../../scsi/admin-error.js';
import { MAX_WORKERS } from '../../bin/tgtd-options.cjs';
import type { SavedState } from '../state.js';
import type { AdminRequest } from '../wire.js';
import type { GuestToHome, HomeToGuest } from '../../scsi/sharing/messages.js';

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
  /**
   * Sent with a TCP handle: a connection, the bytes already read from it, and the TSIH lent
   * to it should it start a new session (0: it joins an existing one).
   */
  | { kind: 'connection'; head: Uint8Array; tsih: number }
  /** Log sessions out, close stores, exit. */
  | { kind: 'stop' }
  /** The worker serves sessions of target `tid` (a copy of tgtd's) as a guest, or no longer. */
  | { kind: 'guest'; tid: number; join: boolean }
  /** For a target shared with the worker (src/scsi/sharing). */
  | { kind: 'share'; m: HomeToGuest }
  /** A TARGET COLD RESET elsewhere: end the sessions of shared target `tid` here (RFC 7143 11.5.1). */
  | { kind: 'cold-reset'; tid: number };

export type WorkerReply =
  | { kind: 'mgmt'; id: number; err: AdminError; text?: string }
  | { kind: 'capture'; id: number; state: SavedState }
  /** error: why the state could not be restored (StateFileError's message). */
  | { kind: 'restore'; id: number; error?: string };

export type WorkerToMain =
  | { kind: 'ready' }
  | WorkerReply
  /** A lent TSIH is free again: its session ended, or its connection never started one. */
  | { kind: 'tsih-free'; tsih: number }
  /** For a target the worker serves as a guest (src/scsi/sharing). */
  | { kind: 'share'; m: GuestToHome }
  /** A TARGET COLD RESET was answered in the worker: every process ends its sessions of `tid`. */
  | { kind: 'cold-reset'; tid: number };

/** The environment variable that gives tgtd-worker its place SLOT of MAX ("SLOT/MAX", pool.ts). */
export const WORKER_ENV = 'TGTD_TS_WORKER';

/** How long a worker may take to report ready. */
export const WORKER_READY_TIMEOUT_MS = 10_000;

/** TSIHs a worker keeps for itself (only used should tgtd not lend it one); MAX_WORKERS of them fit. */
const WORKER_TSIHS = 64;

/**
 * The TSIHs tgtd gives out, its own sessions' and those it lends to workers for theirs, so that
 * session ids follow one sequence daemon-wide (as in tgt) and a --sid names one session: all
 * below the workers' own ranges.
 */
export function mainTsihRange(maxWorkers: number): { first: number; last: number } {
  return { first: 1, last: 0xffff - WORKER_TSIHS * maxWorkers };
}

/** The TSIHs the worker in place `slot` keeps for itself, at the top of the 16-bit space. */
export function workerTsihRange(slot: number, maxWorkers: number): { first: number; last: number } {
  const first = 0xffff - WORKER_TSIHS * (maxWorkers - slot) + 1;
  return { first, last: first + WORKER_TSIHS - 1 };
}

/** Parse WORKER_ENV; null when absent or malformed. */
export function parseWorkerEnv(value: string | undefined): { slot: number; max: number } | null {
  const m = /^(\d+)\/(\d+)$/.exec(value ?? '');
  if (!m) return null;
  const slot = Number(m[1]);
  const max = Number(m[2]);
  return max >= 1 && max <= MAX_WORKERS && slot < max ? { slot, max } : null;
}

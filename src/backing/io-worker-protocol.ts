/**
 * Layout of the shared memory between the event loop and the I/O worker (io-worker.ts).
 *
 * control (Int32): SUBMITTED = requests main has published, TAKEN = requests the worker has
 * picked up (both only grow; request n lives in slot n % slotCount), WORKER_SLEEPING = the
 * worker waits on SUBMITTED, MAIN_WAITING = main waits on it for a completion.
 * slots (Int32, SLOT_WORDS per request): state, op, fd, length, arena offset, position (two
 * 32-bit halves), result (bytes moved or -errno).
 * arena (bytes): the payload of requests in flight, allocated in submission order.
 */
export const CTRL_SUBMITTED = 0;
export const CTRL_TAKEN = 1;
export const CTRL_WORKER_SLEEPING = 2;
export const CTRL_MAIN_WAITING = 3;
export const CTRL_WORDS = 4;

export const SLOT_STATE = 0;
export const SLOT_OP = 1;
export const SLOT_FD = 2;
export const SLOT_LENGTH = 3;
export const SLOT_OFFSET = 4;
export const SLOT_POS_LOW = 5;
export const SLOT_POS_HIGH = 6;
export const SLOT_RESULT = 7;
export const SLOT_WORDS = 8;

export const STATE_FREE = 0;
export const STATE_QUEUED = 1;
export const STATE_RUNNING = 2;
export const STATE_DONE = 3;
/** Main took a queued request back (the worker is stalled) and runs it elsewhere. */
export const STATE_CANCELLED = 4;

export const OP_READ = 0;
export const OP_WRITE = 1;

/** What the worker thread is started with. */
export interface IoWorkerData {
  control: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  arena: SharedArrayBuffer;
  slotCount: number;
}

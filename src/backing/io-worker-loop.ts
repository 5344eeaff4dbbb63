/**
 * The I/O worker's loop (see io-worker.ts for the protocol). It takes requests from the shared
 * ring in order, runs each as a blocking pread/pwrite on a descriptor of this process, and
 * publishes the result in the request's slot. It sleeps in Atomics.wait when the ring is empty.
 * The thread's entry point is io-worker-thread.ts.
 */
import { readSync, writeSync } from 'node:fs';
import {
  CTRL_MAIN_WAITING,
  CTRL_SUBMITTED,
  CTRL_TAKEN,
  CTRL_WORKER_SLEEPING,
  OP_READ,
  SLOT_FD,
  SLOT_LENGTH,
  SLOT_OFFSET,
  SLOT_OP,
  SLOT_POS_HIGH,
  SLOT_POS_LOW,
  SLOT_RESULT,
  SLOT_STATE,
  SLOT_WORDS,
  STATE_DONE,
  STATE_QUEUED,
  STATE_RUNNING,
  type IoWorkerData,
} from './io-worker-protocol.js';

/** Polls of an empty ring before sleeping (TGT_IO_SPIN): cheap when the next request is close. */
const SPIN_BEFORE_SLEEP = Number(process.env.TGT_IO_SPIN ?? 0);

let ctrl: Int32Array;
let slot: Int32Array;
let bytes: Uint8Array;

/** Serve the ring forever; `beforeRequest` lets tests make a request slow. */
export function serveIoRing(data: IoWorkerData, beforeRequest?: (length: number) => void): never {
  ctrl = new Int32Array(data.control);
  slot = new Int32Array(data.slots);
  bytes = new Uint8Array(data.arena);
  for (;;) {
    const taken = ctrl[CTRL_TAKEN]!;
    if (Atomics.load(ctrl, CTRL_SUBMITTED) === taken && !waitForWork(taken)) continue;
    Atomics.store(ctrl, CTRL_TAKEN, taken + 1);
    const base = (taken % data.slotCount) * SLOT_WORDS;
    // Main may have cancelled it (stall fallback): then it is main's to redo elsewhere.
    if (Atomics.compareExchange(slot, base + SLOT_STATE, STATE_QUEUED, STATE_RUNNING) !== STATE_QUEUED)
      continue;
    beforeRequest?.(slot[base + SLOT_LENGTH]!);
    slot[base + SLOT_RESULT] = run(base);
    Atomics.store(slot, base + SLOT_STATE, STATE_DONE);
    if (Atomics.load(ctrl, CTRL_MAIN_WAITING) !== 0) {
      Atomics.store(ctrl, CTRL_MAIN_WAITING, 0);
      Atomics.notify(ctrl, CTRL_MAIN_WAITING);
    }
  }
}

/** Spin, then sleep until main submits past `taken`; false when woken without work. */
function waitForWork(taken: number): boolean {
  for (let i = 0; i < SPIN_BEFORE_SLEEP; i++) {
    if (Atomics.load(ctrl, CTRL_SUBMITTED) !== taken) return true;
  }
  Atomics.store(ctrl, CTRL_WORKER_SLEEPING, 1);
  if (Atomics.load(ctrl, CTRL_SUBMITTED) === taken) Atomics.wait(ctrl, CTRL_SUBMITTED, taken);
  Atomics.store(ctrl, CTRL_WORKER_SLEEPING, 0);
  return Atomics.load(ctrl, CTRL_SUBMITTED) !== taken;
}

/** The whole transfer, resuming after short reads/writes: bytes moved, or -errno. */
function run(base: number): number {
  const fd = slot[base + SLOT_FD]!;
  const length = slot[base + SLOT_LENGTH]!;
  const offset = slot[base + SLOT_OFFSET]!;
  const position = (slot[base + SLOT_POS_LOW]! >>> 0) + slot[base + SLOT_POS_HIGH]! * 2 ** 32;
  const read = slot[base + SLOT_OP] === OP_READ;
  let done = 0;
  try {
    while (done < length) {
      const n = read
        ? readSync(fd, bytes, offset + done, length - done, position + done)
        : writeSync(fd, bytes, offset + done, length - done, position + done);
      if (n === 0) {
        if (!read) return -5; // EIO: a write that moves nothing would loop forever
        bytes.fill(0, offset + done, offset + length); // past end of file (the file shrank)
        return length;
      }
      done += n;
    }
    return done;
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).errno;
    return typeof errno === 'number' && errno < 0 ? errno : -5;
  }
}

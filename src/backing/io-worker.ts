/**
 * The I/O worker: one thread that runs small page-cache reads and writes for the rdwr store, so
 * the event loop (sockets, PDUs, the SCSI core) and the store's syscalls use both cores.
 *
 * Why not the libuv thread pool: a pool request costs a request object, a mutex/condvar hand-off
 * to one of four threads and an async wake-up of the loop per request, which measured 30-50 %
 * more CPU per I/O than blocking inline (BENCHMARKS.md). Here requests go through a
 * SharedArrayBuffer ring (io-worker-protocol.ts) to a single thread that spins briefly before it
 * sleeps, and the loop is woken at most once per batch of completions (Atomics.waitAsync), so
 * under load neither side sleeps or wakes per request.
 *
 * Payload: a write is copied into the shared arena (Data-Out arrives in Node's own socket
 * buffers, which another thread cannot see); a read lands in the arena and is copied into the
 * caller's buffer. Both copies are memcpy of at most MAX_REQUEST_BYTES.
 *
 * A stalled worker (a medium that blocks) must not hold up other LUs: a request that has not
 * finished within STALL_MS makes the worker refuse new requests until it drains, and the
 * requests queued behind it are taken back and run on the thread pool instead.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { read as fsRead, writev as fsWritev } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { Worker } from 'node:worker_threads';
import {
  CTRL_MAIN_WAITING,
  CTRL_SUBMITTED,
  CTRL_WORDS,
  CTRL_WORKER_SLEEPING,
  OP_READ,
  OP_WRITE,
  SLOT_FD,
  SLOT_LENGTH,
  SLOT_OFFSET,
  SLOT_OP,
  SLOT_POS_HIGH,
  SLOT_POS_LOW,
  SLOT_RESULT,
  SLOT_STATE,
  SLOT_WORDS,
  STATE_CANCELLED,
  STATE_DONE,
  STATE_FREE,
  STATE_QUEUED,
  type IoWorkerData,
} from './io-worker-protocol.js';

/** Largest request the worker takes (bigger ones are not page-cache-fast anyway). */
export const MAX_REQUEST_BYTES = 128 * 1024;
const SLOT_COUNT = 256;
const ARENA_BYTES = 16 * 1024 * 1024;
/** A request older than this means the medium blocks: stop feeding the worker. */
const STALL_MS = 20;

/** Sizes and timing of one worker (the defaults are what tgtd uses; tests shrink them). */
export interface IoWorkerOptions {
  slotCount?: number;
  arenaBytes?: number;
  stallMs?: number;
  /** The thread's script (tests substitute one that stalls); default io-worker-thread. */
  script?: URL;
}

type Settle = (err: Error | null) => void;

/** One read or write, from the caller until it is settled. */
interface IoJob {
  op: number;
  fd: number;
  position: number;
  length: number;
  /** Where a read's data goes (the caller's buffer). */
  into: Buffer | null;
  /** A write's data (kept for the thread-pool fallback). */
  segments: readonly Buffer[] | null;
  settle: Settle;
}

/** A job in a slot; one record per slot, reused. */
interface InFlight {
  job: IoJob | null;
  /** Virtual arena offset just past this job's bytes. */
  arenaEnd: number;
  submittedAt: number;
}

// Atomics.waitAsync is in ES2024's lib; Node 20's V8 has it.
type WaitAsync = (
  arr: Int32Array,
  index: number,
  value: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

export class IoWorker {
  private static instance: IoWorker | null | undefined;

  /** The process's I/O worker, started on first use; null when TGT_IO_WORKER=0 or it cannot start. */
  static shared(): IoWorker | null {
    if (IoWorker.instance === undefined) {
      try {
        IoWorker.instance = process.env.TGT_IO_WORKER === '0' ? null : new IoWorker();
      } catch {
        IoWorker.instance = null;
      }
    }
    return IoWorker.instance;
  }

  private readonly ctrl: Int32Array;
  private readonly slots: Int32Array;
  private readonly arena: Buffer;
  private readonly worker: Worker;
  private readonly inFlight: InFlight[] = [];
  private readonly waiting: IoJob[] = [];
  /** Requests published to the worker / retired by us (request n is in slot n % SLOT_COUNT). */
  private submitted = 0;
  private retired = 0;
  /** Virtual arena offsets: bytes handed out / given back. */
  private allocated = 0;
  private freed = 0;
  private armed = false;
  private stalled = false;
  private stallTimer: NodeJS.Timeout | null = null;
  private failed = false;

  private readonly slotCount: number;
  private readonly arenaBytes: number;
  private readonly stallMs: number;

  constructor(options: IoWorkerOptions = {}) {
    this.slotCount = options.slotCount ?? SLOT_COUNT;
    this.arenaBytes = options.arenaBytes ?? ARENA_BYTES;
    this.stallMs = options.stallMs ?? STALL_MS;
    const data: IoWorkerData = {
      control: new SharedArrayBuffer(CTRL_WORDS * 4),
      slots: new SharedArrayBuffer(this.slotCount * SLOT_WORDS * 4),
      arena: new SharedArrayBuffer(this.arenaBytes),
      slotCount: this.slotCount,
    };
    this.ctrl = new Int32Array(data.control);
    this.slots = new Int32Array(data.slots);
    this.arena = Buffer.from(data.arena);
    for (let i = 0; i < this.slotCount; i++) this.inFlight.push({ job: null, arenaEnd: 0, submittedAt: 0 });
    // Under tsx (tests, benchmarks) this module is a .ts file and so is its sibling.
    const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
    const script = options.script ?? new URL(`./io-worker-thread.${ext}`, import.meta.url);
    // tsx registers its loader per thread, so a .ts thread needs it named again.
    const execArgv = ext === 'ts' ? [...process.execArgv, '--import', 'tsx'] : process.execArgv;
    this.worker = new Worker(script, { workerData: data, execArgv });
    this.worker.unref();
    this.worker.on('error', () => this.fail());
    this.worker.on('exit', () => this.fail());
  }

  /** True when a request of `length` bytes may go to the worker now. */
  accepts(length: number): boolean {
    return (
      !this.stalled && !this.failed && length > 0 && length <= Math.min(MAX_REQUEST_BYTES, this.arenaBytes)
    );
  }

  /** False once the thread has died or was terminated (then everything uses the thread pool). */
  get running(): boolean {
    return !this.failed;
  }

  /** Stop the thread (tests; tgtd's worker lives as long as the process). */
  async terminate(): Promise<void> {
    this.fail();
    await this.worker.terminate();
  }

  /** Fill `into` from `fd` at `position` (past end of file: zeroes). */
  read(fd: number, into: Buffer, position: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.enqueue({
        op: OP_READ,
        fd,
        position,
        length: into.length,
        into,
        segments: null,
        settle: (err) => (err ? reject(err) : resolve()),
      }),
    );
  }

  /** Write the concatenation of `segments` to `fd` at `position`. */
  write(fd: number, segments: readonly Buffer[], position: number): Promise<void> {
    let length = 0;
    for (const s of segments) length += s.length;
    return new Promise((resolve, reject) =>
      this.enqueue({
        op: OP_WRITE,
        fd,
        position,
        length,
        into: null,
        segments,
        settle: (err) => (err ? reject(err) : resolve()),
      }),
    );
  }

  private enqueue(job: IoJob): void {
    if (this.waiting.length > 0 || !this.trySubmit(job)) {
      if (this.stalled || this.failed) runOnThreadPool(job);
      else this.waiting.push(job);
    }
  }

  /** Publish one job if a slot and arena space are free. */
  private trySubmit(job: IoJob): boolean {
    const length = job.length;
    if (this.stalled || this.failed || this.submitted - this.retired >= this.slotCount) return false;
    let start = this.allocated;
    const physical = start % this.arenaBytes;
    if (physical + length > this.arenaBytes) start += this.arenaBytes - physical; // no request wraps
    if (start + length - this.freed > this.arenaBytes) return false;
    this.allocated = start + length;
    const offset = start % this.arenaBytes;
    if (job.segments) {
      let at = offset;
      for (const seg of job.segments) at += seg.copy(this.arena, at);
    }
    const n = this.submitted;
    const entry = this.inFlight[n % this.slotCount]!;
    entry.job = job;
    entry.arenaEnd = this.allocated;
    entry.submittedAt = performance.now();
    const base = (n % this.slotCount) * SLOT_WORDS;
    const s = this.slots;
    s[base + SLOT_OP] = job.op;
    s[base + SLOT_FD] = job.fd;
    s[base + SLOT_LENGTH] = length;
    s[base + SLOT_OFFSET] = offset;
    s[base + SLOT_POS_LOW] = (job.position % 2 ** 32) | 0;
    s[base + SLOT_POS_HIGH] = Math.floor(job.position / 2 ** 32);
    Atomics.store(s, base + SLOT_STATE, STATE_QUEUED);
    this.submitted = n + 1;
    // Requests in flight keep the process alive (the thread itself does not, when idle).
    if (n === this.retired) this.worker.ref();
    Atomics.store(this.ctrl, CTRL_SUBMITTED, this.submitted);
    if (Atomics.load(this.ctrl, CTRL_WORKER_SLEEPING) !== 0) Atomics.notify(this.ctrl, CTRL_SUBMITTED);
    this.arm();
    this.stallTimer ??= setTimeout(() => this.checkStall(), this.stallMs).unref();
    return true;
  }

  /** Wait (without blocking) for the worker to signal a completion, unless one is already there. */
  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    Atomics.store(this.ctrl, CTRL_MAIN_WAITING, 1);
    // Recheck after announcing that we wait: the worker may have finished just before.
    const r = this.headDone() ? null : waitAsync(this.ctrl, CTRL_MAIN_WAITING, 1);
    if (r && r.async) void r.value.then(this.onWake);
    else setImmediate(this.onWake);
  }

  private readonly onWake = (): void => {
    this.armed = false;
    Atomics.store(this.ctrl, CTRL_MAIN_WAITING, 0);
    this.reap();
    if (this.retired !== this.submitted) this.arm();
  };

  private headDone(): boolean {
    if (this.retired === this.submitted) return false;
    const state = Atomics.load(this.slots, (this.retired % this.slotCount) * SLOT_WORDS + SLOT_STATE);
    return state === STATE_DONE || state === STATE_CANCELLED;
  }

  /** Retire finished requests in order, settle them, and feed the worker what waited. */
  private reap(): void {
    while (this.retired !== this.submitted) {
      const i = this.retired % this.slotCount;
      const base = i * SLOT_WORDS;
      const state = Atomics.load(this.slots, base + SLOT_STATE);
      if (state !== STATE_DONE && state !== STATE_CANCELLED) break;
      const entry = this.inFlight[i]!;
      const job = entry.job;
      entry.job = null;
      // A cancelled job was handed to the thread pool and is settled there.
      if (state === STATE_DONE && job) {
        const result = this.slots[base + SLOT_RESULT]!;
        if (result < 0) job.settle(errnoError(result, job.op));
        else {
          const from = this.slots[base + SLOT_OFFSET]!;
          if (job.into) this.arena.copy(job.into, 0, from, from + job.length);
          job.settle(null);
        }
      }
      this.slots[base + SLOT_STATE] = STATE_FREE;
      this.freed = entry.arenaEnd;
      this.retired++;
    }
    if (this.retired === this.submitted) {
      this.worker.unref();
      this.stalled = false;
      if (this.stallTimer) clearTimeout(this.stallTimer);
      this.stallTimer = null;
    }
    while (this.waiting.length > 0 && this.trySubmit(this.waiting[0]!)) this.waiting.shift();
  }

  /** The oldest job is stuck: stop feeding the worker and run what is queued on the pool. */
  private checkStall(): void {
    this.stallTimer = null;
    this.reap();
    if (this.retired === this.submitted) return;
    const oldest = this.inFlight[this.retired % this.slotCount]!;
    if (performance.now() - oldest.submittedAt >= this.stallMs) {
      this.stalled = true;
      this.takeBack();
    }
    this.stallTimer = setTimeout(() => this.checkStall(), this.stallMs).unref();
  }

  /** Cancel every job the worker has not started and run them (and the waiting ones) on the pool. */
  private takeBack(): void {
    for (let n = this.retired; n !== this.submitted; n++) {
      const i = n % this.slotCount;
      const state = i * SLOT_WORDS + SLOT_STATE;
      if (Atomics.compareExchange(this.slots, state, STATE_QUEUED, STATE_CANCELLED) !== STATE_QUEUED)
        continue;
      const entry = this.inFlight[i]!;
      runOnThreadPool(entry.job!);
      entry.job = null;
    }
    for (const job of this.waiting.splice(0)) runOnThreadPool(job);
  }

  /** The thread died (it should not): what it held fails, later jobs use the pool. */
  private fail(): void {
    if (this.failed) return;
    this.failed = true;
    for (let n = this.retired; n !== this.submitted; n++) {
      const entry = this.inFlight[n % this.slotCount]!;
      entry.job?.settle(Object.assign(new Error('I/O worker exited'), { code: 'EIO' }));
      entry.job = null;
    }
    this.retired = this.submitted;
    for (const job of this.waiting.splice(0)) runOnThreadPool(job);
  }
}

function errnoError(result: number, op: number): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(result);
  } catch {
    code = 'EIO';
  }
  return Object.assign(new Error(`${code}: ${op === OP_READ ? 'read' : 'write'} failed`), {
    code,
    errno: result,
  });
}

/** The same job through the libuv thread pool (stalled or failed worker). */
function runOnThreadPool(job: IoJob): void {
  const { op, fd, position, length, into, segments, settle } = job;
  let done = 0;
  const step = (err: NodeJS.ErrnoException | null, n: number): void => {
    if (err) return settle(err);
    if (n === 0) {
      if (op === OP_WRITE) return settle(Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' }));
      into!.fill(0, done);
      return settle(null);
    }
    done += n;
    if (done >= length) return settle(null);
    next();
  };
  const next = (): void => {
    if (op === OP_READ) fsRead(fd, into!, done, length - done, position + done, step);
    else fsWritev(fd, remaining(segments!, done), position + done, step);
  };
  next();
}

/** Views of what is left of `segments` after the first `skip` bytes. */
function remaining(segments: readonly Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const s of segments) {
    if (skip >= s.length) {
      skip -= s.length;
      continue;
    }
    out.push(skip > 0 ? s.subarray(skip) : s);
    skip = 0;
  }
  return out;
}

/**
 * Adaptive busy polling of the event loop (tgtd --iscsi busy_poll=USEC; docs/architecture.md,
 * "Busy polling").
 *
 * At low queue depth the daemon is idle between answering a command and receiving the next one.
 * Blocking in epoll then lets the vCPU halt, and the wake-up that follows costs far more than
 * the gap itself: measured here at QD 1 across two vCPUs, a 4 KiB read cost about 74 us of CPU
 * when the loop blocked and 19 us on a warm CPU, and polling through the gap brought it to 55 us
 * with half the latency (BENCHMARKS.md, sixth and seventh sessions). So after
 * work the loop keeps polling (a setImmediate chain makes libuv poll with a zero timeout) for a
 * window, and blocks only when the window passes with nothing to do.
 *
 * The window adapts like Linux's cpuidle-haltpoll: an idle gap that polling missed but that was
 * no longer than the maximum doubles the window (from START_FRACTION of the maximum); a gap
 * longer than the maximum, which polling could not have covered, halves it, down to nothing.
 * An idle daemon therefore spins at most one window after its last work, and a client whose
 * commands come far apart makes it stop polling altogether.
 *
 * Public API:
 *   class BusyPoller {
 *     constructor(maxUs: number, clock?: BusyPollClock)
 *     wake(): void    // an event brought work (a socket read)
 *     touch(): void   // work is done for now: poll for the current window
 *     readonly windowUs: number; readonly polling: boolean; readonly hits: number; readonly misses: number
 *   }
 *   function defaultBusyPollUs(cpus: number): number
 */
import { cpus as machineCpus } from 'node:os';
import { performance } from 'node:perf_hooks';

/** Time in milliseconds and a way to run a callback after the next poll of the event loop. */
export interface BusyPollClock {
  now(): number;
  schedule(fn: () => void): void;
}

const eventLoopClock: BusyPollClock = {
  now: () => performance.now(),
  schedule: (fn) => void setImmediate(fn),
};

/** The first window after polling was off, as a fraction of the maximum (haltpoll's grow_start). */
const START_FRACTION = 1 / 4;
/** Below this fraction of the maximum a halved window is dropped to nothing. */
const OFF_FRACTION = 1 / 32;

/**
 * Default maximum window (us): on when the machine has another CPU to run the client (or other
 * work) meanwhile. The machine's CPUs, not this process's affinity: a tgtd pinned to a core of
 * its own is where polling pays most.
 */
export function defaultBusyPollUs(cpus = machineCpus().length): number {
  // With one CPU, spinning only delays the process we are waiting for.
  return cpus > 1 ? 200 : 0;
}

export class BusyPoller {
  private readonly maxMs: number;
  /** Current window in ms; 0: block as soon as there is nothing to do. */
  private window: number;
  /** When work last ended (ms). */
  private lastActivity: number;
  /** A poll chain is running: the loop is not blocking. */
  private spinning = false;
  private hitCount = 0;
  private missCount = 0;

  constructor(
    maxUs: number,
    private readonly clock: BusyPollClock = eventLoopClock,
  ) {
    this.maxMs = Math.max(0, maxUs) / 1000;
    this.window = this.maxMs * START_FRACTION;
    this.lastActivity = clock.now();
  }

  /** Wake-ups that polling caught. */
  get hits(): number {
    return this.hitCount;
  }

  /** Wake-ups that polling missed (the loop had blocked). */
  get misses(): number {
    return this.missCount;
  }

  get windowUs(): number {
    return this.window * 1000;
  }

  /** The event loop is being kept from blocking. */
  get polling(): boolean {
    return this.spinning;
  }

  /** An event brought work: adapt the window to the idle gap it ended. */
  wake(): void {
    if (this.maxMs === 0) return;
    if (this.spinning) {
      this.hitCount++;
      return;
    }
    this.missCount++;
    const gap = this.clock.now() - this.lastActivity;
    if (gap <= this.maxMs) {
      // Polling a little longer would have caught it.
      this.window = Math.min(Math.max(this.window * 2, this.maxMs * START_FRACTION), this.maxMs);
    } else if (this.window > 0) {
      // No window we allow would have caught it: poll less.
      this.window /= 2;
      if (this.window < this.maxMs * OFF_FRACTION) this.window = 0;
    }
  }

  /** Work is done for now: keep the event loop polling for the current window. */
  touch(): void {
    if (this.maxMs === 0) return;
    this.lastActivity = this.clock.now();
    if (this.window > 0 && !this.spinning) {
      this.spinning = true;
      this.clock.schedule(this.poll);
    }
  }

  private readonly poll = (): void => {
    if (this.clock.now() - this.lastActivity < this.window) this.clock.schedule(this.poll);
    else this.spinning = false;
  };
}

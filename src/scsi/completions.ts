/**
 * Deferred command completions: executeCommand never completes a command inside submit(), so a
 * handler that finished synchronously has its completion run later in the same turn. Node's
 * queueMicrotask costs an AsyncResource and a bound function per call (about 0.8 us against
 * 0.4 us for a promise reaction, measured with a micro-benchmark); here completions wait in a
 * FIFO and one promise reaction runs all that were queued before it, so a socket read that
 * carried 32 commands pays for one microtask, not 32.
 *
 * A fabric that submits commands from one input event (a socket read) can hold completions for
 * its duration (holdCompletions/releaseCompletions): they then run when the event's work is done,
 * without a microtask at all, which at QD 1 is most of what deferral cost.
 */
import { emptyArray } from './arrays.js';
import type { ScsiCommand } from './command.js';
import type { LogicalUnit } from './lu.js';
import type { ItNexus } from './nexus.js';

type Completion = (cmd: ScsiCommand, nexus: ItNexus, lu: LogicalUnit | null) => void;

// Parallel arrays used as a queue from `head`, emptied with emptyArray (arrays.ts) so their
// storage is kept from one drain to the next.
const fns: Completion[] = [];
const cmds: ScsiCommand[] = [];
const nexuses: ItNexus[] = [];
const lus: (LogicalUnit | null)[] = [];
let head = 0;
const resolved = Promise.resolve();
/** A microtask drain is scheduled. */
let scheduled = false;
/** Depth of holdCompletions(): while above 0 the releasing caller drains, not a microtask. */
let holding = 0;
let draining = false;

/**
 * Completions deferred from now until the matching releaseCompletions() run in that call instead
 * of a microtask. Nestable; the caller must release in a `finally`.
 */
export function holdCompletions(): void {
  holding++;
}

/** End a holdCompletions(); the outermost one runs the completions deferred meanwhile. */
export function releaseCompletions(): void {
  if (--holding === 0 && head < cmds.length && !draining) drain();
}

/** Run `fn(cmd, nexus, lu)` in a microtask, after every completion queued before it. */
export function deferCompletion(
  fn: Completion,
  cmd: ScsiCommand,
  nexus: ItNexus,
  lu: LogicalUnit | null,
): void {
  // Nobody will drain this: not a holder, not the running drain, not a scheduled microtask.
  if (holding === 0 && !draining && !scheduled) {
    scheduled = true;
    void resolved.then(drainScheduled);
  }
  fns.push(fn);
  cmds.push(cmd);
  nexuses.push(nexus);
  lus.push(lu);
}

function drainScheduled(): void {
  scheduled = false;
  if (!draining) drain();
}

function drain(): void {
  // Completions queued while draining (a completion that starts the next command, which
  // finishes synchronously) run in this same pass, in order.
  draining = true;
  while (head < cmds.length) {
    const i = head++;
    try {
      fns[i]!(cmds[i]!, nexuses[i]!, lus[i]!);
    } catch (err) {
      // As with queueMicrotask: a throwing completion is an uncaught exception, and the
      // completions behind it still run.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
  head = 0;
  emptyArray(fns);
  emptyArray(cmds);
  emptyArray(nexuses);
  emptyArray(lus);
  draining = false;
}

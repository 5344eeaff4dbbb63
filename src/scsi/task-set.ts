/**
 * The task set of one logical unit (SAM-5 8.6, tgt §6): which commands may run now and which
 * wait, across every I_T nexus of the LU.
 *
 *   SIMPLE        enabled when no older ORDERED or HEAD OF QUEUE command is still running
 *                 and nothing older is waiting (so it never overtakes a waiting ORDERED)
 *   ORDERED       enabled when no older command is running or waiting
 *   HEAD OF QUEUE enabled at once (queued at the front only while an exclusive command runs)
 *   exclusive     (COMPARE AND WRITE) runs alone: waits like ORDERED and blocks everything
 *
 * Unlike tgt, a SIMPLE command arriving after a waiting ORDERED one waits behind it. The set is
 * bounded; a full set answers TASK SET FULL.
 */
import { TaskAttribute, type ScsiCommand } from './command.js';
import type { ItNexus } from './nexus.js';

/** Starts a command that the task set has enabled. */
export type TaskStarter = (cmd: ScsiCommand, nexus: ItNexus) => void;

/** A queued command and the I_T nexus it came from. */
export interface WaitingTask {
  cmd: ScsiCommand;
  nexus: ItNexus;
  exclusive: boolean;
}

/** Default bound on queued + running commands per LU. */
export const DEFAULT_TASK_SET_DEPTH = 1024;

export class TaskSet {
  private readonly running = new Set<ScsiCommand>();
  private readonly waiting: WaitingTask[] = [];
  /** Running ORDERED / HEAD OF QUEUE commands (they block younger SIMPLE ones). */
  private barriers = 0;
  private exclusiveRunning: ScsiCommand | null = null;
  private readonly waiters = new Map<ScsiCommand, (() => void)[]>();
  /** Running commands that task management may end early (their work goes on without them). */
  private readonly interrupters = new Map<ScsiCommand, () => void>();
  /**
   * Running commands task management gave up waiting for (a store call that does not return).
   * While any is left nothing else starts on the LU, so none of their writes can land after a
   * newer command's; they finish silently when the store finally answers.
   */
  private readonly abandoned = new Set<ScsiCommand>();

  constructor(
    private readonly start: TaskStarter,
    readonly maxDepth = DEFAULT_TASK_SET_DEPTH,
  ) {}

  /** Commands running plus waiting (what blocks `logicalunit delete`). */
  get size(): number {
    return this.running.size + this.waiting.length;
  }

  /** True while `cmd` has been started and has not finished. */
  isRunning(cmd: ScsiCommand): boolean {
    return this.running.has(cmd);
  }

  /** Running commands (snapshot). */
  runningCommands(): ScsiCommand[] {
    return [...this.running];
  }

  /**
   * Admit a command: start it now or queue it. Returns false when the set is full (the caller
   * answers TASK SET FULL); `exclusive` makes it run alone.
   */
  submit(cmd: ScsiCommand, nexus: ItNexus, exclusive: boolean): boolean {
    const head = cmd.attribute === TaskAttribute.HeadOfQueue;
    if ((this.waiting.length === 0 || head) && this.canStart(cmd, exclusive)) {
      this.begin(cmd, nexus, exclusive);
      return true;
    }
    if (this.size >= this.maxDepth) return false;
    const entry = { cmd, nexus, exclusive };
    if (head) this.waiting.unshift(entry);
    else this.waiting.push(entry);
    return true;
  }

  /** A started command finished: release it and start whatever it was holding back. */
  finish(cmd: ScsiCommand): void {
    if (!this.running.delete(cmd)) return;
    this.abandoned.delete(cmd);
    if (cmd.attribute !== TaskAttribute.Simple) this.barriers--;
    if (this.exclusiveRunning === cmd) this.exclusiveRunning = null;
    this.drain();
    if (this.waiters.size > 0) {
      const list = this.waiters.get(cmd);
      if (list) {
        this.waiters.delete(cmd);
        for (const fn of list) fn();
      }
    }
  }

  /**
   * While `cmd` runs, task management may end it at once by calling `fn` instead of waiting for
   * it (SANITIZE: SBC-4 says the sanitize operation goes on when its command is aborted). Returns the
   * unregistration.
   */
  onInterrupt(cmd: ScsiCommand, fn: () => void): () => void {
    this.interrupters.set(cmd, fn);
    return () => {
      if (this.interrupters.get(cmd) === fn) this.interrupters.delete(cmd);
    };
  }

  /** Ask the running commands among `cmds` that allow it to finish now (aborts, resets, nexus loss). */
  interrupt(cmds: Iterable<ScsiCommand>): void {
    if (this.interrupters.size === 0) return;
    for (const cmd of cmds) {
      const fn = this.interrupters.get(cmd);
      if (!fn) continue;
      this.interrupters.delete(cmd);
      fn();
    }
  }

  /** Remove waiting (not started) commands matching `match`; returns them in queue order. */
  removeWaiting(match: (cmd: ScsiCommand, nexus: ItNexus) => boolean): WaitingTask[] {
    const removed: WaitingTask[] = [];
    for (let i = 0; i < this.waiting.length;) {
      const w = this.waiting[i]!;
      if (match(w.cmd, w.nexus)) {
        removed.push(w);
        this.waiting.splice(i, 1);
      } else i++;
    }
    if (removed.length > 0) this.drain();
    return removed;
  }

  /**
   * Resolves when every command in `cmds` that is running now has finished, or, with
   * `abandonAfterMs` > 0, after that long at most: the commands still running then are
   * abandoned (marked aborted, so they are never answered, and they hold every other command of
   * the LU back until they return).
   */
  whenFinished(cmds: Iterable<ScsiCommand>, abandonAfterMs = 0): Promise<void> {
    const pending: Promise<void>[] = [];
    const watched: ScsiCommand[] = [];
    for (const cmd of cmds) {
      if (!this.running.has(cmd)) continue;
      watched.push(cmd);
      pending.push(
        new Promise<void>((resolve) => {
          const list = this.waiters.get(cmd);
          if (list) list.push(resolve);
          else this.waiters.set(cmd, [resolve]);
        }),
      );
    }
    const all = Promise.all(pending).then(() => undefined);
    if (abandonAfterMs <= 0 || watched.length === 0) return all;
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const cmd of watched) this.abandon(cmd);
        resolve();
      }, abandonAfterMs);
    });
    return Promise.race([all, limit]).finally(() => clearTimeout(timer));
  }

  /** Commands given up on and not returned yet (see whenFinished). */
  get abandonedCount(): number {
    return this.abandoned.size;
  }

  private abandon(cmd: ScsiCommand): void {
    if (!this.running.has(cmd)) return;
    cmd.aborted = true;
    this.abandoned.add(cmd);
  }

  private canStart(cmd: ScsiCommand, exclusive: boolean): boolean {
    if (this.exclusiveRunning !== null || this.abandoned.size > 0) return false;
    if (exclusive) return this.running.size === 0;
    switch (cmd.attribute) {
      case TaskAttribute.HeadOfQueue:
        return true;
      case TaskAttribute.Simple:
        return this.barriers === 0;
      default: // ORDERED, and ACA (unsupported) treated as ORDERED as tgt does
        return this.running.size === 0;
    }
  }

  private begin(cmd: ScsiCommand, nexus: ItNexus, exclusive: boolean): void {
    this.running.add(cmd);
    if (cmd.attribute !== TaskAttribute.Simple) this.barriers++;
    if (exclusive) this.exclusiveRunning = cmd;
    this.start(cmd, nexus);
  }

  /** Start waiting commands from the front, stopping at the first that cannot run yet. */
  private drain(): void {
    while (this.waiting.length > 0) {
      const w = this.waiting[0]!;
      if (!this.canStart(w.cmd, w.exclusive)) return;
      this.waiting.shift();
      this.begin(w.cmd, w.nexus, w.exclusive);
    }
  }
}

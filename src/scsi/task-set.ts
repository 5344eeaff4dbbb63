/**
 * The task set of one logical unit (SAM-5 8.6, tgt §6): which commands may run now and which
 * wait, across every I_T nexus of the LU.
 *
 *   SIMPLE        enabled when no older ORDERED or HEAD OF QUEUE command is still running
 *                 and nothing older is waiting (so it never overtakes a waiting ORDERED)
 *   ORDERED       enabled when no older command is running, waiting or waiting for its data
 *   HEAD OF QUEUE enabled at once (queued at the front only while an exclusive command runs)
 *   exclusive     (COMPARE AND WRITE) runs alone: waits like ORDERED and blocks everything
 *
 * Unlike tgt, a SIMPLE command arriving after a waiting ORDERED one waits behind it. The set is
 * bounded; a full set answers TASK SET FULL.
 *
 * Also unlike tgt, a command joins the set when it arrives, not when its data is in: a fabric
 * announces it in command order (`announce`) and says later that its data is in (`ready`).
 * Until then it never starts, but it is an older task for everything that arrives after it
 * (SAM-5 8.5, RFC 7143 3.2.2.1: an ORDERED READ must not overtake a SIMPLE WRITE still
 * waiting for its Data-Out). An announced SIMPLE command with nothing older waiting holds back
 * only younger ORDERED commands, so it is merely counted ("floating": no queue entry, nothing
 * allocated); the others wait in the queue as entries that are not ready yet:
 *
 *   floating (announced SIMPLE, oldest)   waiting queue, oldest first
 *   { W1 W2 }                             [ O3 (not ready) | S4 (ready) | S5 (not ready) ]
 *   O3 starts once its data is in and W1, W2 have run and finished; S4 once O3 has finished,
 *   S5 then too once its data is in.
 */
import { TaskAttribute, type ScsiCommand } from './command.js';
import type { ItNexus } from './nexus.js';
import { CommandList, CommandSlot } from './command-list.js';

/** Starts a command that the task set has enabled. */
export type TaskStarter = (cmd: ScsiCommand, nexus: ItNexus) => void;

/** A queued command and the I_T nexus it came from. */
export interface WaitingTask {
  cmd: ScsiCommand;
  nexus: ItNexus;
  exclusive: boolean;
  /** False while an announced command's data is not in (it is never started before). */
  ready: boolean;
}

/** Default bound on queued + running commands per LU. */
export const DEFAULT_TASK_SET_DEPTH = 1024;

export class TaskSet {
  private readonly running = new CommandList(CommandSlot.Running);
  private readonly waiting: WaitingTask[] = [];
  /**
   * Announced SIMPLE commands whose data is not in, each older than every queued one (HEAD OF
   * QUEUE aside): younger ORDERED commands wait for them, nothing else does.
   */
  private readonly floating = new Map<ScsiCommand, ItNexus>();
  /** Queue entries not ready yet (`ready` searches the queue only while there are some). */
  private unreadyQueued = 0;
  /** Running ORDERED / HEAD OF QUEUE commands (they block younger SIMPLE ones). */
  private barriers = 0;
  private exclusiveRunning: ScsiCommand | null = null;
  /** Running commands another process runs (adopt). */
  private readonly adopted = new Set<ScsiCommand>();
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

  /** Commands running plus waiting, announced ones included (what blocks `logicalunit delete`). */
  get size(): number {
    return this.running.size + this.waiting.length + this.floating.size;
  }

  /** True while `cmd` has been started and has not finished. */
  isRunning(cmd: ScsiCommand): boolean {
    return this.running.has(cmd);
  }

  /**
   * Count a command another process runs (sharing/guest.ts) as running here, outside the
   * ordering rules (that process orders it): task management finds it, waits for it and may
   * interrupt it; `finish` ends it.
   */
  adopt(cmd: ScsiCommand): void {
    this.running.add(cmd);
    this.adopted.add(cmd);
  }

  /** Whether any command running, waiting or announced matches `match`. */
  someCommand(match: (cmd: ScsiCommand) => boolean): boolean {
    for (const cmd of this.running.toArray()) if (match(cmd)) return true;
    for (const w of this.waiting) if (match(w.cmd)) return true;
    for (const cmd of this.floating.keys()) if (match(cmd)) return true;
    return false;
  }

  /** Running commands (snapshot). */
  runningCommands(): ScsiCommand[] {
    return this.running.toArray();
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
    const entry = { cmd, nexus, exclusive, ready: true };
    if (head) this.waiting.unshift(entry);
    else this.waiting.push(entry);
    return true;
  }

  /**
   * Admit a command whose data is not in yet, in arrival order; it never starts before
   * `ready(cmd)`. Returns false when the set is full. HEAD OF QUEUE commands are not announced
   * (they go to the head when they are ready anyway).
   */
  announce(cmd: ScsiCommand, nexus: ItNexus): boolean {
    if (this.size >= this.maxDepth) return false;
    if (this.waiting.length === 0 && cmd.attribute === TaskAttribute.Simple) {
      this.floating.set(cmd, nexus);
      return true;
    }
    this.waiting.push({ cmd, nexus, exclusive: false, ready: false });
    this.unreadyQueued++;
    return true;
  }

  /**
   * An announced command's data is in: start it as soon as the set enables it. Returns false
   * when the set does not hold it (task management removed it meanwhile).
   */
  ready(cmd: ScsiCommand, exclusive: boolean): boolean {
    const nexus = this.floating.get(cmd);
    if (nexus !== undefined) {
      this.floating.delete(cmd);
      if (this.canStart(cmd, exclusive)) this.begin(cmd, nexus, exclusive);
      // Older than everything queued: it goes first once it may run (HEAD OF QUEUE aside).
      else this.waiting.splice(this.leadingHeadOfQueue(), 0, { cmd, nexus, exclusive, ready: true });
      return true;
    }
    if (this.unreadyQueued === 0) return false;
    const i = this.queuedIndex(cmd);
    const w = this.waiting[i];
    if (w === undefined || w.ready) return false;
    w.ready = true;
    w.exclusive = exclusive;
    this.unreadyQueued--;
    // Anything behind the head waits for it under the FIFO rule (see drain).
    if (i === 0) this.drain();
    return true;
  }

  /**
   * Take a command that has not started out of the set without completing it (its fabric ended
   * it itself). Returns false when it is running or not in the set.
   */
  withdraw(cmd: ScsiCommand): boolean {
    return this.removeWaiting((c) => c === cmd).length > 0;
  }

  /** A started command finished: release it and start whatever it was holding back. */
  finish(cmd: ScsiCommand): void {
    if (!this.running.delete(cmd)) return;
    this.abandoned.delete(cmd);
    const adopted = this.adopted.size > 0 && this.adopted.delete(cmd);
    if (!adopted && cmd.attribute !== TaskAttribute.Simple) this.barriers--;
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

  /**
   * Remove waiting (not started) commands matching `match`, announced ones whose data is not in
   * included; returns them oldest first.
   */
  removeWaiting(match: (cmd: ScsiCommand, nexus: ItNexus) => boolean): WaitingTask[] {
    const removed: WaitingTask[] = [];
    for (const [cmd, nexus] of this.floating) {
      if (!match(cmd, nexus)) continue;
      this.floating.delete(cmd);
      removed.push({ cmd, nexus, exclusive: false, ready: false });
    }
    for (let i = 0; i < this.waiting.length;) {
      const w = this.waiting[i]!;
      if (match(w.cmd, w.nexus)) {
        removed.push(w);
        this.waiting.splice(i, 1);
        if (!w.ready) this.unreadyQueued--;
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

  /**
   * Whether a ready command may start now. Every floating command is older than the commands
   * this is asked about (fresh submissions and the queue's head), so an ORDERED one waits for
   * all of them.
   */
  private canStart(cmd: ScsiCommand, exclusive: boolean): boolean {
    if (this.exclusiveRunning !== null || this.abandoned.size > 0) return false;
    const attribute = cmd.attribute;
    const afterAll = attribute !== TaskAttribute.Simple && attribute !== TaskAttribute.HeadOfQueue;
    if (exclusive) return this.running.size === 0 && (!afterAll || this.floating.size === 0);
    switch (attribute) {
      case TaskAttribute.HeadOfQueue:
        return true;
      case TaskAttribute.Simple:
        return this.barriers === 0;
      default: // ORDERED, and ACA (unsupported) treated as ORDERED as tgt does
        return this.running.size === 0 && this.floating.size === 0;
    }
  }

  /** Queued HEAD OF QUEUE commands at the front (they stay ahead of everything). */
  private leadingHeadOfQueue(): number {
    let i = 0;
    while (i < this.waiting.length && this.waiting[i]!.cmd.attribute === TaskAttribute.HeadOfQueue) i++;
    return i;
  }

  private queuedIndex(cmd: ScsiCommand): number {
    for (let i = 0; i < this.waiting.length; i++) if (this.waiting[i]!.cmd === cmd) return i;
    return -1;
  }

  private begin(cmd: ScsiCommand, nexus: ItNexus, exclusive: boolean): void {
    this.running.add(cmd);
    if (cmd.attribute !== TaskAttribute.Simple) this.barriers++;
    if (exclusive) this.exclusiveRunning = cmd;
    this.start(cmd, nexus);
  }

  /**
   * Start waiting commands from the front, stopping at the first that cannot run yet. An
   * announced SIMPLE command reaching the front while its data is not in floats: nothing older
   * waits any more, so only younger ORDERED commands must wait for it, and SIMPLE ones behind it
   * may start.
   */
  private drain(): void {
    while (this.waiting.length > 0) {
      const w = this.waiting[0]!;
      if (!w.ready) {
        if (w.cmd.attribute !== TaskAttribute.Simple) return;
        this.waiting.shift();
        this.unreadyQueued--;
        this.floating.set(w.cmd, w.nexus);
        continue;
      }
      if (!this.canStart(w.cmd, w.exclusive)) return;
      this.waiting.shift();
      this.begin(w.cmd, w.nexus, w.exclusive);
    }
  }
}

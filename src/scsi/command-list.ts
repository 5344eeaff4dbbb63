/**
 * Insertion-ordered sets of commands, linked through fields of the commands themselves: a
 * LU's running commands (task-set.ts) and a nexus's outstanding ones (nexus.ts).
 *
 * Why not a Set or Map: V8's are ordered tables that leave a hole per deleted entry and build a
 * new table when the holes fill it or it is a quarter full. With every command added and removed
 * once, that was a new table every few commands, about 0.3 KiB of garbage per QD 1 READ
 * (BENCHMARKS.md, sixth session). Here add and delete relink two neighbours and allocate nothing.
 *
 * A command is in at most one list of each kind at a time; `CommandSlot` says which link fields
 * of the command a list uses.
 */
import type { ScsiCommand } from './command.js';

/** Which link fields of a command a list uses. */
export const enum CommandSlot {
  /** ScsiCommand.runList/runPrev/runNext: the LU task set's running commands. */
  Running = 0,
  /** ScsiCommand.outList/outPrev/outNext: the nexus's outstanding commands. */
  Outstanding = 1,
}

/** An insertion-ordered set of commands (see the file header). */
export class CommandList {
  private first: ScsiCommand | null = null;
  private last: ScsiCommand | null = null;
  private count = 0;

  constructor(private readonly slot: CommandSlot) {}

  get size(): number {
    return this.count;
  }

  has(cmd: ScsiCommand): boolean {
    return this.listOf(cmd) === this;
  }

  /**
   * Append `cmd` (no-op when it is in this list already). A command in another list of this
   * kind leaves it: the links can hold one list only, and a stale neighbour would corrupt it.
   */
  add(cmd: ScsiCommand): void {
    const owner = this.listOf(cmd);
    if (owner === this) return;
    if (owner !== null) owner.delete(cmd);
    this.link(cmd, this, this.last, null);
    if (this.last !== null) this.setNext(this.last, cmd);
    else this.first = cmd;
    this.last = cmd;
    this.count++;
  }

  /** Remove `cmd`; false when it was not in this list. */
  delete(cmd: ScsiCommand): boolean {
    if (this.listOf(cmd) !== this) return false;
    const prev = this.prevOf(cmd);
    const next = this.nextOf(cmd);
    if (prev !== null) this.setNext(prev, next);
    else this.first = next;
    if (next !== null) this.setPrev(next, prev);
    else this.last = prev;
    this.link(cmd, null, null, null);
    this.count--;
    return true;
  }

  /** The commands, oldest first (a snapshot: changing the list does not affect it). */
  toArray(): ScsiCommand[] {
    const out: ScsiCommand[] = [];
    for (let c = this.first; c !== null; c = this.nextOf(c)) out.push(c);
    return out;
  }

  private listOf(cmd: ScsiCommand): CommandList | null {
    return this.slot === CommandSlot.Running ? cmd.runList : cmd.outList;
  }

  private prevOf(cmd: ScsiCommand): ScsiCommand | null {
    return this.slot === CommandSlot.Running ? cmd.runPrev : cmd.outPrev;
  }

  private nextOf(cmd: ScsiCommand): ScsiCommand | null {
    return this.slot === CommandSlot.Running ? cmd.runNext : cmd.outNext;
  }

  private setPrev(cmd: ScsiCommand, prev: ScsiCommand | null): void {
    if (this.slot === CommandSlot.Running) cmd.runPrev = prev;
    else cmd.outPrev = prev;
  }

  private setNext(cmd: ScsiCommand, next: ScsiCommand | null): void {
    if (this.slot === CommandSlot.Running) cmd.runNext = next;
    else cmd.outNext = next;
  }

  private link(
    cmd: ScsiCommand,
    list: CommandList | null,
    prev: ScsiCommand | null,
    next: ScsiCommand | null,
  ): void {
    if (this.slot === CommandSlot.Running) {
      cmd.runList = list;
      cmd.runPrev = prev;
      cmd.runNext = next;
    } else {
      cmd.outList = list;
      cmd.outPrev = prev;
      cmd.outNext = next;
    }
  }
}

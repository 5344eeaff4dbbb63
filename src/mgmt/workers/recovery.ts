/**
 * tgtd --workers: a worker that dies is replaced, and its targets are recreated in the new one
 * from their last captured configuration (state.ts), as a restarted tgtd would recreate them
 * from --state. Their sessions are lost, as with a power cycle: initiators log in again, and
 * every LU reports the reset (unit attention); reservations survive only with APTPL.
 *
 * A bug that kills workers over and over must not turn into a restart loop: after
 * MAX_RESTARTS within RESTART_WINDOW_MS, a dead worker's targets stay down (logins answered
 * 0x0301, service unavailable) until they are deleted, and tgtd says so. So does a target that
 * cannot be recreated (its backing file gone, say): what was made of it is deleted again.
 */
import { partialState, type SavedTarget } from '../state.js';
import { defaultRequest, MgmtMode, MgmtOp } from '../wire.js';
import type { WorkerPool } from './pool.js';
import type { StateAcrossWorkers } from './state.js';

export const MAX_RESTARTS = 3;
export const RESTART_WINDOW_MS = 60_000;

export class WorkerRecovery {
  private readonly restarts: number[] = [];

  constructor(
    private readonly pool: WorkerPool,
    private readonly state: StateAcrossWorkers,
    private readonly report: (message: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Worker `index` has died: replace it and recreate its targets there, if allowed. */
  async recover(index: number): Promise<void> {
    const tids = this.pool.targetsOf(index);
    if (tids.length === 0) return; // nothing lost; place() starts workers as targets need them
    const at = this.now();
    while (this.restarts.length > 0 && at - this.restarts[0]! > RESTART_WINDOW_MS) this.restarts.shift();
    if (this.restarts.length >= MAX_RESTARTS) {
      this.report(
        `workers were restarted ${MAX_RESTARTS} times within ${RESTART_WINDOW_MS / 1000} s: not restarting; ` +
          `targets ${tids.join(', ')} refuse logins until deleted`,
      );
      return;
    }
    this.restarts.push(at);
    let fresh: number;
    try {
      fresh = await this.pool.replace(index);
    } catch (e) {
      this.report(`worker ${index} could not be replaced: ${(e as Error).message}`);
      return this.recover(index); // again, within the budget
    }
    const restored: number[] = [];
    for (const tid of tids) {
      const saved = this.state.lastSeen(tid);
      let error: string | null = null;
      if (this.pool.isAlive(fresh))
        error = saved ? await this.recreate(fresh, saved) : 'no configuration was captured';
      // A replacement that died meanwhile gets the target anyway: its own recovery, queued
      // behind this one, takes it on.
      if (error !== null && this.pool.isAlive(fresh)) {
        this.report(`target ${tid} could not be recreated (${error}); it refuses logins until deleted`);
        continue;
      }
      this.pool.move(tid, fresh);
      if (this.pool.isAlive(fresh)) restored.push(tid);
    }
    this.report(
      `worker ${index} replaced by worker ${fresh}; targets ${restored.join(', ') || 'none'} restored`,
    );
  }

  /** Recreate one target on worker `index`; null when done, else why not (what was made is deleted). */
  private async recreate(index: number, target: SavedTarget): Promise<string | null> {
    // The worker has the accounts already (tgtd prepares every new worker with them).
    try {
      await this.pool.restore(index, partialState({ targets: [target] }));
      return null;
    } catch (e) {
      const remove = { ...defaultRequest(MgmtMode.Target, MgmtOp.Delete), tid: target.tid, force: 1 };
      await this.pool.call(index, remove, '');
      return (e as Error).message;
    }
  }
}

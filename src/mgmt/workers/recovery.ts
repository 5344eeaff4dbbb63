/**
 * tgtd --workers: a worker that dies is replaced, and its targets are recreated in the new one
 * from their last captured configuration (state.ts), as a restarted tgtd would recreate them
 * from --state. Their sessions are lost, as with a power cycle: initiators log in again, and
 * every LU reports the reset (unit attention); reservations survive only with APTPL.
 *
 * A bug that kills workers over and over must not turn into a restart loop: after
 * MAX_RESTARTS within RESTART_WINDOW_MS, a dead worker's targets stay down (logins refused)
 * until they are deleted, and tgtd says so.
 */
import type { MgmtSystem } from '../dispatch.js';
import { captureState, STATE_FORMAT, STATE_VERSION, type SavedTarget } from '../state.js';
import type { WorkerPool } from './pool.js';
import type { StateAcrossWorkers } from './state.js';

export const MAX_RESTARTS = 3;
export const RESTART_WINDOW_MS = 60_000;

export class WorkerRecovery {
  private readonly restarts: number[] = [];

  constructor(
    private readonly system: MgmtSystem,
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
        `${MAX_RESTARTS} workers died within ${RESTART_WINDOW_MS / 1000} s: not restarting; ` +
          `targets ${tids.join(', ')} refuse logins until deleted`,
      );
      return;
    }
    this.restarts.push(at);
    const targets: SavedTarget[] = [];
    for (const tid of tids) {
      const saved = this.state.lastSeen(tid);
      if (saved) targets.push(saved);
      else this.report(`target ${tid}: no configuration captured; it refuses logins until deleted`);
    }
    try {
      const fresh = await this.pool.replace(index);
      // Every account (targets bind them, with passwords); discovery and portals stay here.
      const { accounts } = captureState(this.system);
      const discovery = { incoming: [] };
      await this.pool.restore(fresh, {
        format: STATE_FORMAT,
        version: STATE_VERSION,
        accounts,
        discovery,
        portals: {},
        targets,
      });
      this.report(`worker ${index} replaced by worker ${fresh}; targets ${tids.join(', ')} restored`);
    } catch (e) {
      this.report(`worker ${index} could not be replaced: ${(e as Error).message}`);
    }
  }
}

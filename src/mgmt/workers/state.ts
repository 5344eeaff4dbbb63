/**
 * tgtd --state with --workers: the state file holds one configuration, as a single-process
 * tgtd writes it, while each worker holds its own targets' LUs. Restoring splits it (the main
 * process gets its own targets whole and the workers' without LUs, each worker its own
 * targets whole); saving gathers each target from its owner.
 */
import type { MgmtSystem } from '../dispatch.js';
import { captureState, partialState, restoreState, type SavedState, type SavedTarget } from '../state.js';
import type { WorkerPool } from './pool.js';

/** Restore `state` across the main process's `system` and the pool's workers. */
export async function restoreAcrossWorkers(
  system: MgmtSystem,
  pool: WorkerPool,
  state: SavedState,
): Promise<void> {
  // Accounts first: every worker started from here on is prepared with them (tgtd.ts).
  await restoreState(system, { ...state, targets: [] });
  const shares = new Map<number, SavedTarget[]>();
  let here = 0;
  for (const t of state.targets) {
    const index = await pool.place(here);
    if (index === undefined) {
      here++;
      continue;
    }
    pool.assign(t.tid, index);
    shares.set(index, [...(shares.get(index) ?? []), t]);
  }
  // Here: every target, those of workers without their LUs.
  const targets = state.targets.map((t) => (pool.ownerOf(t.tid) === undefined ? t : { ...t, luns: [] }));
  await restoreState(system, partialState({ targets }));
  await Promise.all([...shares].map(([index, mine]) => pool.restore(index, partialState({ targets: mine }))));
}

/**
 * Captures the configuration across the main process and the workers, after every change
 * (tgtd saves it with --state, and restores a dead worker's targets from it: recovery.ts). A
 * target whose worker has died is captured as it was last seen, so its LUs are not dropped.
 */
export class StateAcrossWorkers {
  private readonly lastKnown = new Map<number, SavedTarget>();

  constructor(
    private readonly system: MgmtSystem,
    private readonly pool: WorkerPool,
  ) {}

  async capture(): Promise<SavedState> {
    const state = captureState(this.system);
    const captured = new Map<number, SavedTarget>();
    for (let i = 0; i < this.pool.size; i++) {
      for (const t of (await this.pool.capture(i))?.targets ?? []) captured.set(t.tid, t);
    }
    // A dead worker's target: its LUs as last seen, the rest (accounts, ACLs, parameters) from
    // the copy here, which keeps up with changes (an account deleted since, say).
    state.targets = state.targets.map((t) => {
      if (this.pool.ownerOf(t.tid) === undefined) return t;
      const luns = (captured.get(t.tid) ?? this.lastKnown.get(t.tid))?.luns;
      return captured.get(t.tid) ?? (luns ? { ...t, luns } : t);
    });
    this.lastKnown.clear();
    for (const t of state.targets) this.lastKnown.set(t.tid, t);
    return state;
  }

  /** Target `tid` as last captured (undefined if never). */
  lastSeen(tid: number): SavedTarget | undefined {
    return this.lastKnown.get(tid);
  }
}

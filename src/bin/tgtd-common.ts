/**
 * What tgtd's main process and its workers (--workers, tgtd-worker.ts) set up alike.
 */
import { cpus } from 'node:os';
import { defaultBusyPollUs } from '../iscsi/busy-poll.js';
import type { IscsiDriverOptions } from '../iscsi/driver.js';
import type { TargetSystem } from '../scsi/system.js';
import type { TgtdOptions } from './tgtd-options.cjs';

/** Most workers tgtd starts by default: each is a Node.js process (some 40 MB) of its own. */
const DEFAULT_MAX_WORKERS = 15;

/**
 * tgtd --workers by default: one process per CPU of the machine, this one included (the
 * machine's count, not this process's affinity, as for busy polling), so none on one CPU.
 */
export function defaultWorkers(): number {
  return Math.min(Math.max(cpus().length - 1, 0), DEFAULT_MAX_WORKERS);
}

/** The iSCSI driver's options from tgtd's command line. */
export function iscsiDriverOptions(options: TgtdOptions, log: (message: string) => void): IscsiDriverOptions {
  return {
    nopInterval: options.nopInterval,
    nopCount: options.nopCount,
    ...(options.logoutGraceSeconds !== null ? { logoutGraceSeconds: options.logoutGraceSeconds } : {}),
    ...(options.dataOutTimeoutSeconds !== null
      ? { limits: { dataOutTimeoutMs: options.dataOutTimeoutSeconds * 1000 } }
      : {}),
    busyPollUs: options.busyPollUs ?? defaultBusyPollUs(),
    log,
  };
}

/** Longest a stop waits for an LU's running commands, and then for its store's flush. */
const STOP_STORE_TIMEOUT_MS = 3000;

/** Resolve with `p`'s rejection reason (undefined when it fulfilled), or 'timeout' after `ms`. */
function settleWithin(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  const settled = p.then(
    () => undefined,
    (e: unknown) => e ?? 'failed',
  );
  return Promise.race([settled, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Last step of a stop: let commands still running on a store finish (their sessions are gone,
 * so nobody hears the answer, but a write that started completes), then flush and close every
 * store so each completed write is durable. A stuck store is not flushed, only closed.
 */
export async function drainAndCloseStores(system: TargetSystem, log: (m: string) => void): Promise<void> {
  const luns = system.targetsInOrder().flatMap((t) => t.luns);
  await Promise.all(
    luns.map(async (lu) => {
      const running = lu.taskSet.whenFinished(lu.taskSet.runningCommands());
      const stuck = (await settleWithin(running, STOP_STORE_TIMEOUT_MS)) !== undefined;
      const store = lu.store;
      if (!store) return;
      if (stuck) log(`store ${store.path}: commands still running, closing without a flush`);
      else if (store.capabilities.flush && (await settleWithin(store.flush(), STOP_STORE_TIMEOUT_MS)))
        log(`store ${store.path}: flush failed or timed out`);
      await settleWithin(store.close(), STOP_STORE_TIMEOUT_MS);
    }),
  );
}

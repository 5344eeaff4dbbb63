/**
 * tgtd: the target daemon. Wires the SCSI core, the backing stores, the iSCSI fabric and the
 * control socket together, like tgt's tgtd (tgt-behaviour.md §1.1, §1.7), with two fixes:
 * SIGTERM/SIGINT stop it cleanly (logins refused, sessions asked to log out, stores flushed and
 * closed, exit 0; docs/robustness.md), and it refuses to start (exit 1) when a portal cannot be bound.
 *
 * With --state FILE the configuration is restored from FILE before the control socket and the
 * portals open, and saved to it after every change (src/mgmt/state.ts).
 *
 * Without -f/-D it daemonizes: the parent re-runs itself detached and exits once the child
 * reports that the control socket and the portals are up (or exits 1 with the child's error).
 */
import { fork, spawn } from 'node:child_process';
import { promises as fsp, writeFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { storeTypes } from '../backing/index.js';
import { IscsiDriver, type IscsiDriverOptions } from '../iscsi/driver.js';
import { LoginRequestView } from '../iscsi/pdu.js';
import { detachHandle } from '../iscsi/socket-reads.js';
import { RequestQueue, startControlServer, type ControlServer } from '../mgmt/server.js';
import {
  readStateFile,
  restorePortals,
  restoreState,
  StateFileError,
  StateSaver,
  captureState,
  partialState,
  type SavedState,
} from '../mgmt/state.js';
import { defaultRequest, MgmtMode, MgmtOp } from '../mgmt/wire.js';
import { AdminError } from '../scsi/admin-error.js';
import { WorkerPool } from '../mgmt/workers/pool.js';
import { WORKER_ENV, mainTsihRange } from '../mgmt/workers/protocol.js';
import { routedDispatcher } from '../mgmt/workers/route.js';
import { WorkerRecovery } from '../mgmt/workers/recovery.js';
import { restoreAcrossWorkers, StateAcrossWorkers } from '../mgmt/workers/state.js';
import { SessionSharing } from '../mgmt/workers/sharing.js';
import { TargetSystem } from '../scsi/system.js';
import { defaultWorkers, drainAndCloseStores, iscsiDriverOptions } from './tgtd-common.js';
import {
  threadPoolSize,
  foregroundThreadPoolWarning,
  parseTgtdArgs,
  type TgtdOptions,
} from './tgtd-options.cjs';

const DAEMON_CHILD_ENV = 'TGTD_TS_DAEMON_CHILD';

async function main(): Promise<void> {
  const parsed = parseTgtdArgs(process.argv.slice(2));
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    process.exit(parsed.code);
  }
  const options = parsed.options;
  const isChild = process.env[DAEMON_CHILD_ENV] === '1';
  if (!options.foreground && !options.noDaemonize && !isChild) {
    await daemonize(threadPoolSize(options, process.env));
    return;
  }
  if (!isChild) {
    const warning = foregroundThreadPoolWarning(options, process.env);
    if (warning) process.stderr.write(warning);
  }
  await run(options, isChild);
}

/**
 * Re-run detached; exit when the child says it is ready (or failed). `-t N` becomes the child's
 * libuv thread pool size (where store I/O runs), which can only be set before the process starts.
 */
function daemonize(poolSize: string): Promise<void> {
  // process.execArgv carries bin/tgtd's V8 heap flag into the daemon.
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    env: { ...process.env, UV_THREADPOOL_SIZE: poolSize, [DAEMON_CHILD_ENV]: '1' },
  });
  return new Promise(() => {
    child.on('message', (m: { ready?: boolean; error?: string }) => {
      if (m.ready) {
        child.disconnect();
        child.unref();
        process.exit(0);
      }
      process.stderr.write(`${m.error ?? 'tgtd failed to start'}\n`);
      process.exit(1);
    });
    child.on('exit', (code) => {
      process.stderr.write(`tgtd exited during startup (status ${code})\n`);
      process.exit(1);
    });
  });
}

async function run(options: TgtdOptions, isChild: boolean): Promise<void> {
  const system = new TargetSystem({ storeTypes: storeTypes.values() });
  // APTPL reservations (SPC-4 5.13.5) are kept next to the --state file; without it APTPL is refused.
  if (options.stateFile) system.prStateDir = dirname(options.stateFile);
  system.debug = options.debug;
  const log = (message: string): void => {
    if (system.debug && !isChild) process.stderr.write(`tgtd: ${message}\n`);
  };
  const fatal = (message: string): never => {
    if (isChild && process.send) process.send({ error: message });
    else process.stderr.write(`${message}\n`);
    process.exit(1);
  };

  // --workers: targets beyond the first are spread over worker processes as they are created.
  const driverOptions: IscsiDriverOptions = iscsiDriverOptions(options, log);
  const maxWorkers = options.workers ?? defaultWorkers();
  let sharing: SessionSharing | null = null;
  const pool = maxWorkers > 0 ? workerPool(maxWorkers, system, driverOptions, log, () => sharing) : null;
  // --spread sessions: the sessions of the targets served here go to the workers too.
  if (pool && options.spread === 'sessions')
    sharing = new SessionSharing(system, pool, (m) => process.stderr.write(`tgtd: ${m}\n`));
  // The workers' targets as last seen, for --state and to recreate a dead worker's targets.
  const gathered = pool ? new StateAcrossWorkers(system, pool) : null;
  // Management requests and the recovery of a dead worker run one at a time (workers/route.ts).
  const mgmtQueue = new RequestQueue();
  if (pool && gathered) {
    pool.prepare = async (index) => {
      await prepareWorker(pool, index, system);
      await sharing?.seed(index);
    };
    pool.onWorkerGone = (index) => sharing?.workerGone(index);
    const recovery = new WorkerRecovery(pool, gathered, (m) => process.stderr.write(`tgtd: ${m}\n`));
    pool.onWorkerExit = (index, code, signal) => {
      process.stderr.write(`tgtd: worker ${index} exited (${signal ?? `status ${code}`})\n`);
      void mgmtQueue.run(async () => {
        await recovery.recover(index);
        // Shared targets' sessions go to every worker: bring the number back up.
        if (sharing?.any) await pool.fill().catch(() => undefined);
      });
    };
  }
  driverOptions.onColdReset = (target) => sharing?.coldReset(target.tid, null);
  const iscsi = new IscsiDriver(system, driverOptions);
  system.registerDriver(iscsi);
  if (sharing) sharing.home.abortFabric = (nexus, lun, issuer) => iscsi.abortFabricTasks(nexus, lun, issuer);
  if (sharing)
    sharing.endSessionsHere = (tid) => {
      const target = system.targets.get(tid);
      if (target) iscsi.endSessionsOf(target, 'target cold reset');
    };

  // --state: restore before anything listens, so nobody sees (or changes) half a configuration.
  let saved: SavedState | null = null;
  if (options.stateFile) {
    try {
      saved = await readStateFile(options.stateFile);
      if (saved && pool) await restoreAcrossWorkers(system, pool, saved);
      else if (saved) await restoreState(system, saved);
      for (const tid of system.targets.keys())
        if (pool?.ownerOf(tid) === undefined) await sharing?.share(tid);
    } catch (e) {
      fatal(`tgtd: ${(e as Error).message}`);
    }
  }

  let control: ControlServer | null = null;
  // tgtd --state: set once the state file has been written at start.
  let saveState: (() => Promise<void>) | null = null;
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    await Promise.all([iscsi.shutdown(), pool?.stop(WORKER_STOP_TIMEOUT_MS)]);
    await control?.close();
    await drainAndCloseStores(system, log);
    if (options.pidFile && isChild) rmSync(options.pidFile, { force: true });
    process.exit(code);
  };

  try {
    const onSystemDelete = (): void => void stop(0);
    control = await startControlServer(system, {
      controlPort: options.controlPort,
      onSystemDelete,
      log,
      ...(pool
        ? {
            dispatcher: routedDispatcher(
              { system, onSystemDelete },
              pool,
              mgmtQueue,
              async () => {
                if (saveState) await saveState();
                else await gathered?.capture();
              },
              sharing,
            ),
          }
        : {}),
    });
  } catch (e) {
    fatal(`tgtd: ${(e as Error).message}`);
  }
  const unsafeDir = await worldWritableDir(dirname(control!.path));
  if (unsafeDir) {
    await control?.close();
    fatal(`tgtd: control socket directory ${unsafeDir} is writable by everyone; use a private directory`);
  }

  const portals = options.portals.length ? options.portals : [':3260'];
  for (const spec of portals) {
    try {
      await iscsi.listen(spec);
    } catch (e) {
      await control?.close();
      fatal(`tgtd: can't listen on portal ${spec}: ${(e as Error).message}`);
    }
  }

  if (options.stateFile) {
    const saver = new StateSaver(options.stateFile, gathered ? () => gathered.capture() : system);
    try {
      if (saved) await restorePortals(system, saved);
      // Save at once: a state file that cannot be written is found now, not at the first change.
      await saver.save();
    } catch (e) {
      await control?.close();
      fatal(
        `tgtd: ${e instanceof StateFileError ? e.message : `can't write state file ${options.stateFile}: ${(e as Error).message}`}`,
      );
    }
    saveState = () =>
      saver.save().catch((e: Error) => {
        process.stderr.write(`tgtd: can't save state file ${options.stateFile}: ${e.message}\n`);
        throw e;
      });
    // With workers the router saves, once a change is made everywhere (workers/route.ts).
    if (!pool) system.onConfigChange = saveState;
  }

  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  process.on('SIGPIPE', () => {});
  // Last line of defence: a bug must not take every session down with it.
  process.on('uncaughtException', (e) => process.stderr.write(`tgtd: uncaught exception: ${e.stack ?? e}\n`));
  process.on('unhandledRejection', (e) => process.stderr.write(`tgtd: unhandled rejection: ${String(e)}\n`));

  if (isChild) {
    if (options.pidFile) writeFileSync(options.pidFile, `${process.pid}\n`);
    process.send?.({ ready: true });
    process.disconnect?.();
  }
  log(`ready; portals ${iscsi.portals.map((p) => p.describe()).join(' ')}`);
}

/** Longest tgtd waits for its workers to log their sessions out and close their stores. */
const WORKER_STOP_TIMEOUT_MS = 30_000;

/**
 * A pool of up to `max` workers (none started yet), with the iSCSI driver set up to hand them
 * the connections of their targets (found by name in `system`, which has every target).
 */
function workerPool(
  max: number,
  system: TargetSystem,
  driverOptions: IscsiDriverOptions,
  log: (message: string) => void,
  sharing: () => SessionSharing | null,
): WorkerPool {
  const pool = new WorkerPool(max, spawnWorker);
  driverOptions.tsihRange = mainTsihRange(max);
  // A guest's session of a shared target keeps its nexus here until it has drained.
  driverOptions.tsihTaken = (tsih) => pool.isLent(tsih) || (sharing()?.nexusExists(tsih) ?? false);
  driverOptions.serves = (target) => pool.ownerOf(target.tid) === undefined;
  driverOptions.handOff = (targetName, socket, firstPdu, driver) => {
    const target = system.findTargetByName(targetName);
    let index = target ? pool.ownerOf(target.tid) : undefined;
    // A target served here and shared: the session may go to a worker (sharing.ts).
    const shared = sharing();
    if (target && index === undefined && shared?.isShared(target.tid))
      index = shared.place(target, firstPdu, driver);
    // Served here, not found, or its worker is down: this process answers (0x0301 for the last).
    if (index === undefined || !pool.isAlive(index)) return false;
    const handle = detachHandle(socket);
    if (!handle) return false;
    // A new session (TSIH 0, RFC 7143 11.12.6) gets its TSIH from here: one sequence daemon-wide.
    const tsih = new LoginRequestView(firstPdu).tsih === 0 ? driver.allocateTsih() : 0;
    if (!pool.handOff(index, handle, firstPdu, tsih)) log(`iscsi: no worker for target ${targetName}`);
    socket.destroy();
    return true;
  };
  return pool;
}

/** What a new worker needs before it gets targets: every account, and the system settings. */
async function prepareWorker(pool: WorkerPool, index: number, system: TargetSystem): Promise<void> {
  await pool.restore(index, partialState({ accounts: captureState(system).accounts }));
  const settings: Array<[string, string]> = [
    ['debug', system.debug ? 'on' : 'off'],
    ['State', system.state],
  ];
  for (const [name, value] of settings) {
    const update = defaultRequest(MgmtMode.System, MgmtOp.Update);
    const r = await pool.call(index, update, `${name}=${value}`);
    if (r.err !== AdminError.Success) throw new Error(`worker ${index}: can't set ${name}`);
  }
}

/** Start a worker for place `slot` of `max`: tgtd-worker.js with tgtd's own command line. */
function spawnWorker(slot: number, max: number) {
  const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_ENV]: `${slot}/${max}` };
  delete env[DAEMON_CHILD_ENV];
  return fork(fileURLToPath(new URL('./tgtd-worker.js', import.meta.url)), process.argv.slice(2), {
    env,
    execArgv: process.execArgv,
    serialization: 'advanced',
  });
}

/**
 * The control socket is 0600, but in a directory anyone may write to (without the sticky bit)
 * another user could rename it away and put their own socket in its place, then read the
 * passwords tgtadm sends. Returns the directory when that is the case.
 */
async function worldWritableDir(dir: string): Promise<string | null> {
  try {
    const st = await fsp.stat(dir);
    return (st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0 ? dir : null;
  } catch {
    return null;
  }
}

void main();

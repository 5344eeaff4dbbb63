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
import { spawn } from 'node:child_process';
import { promises as fsp, writeFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { storeTypes } from '../backing/index.js';
import { defaultBusyPollUs } from '../iscsi/busy-poll.js';
import { IscsiDriver } from '../iscsi/driver.js';
import { startControlServer, type ControlServer } from '../mgmt/server.js';
import {
  readStateFile,
  restorePortals,
  restoreState,
  StateFileError,
  StateSaver,
  type SavedState,
} from '../mgmt/state.js';
import { TargetSystem } from '../scsi/system.js';
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

  const iscsi = new IscsiDriver(system, {
    nopInterval: options.nopInterval,
    nopCount: options.nopCount,
    ...(options.logoutGraceSeconds !== null ? { logoutGraceSeconds: options.logoutGraceSeconds } : {}),
    ...(options.dataOutTimeoutSeconds !== null
      ? { limits: { dataOutTimeoutMs: options.dataOutTimeoutSeconds * 1000 } }
      : {}),
    busyPollUs: options.busyPollUs ?? defaultBusyPollUs(),
    log,
  });
  system.registerDriver(iscsi);

  // --state: restore before anything listens, so nobody sees (or changes) half a configuration.
  let saved: SavedState | null = null;
  if (options.stateFile) {
    try {
      saved = await readStateFile(options.stateFile);
      if (saved) await restoreState(system, saved);
    } catch (e) {
      fatal(`tgtd: ${(e as Error).message}`);
    }
  }

  let control: ControlServer | null = null;
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    await iscsi.shutdown();
    await control?.close();
    await drainAndCloseStores(system, log);
    if (options.pidFile && isChild) rmSync(options.pidFile, { force: true });
    process.exit(code);
  };

  try {
    control = await startControlServer(system, {
      controlPort: options.controlPort,
      onSystemDelete: () => void stop(0),
      log,
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
    const saver = new StateSaver(options.stateFile, system);
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
    system.onConfigChange = () =>
      saver.save().catch((e: Error) => {
        process.stderr.write(`tgtd: can't save state file ${options.stateFile}: ${e.message}\n`);
        throw e;
      });
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
async function drainAndCloseStores(system: TargetSystem, log: (m: string) => void): Promise<void> {
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

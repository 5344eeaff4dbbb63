/**
 * A tgtd worker process (tgtd --workers N; src/mgmt/workers/pool.ts). It serves the targets the
 * main process gives it: their LUs, stores, sessions and connections, on its own event loop.
 * It listens on nothing: connections arrive over the IPC channel after the main process has read
 * their first Login PDU, and management requests arrive as messages and run through the same
 * dispatch as a single-process tgtd's control socket.
 *
 * It stops (sessions logged out, stores flushed and closed) when asked to, when the main process
 * goes away, or on SIGTERM/SIGINT (a terminal's Ctrl-C reaches the whole process group).
 */
import { Buffer } from 'node:buffer';
import { dirname } from 'node:path';
import { IscsiDriver } from '../iscsi/driver.js';
import { sharedReadSocket } from '../iscsi/socket-reads.js';
import { dispatch } from '../mgmt/dispatch.js';
import { RequestQueue } from '../mgmt/server.js';
import { captureState, restoreState } from '../mgmt/state.js';
import {
  type MainToWorker,
  type WorkerReply,
  type WorkerToMain,
  WORKER_ENV,
  parseWorkerEnv,
  workerTsihRange,
} from '../mgmt/workers/protocol.js';
import { parsePayload } from '../mgmt/wire.js';
import { storeTypes } from '../backing/index.js';
import { TargetSystem } from '../scsi/system.js';
import { SharingGuest } from '../scsi/sharing/guest.js';
import { drainAndCloseStores, iscsiDriverOptions } from './tgtd-common.js';
import { parseTgtdArgs } from './tgtd-options.cjs';

function main(): void {
  const me = parseWorkerEnv(process.env[WORKER_ENV]);
  const parsed = parseTgtdArgs(process.argv.slice(2));
  if (!me || parsed.kind !== 'run' || !process.send) {
    process.stderr.write('tgtd-worker: to be started by tgtd --workers\n');
    process.exit(2);
  }
  const options = parsed.options;
  const system = new TargetSystem({ storeTypes: storeTypes.values() });
  system.debug = options.debug;
  // APTPL reservations (SPC-4 5.13.5) are kept next to the --state file, as in one process.
  if (options.stateFile) system.prStateDir = dirname(options.stateFile);
  const log = (message: string): void => {
    if (system.debug) process.stderr.write(`tgtd[worker ${me.slot}]: ${message}\n`);
  };
  const iscsi = new IscsiDriver(system, {
    ...iscsiDriverOptions(options, log),
    tsihRange: workerTsihRange(me.slot, me.max),
    onTsihReleased: (tsih) => send({ kind: 'tsih-free', tsih }),
    onColdReset: (target) => {
      if (guest.isGuestOf(target.tid)) send({ kind: 'cold-reset', tid: target.tid });
    },
    servesDiscovery: false,
  });
  system.registerDriver(iscsi);
  const send = (m: WorkerToMain): void => {
    if (process.connected) process.send!(m);
  };

  // Targets tgtd serves and shares with this worker: it serves some of their sessions.
  const guest = new SharingGuest((m) => send({ kind: 'share', m }));
  guest.abortFabric = (nexus, lun, issuer) => iscsi.abortFabricTasks(nexus, lun, issuer);
  /** Drop guest roles of targets deleted here. */
  const forgetDeleted = (): void => {
    for (const tid of guest.tids()) if (!system.targets.has(tid)) guest.leave(tid);
  };

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    await iscsi.shutdown();
    await drainAndCloseStores(system, log);
    process.exit(0);
  };

  // Only system delete stops tgtd, and it goes to the main process.
  const ctx = { system, onSystemDelete: () => {} };
  // Requests run one at a time, in order: a capture never sees a restore or an LU creation
  // half done (they await their stores), whoever sent them.
  const requests = new RequestQueue();
  const serially = (job: () => Promise<WorkerReply>): void => {
    requests.run(job).then(send, () => undefined);
  };
  process.on('message', (m: MainToWorker, handle?: object) => {
    switch (m.kind) {
      case 'mgmt':
        return serially(async () => {
          const r = await dispatch(ctx, m.req, parsePayload(m.payload));
          forgetDeleted();
          return r.text === undefined
            ? { kind: 'mgmt', id: m.id, err: r.err }
            : { kind: 'mgmt', id: m.id, err: r.err, text: r.text };
        });
      case 'capture':
        return serially(async () => {
          // Its own targets only: the shared ones are tgtd's.
          const state = captureState(system);
          state.targets = state.targets.filter((t) => !guest.isGuestOf(t.tid));
          return { kind: 'capture', id: m.id, state };
        });
      case 'restore':
        return serially(() =>
          restoreState(system, m.state).then(
            (): WorkerReply => ({ kind: 'restore', id: m.id }),
            (e: Error): WorkerReply => ({ kind: 'restore', id: m.id, error: e.message }),
          ),
        );
      case 'connection':
        if (!handle) return;
        if (stopping) {
          (handle as { close(): void }).close();
          return;
        }
        iscsi.adopt(
          sharedReadSocket(handle),
          Buffer.from(m.head.buffer, m.head.byteOffset, m.head.byteLength),
          m.tsih,
        );
        break;
      case 'stop':
        void stop();
        break;
      case 'guest':
        // In order with the requests: the copy of the target exists by now.
        return void requests.run(async () => {
          const target = system.targets.get(m.tid);
          if (m.join && target) guest.join(target);
          else if (!m.join) guest.leave(m.tid);
        });
      case 'share':
        guest.receive(m.m);
        break;
      case 'cold-reset': {
        const target = system.targets.get(m.tid);
        if (target) iscsi.endSessionsOf(target, 'target cold reset');
        break;
      }
    }
  });
  process.on('disconnect', () => {
    guest.homeGone();
    void stop();
  });
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  process.on('SIGPIPE', () => {});
  process.on('uncaughtException', (e) =>
    process.stderr.write(`tgtd[worker ${me.slot}]: uncaught exception: ${e.stack ?? e}\n`),
  );
  process.on('unhandledRejection', (e) =>
    process.stderr.write(`tgtd[worker ${me.slot}]: unhandled rejection: ${String(e)}\n`),
  );
  send({ kind: 'ready' });
}

main();

/**
 * An I/O worker thread whose requests of exactly STALL_LENGTH bytes take STALL_FOR_MS (a medium
 * that blocks), for the stall tests of test/unit/backing/io-worker.test.ts.
 */
import { workerData } from 'node:worker_threads';
import { serveIoRing } from '../../src/backing/io-worker-loop.js';
import type { IoWorkerData } from '../../src/backing/io-worker-protocol.js';

const STALL_LENGTH = 3584;
const STALL_FOR_MS = 400;
const nap = new Int32Array(new SharedArrayBuffer(4));

serveIoRing(workerData as IoWorkerData, (length) => {
  if (length === STALL_LENGTH) Atomics.wait(nap, 0, 0, STALL_FOR_MS);
});

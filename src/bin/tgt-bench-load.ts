/**
 * A load of `npm run bench` in a worker thread (tgt-bench.ts): the multi-target rows run one
 * load per target, each on its own thread, so that the load generator's own event loop does
 * not cap what several targets can do together.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runLoad, type LoadOptions } from '../initiator/load.js';

const options = workerData as Omit<LoadOptions, 'onProgress'>;
void runLoad({ ...options, onProgress: (n) => parentPort?.postMessage({ progress: n }) }).then(
  (result) => parentPort?.postMessage({ result }),
  (e: Error) => parentPort?.postMessage({ error: e.message }),
);

/** Entry point of the I/O worker thread (io-worker.ts starts it; the loop is io-worker-loop.ts). */
import { workerData } from 'node:worker_threads';
import { serveIoRing } from './io-worker-loop.js';
import type { IoWorkerData } from './io-worker-protocol.js';

serveIoRing(workerData as IoWorkerData);

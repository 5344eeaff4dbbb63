/**
 * tgtd --workers N, main side: N worker processes, each serving whole targets (their LUs,
 * stores and sessions) on its own event loop and so on its own core (docs/multicore.md,
 * design 1). The main process keeps the portals, discovery, the control socket and a copy of
 * every target without LUs; it hands each normal session's connection to the worker that owns
 * the target (the socket's descriptor travels over the IPC channel, SCM_RIGHTS) and forwards
 * management requests (route.ts).
 *
 * Messages use the 'advanced' serialization so AdminRequest's bigints (sid, lun) cross as
 * they are.
 */
import type { ChildProcess } from 'node:child_process';
import { AdminError } from '../../scsi/admin-error.js';
import type { DispatchResult } from '../dispatch.js';
import type { AdminRequest } from '../wire.js';
import type { SavedState } from '../state.js';
import {
  type MainToWorker,
  type WorkerReply,
  type WorkerRequestBody,
  type WorkerToMain,
  WORKER_READY_TIMEOUT_MS,
} from './protocol.js';

interface Worker {
  readonly index: number;
  /** Which of the `max` places it fills (its fallback TSIH range); a replacement takes the dead one's. */
  readonly slot: number;
  readonly child: ChildProcess;
  alive: boolean;
  /** Targets it owns. */
  targets: number;
  /** TCP handles sent and not yet acknowledged: closed here if the worker dies first. */
  readonly handles: Set<{ close(): void }>;
}

export class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly owners = new Map<number, Worker>();
  /**
   * TSIHs lent to workers (by the main process's allocator, so that session ids follow one
   * sequence daemon-wide, as in tgt), until the worker gives them back.
   */
  private readonly lent = new Map<number, Worker>();
  /** Requests sent, by id; a worker's exit answers its own with null. */
  private readonly pending = new Map<number, { worker: Worker; resolve: (r: WorkerReply | null) => void }>();
  private nextId = 1;
  /**
   * Runs on each new worker once it is ready, before it gets targets or connections (tgtd
   * gives it the accounts and system settings); a failure stops the worker.
   */
  prepare: ((index: number) => Promise<void>) | null = null;
  /** Messages of shared targets from worker `index` (src/scsi/sharing). */
  onShare: ((index: number, m: WorkerToMain & { kind: 'share' | 'cold-reset' }) => void) | null = null;
  /** Called when a worker exits, stopping or not, before onWorkerExit. */
  onWorkerGone: ((index: number) => void) | null = null;
  /** Called when a worker exits while the pool is not stopping. */
  onWorkerExit: ((index: number, code: number | null, signal: string | null) => void) | null = null;
  private stopping = false;
  private growing: Promise<number> | null = null;
  /** Worker starts, one after the other (each takes the next index). */
  private starts: Promise<unknown> = Promise.resolve();
  /** Places of the starts queued or in progress. */
  private readonly reserved = new Set<number>();

  /**
   * A pool of at most `max` running workers, none started yet: they start as targets need them
   * (place()). `spawn(slot, max)` starts a worker process for place `slot` (0 to max - 1).
   */
  constructor(
    readonly max: number,
    private readonly spawn: (slot: number, max: number) => ChildProcess,
  ) {}

  /** Workers started so far (dead ones included: indexes are never reused). */
  get size(): number {
    return this.workers.length;
  }

  /** The worker that serves `tid`; undefined when this process does. */
  ownerOf(tid: number): number | undefined {
    return this.owners.get(tid)?.index;
  }

  /** Whether worker `index` is running. */
  isAlive(index: number): boolean {
    return this.workers[index]?.alive === true;
  }

  /** How many targets the workers serve. */
  get assigned(): number {
    return this.owners.size;
  }

  /**
   * Where a new target goes: the process with the fewest targets, this one (serving `here`)
   * first, then the workers in order; a new worker when every process has targets and fewer
   * than `max` run. undefined = this process.
   */
  async place(here: number): Promise<number | undefined> {
    let best: Worker | undefined;
    let fewest = here;
    for (const w of this.workers) {
      if (w.alive && w.targets < fewest) {
        best = w;
        fewest = w.targets;
      }
    }
    if (fewest > 0 && this.running < this.max && !this.stopping) return this.grow();
    return best?.index;
  }

  /** Workers running. */
  private get running(): number {
    return this.workers.filter((w) => w.alive).length;
  }

  /** Start the next worker; resolves with its index once it reports ready. */
  private grow(): Promise<number> {
    this.growing ??= this.startWorker().finally(() => (this.growing = null));
    return this.growing;
  }

  /**
   * Start a worker to replace dead worker `index` (in the lowest free place, usually the dead
   * one's); resolves with the new worker's index. The dead one keeps its targets until they
   * are moved (move()) or deleted.
   */
  async replace(index: number): Promise<number> {
    const dead = this.workers[index];
    if (!dead || dead.alive) throw new Error(`worker ${index} is not dead`);
    return this.startWorker();
  }

  /** Target `tid` is served by worker `index` from now on. */
  move(tid: number, index: number): void {
    this.release(tid);
    this.assign(tid, index);
  }

  /** The targets worker `index` serves. */
  targetsOf(index: number): number[] {
    const w = this.workers[index];
    return [...this.owners].filter(([, owner]) => owner === w).map(([tid]) => tid);
  }

  /**
   * Start a worker in the lowest free place (reserved now); one start at a time, each taking
   * the next index.
   */
  private startWorker(): Promise<number> {
    const slot = this.freeSlot();
    if (slot >= this.max) return Promise.reject(new Error(`all ${this.max} worker places are taken`));
    this.reserved.add(slot);
    const started = this.starts.then(() => this.spawnReady(slot)).finally(() => this.reserved.delete(slot));
    this.starts = started.catch(() => undefined);
    return started;
  }

  private async spawnReady(slot: number): Promise<number> {
    if (this.stopping) throw new Error('tgtd is stopping');
    const index = this.workers.length;
    const child = this.spawn(slot, this.max);
    // A send to a worker that has just died fails with EPIPE; its exit handler answers for it.
    child.on('error', () => {});
    try {
      await waitReady(child, index);
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    const w: Worker = { index, slot, child, alive: true, targets: 0, handles: new Set() };
    child.on('exit', (code, signal) => this.onExit(w, code, signal));
    child.on('message', (m: WorkerToMain) => this.onMessage(w, m));
    this.workers.push(w);
    if (child.exitCode !== null || child.signalCode !== null)
      this.onExit(w, child.exitCode, child.signalCode);
    try {
      await withDeadline(
        this.prepare?.(index),
        WORKER_READY_TIMEOUT_MS,
        `worker ${index} was not ready in time`,
      );
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    return index;
  }

  /** The lowest place no running worker fills and no start has reserved. */
  private freeSlot(): number {
    const taken = new Set([...this.workers.filter((w) => w.alive).map((w) => w.slot), ...this.reserved]);
    let slot = 0;
    while (taken.has(slot)) slot++;
    return slot;
  }

  assign(tid: number, index: number): void {
    const w = this.workers[index]!;
    this.owners.set(tid, w);
    w.targets++;
  }

  release(tid: number): void {
    const w = this.owners.get(tid);
    if (!w) return;
    this.owners.delete(tid);
    w.targets--;
  }

  /** Run a management request on worker `index`; a dead worker answers "unknown error". */
  async call(index: number, req: AdminRequest, payload: string): Promise<DispatchResult> {
    const r = await this.request(index, { kind: 'mgmt', req, payload });
    if (r?.kind !== 'mgmt') return { err: AdminError.UnknownErr };
    return r.text === undefined ? { err: r.err } : { err: r.err, text: r.text };
  }

  /** The saved form of worker `index`'s targets; null when it is not running. */
  async capture(index: number): Promise<SavedState | null> {
    const r = await this.request(index, { kind: 'capture' });
    return r?.kind === 'capture' ? r.state : null;
  }

  /** Recreate `state` (accounts and targets) on worker `index`; rejects with why it could not. */
  async restore(index: number, state: SavedState): Promise<void> {
    const r = await this.request(index, { kind: 'restore', state });
    if (r?.kind !== 'restore') throw new Error(`worker ${index} is not running`);
    if (r.error !== undefined) throw new Error(r.error);
  }

  private request(index: number, body: WorkerRequestBody): Promise<WorkerReply | null> {
    const w = this.workers[index];
    if (!w?.alive) return Promise.resolve(null);
    const id = this.nextId++;
    return new Promise((resolve) => {
      // A worker that stops answering (stopped, stuck in a store) must not hold tgtadm forever.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, REQUEST_TIMEOUT_MS);
      timer.unref();
      this.pending.set(id, {
        worker: w,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
      this.post(w, { ...body, id } as MainToWorker);
    });
  }

  /** The same request on every live worker, answers in worker order. */
  broadcast(req: AdminRequest, payload: string): Promise<DispatchResult[]> {
    return Promise.all(this.workers.filter((w) => w.alive).map((w) => this.call(w.index, req, payload)));
  }

  /**
   * Give worker `index` a connection: its TCP handle (see detachHandle) and the bytes already
   * read from it. The handle is closed here once sent: the worker has its own descriptor then.
   */
  handOff(index: number, handle: object, head: Buffer, tsih: number): boolean {
    const w = this.workers[index];
    if (!w?.alive) return false;
    const tcp = handle as { close(): void };
    // Node holds a handle back until the worker acknowledged the previous one; if the worker
    // dies meanwhile the callback never runs, so onExit closes what is left.
    w.handles.add(tcp);
    const close = (): void => {
      if (w.handles.delete(tcp)) tcp.close();
    };
    if (tsih !== 0) this.lent.set(tsih, w);
    const message: MainToWorker = { kind: 'connection', head, tsih };
    try {
      w.child.send(message, handle as never, {}, close);
    } catch {
      close();
      this.lent.delete(tsih);
      return false;
    }
    return true;
  }

  /** Whether `tsih` is lent to a worker. */
  isLent(tsih: number): boolean {
    return this.lent.has(tsih);
  }

  /** Ask every worker to stop (sessions logged out, stores flushed) and wait for them to exit. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const timer = setTimeout(() => {
      for (const w of this.workers) if (w.alive) w.child.kill('SIGKILL');
    }, timeoutMs);
    // A start in progress ends (ready, or killed by the timer above) before its worker is asked.
    await Promise.race([this.starts, new Promise((ok) => setTimeout(ok, timeoutMs).unref())]);
    const exits = this.workers.filter((w) => w.alive).map((w) => exited(w.child));
    for (const w of this.workers) if (w.alive) this.post(w, { kind: 'stop' });
    await Promise.all(exits);
    clearTimeout(timer);
  }

  /** Send worker `index` a message that needs no answer (nothing when it is not running). */
  tell(index: number, message: MainToWorker): void {
    const w = this.workers[index];
    if (w?.alive) this.post(w, message);
  }

  /** Indexes of the running workers. */
  live(): number[] {
    return this.workers.filter((w) => w.alive).map((w) => w.index);
  }

  /** Start workers until `max` run (each prepared as usual). */
  async fill(): Promise<void> {
    while (this.running < this.max && !this.stopping) await this.grow();
  }

  private post(w: Worker, message: MainToWorker): void {
    try {
      w.child.send(message);
    } catch {
      // the exit handler answers what was pending
    }
  }

  private onMessage(w: Worker, m: WorkerToMain): void {
    if (m.kind === 'ready') return;
    if (m.kind === 'share' || m.kind === 'cold-reset') {
      if (w.alive) this.onShare?.(w.index, m);
      return;
    }
    if (m.kind === 'tsih-free') {
      if (this.lent.get(m.tsih) === w) this.lent.delete(m.tsih);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    p.resolve(m);
  }

  private onExit(w: Worker, code: number | null, signal: string | null): void {
    w.alive = false;
    this.onWorkerGone?.(w.index);
    for (const [tsih, owner] of this.lent) if (owner === w) this.lent.delete(tsih);
    for (const handle of w.handles) handle.close();
    w.handles.clear();
    for (const [id, p] of this.pending) {
      if (p.worker !== w) continue;
      this.pending.delete(id);
      p.resolve(null);
    }
    if (!this.stopping) this.onWorkerExit?.(w.index, code, signal);
  }
}

function waitReady(child: ChildProcess, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`worker ${index} did not start within ${WORKER_READY_TIMEOUT_MS} ms`)),
      WORKER_READY_TIMEOUT_MS,
    );
    const onMessage = (m: WorkerToMain): void => {
      if (m.kind !== 'ready') return;
      done();
      resolve();
    };
    const onExit = (code: number | null): void => {
      done();
      reject(new Error(`worker ${index} exited during startup (status ${code})`));
    };
    const done = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** Longest a management request, capture or restore may take in a worker. */
const REQUEST_TIMEOUT_MS = 120_000;

/** `p` (nothing when undefined), or a rejection with `message` after `ms`. */
async function withDeadline(p: Promise<void> | undefined, ms: number, message: string): Promise<void> {
  if (!p) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  try {
    await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

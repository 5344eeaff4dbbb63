/**
 * tgtd --workers: management requests on the main process, routed (pool.ts).
 *
 * The main process serves targets too. Of the targets a worker owns it keeps a copy without
 * LUs, since it answers discovery (SendTargets filters by ACL) and decides where logins go;
 * the worker holds their whole state. So:
 * - a new target goes to the process with the fewest targets (WorkerPool.place);
 * - target new/delete/bind/unbind/update apply here and on the owner; logicalunit, session and
 *   connection requests go to the owner;
 * - accounts are created and deleted everywhere (a worker checks CHAP at login), and bound
 *   here and on the owner;
 * - `show` and `stat` views are gathered from the workers in tid order, laid out as one
 *   daemon prints them; a session id names one session anywhere (disjoint TSIH ranges,
 *   protocol.ts), so requests by --sid ask each worker in turn;
 * - portals, discovery, `system show` and `lld show` are the main process's own.
 */
import { AdminError } from '../../scsi/admin-error.js';
import { isSnapshotRequest, type ConfigSnapshot } from '../config/snapshot.js';
import { changesConfiguration, type DispatchContext, type DispatchResult, dispatch } from '../dispatch.js';
import type { RequestQueue } from '../server.js';
import { STAT_HEADER } from '../show.js';
import { type AdminRequest, MgmtMode, MgmtOp, type ParsedPayload } from '../wire.js';
import type { WorkerPool } from './pool.js';
import type { SessionSharing } from './sharing.js';

export type Dispatcher = (req: AdminRequest, payload: ParsedPayload) => Promise<DispatchResult>;

const ok = (text: string): DispatchResult => ({ err: AdminError.Success, text });

/** How long a copy's "LU still active" is retried (its sessions' answers from here in flight). */
const COPY_RETRY_MS = 2000;

/**
 * The control socket's dispatcher when targets live in `pool`'s workers. `onConfigChange` (tgtd
 * --state, and capturing the workers' targets) runs after each successful change has been made
 * everywhere; `ctx.system` must not have a hook of its own, which would run before the workers
 * have the change. Each request, with its hook, runs alone on `queue`, which the recovery of a
 * dead worker (recovery.ts) shares, so neither sees the other half done.
 */
export function routedDispatcher(
  ctx: DispatchContext,
  pool: WorkerPool,
  queue: RequestQueue,
  onConfigChange?: () => Promise<void>,
  sharing: SessionSharing | null = null,
): Dispatcher {
  const router = new Router(ctx, pool, sharing);
  return (req, payload) => queue.run(() => routeAndRecord(router, req, payload, onConfigChange));
}

async function routeAndRecord(
  router: Router,
  req: AdminRequest,
  payload: ParsedPayload,
  onConfigChange?: () => Promise<void>,
): Promise<DispatchResult> {
  let res: DispatchResult;
  try {
    res = await router.route(req, payload);
  } catch {
    return { err: AdminError.UnknownErr };
  }
  if (onConfigChange && res.err === AdminError.Success && changesConfiguration(req)) {
    try {
      await onConfigChange();
    } catch {
      // In effect but not saved: say so, as a single-process tgtd does (dispatch.ts).
      return { err: AdminError.UnknownErr };
    }
  }
  return res;
}

class Router {
  constructor(
    private readonly ctx: DispatchContext,
    private readonly pool: WorkerPool,
    private readonly sharing: SessionSharing | null,
  ) {}

  route(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    if (isSnapshotRequest(req.mode, req.op)) return this.snapshot(req, p);
    if (this.sharing?.isShared(req.tid)) {
      const shared = this.shared(req, p);
      if (shared) return shared;
    }
    switch (req.mode) {
      case MgmtMode.Target:
        return this.target(req, p);
      case MgmtMode.Device:
        if (req.op === MgmtOp.Stats && req.sid !== 0n) return this.bySession(req, p);
        return this.toOwner(req, p);
      case MgmtMode.Account:
        return this.account(req, p);
      case MgmtMode.Session:
        if (req.op === MgmtOp.Stats) return this.bySession(req, p);
        if (req.op === MgmtOp.Show && req.tid < 0) return this.perTarget(req, p, (t) => t);
        return this.toOwner(req, p);
      case MgmtMode.Connection:
        if (req.op === MgmtOp.Stats) return this.bySession(req, p);
        return this.toOwner(req, p);
      case MgmtMode.System:
        if (req.op === MgmtOp.Update) return this.everywhere(req, p);
        if (req.op === MgmtOp.Stats) return this.systemStats(req, p);
        return this.local(req, p);
      case MgmtMode.Lld:
        if (req.op === MgmtOp.Start || req.op === MgmtOp.Stop) return this.everywhere(req, p);
        return this.local(req, p);
      default:
        return this.local(req, p);
    }
  }

  private local(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    return dispatch(this.ctx, req, p);
  }

  private servedByLiveWorker(tid: number): boolean {
    const index = this.pool.ownerOf(tid);
    return index !== undefined && this.pool.isAlive(index);
  }

  /** Targets this process serves itself. */
  private targetsHere(): number {
    return this.ctx.system.targets.size - this.pool.assigned;
  }

  private async target(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    switch (req.op) {
      case MgmtOp.New: {
        const here = await this.local(req, p);
        if (here.err !== AdminError.Success) return here;
        const index = await this.pool.place(this.targetsHere() - 1).catch(() => undefined);
        if (index === undefined) {
          await this.sharing?.share(req.tid);
          return here;
        }
        const there = await this.pool.call(index, req, p.raw);
        if (there.err !== AdminError.Success) {
          await this.local({ ...req, op: MgmtOp.Delete, force: 1 }, p);
          return there;
        }
        this.pool.assign(req.tid, index);
        return here;
      }
      case MgmtOp.Delete: {
        const index = this.pool.ownerOf(req.tid);
        if (index === undefined) return this.local(req, p);
        // A dead worker's targets can still be deleted here.
        if (this.pool.isAlive(index)) {
          const there = await this.pool.call(index, req, p.raw);
          if (there.err !== AdminError.Success) return there;
        }
        this.pool.release(req.tid);
        // The copy here has no sessions (they are the worker's): it goes without --force.
        return this.local(req, p);
      }
      case MgmtOp.Bind:
      case MgmtOp.Unbind:
      case MgmtOp.Update:
        return this.hereThenOwner(req, p);
      case MgmtOp.Show:
        return req.tid < 0 ? this.showAllTargets(req, p) : this.toOwner(req, p);
      default:
        return this.toOwner(req, p);
    }
  }

  private async account(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    if (req.op === MgmtOp.New || req.op === MgmtOp.Delete) return this.everywhere(req, p);
    if (req.op === MgmtOp.Bind || req.op === MgmtOp.Unbind) return this.hereThenOwner(req, p);
    return this.local(req, p);
  }

  /** Apply here (which validates), then on every worker. */
  private async everywhere(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const here = await this.local(req, p);
    if (here.err !== AdminError.Success) return here;
    const failed = (await this.pool.broadcast(req, p.raw)).find((r) => r.err !== AdminError.Success);
    return failed ?? here;
  }

  /**
   * Apply here (which validates), then on the target's owner. A bind or unbind the owner
   * refuses is taken back here, so that the copies stay alike (all of it: with both -I and -Q,
   * the owner may have kept the first). An update the owner refuses is not taken back.
   */
  private async hereThenOwner(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const here = await this.local(req, p);
    const index = this.pool.ownerOf(req.tid);
    // A dead worker's target lives on in the copy here (what a recovery recreates it from).
    if (here.err !== AdminError.Success || index === undefined || !this.pool.isAlive(index)) return here;
    const there = await this.pool.call(index, req, p.raw);
    if (there.err !== AdminError.Success && (req.op === MgmtOp.Bind || req.op === MgmtOp.Unbind))
      await this.local({ ...req, op: req.op === MgmtOp.Bind ? MgmtOp.Unbind : MgmtOp.Bind }, p);
    return there;
  }

  /** The owner of req.tid answers; without one, the main process does (can't find the target). */
  private toOwner(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const index = this.pool.ownerOf(req.tid);
    return index === undefined ? this.local(req, p) : this.pool.call(index, req, p.raw);
  }

  /** Ask this process, then each worker, until one knows the session (req.sid). */
  private async bySession(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    // A guest's session of a shared target has a nexus here too, but the guest has its counters.
    const guest = this.sharing?.guestOfSession(req.sid);
    if (guest !== undefined) return this.pool.call(guest, req, p.raw);
    const here = await this.local(req, p);
    if (here.err !== AdminError.NoSession) return here;
    for (let i = 0; i < this.pool.size; i++) {
      if (!this.pool.isAlive(i)) continue;
      const r = await this.pool.call(i, req, p.raw);
      if (r.err !== AdminError.NoSession) return r;
    }
    return { err: AdminError.NoSession };
  }

  /**
   * A request on a target served here and shared with workers: changes are made here, then on
   * the copies, with the target's leases revoked meanwhile; views gather the guests' sessions.
   * null: the default routing does (it answers from here).
   */
  private shared(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> | null {
    const change =
      ((req.mode === MgmtMode.Target || req.mode === MgmtMode.Account) &&
        (req.op === MgmtOp.Bind || req.op === MgmtOp.Unbind || req.op === MgmtOp.Update)) ||
      (req.mode === MgmtMode.Device &&
        (req.op === MgmtOp.New || req.op === MgmtOp.Delete || req.op === MgmtOp.Update));
    if (change) return this.hereThenCopies(req, p);
    if (req.mode === MgmtMode.Target && req.op === MgmtOp.Delete) return this.deleteShared(req, p);
    if (
      req.op === MgmtOp.Stats &&
      (req.mode === MgmtMode.Target || req.mode === MgmtMode.Device) &&
      req.sid === 0n
    )
      return this.gatherStats(req, p);
    if (req.mode === MgmtMode.Connection && req.op === MgmtOp.Show) return this.gatherText(req, p);
    if (req.mode === MgmtMode.Connection && req.op === MgmtOp.Delete) return this.bySession(req, p);
    return null;
  }

  private async hereThenCopies(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const sharing = this.sharing!;
    const release = await sharing.home.quiesce(req.tid);
    try {
      const here = await this.local(req, p);
      if (here.err !== AdminError.Success) return here;
      for (const index of sharing.servers(req.tid)) {
        const there = await this.onCopy(index, req, p);
        if (there.err !== AdminError.Success) sharing.copyDiverged(index, req.tid, there.err);
      }
      return here;
    } finally {
      release();
    }
  }

  /**
   * A change made here, made on worker `index`'s copy. The copy counts the commands it sent
   * here as its own until their answers arrive, so an LU delete done here may find it still
   * "active" for a moment: retried for up to COPY_RETRY_MS.
   */
  private async onCopy(index: number, req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const until = Date.now() + COPY_RETRY_MS;
    for (;;) {
      const there = await this.pool.call(index, req, p.raw);
      if (there.err !== AdminError.LunActive || Date.now() >= until) return there;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Here first (which refuses while any session, a guest's too, is logged in), then the copies. */
  private async deleteShared(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const sharing = this.sharing!;
    const holders = sharing.servers(req.tid);
    const here = await this.local(req, p);
    if (here.err !== AdminError.Success) return here;
    sharing.unshare(req.tid);
    for (const index of holders) await this.pool.call(index, { ...req, force: 1 }, p.raw);
    return here;
  }

  /** Stat rows from here, with each guest session's rows from its guest (they count its commands). */
  private async gatherStats(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const here = await this.local(req, p);
    if (here.err !== AdminError.Success || !here.text?.startsWith(STAT_HEADER)) return here;
    const sharing = this.sharing!;
    const rows = here.text
      .slice(STAT_HEADER.length)
      .split('\n')
      .filter(
        (line) =>
          line !== '' && sharing.guestOfSession(BigInt(line.trim().split(/\s+/)[2] ?? '0')) === undefined,
      );
    for (const index of sharing.servers(req.tid)) {
      const there = await this.pool.call(index, req, p.raw);
      if (there.err === AdminError.Success && there.text?.startsWith(STAT_HEADER))
        rows.push(
          ...there.text
            .slice(STAT_HEADER.length)
            .split('\n')
            .filter((line) => line !== ''),
        );
    }
    const lun = (line: string): bigint => BigInt(line.trim().split(/\s+/)[1] ?? '0');
    rows.sort((a, b) => (lun(a) < lun(b) ? -1 : lun(a) > lun(b) ? 1 : 0));
    return ok(STAT_HEADER + rows.map((line) => line + '\n').join(''));
  }

  /** The text from here followed by the guests' (their sessions). */
  private async gatherText(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const here = await this.local(req, p);
    if (here.err !== AdminError.Success) return here;
    let text = here.text ?? '';
    for (const index of this.sharing!.servers(req.tid)) {
      const there = await this.pool.call(index, req, p.raw);
      if (there.err === AdminError.Success) text += there.text ?? '';
    }
    return ok(text);
  }

  /** The request for each target in tid order, asked of its owner, texts joined. */
  private async perTarget(
    req: AdminRequest,
    p: ParsedPayload,
    textOf: (text: string) => string,
  ): Promise<DispatchResult> {
    let out = '';
    for (const t of this.ctx.system.targetsInOrder()) {
      const index = this.pool.ownerOf(t.tid);
      if (index !== undefined && !this.pool.isAlive(index)) continue;
      const one = { ...req, tid: t.tid };
      const r = this.sharing?.isShared(t.tid) ? await this.route(one, p) : await this.toOwner(one, p);
      if (r.err === AdminError.Success) out += textOf(r.text ?? '');
    }
    return ok(out);
  }

  /** `system stat`: every target's `target stat` rows under one header. */
  private async systemStats(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const rows = await this.perTarget({ ...req, mode: MgmtMode.Target, op: MgmtOp.Stats }, p, (text) =>
      text.startsWith(STAT_HEADER) ? text.slice(STAT_HEADER.length) : text,
    );
    return ok(STAT_HEADER + (rows.text ?? ''));
  }

  /** `target show`: each target's block from its owner, in tid order. */
  private async showAllTargets(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const blocks: Array<[number, string]> = [];
    const workers = this.pool.live();
    const answers = [await this.local(req, p), ...(await this.pool.broadcast(req, p.raw))];
    answers.forEach((r, i) => {
      if (r.err !== AdminError.Success || !r.text) return;
      for (const block of r.text.split(/^(?=Target \d+: )/m)) {
        const tid = /^Target (\d+): /.exec(block);
        // Here, the targets this process serves, and those of dead workers (as LU-less copies:
        // they exist until deleted); the others come from their workers.
        // (A worker's copies of targets shared from here are not its own.)
        const owner = tid ? this.pool.ownerOf(Number(tid[1])) : undefined;
        const mine = i === 0 ? !this.servedByLiveWorker(Number(tid?.[1])) : owner === workers[i - 1];
        if (tid && mine) blocks.push([Number(tid[1]), block]);
      }
    });
    blocks.sort((a, b) => a[0] - b[0]);
    return ok(blocks.map(([, block]) => block).join(''));
  }

  /** The dump snapshot: accounts, discovery and this process's targets from here, the others from their owners. */
  private async snapshot(req: AdminRequest, p: ParsedPayload): Promise<DispatchResult> {
    const here = await this.local(req, p);
    if (here.err !== AdminError.Success) return here;
    const merged = JSON.parse(here.text ?? '{}') as ConfigSnapshot;
    const byTid = new Map<number, ConfigSnapshot['targets'][number]>();
    const workers = this.pool.live();
    const answers = await this.pool.broadcast(req, p.raw);
    for (const [i, r] of answers.entries()) {
      if (r.err !== AdminError.Success) return r;
      for (const t of (JSON.parse(r.text ?? '{}') as ConfigSnapshot).targets)
        if (this.pool.ownerOf(t.tid) === workers[i]) byTid.set(t.tid, t);
    }
    merged.targets = merged.targets.map((t) => byTid.get(t.tid) ?? t);
    return ok(JSON.stringify(merged) + '\n');
  }
}

/**
 * Shared set-up of the raw-PDU protocol tests (ERL 1, ERL 2): one tgtd with one memory-backed
 * target, fresh ITTs and LBA regions per command, unique initiator names, and every session
 * they open dropped at the end.
 */
import type { Session } from '../../src/initiator/index.js';
import { TgtDaemon } from './daemon.js';

export class RawRig {
  d!: TgtDaemon;
  /** Sessions to drop when the suite ends. */
  readonly open: Session[] = [];
  private nextItt: number;
  private nextName = 0;
  private lba = 0;

  constructor(
    readonly targetName: string,
    readonly lun: number,
    firstItt: number,
  ) {
    this.nextItt = firstItt;
  }

  /** Start tgtd (with `args`) with the target (16 MiB memory LU) and apply `target update` keys in order. */
  async start(keys: ReadonlyArray<readonly [string, string]>, args: string[] = []): Promise<void> {
    this.d = await TgtDaemon.start({ args });
    await this.d.addTarget({
      tid: 1,
      name: this.targetName,
      luns: [{ lun: this.lun, bstype: 'memory', path: '16M' }],
    });
    for (const [k, v] of keys) await this.d.updateTarget(1, k, v);
  }

  /** Drop every session, then stop tgtd (it must exit cleanly) and remove its files. */
  async stop(): Promise<void> {
    for (const s of this.open) s.destroy();
    try {
      await this.d.stopChecked();
    } finally {
      await this.d.cleanup();
    }
  }

  /** A fresh ITT. */
  itt(): number {
    return this.nextItt++;
  }

  /** A fresh region of the LU (`blocks` long) for each write. */
  region(blocks: number): number {
    const at = this.lba;
    this.lba += blocks;
    return at;
  }

  /** A fresh initiator name under `prefix`. */
  initiatorName(prefix: string): string {
    return `${prefix}-${this.nextName++}`;
  }
}

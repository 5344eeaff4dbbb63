/**
 * What a target's home and its guests tell each other (hooks.ts). Plain data: Uint8Arrays, no
 * classes, so that the messages cross a process boundary (tgtd's IPC channel, 'advanced'
 * serialization) as they are. Nexuses are named by id (iSCSI: the TSIH, unique daemon-wide) and
 * LUs by number.
 */

import { Buffer } from 'node:buffer';

/** A Buffer over received bytes (no copy): messages carry Uint8Arrays, the core takes Buffers. */
export function bufferOf(a: Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** The `seq` of a guest's answer to a revocation for a nexus or LU it does not have: no lease at all. */
export const NO_LEASE_HERE = -1;

/** What a guest needs to run commands under a lease as the home would. */
export interface LuSnapshot {
  /** Capacity in logical blocks and the block size the home sees. */
  blocks: number;
  blockSize: number;
  /** The `readonly` parameter (SWP is in the control page; a read-only store is seen by each). */
  readonly: boolean;
  /** Current values of the caching (08h) and control (0Ah) mode pages; null: the LU has none. */
  caching: Uint8Array | null;
  control: Uint8Array | null;
}

/** A command as the guest's fabric received it, without its data. */
export interface CommandHeader {
  lun: Uint8Array;
  cdb: Uint8Array;
  tag: number;
  attribute: number;
  direction: number;
  expectedReadLength: number;
  expectedWriteLength: number;
}

export type GuestToHome =
  /** A session started on the guest: its I_T nexus. */
  | { t: 'open'; tid: number; nexus: number; initiatorName: string; initiatorPort: string; info: string }
  /** The nexus is gone, and every command it had sent has been answered. */
  | { t: 'close'; tid: number; nexus: number }
  /**
   * A command arrived that will run at home, before its data (SAM-5 8.6: it is an older task
   * for everything that arrives after it); `cmd` with the same id follows once its data is in,
   * or `withdraw` if it ends first.
   */
  | { t: 'announce'; id: number; tid: number; nexus: number; header: CommandHeader }
  /**
   * Run this command at home (it may not run under a lease). `announced`: announced before (if
   * the home has ended it meanwhile, it is dropped: the guest has the answer already).
   */
  | {
      t: 'cmd';
      id: number;
      tid: number;
      nexus: number;
      header: CommandHeader;
      data: Uint8Array | null;
      announced: boolean;
    }
  /** An announced command ended in the guest before its data came (its fabric ended it). */
  | { t: 'withdraw'; id: number }
  /** Task management asked the guest's copy of command `id` to end: abort it if it still waits. */
  | { t: 'abort'; id: number }
  /** Task management the home carries out for the guest's nexus. */
  | { t: 'tmf'; id: number; tid: number; nexus: number; fn: number; lun: Uint8Array; refTag: number }
  /** May the nexus run commands on LU `lun` under a lease? */
  | { t: 'lease'; tid: number; nexus: number; lun: number }
  /**
   * The guest runs nothing on the LU under lease `seq` any more (none of those commands is
   * still running); `revoke` answers that revocation (0: the guest gave the lease up itself).
   * `aborted`: commands it held waiting were ended (revocations with abort).
   */
  | { t: 'released'; tid: number; nexus: number; lun: number; seq: number; revoke: number; aborted: boolean };

export type HomeToGuest =
  /** Command `id` ended: its status, sense and Data-In as the home's device server produced them. */
  | {
      t: 'done';
      id: number;
      status: number;
      sense: Uint8Array | null;
      data: Uint8Array | null;
      dataInLength: number;
      writeTransferLength: number;
      aborted: boolean;
    }
  | { t: 'tmf-done'; id: number; result: number; additionalInfo: number }
  /** The nexus may run commands on the LU under lease `seq` until it is revoked. */
  | { t: 'grant'; tid: number; nexus: number; lun: number; seq: number; snapshot: LuSnapshot }
  | { t: 'deny'; tid: number; nexus: number; lun: number }
  /**
   * Stop running commands on the LU under a lease, and answer `released` once none is running.
   * `abort`: also end the commands the nexus holds waiting on the LU (task management), as if
   * `issuer` (a nexus id, 0 none) had asked; `snapshot` is the LU as it is now (TAS).
   */
  | {
      t: 'revoke';
      id: number;
      tid: number;
      nexus: number;
      lun: number;
      abort: boolean;
      issuer: number;
      snapshot: LuSnapshot;
    };

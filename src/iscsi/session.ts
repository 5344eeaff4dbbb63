/**
 * An iSCSI session (RFC 7143 3.4): the initiator/target pair identified by ISID + TSIH, its
 * negotiated parameters, its connections, the session-wide CmdSN window, and the SCSI I_T
 * nexus it maps to (none for discovery sessions).
 */
import type { ItNexus } from '../scsi/nexus.js';
import type { ScsiTarget } from '../scsi/target.js';
import { CmdSnWindow } from './cmdsn.js';
import type { NegotiatedParams } from './negotiate.js';
import type { IscsiConnection } from './connection.js';

export class IscsiSession {
  readonly connections = new Set<IscsiConnection>();
  readonly window: CmdSnWindow;
  private closed = false;
  /**
   * Resolves once the commands this session had handed to the SCSI core have finished (they run
   * on after the session closes: a write already in the store cannot be called back).
   */
  drained: Promise<void> = Promise.resolve();

  constructor(
    readonly tsih: number,
    /** ISID as 12 hex digits (with InitiatorName, the session's identity for reinstatement). */
    readonly isid: string,
    readonly initiatorName: string,
    readonly initiatorAlias: string | undefined,
    /** Null for a discovery session. */
    readonly target: ScsiTarget | null,
    readonly nexus: ItNexus | null,
    readonly params: NegotiatedParams,
    initialCmdSn: number,
  ) {
    this.window = new CmdSnWindow(initialCmdSn, params.maxQueueCmd);
  }

  get isDiscovery(): boolean {
    return this.target === null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * End the session: close every connection and the I_T nexus (which aborts what is still
   * queued in the core and releases SPC-2 reservations). Idempotent.
   */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.window.clear();
    for (const conn of [...this.connections]) conn.close(reason);
    if (this.nexus) this.drained = this.nexus.close();
  }

  /** A connection of this session went away; the session ends with its last connection (ERL 0). */
  connectionClosed(conn: IscsiConnection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0) this.close('last connection closed');
  }
}

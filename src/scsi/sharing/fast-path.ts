/**
 * Which commands of a shared target run where (hooks.ts).
 *
 * A guest runs READ, WRITE, SYNCHRONIZE CACHE and TEST UNIT READY itself, with the SIMPLE task
 * attribute, while the home has leased it the LU: they move data between its own descriptor of
 * the backing file and the wire, and neither change nor depend on state shared between nexuses
 * beyond what the lease vouches for (no unit attention pending, no reservation, no sanitize).
 * Everything else goes to the home.
 *
 * The home runs those and the commands that only report state (INQUIRY, READ CAPACITY, MODE
 * SENSE...) while leases are out; any other command first revokes every lease on its LU (and
 * the guests drain what they run under them), so that it sees, and is seen by, every command
 * of every process in task set order: reservations, mode changes, ORDERED and HEAD OF QUEUE
 * tasks, COMPARE AND WRITE, UNMAP.
 */
import { TaskAttribute, type ScsiCommand } from '../command.js';
import { Op } from '../cdb.js';
import type { LogicalUnit } from '../lu.js';

const LEASED = new Uint8Array(256);
for (const op of [
  Op.Read6,
  Op.Read10,
  Op.Read12,
  Op.Read16,
  Op.Write6,
  Op.Write10,
  Op.Write12,
  Op.Write16,
  Op.SyncCache10,
  Op.SyncCache16,
  Op.TestUnitReady,
])
  LEASED[op] = 1;

const ALONGSIDE = LEASED.slice();
for (const op of [
  Op.Inquiry,
  Op.RequestSense,
  Op.ReadCapacity10,
  Op.ServiceActionIn16, // READ CAPACITY(16), GET LBA STATUS (see SharingHome's grant)
  Op.ModeSense6,
  Op.ModeSense10,
  Op.ReportLuns,
  Op.PersistentReserveIn,
  Op.MaintenanceIn,
  Op.Verify10,
  Op.Verify12,
  Op.Verify16,
  Op.ReadDefectData10,
  Op.ReadDefectData12,
  Op.PreFetch10,
  Op.PreFetch16,
])
  ALONGSIDE[op] = 1;

/** A guest may run `cmd` itself under a lease. */
export function runsUnderLease(cmd: ScsiCommand): boolean {
  return cmd.attribute === TaskAttribute.Simple && LEASED[cmd.cdb[0]!] === 1;
}

/** The home may run `cmd` while guests hold leases on its LU. */
export function runsAlongsideLeases(cmd: ScsiCommand): boolean {
  return cmd.attribute === TaskAttribute.Simple && ALONGSIDE[cmd.cdb[0]!] === 1;
}

/** Stores that two processes can open at once and see each other's writes in (the page cache). */
const SHAREABLE_STORES = new Set(['rdwr', 'null']);

/** Whether guests may be leased `lu`: a disk on a file or device (not on a process's memory). */
export function leasable(lu: LogicalUnit): boolean {
  return lu.deviceType.name === 'disk' && SHAREABLE_STORES.has(lu.backing.storeType) && lu.store !== null;
}

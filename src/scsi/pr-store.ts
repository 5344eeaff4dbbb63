/**
 * APTPL storage (SPC-4 5.13.5): one JSON file per LU holding its persistent reservation state,
 * written atomically and durably (temporary file, fsync, rename, fsync of the directory) with
 * mode 0600 in a directory of mode 0700, and read back when the LU is created at tgtd's next start.
 *
 * The file is named after the target's iSCSI name and the LUN, so the state follows the LU's
 * configuration, not its backing file. Reads happen at LU creation only; writes are serialised
 * per file and never block the event loop.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { encodeIscsiTransportId, isPrType, type PrPersistence, type PrSnapshot } from './pr.js';

/** A saved state that cannot be used (corrupt, foreign or unreadable). */
export class PrStateError extends Error {
  override name = 'PrStateError';
}

/** Format version written in every file. */
const VERSION = 1;

/** The file holding the PR state of LUN `lun` of target `targetName` under `dir`. */
export function prStatePath(dir: string, targetName: string, lun: bigint): string {
  // target names are [A-Za-z0-9:.-] (validated at target creation); escape anything else anyway
  const safe = targetName.replace(/[^A-Za-z0-9:.-]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
  return join(dir, `pr-${safe}-lun${lun}.json`);
}

/** Serialise a state (keys as hex, TransportIDs as hex for tools reading the file). */
export function encodePrState(state: PrSnapshot, targetName: string, lun: bigint): string {
  const doc = {
    version: VERSION,
    target: targetName,
    lun: lun.toString(),
    generation: state.generation,
    aptpl: state.aptpl,
    type: state.type,
    holder: state.holder,
    registrations: state.registrations.map((r) => ({
      port: r.port,
      key: `0x${r.key.toString(16)}`,
      allTargetPorts: r.allTargetPorts,
      transportId: encodeIscsiTransportId(r.port).toString('hex'),
    })),
  };
  return JSON.stringify(doc, null, 1) + '\n';
}

/** Parse and check a saved state; throws PrStateError when it is not one of ours for this LU. */
export function decodePrState(text: string, targetName: string, lun: bigint): PrSnapshot {
  const bad = (why: string): PrStateError => new PrStateError(`invalid PR state: ${why}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (typeof doc !== 'object' || doc === null) throw bad('not an object');
  const d = doc as Record<string, unknown>;
  if (d.version !== VERSION) throw bad(`version ${String(d.version)}`);
  if (d.target !== targetName || d.lun !== lun.toString()) throw bad('saved for another LU');
  const generation = d.generation;
  if (
    typeof generation !== 'number' ||
    !Number.isInteger(generation) ||
    generation < 0 ||
    generation > 0xffffffff
  )
    throw bad('generation');
  if (typeof d.aptpl !== 'boolean') throw bad('aptpl');
  const type = d.type;
  if (type !== null && (typeof type !== 'number' || !isPrType(type))) throw bad('type');
  if (d.holder !== null && typeof d.holder !== 'string') throw bad('holder');
  if (!Array.isArray(d.registrations)) throw bad('registrations');
  const registrations = (d.registrations as unknown[]).map((r) => {
    if (typeof r !== 'object' || r === null) throw bad('registration');
    const { port, key, allTargetPorts } = r as Record<string, unknown>;
    if (typeof port !== 'string' || port === '') throw bad('registration port');
    if (typeof key !== 'string' || !/^0x[0-9a-f]{1,16}$/.test(key) || BigInt(key) === 0n)
      throw bad('registration key');
    if (typeof allTargetPorts !== 'boolean') throw bad('registration allTargetPorts');
    return { port, key: BigInt(key), allTargetPorts };
  });
  return { generation, aptpl: d.aptpl, type, holder: d.holder, registrations };
}

/** Write `text` to `path` atomically and durably, mode 0600. */
async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.chmod(0o600); // an old temporary file keeps its mode through open(..., 'w')
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

/** fsync a directory so a rename or unlink in it is durable. */
async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** The APTPL file of one LU: `load()` at creation, `save()` after every change. */
export class PrStateFile implements PrPersistence {
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly targetName: string,
    private readonly lun: bigint,
  ) {}

  /** The saved state, or null when there is none; PrStateError when it is unusable. */
  async load(): Promise<PrSnapshot | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new PrStateError(`can't read ${this.path}: ${(e as Error).message}`);
    }
    try {
      return decodePrState(text, this.targetName, this.lun);
    } catch (e) {
      throw new PrStateError(`${this.path}: ${(e as Error).message}`);
    }
  }

  /** Write `state` (null: remove the file) after any write in progress; resolves when durable. */
  save(state: PrSnapshot | null): Promise<void> {
    const text = state === null ? null : encodePrState(state, this.targetName, this.lun);
    const next = this.chain.then(() => (text === null ? this.remove() : this.write(text)));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async write(text: string): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.path, text);
  }

  private async remove(): Promise<void> {
    await rm(this.path, { force: true });
    await syncDir(dirname(this.path)).catch(() => undefined);
  }
}

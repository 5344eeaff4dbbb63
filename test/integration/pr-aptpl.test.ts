/**
 * SPC-4 5.13.5 APTPL through a real tgtd: an initiator registers with APTPL=1 and reserves, tgtd
 * is stopped (SIGTERM) and started again with the same --state; the key, the reservation and the
 * conflict for another initiator are still there. The PR state lives next to the --state file.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Session } from '../../src/initiator/index.js';
import { TgtDaemon } from '../helpers/daemon.js';
import { BLOCK, clearUnitAttention, closeSession, GOOD, IQN, login } from './util.js';

const TARGET = `${IQN}:pr-aptpl`;
const HOLDER = `${IQN}:pr-holder`;
const OTHER = `${IQN}:pr-other`;
const HOLDER_ISID = Buffer.from([0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);
const RESERVATION_CONFLICT = 0x18;
const WRITE_EXCLUSIVE = 0x1;
const LUN = 1;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tgt-ts-pr-aptpl-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** PERSISTENT RESERVE OUT with the basic 24-byte parameter list. */
function prOut(
  s: Session,
  action: number,
  p: { key?: bigint; sark?: bigint; type?: number; aptpl?: boolean },
) {
  const list = Buffer.alloc(24);
  list.writeBigUInt64BE(p.key ?? 0n, 0);
  list.writeBigUInt64BE(p.sark ?? 0n, 8);
  list[20] = p.aptpl ? 0x01 : 0;
  const cdb = Buffer.from([0x5f, action, p.type ?? 0, 0, 0, 0, 0, 0, 24, 0]);
  return s.command({ lun: LUN, cdb, dataOut: list });
}

/** PERSISTENT RESERVE IN. */
function prIn(s: Session, action: number) {
  return s.command({
    lun: LUN,
    cdb: Buffer.from([0x5e, action, 0, 0, 0, 0, 0, 0x04, 0, 0]),
    readLength: 1024,
  });
}

/** Start tgtd with the shared --state file (it restores the target and LU on the second start). */
function startDaemon(): Promise<TgtDaemon> {
  return TgtDaemon.start({ args: ['--state', join(dir, 'state.json')] });
}

async function session(d: TgtDaemon, initiatorName: string, isid?: Buffer): Promise<Session> {
  const s = await login(d, TARGET, { initiatorName, ...(isid ? { isid } : {}) });
  await clearUnitAttention(s, LUN);
  return s;
}

test('spc4 5.13.5 APTPL: registration and reservation survive a tgtd restart; another initiator still conflicts', async () => {
  const a = await startDaemon();
  let b: TgtDaemon | undefined;
  try {
    await a.addTarget({ tid: 1, name: TARGET, luns: [{ lun: LUN, path: await sparseDisk() }] });
    const holder = await session(a, HOLDER, HOLDER_ISID);
    // SPC-4 6.15.4: PTPL_C is reported once tgtd has somewhere to keep the state
    assert.equal((await prIn(holder, 2)).data[2]! & 0x01, 0x01, 'PTPL_C');
    assert.equal((await prOut(holder, 0, { sark: 0xfeedn, aptpl: true })).status, GOOD);
    assert.equal((await prOut(holder, 1, { key: 0xfeedn, type: WRITE_EXCLUSIVE })).status, GOOD);
    await closeSession(holder);
    await a.stopChecked();

    b = await startDaemon();
    const again = await session(b, HOLDER, HOLDER_ISID);
    const keys = await prIn(again, 0);
    assert.equal(keys.status, GOOD);
    assert.equal(keys.data.readUInt32BE(4), 8);
    assert.equal(keys.data.readBigUInt64BE(8), 0xfeedn);
    const res = (await prIn(again, 1)).data;
    assert.equal(res.readUInt32BE(4), 16, 'still reserved');
    assert.equal(res.readBigUInt64BE(8), 0xfeedn);
    assert.equal(res[21]! & 0x0f, WRITE_EXCLUSIVE);
    assert.equal((await prIn(again, 2)).data[3]! & 0x01, 0x01, 'PTPL_A');

    const other = await session(b, OTHER);
    const data = Buffer.alloc(BLOCK, 0x5a);
    assert.equal((await other.write10(LUN, 0, data, BLOCK)).status, RESERVATION_CONFLICT);
    assert.equal((await again.write10(LUN, 0, data, BLOCK)).status, GOOD);
    await closeSession(other);
    await closeSession(again);
    await b.stopChecked();
  } finally {
    await a.cleanup();
    await b?.cleanup();
  }
});

/** An 8 MiB sparse backing file that outlives the first daemon's temp dir. */
async function sparseDisk(): Promise<string> {
  const path = join(dir, 'disk.img');
  const fh = await open(path, 'w');
  try {
    await fh.truncate(8 << 20);
  } finally {
    await fh.close();
  }
  return path;
}

/**
 * Multi-connection sessions (issue 5 item 4, RFC 7143 3.2.3, 4.2.2.1, 5.3.2, 11.14): up to
 * MaxConnections=8 connections in one session, one CmdSN space for all of them, each response on
 * the connection that carried its command (connection allegiance), and connections leaving
 * (logout, drop) and joining while I/O runs on the others.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginFailedError, type Session } from '../../../../src/initiator/index.js';
import { read10Cdb, write10Cdb } from '../../../../src/initiator/cdb.js';
import {
  bhsItt,
  bhsOpcode,
  DataInView,
  encodeLogoutRequest,
  LogoutResponseView,
  RejectView,
  ScsiResponseView,
} from '../../../../src/iscsi/pdu.js';
import {
  BHS_LENGTH,
  LoginStatus,
  LogoutReason,
  LogoutResponse,
  Opcode,
  RejectReason,
} from '../../../../src/iscsi/spec.js';
import { nextPdu, pattern, sendRawCommand } from '../../../integration/util.js';
import { BLOCK, LUN, startFabric, type FabricHarness } from './harness.js';

const ISID = Buffer.from([0x80, 0x00, 0x00, 0x00, 0x4d, 0x43]);
const NAME = 'iqn.2026-01.org.tgt-ts.unit:mcs';

/** A session's connections sharing one CmdSN counter (the initiator side of RFC 7143 4.2.2.1). */
class McsSession {
  readonly conns = new Map<number, Session>();
  cmdSN = 1;
  tsih = 0;
  private itt = 0x100;

  constructor(private readonly f: FabricHarness) {}

  async add(cid: number): Promise<Session> {
    const s = await this.f.login({
      initiatorName: NAME,
      isid: ISID,
      cid,
      ...(this.tsih ? { tsih: this.tsih } : {}),
      initialCmdSN: this.cmdSN,
      proposals: { maxConnections: 8 },
    });
    if (!this.tsih) {
      this.tsih = s.tsih;
      this.cmdSN = s.cmdSN;
      // The leading connection clears the power-on unit attention.
      await s.testUnitReady(LUN);
      this.cmdSN = s.cmdSN;
    }
    s.setRawMode(true);
    this.conns.set(cid, s);
    return s;
  }

  /** One command on connection `cid`; resolves with its status and Data-In, all on that connection. */
  async run(
    cid: number,
    o: { write?: Buffer; readBlocks?: number; lba: number },
  ): Promise<{ status: number; data: Buffer }> {
    const s = this.conns.get(cid)!;
    const itt = this.itt++;
    const cmdSN = this.cmdSN;
    this.cmdSN = (this.cmdSN + 1) >>> 0;
    if (o.write) {
      sendRawCommand(s, {
        itt,
        lun: LUN,
        cdb: write10Cdb(o.lba, o.write.length / BLOCK),
        write: true,
        edtl: o.write.length,
        data: o.write,
        cmdSN,
      });
    } else {
      const n = o.readBlocks ?? 1;
      sendRawCommand(s, { itt, lun: LUN, cdb: read10Cdb(o.lba, n), read: true, edtl: n * BLOCK, cmdSN });
    }
    const chunks: Buffer[] = [];
    for (;;) {
      const p = await s.receivePdu(5000);
      // Connection allegiance: nothing for another connection's command arrives here.
      assert.equal(bhsItt(p.bhs), itt, `connection ${cid}: PDU for ITT 0x${bhsItt(p.bhs).toString(16)}`);
      const op = bhsOpcode(p.bhs);
      if (op === Opcode.DataIn) {
        chunks.push(Buffer.from(p.data));
        const v = new DataInView(p.bhs);
        if (v.statusPresent) return { status: v.status, data: Buffer.concat(chunks) };
      } else {
        assert.equal(op, Opcode.ScsiResponse);
        return { status: new ScsiResponseView(p.bhs).status, data: Buffer.concat(chunks) };
      }
    }
  }
}

async function withMcs(fn: (m: McsSession, f: FabricHarness) => Promise<void>): Promise<void> {
  const f = await startFabric();
  try {
    assert.equal(f.driver.targetUpdate(f.system.targets.get(1)!, 'MaxConnections', '8'), 0);
    await fn(new McsSession(f), f);
  } finally {
    await f.close();
  }
}

test('rfc7143 11.12.6 / 13.2: eight connections join one session; a ninth gets 0x0206', async () => {
  await withMcs(async (m, f) => {
    for (let cid = 0; cid < 8; cid++) await m.add(cid);
    const session = f.driver.sessions.get(m.tsih)!;
    assert.equal(session.connections.size, 8);
    assert.equal(session.params.maxConnections, 8);
    await assert.rejects(
      m.add(8),
      (e: unknown) => e instanceof LoginFailedError && e.status === LoginStatus.TooManyConnections,
    );
    assert.equal(f.driver.sessions.size, 1, 'one session');
  });
});

test('rfc7143 4.2.2.1 / 5.3.2: one CmdSN space across connections; every response on its own connection', async () => {
  await withMcs(async (m) => {
    for (let cid = 0; cid < 4; cid++) await m.add(cid);
    // Concurrent verified I/O: each connection writes its own region, another connection reads it.
    await Promise.all(
      [0, 1, 2, 3].map(async (cid) => {
        for (let i = 0; i < 20; i++) {
          const lba = cid * 1000 + i * 8;
          const data = pattern(8 * BLOCK, cid * 100 + i);
          assert.equal((await m.run(cid, { write: data, lba })).status, 0);
        }
      }),
    );
    await Promise.all(
      [0, 1, 2, 3].map(async (cid) => {
        const from = (cid + 1) % 4;
        for (let i = 0; i < 20; i++) {
          const r = await m.run(cid, { lba: from * 1000 + i * 8, readBlocks: 8 });
          assert.equal(r.status, 0);
          assert.ok(
            r.data.equals(pattern(8 * BLOCK, from * 100 + i)),
            `connection ${cid} reads ${from}'s block ${i}`,
          );
        }
      }),
    );
  });
});

test('rfc7143 4.2.2.1: a command ahead of a CmdSN gap on one connection waits for the gap filled on another', async () => {
  await withMcs(async (m) => {
    const a = await m.add(0);
    const b = await m.add(1);
    const first = m.cmdSN;
    m.cmdSN = (first + 2) >>> 0;
    sendRawCommand(b, {
      itt: 0x900,
      lun: LUN,
      cdb: read10Cdb(0, 1),
      read: true,
      edtl: BLOCK,
      cmdSN: (first + 1) >>> 0,
    });
    assert.equal(await nextPdu(b, 300), undefined, 'executed before CmdSN N arrived');
    sendRawCommand(a, { itt: 0x901, lun: LUN, cdb: read10Cdb(0, 1), read: true, edtl: BLOCK, cmdSN: first });
    const pa = await a.receivePdu(3000);
    const pb = await b.receivePdu(3000);
    assert.equal(bhsItt(pa.bhs), 0x901);
    assert.equal(bhsItt(pb.bhs), 0x900);
    // 11.2.1.8: ITTs are unique session-wide: a second command with an outstanding ITT on another
    // connection is rejected.
    sendRawCommand(a, {
      itt: 0x902,
      lun: LUN,
      cdb: write10Cdb(0, 1),
      write: true,
      edtl: BLOCK,
      cmdSN: m.cmdSN,
    });
    m.cmdSN = (m.cmdSN + 1) >>> 0;
    assert.equal(bhsOpcode((await a.receivePdu(3000)).bhs), Opcode.R2T, 'the write waits for its data');
    sendRawCommand(b, {
      itt: 0x902,
      lun: LUN,
      cdb: read10Cdb(0, 1),
      read: true,
      edtl: BLOCK,
      cmdSN: m.cmdSN,
    });
    const reject = await b.receivePdu(3000);
    assert.equal(bhsOpcode(reject.bhs), Opcode.Reject);
    assert.equal(new RejectView(reject.bhs).reason, RejectReason.InvalidPduField);
  });
});

test('rfc7143 11.14: a connection logs out and another joins while I/O runs on the others; the session carries on', async () => {
  await withMcs(async (m, f) => {
    for (let cid = 0; cid < 3; cid++) await m.add(cid);
    let stop = false;
    const load = [0, 1].map(async (cid) => {
      let i = 0;
      while (!stop) {
        const lba = 5000 + cid * 512 + (i % 64) * 8;
        const data = pattern(8 * BLOCK, 7000 + cid * 1000 + i);
        assert.equal((await m.run(cid, { write: data, lba })).status, 0);
        const r = await m.run(cid, { lba, readBlocks: 8 });
        assert.ok(r.data.equals(data), `connection ${cid} iteration ${i}`);
        i++;
      }
      return i;
    });
    await new Promise((r) => setTimeout(r, 100));
    // Connection 2 logs out (reason 1: close the connection).
    const leaving = m.conns.get(2)!;
    leaving.setRawMode(false);
    leaving.cmdSN = m.cmdSN;
    assert.equal(await leaving.logout(LogoutReason.CloseConnection), LogoutResponse.Success);
    m.conns.delete(2);
    assert.ok(f.driver.sessions.get(m.tsih), 'the session survives a connection logout');
    // Connection 3 joins, works, then is dropped without logout.
    await m.add(3);
    assert.equal((await m.run(3, { lba: 9000, write: pattern(BLOCK, 9) })).status, 0);
    m.conns.get(3)!.destroy();
    await new Promise((r) => setTimeout(r, 100));
    stop = true;
    const iterations = await Promise.all(load);
    assert.ok(iterations.every((n) => n > 0));
    const session = f.driver.sessions.get(m.tsih)!;
    assert.equal(session.connections.size, 2, 'connections 0 and 1 remain');
    assert.equal((await m.run(1, { lba: 9000, readBlocks: 1 })).data.equals(pattern(BLOCK, 9)), true);
  });
});

test('rfc7143 11.14.1 reason 1 / 11.15.1: a Logout naming another connection closes that one and is answered on this one; an unknown CID -> 1 CID not found', async () => {
  await withMcs(async (m, f) => {
    for (let cid = 0; cid < 3; cid++) await m.add(cid);
    const s0 = m.conns.get(0)!;
    const logout = async (cid: number, itt: number): Promise<number> => {
      s0.sendPdu(
        encodeLogoutRequest(Buffer.alloc(BHS_LENGTH), {
          itt,
          reasonCode: LogoutReason.CloseConnection,
          cid,
          cmdSN: m.cmdSN,
          expStatSN: s0.expStatSN,
          immediate: true,
        }),
      );
      for (;;) {
        const p = await s0.receivePdu(5000);
        if (bhsOpcode(p.bhs) === Opcode.LogoutResponse && bhsItt(p.bhs) === itt) {
          return new LogoutResponseView(p.bhs).response;
        }
      }
    };
    assert.equal(await logout(7, 0x7001), LogoutResponse.CidNotFound, 'no connection 7 in the session');
    assert.equal(await logout(2, 0x7002), LogoutResponse.Success);
    await new Promise((r) => setTimeout(r, 100));
    const session = f.driver.sessions.get(m.tsih)!;
    assert.deepEqual([...session.connections].map((c) => c.cid).sort(), [0, 1], 'connection 2 is gone');
    assert.equal(m.conns.get(2)!.state, 'closed', 'the target closed connection 2');
    m.conns.delete(2);
    // The connection that sent the Logout is still in full feature phase.
    assert.equal((await m.run(0, { lba: 100, write: pattern(BLOCK, 3) })).status, 0);
    assert.ok((await m.run(1, { lba: 100, readBlocks: 1 })).data.equals(pattern(BLOCK, 3)));
  });
});

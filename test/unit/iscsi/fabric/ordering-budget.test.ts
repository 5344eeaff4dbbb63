/**
 * The Data-Out budget (limits.ts) and the task set's ordering together (SAM-5 8.6, RFC 7143
 * 3.2.2.1): a command announced to its LU before its data is in must get its budget even while
 * younger commands, whose data is in and which wait for it in the task set, hold the
 * connection's bytes; otherwise neither would ever run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Session } from '../../../../src/initiator/index.js';
import { write10Cdb } from '../../../../src/initiator/cdb.js';
import { bhsItt, bhsOpcode, R2TView, ScsiResponseView } from '../../../../src/iscsi/pdu.js';
import { Opcode, RESERVED_TAG, TaskAttr } from '../../../../src/iscsi/spec.js';
import { nextPdu, opName, sendRawCommand, sendRawDataOut } from '../../../integration/util.js';
import { BLOCK, LUN, startFabric } from './harness.js';

const BURST = 64 * 1024;
const SEGMENT = 8192;

/** A WRITE(10) command PDU with `attr`, its first `immediate` bytes of `data` as immediate data. */
function write(
  s: Session,
  o: { itt: number; attr: TaskAttr; lba: number; data: Buffer; immediate: number; final: boolean },
): void {
  sendRawCommand(s, {
    itt: o.itt,
    lun: LUN,
    attr: o.attr,
    write: true,
    final: o.final,
    edtl: o.data.length,
    cdb: write10Cdb(o.lba, o.data.length / BLOCK),
    data: o.data.subarray(0, o.immediate),
  });
}

async function expectPdu(s: Session, op: Opcode, itt: number, what: string) {
  const p = await nextPdu(s, 3000);
  assert.ok(p, `${what}: nothing received (deadlock?)`);
  assert.equal(bhsOpcode(p.bhs), op, `${what}: got ${opName(p)}`);
  assert.equal(bhsItt(p.bhs), itt, `${what}: got ${opName(p)}`);
  return p;
}

test('sam5 8.6 + limits: an older SIMPLE write still receiving unsolicited data gets its budget though a younger ORDERED write waiting for it fills the connection', async () => {
  // The connection may hold two bursts: W1's unsolicited burst plus W2's whole data fill it.
  const f = await startFabric({ maxDataOutBytesPerConnection: 2 * BURST });
  try {
    f.driver.targetUpdate(f.system.targets.get(1)!, 'InitialR2T', 'No');
    const s = await f.login({
      proposals: { initialR2T: false, immediateData: true, firstBurstLength: BURST, maxBurstLength: BURST },
    });
    await s.testUnitReady(LUN); // power-on UA
    s.setRawMode(true);
    assert.equal(s.params.initialR2T, false);

    const w1 = Buffer.alloc(2 * BURST, 0x11);
    const w2 = Buffer.alloc(BURST, 0x22);
    // W1: SIMPLE, two bursts: immediate data, unsolicited Data-Out held back, then an R2T.
    write(s, { itt: 1, attr: TaskAttr.Simple, lba: 0, data: w1, immediate: SEGMENT, final: false });
    // W2: ORDERED, all its data unsolicited: complete at once, it must wait for W1.
    write(s, { itt: 2, attr: TaskAttr.Ordered, lba: 1024, data: w2, immediate: SEGMENT, final: false });
    sendRawDataOut(s, {
      itt: 2,
      lun: LUN,
      ttt: RESERVED_TAG,
      data: w2,
      from: SEGMENT,
      to: BURST,
      segment: SEGMENT,
    });
    assert.equal(await nextPdu(s, 300), undefined, 'W2 ran before the older W1');

    sendRawDataOut(s, {
      itt: 1,
      lun: LUN,
      ttt: RESERVED_TAG,
      data: w1,
      from: SEGMENT,
      to: BURST,
      segment: SEGMENT,
    });
    const r2t = new R2TView((await expectPdu(s, Opcode.R2T, 1, 'R2T for W1')).bhs);
    assert.equal(r2t.bufferOffset, BURST);
    sendRawDataOut(s, {
      itt: 1,
      lun: LUN,
      ttt: r2t.ttt,
      data: w1,
      from: BURST,
      to: 2 * BURST,
      segment: SEGMENT,
    });
    const first = await expectPdu(s, Opcode.ScsiResponse, 1, 'W1 answered first');
    assert.equal(new ScsiResponseView(first.bhs).status, 0);
    const second = await expectPdu(s, Opcode.ScsiResponse, 2, 'then W2');
    assert.equal(new ScsiResponseView(second.bhs).status, 0);
    for (let i = 0; i < 20 && f.driver.dataOutBudget.used !== 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(f.driver.dataOutBudget.used, 0, 'all budget given back');
  } finally {
    await f.close();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocatePduData } from '../../../src/iscsi/payload-buffers.js';
import { acquireBuffer, idleBufferCounts, releaseBuffer } from '../../../src/scsi/buffer-pool.js';
import { encodeDataOut, encodeNopOut } from '../../../src/iscsi/pdu.js';
import { BHS_LENGTH } from '../../../src/iscsi/spec.js';

const dataOut = encodeDataOut(Buffer.alloc(BHS_LENGTH), {
  itt: 1,
  ttt: 2,
  final: true,
  dataSN: 0,
  bufferOffset: 0,
  expStatSN: 1,
});
const nopOut = encodeNopOut(Buffer.alloc(BHS_LENGTH), { itt: 1, ttt: 0xffffffff, cmdSN: 1, expStatSN: 1 });

/** Idle 4 KiB buffers in the pool, after making sure there is at least one. */
function idle4k(): number {
  releaseBuffer(acquireBuffer(4096));
  return idleBufferCounts()[0]!;
}

test('payload buffers: a 4 KiB Data-Out segment is received into a pooled buffer', () => {
  const before = idle4k();
  const buf = allocatePduData(4096, dataOut);
  assert.equal(buf.length, 4096);
  assert.equal(idleBufferCounts()[0], before - 1, 'taken from the pool');
  releaseBuffer(buf);
});

test('payload buffers: a tiny Data-Out segment takes no 4 KiB pooled buffer (memory held stays near the bytes received)', () => {
  const before = idle4k();
  const tiny = allocatePduData(1, dataOut);
  assert.equal(tiny.length, 1);
  assert.equal(idleBufferCounts()[0], before, 'the pool was not drawn from');
});

test('payload buffers: non-SCSI PDUs (NOP-Out ping data) never take pooled buffers', () => {
  const before = idle4k();
  assert.equal(allocatePduData(4096, nopOut).length, 4096);
  assert.equal(idleBufferCounts()[0], before);
});

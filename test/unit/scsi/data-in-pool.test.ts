import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataDirection, ScsiCommand, TaskAttribute } from '../../../src/scsi/command.js';
import { acquireDataIn } from '../../../src/scsi/device/block-io.js';

function readCommand(length: number): ScsiCommand {
  return new ScsiCommand(
    {
      cdb: Buffer.alloc(16),
      lun: Buffer.alloc(8),
      tag: 1,
      attribute: TaskAttribute.Simple,
      direction: DataDirection.Read,
      expectedReadLength: length,
      expectedWriteLength: 0,
    },
    () => {},
  );
}

test('data path: a released Data-In buffer is reused by the next READ of its size class', () => {
  const first = readCommand(4096);
  first.dataIn = acquireDataIn(first, 4096);
  const memory = first.dataIn.buffer;
  first.releaseBuffers();
  assert.equal(first.dataIn, null, 'the command forgets the buffer it gave back');
  const second = readCommand(3000);
  second.dataIn = acquireDataIn(second, 3000);
  assert.equal(second.dataIn.length, 3000);
  assert.equal(second.dataIn.buffer, memory);
});

test('data path: releasing twice gives the buffer back once (no two READs share it)', () => {
  const cmd = readCommand(8192);
  cmd.dataIn = acquireDataIn(cmd, 8192);
  cmd.releaseBuffers();
  cmd.releaseBuffers();
  const a = readCommand(8192);
  const b = readCommand(8192);
  a.dataIn = acquireDataIn(a, 8192);
  b.dataIn = acquireDataIn(b, 8192);
  assert.notEqual(a.dataIn.buffer, b.dataIn.buffer);
});

test('data path: a buffer still held by the fabric is never handed to another READ', () => {
  const held = readCommand(4096);
  held.dataIn = acquireDataIn(held, 4096);
  const other = readCommand(4096);
  other.dataIn = acquireDataIn(other, 4096);
  assert.notEqual(held.dataIn.buffer, other.dataIn.buffer);
});

test('data path: READs above 256 KiB are not pooled and need no release', () => {
  const cmd = readCommand(512 * 1024);
  cmd.dataIn = acquireDataIn(cmd, 512 * 1024);
  assert.equal(cmd.onRelease, null);
  assert.equal(cmd.dataIn.length, 512 * 1024);
});

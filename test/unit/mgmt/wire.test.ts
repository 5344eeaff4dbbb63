import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planTgtadm } from '../../../src/mgmt/tgtadm-cli.js';
import {
  LUN_NOT_GIVEN,
  MgmtMode,
  MgmtOp,
  REQ_HEADER_SIZE,
  decodeRequestHeader,
  decodeResponseHeader,
  defaultRequest,
  encodeRequest,
  encodeResponse,
  parsePayload,
  payloadText,
} from '../../../src/mgmt/wire.js';
import { REQUESTS } from './tgt-fixtures.js';

for (const [name, fx] of Object.entries(REQUESTS)) {
  test(`tgt §2.1: our tgtadm sends the same bytes as Debian's tgtadm (${name})`, () => {
    const plan = planTgtadm(fx.args);
    assert.equal(plan.kind, 'request');
    if (plan.kind !== 'request') return;
    assert.equal(encodeRequest(plan.req, plan.payload).toString('hex'), fx.hex);
  });
}

test('tgt §2.1: decode tgtadm_req fields at their x86-64 offsets (lu new with every option)', () => {
  const req = decodeRequestHeader(Buffer.from(REQUESTS.lu_new_full!.hex, 'hex'));
  assert.equal(req.mode, MgmtMode.Device);
  assert.equal(req.op, MgmtOp.New);
  assert.equal(req.lld, 'iscsi');
  assert.equal(req.tid, 1);
  assert.equal(req.lun, 1n);
  assert.equal(req.sid, 0n);
  assert.equal(req.deviceType, 0);
  assert.equal(req.len, 202);
});

test('tgt §2.1: tid not given is -1, lun not given is UINT64_MAX, empty payload sends no bytes', () => {
  const buf = Buffer.from(REQUESTS.target_show!.hex, 'hex');
  assert.equal(buf.length, REQ_HEADER_SIZE);
  const req = decodeRequestHeader(buf);
  assert.equal(req.tid, -1);
  assert.equal(req.lun, LUN_NOT_GIVEN);
  assert.equal(req.len, REQ_HEADER_SIZE);
});

test('tgt §2.1: connection delete carries sid and cid, target delete --force sets force', () => {
  const del = decodeRequestHeader(Buffer.from(REQUESTS.conn_stat!.hex, 'hex'));
  assert.equal(del.sid, 2n);
  assert.equal(del.cid, 1);
  assert.equal(decodeRequestHeader(Buffer.from(REQUESTS.target_delete_force!.hex, 'hex')).force, 1);
  assert.equal(decodeRequestHeader(Buffer.from(REQUESTS.account_bind_out!.hex, 'hex')).acDir, 1);
  assert.equal(decodeRequestHeader(Buffer.from(REQUESTS.lu_new_tape!.hex, 'hex')).deviceType, 1);
});

test('tgt §2.1: payload is NUL-terminated and counted in len', () => {
  const buf = Buffer.from(REQUESTS.target_new!.hex, 'hex');
  const req = decodeRequestHeader(buf);
  assert.equal(req.len, buf.length);
  assert.equal(buf[buf.length - 1], 0);
  assert.equal(payloadText(buf.subarray(REQ_HEADER_SIZE)), 'targetname=iqn.2024-01.test:t1');
});

test('tgt §2.1: a 64-byte lld name fills the field without terminator; tgtd reads 63 bytes', () => {
  const req = defaultRequest(MgmtMode.Target, MgmtOp.Show);
  req.lld = 'x'.repeat(70);
  const buf = encodeRequest(req);
  assert.equal(buf.subarray(8, 72).toString('latin1'), 'x'.repeat(64));
  assert.equal(decodeRequestHeader(buf).lld, 'x'.repeat(63));
});

test('tgt §2.1: decodeRequestHeader refuses a short header', () => {
  assert.throws(() => decodeRequestHeader(Buffer.alloc(119)), RangeError);
});

test('tgt §2.1: tgtadm_rsp carries text (NUL-terminated) only on success', () => {
  const ok = encodeResponse(0, 'hello\n');
  assert.deepEqual(decodeResponseHeader(ok), { err: 0, len: 8 + 7 });
  assert.equal(ok.subarray(8).toString('latin1'), 'hello\n\0');
  const bad = encodeResponse(4, 'ignored');
  assert.deepEqual(decodeResponseHeader(bad), { err: 4, len: 8 });
  assert.equal(bad.length, 8);
  assert.equal(encodeResponse(0).length, 8);
});

test('tgt §2.1: payload items split at the first "=" (bsopts=foo=bar keeps its value)', () => {
  const p = parsePayload('path=/tmp/disk.img,bstype=rdwr,bsopts=foo=bar,bsoflags=sync:direct,blocksize=4096');
  assert.deepEqual(p.items, [
    ['path', '/tmp/disk.img'],
    ['bstype', 'rdwr'],
    ['bsopts', 'foo=bar'],
    ['bsoflags', 'sync:direct'],
    ['blocksize', '4096'],
  ]);
  assert.equal(p.targetOps, undefined);
});

test('tgt §2.1: "targetOps " params keep their commas, the trailing comma is dropped', () => {
  const p = parsePayload('bsoflags=sync,targetOps readonly=1,vendor_id=ACME,');
  assert.deepEqual(p.items, [['bsoflags', 'sync']]);
  assert.equal(p.targetOps, 'readonly=1,vendor_id=ACME');
});

test('tgt §2.1: "portalOps " prefix (portal mode --params)', () => {
  const p = parsePayload('portalOps portal=[::1]:3269,');
  assert.deepEqual(p.items, []);
  assert.equal(p.portalOps, 'portal=[::1]:3269');
});

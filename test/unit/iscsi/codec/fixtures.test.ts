// The codec against real traffic: every PDU in the pcap fixtures (Linux kernel initiator,
// libiscsi, tgt 1.0.85 as target) frames, decodes and re-encodes byte for byte, however the
// TCP stream is split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readTcpConnections, type TcpConnection } from '../../../helpers/pcap.js';
import { PduFramer, type FramingError } from '../../../../src/iscsi/framer.js';
import {
  DIGEST_LENGTH,
  LoginStage,
  Opcode,
  RESERVED_TAG,
  isInitiatorOpcode,
} from '../../../../src/iscsi/spec.js';
import {
  DataInView,
  DataOutView,
  LoginRequestView,
  LoginResponseView,
  R2TView,
  ScsiCommandView,
  ScsiResponseView,
  bhsDataSegmentLength,
  bhsItt,
  bhsOpcode,
  bhsTotalAhsLength,
  paddedLength,
  senseFromData,
  type IncomingPdu,
} from '../../../../src/iscsi/pdu.js';
import { pduBuffers } from '../../../../src/iscsi/pdu-writer.js';

const FIXTURES = process.env.TGT_FIXTURES ?? '/work/shared/fixtures';
const KERNEL = 'linux-kernel-initiator.pcap';
const DIGESTS = 'linux-kernel-initiator-chap-digests.pcap';
const LIBISCSI = 'libiscsi-discovery-and-inquiry.pcap';
const haveFixtures = existsSync(join(FIXTURES, KERNEL));
const skip = haveFixtures ? false : `fixtures not found in ${FIXTURES}`;

const connectionCache = new Map<string, TcpConnection[]>();
/** The TCP connections of a fixture that carried any iSCSI bytes. */
function connections(name: string): TcpConnection[] {
  let conns = connectionCache.get(name);
  if (!conns) {
    conns = readTcpConnections(join(FIXTURES, name)).filter((c) => c.clientToServer.bytes.length > 0);
    connectionCache.set(name, conns);
  }
  return conns;
}

/** What a connection layer would apply when login completes, read from the captured login. */
interface LoginOutcome {
  /** Login PDUs in each direction up to and including the final exchange (null: login never completed). */
  loginPdus: number | null;
  headerDigest: boolean;
  dataDigest: boolean;
  /** RFC 7143 13.12: each side's declared MaxRecvDataSegmentLength limits what the other sends. */
  maxC2s: number;
  maxS2c: number;
}

function textKeys(data: Buffer, into: Map<string, string>): void {
  for (const pair of data.toString('latin1').split('\0')) {
    const eq = pair.indexOf('=');
    if (eq > 0) into.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
}

/** Walk the login-phase PDUs of both directions (no digests yet) to find when login completes. */
function loginOutcome(conn: TcpConnection): LoginOutcome {
  const requestKeys = new Map<string, string>();
  const responseKeys = new Map<string, string>();
  let loginPdus: number | null = null;
  let responses = 0;
  const s2c = new PduFramer(
    (pdu) => {
      if (bhsOpcode(pdu.bhs) !== Opcode.LoginResponse) return s2c.pause();
      responses++;
      textKeys(pdu.data, responseKeys);
      const v = new LoginResponseView(pdu.bhs);
      // RFC 7143 11.13.1: T=1 with NSG=FullFeaturePhase and status 0 ends the login phase.
      if (v.transit && v.nsg === LoginStage.FullFeaturePhase && v.status === 0) {
        loginPdus = responses;
        s2c.pause();
      }
    },
    (err) => assert.fail(err),
    { maxDataSegmentLength: 8192 },
  );
  s2c.push(conn.serverToClient.bytes);
  let requests = 0;
  const c2s = new PduFramer(
    (pdu) => {
      if (bhsOpcode(pdu.bhs) !== Opcode.LoginRequest || ++requests === responses) c2s.pause();
      textKeys(pdu.data, requestKeys);
    },
    (err) => assert.fail(err),
    { maxDataSegmentLength: 8192 },
  );
  c2s.push(conn.clientToServer.bytes);
  const digest = (key: string): boolean => responseKeys.get(key) === 'CRC32C';
  return {
    loginPdus,
    headerDigest: digest('HeaderDigest'),
    dataDigest: digest('DataDigest'),
    maxC2s: Number(responseKeys.get('MaxRecvDataSegmentLength') ?? 8192),
    maxS2c: Number(requestKeys.get('MaxRecvDataSegmentLength') ?? 8192),
  };
}

interface Framed {
  pdus: IncomingPdu[];
  errors: FramingError[];
  /** Bytes left over (a capture that ends mid-PDU). */
  buffered: number;
}

/**
 * Frame one direction like a connection would: login limits first, then, from inside the
 * handler of the last login PDU, the negotiated digests and MaxRecvDataSegmentLength.
 */
function frame(
  chunks: Iterable<Buffer>,
  login: LoginOutcome,
  fromClient: boolean,
  maxPdus = Infinity,
): Framed {
  const out: Framed = { pdus: [], errors: [], buffered: 0 };
  let seen = 0;
  const framer = new PduFramer(
    (pdu) => {
      out.pdus.push(pdu);
      if (++seen === login.loginPdus) {
        framer.setDigests(login.headerDigest, login.dataDigest);
        framer.setMaxDataSegmentLength(fromClient ? login.maxC2s : login.maxS2c);
      }
      if (seen >= maxPdus) framer.pause();
    },
    (err) => out.errors.push(err),
  );
  for (const c of chunks) framer.push(c);
  out.buffered = framer.bufferedBytes;
  return out;
}

/** Bytes one PDU occupies on the wire under the given digest settings. */
function wireLength(pdu: IncomingPdu, digests: boolean[]): number {
  return (
    48 +
    (pdu.ahs?.length ?? 0) +
    (digests[0] ? DIGEST_LENGTH : 0) +
    paddedLength(pdu.data.length) +
    (digests[1] && pdu.data.length > 0 ? DIGEST_LENGTH : 0)
  );
}

function assertSameFrames(actual: Framed, expected: Framed, what: string): void {
  assert.equal(actual.errors.length, expected.errors.length, `${what}: errors`);
  assert.equal(actual.pdus.length, expected.pdus.length, `${what}: PDU count`);
  for (let i = 0; i < expected.pdus.length; i++) {
    const a = actual.pdus[i]!;
    const e = expected.pdus[i]!;
    if (
      !a.bhs.equals(e.bhs) ||
      !a.data.equals(e.data) ||
      !(a.ahs ?? Buffer.alloc(0)).equals(e.ahs ?? Buffer.alloc(0))
    ) {
      assert.fail(`${what}: PDU ${i} differs`);
    }
  }
  assert.equal(actual.buffered, expected.buffered, `${what}: leftover bytes`);
}

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function* randomSplits(bytes: Buffer, seed: number, maxChunk: number): Generator<Buffer> {
  const r = rng(seed);
  for (let off = 0; off < bytes.length;) {
    const n = 1 + Math.floor(r() * maxChunk);
    yield bytes.subarray(off, off + n);
    off += n;
  }
}

function* byteByByte(bytes: Buffer): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
}

for (const name of [KERNEL, DIGESTS, LIBISCSI]) {
  test(`rfc7143 11.1: every PDU in ${name} frames and decodes in both directions`, { skip }, () => {
    for (const conn of connections(name)) {
      const login = loginOutcome(conn);
      for (const fromClient of [true, false]) {
        const dir = fromClient ? conn.clientToServer : conn.serverToClient;
        assert.equal(dir.gap, false);
        const framed = frame([dir.bytes], login, fromClient);
        assert.deepEqual(framed.errors, []);
        assert.ok(framed.pdus.length > 0, 'PDUs captured');
        // The two kernel captures stop after a number of packets (fixtures README), so they may
        // end inside a PDU, by less than one; the libiscsi capture holds whole sessions.
        if (name === LIBISCSI) assert.equal(framed.buffered, 0);
        else assert.ok(framed.buffered < 48 + 4 + 8192 + 4, 'ends within one PDU');
        let offset = 0;
        for (const [i, pdu] of framed.pdus.entries()) {
          const op = bhsOpcode(pdu.bhs);
          assert.ok(Opcode[op] !== undefined, `PDU ${i}: opcode 0x${op.toString(16)}`);
          // 11.2.1.2: initiators send opcodes 0x00-0x1f, targets 0x20-0x3f.
          assert.equal(isInitiatorOpcode(op), fromClient, `PDU ${i}: ${Opcode[op]} direction`);
          assert.equal(bhsDataSegmentLength(pdu.bhs), pdu.data.length);
          assert.equal(bhsTotalAhsLength(pdu.bhs), pdu.ahs?.length ?? 0);
          // Re-encoding (PduWriter's pieces) reproduces the captured bytes, digests included.
          const digests =
            i >= (login.loginPdus ?? Infinity) ? [login.headerDigest, login.dataDigest] : [false, false];
          const bhs = Buffer.from(pdu.bhs);
          const wire = Buffer.concat(
            pduBuffers([], bhs, pdu.ahs, pdu.data, { headerDigest: digests[0]!, dataDigest: digests[1]! }),
          );
          const len = wireLength(pdu, digests);
          assert.ok(
            wire.equals(dir.bytes.subarray(offset, offset + len)),
            `PDU ${i} (${Opcode[op]}) re-encodes`,
          );
          offset += len;
        }
      }
    }
  });
}

test('rfc7143 11.3-11.13: fixture PDU fields decode consistently across the exchange', { skip }, () => {
  let checkedData = 0;
  let checkedR2T = 0;
  let checkedDataOut = 0;
  for (const name of [KERNEL, DIGESTS, LIBISCSI]) {
    for (const conn of connections(name)) {
      const login = loginOutcome(conn);
      const requests = frame([conn.clientToServer.bytes], login, true).pdus;
      const responses = frame([conn.serverToClient.bytes], login, false).pdus;
      const commands = new Map<number, ScsiCommandView>();
      const loginRequest = new LoginRequestView(requests[0]!.bhs);
      assert.equal(loginRequest.versionMax, 0);
      assert.equal(loginRequest.versionMin, 0);
      for (const pdu of requests) {
        if (bhsOpcode(pdu.bhs) === Opcode.ScsiCommand)
          commands.set(bhsItt(pdu.bhs), new ScsiCommandView(pdu.bhs));
      }
      const nextDataSN = new Map<number, number>();
      // tgt reuses Target Transfer Tags, so keep every R2T per (ITT, TTT).
      const r2ts = new Map<string, R2TView[]>();
      for (const pdu of responses) {
        const itt = bhsItt(pdu.bhs);
        switch (bhsOpcode(pdu.bhs)) {
          case Opcode.LoginResponse: {
            const v = new LoginResponseView(pdu.bhs);
            // 11.13.3: the target echoes the initiator's ISID (tgt zeroes it in failure responses).
            if (v.status === 0) assert.ok(v.isid.equals(loginRequest.isid), 'ISID echoed');
            assert.equal(v.itt, loginRequest.itt);
            break;
          }
          case Opcode.DataIn: {
            const v = new DataInView(pdu.bhs);
            const cmd = commands.get(itt);
            assert.ok(cmd?.read, `Data-In for a READ command (itt ${itt})`);
            // 11.7.5: DataSN counts from 0 per command; 11.7.6: data stays within EDTL.
            assert.equal(v.dataSN, nextDataSN.get(itt) ?? 0);
            nextDataSN.set(itt, v.dataSN + 1);
            assert.ok(v.bufferOffset + pdu.data.length <= cmd.edtl, 'Data-In within EDTL');
            if (v.statusPresent) assert.ok(v.final, 'S implies F');
            checkedData++;
            break;
          }
          case Opcode.ScsiResponse: {
            const v = new ScsiResponseView(pdu.bhs);
            assert.ok(commands.has(itt), 'response to a known command');
            // 11.4.7: CHECK CONDITION carries sense data, GOOD carries none.
            if (v.status === 0x02) assert.ok(senseFromData(pdu.data), 'sense data present');
            if (v.status === 0x00) assert.equal(pdu.data.length, 0);
            break;
          }
          case Opcode.R2T: {
            const v = new R2TView(pdu.bhs);
            const cmd = commands.get(itt);
            assert.ok(cmd?.write, 'R2T for a WRITE command');
            assert.notEqual(v.ttt, RESERVED_TAG);
            assert.ok(v.bufferOffset + v.desiredDataTransferLength <= cmd.edtl, 'R2T within EDTL');
            const key = `${itt}/${v.ttt}`;
            r2ts.set(key, [...(r2ts.get(key) ?? []), v]);
            checkedR2T++;
            break;
          }
        }
      }
      // 11.8: solicited Data-Out carries the R2T's TTT and stays inside the R2T's window.
      for (const pdu of requests) {
        if (bhsOpcode(pdu.bhs) !== Opcode.DataOut) continue;
        const v = new DataOutView(pdu.bhs);
        if (v.ttt === RESERVED_TAG) continue;
        const candidates = r2ts.get(`${v.itt}/${v.ttt}`);
        if (!candidates) continue; // the R2T may lie past the end of the capture's target side
        const end = v.bufferOffset + pdu.data.length;
        assert.ok(
          candidates.some(
            (r) => v.bufferOffset >= r.bufferOffset && end <= r.bufferOffset + r.desiredDataTransferLength,
          ),
          `Data-Out itt ${v.itt} offset ${v.bufferOffset} inside an R2T window`,
        );
        checkedDataOut++;
      }
    }
  }
  assert.ok(checkedData > 10 && checkedR2T > 0 && checkedDataOut > 0, 'fixtures exercised every check');
});

test(
  'rfc7143 11.1: fixture streams frame identically whole, byte by byte and split anywhere',
  { skip },
  () => {
    for (const name of [KERNEL, DIGESTS, LIBISCSI]) {
      for (const [ci, conn] of connections(name).entries()) {
        const login = loginOutcome(conn);
        for (const fromClient of [true, false]) {
          const bytes = (fromClient ? conn.clientToServer : conn.serverToClient).bytes;
          const what = `${name} #${ci} ${fromClient ? 'initiator' : 'target'}`;
          const whole = frame([bytes], login, fromClient);
          // The framer never keeps a pushed chunk (connections read into one reused buffer):
          // PDUs framed from a copy stay intact when that copy is overwritten afterwards.
          const reused = Buffer.from(bytes);
          const fromReused = frame([reused], login, fromClient);
          reused.fill(0xa5);
          assertSameFrames(fromReused, whole, `${what} after the chunk is reused`);
          assertSameFrames(frame(byteByByte(bytes), login, fromClient), whole, `${what} byte by byte`);

          // Every two-piece split of the first PDUs (the whole stream for small captures).
          const n = Math.min(whole.pdus.length, 40);
          let prefix = 0;
          for (let i = 0; i < n; i++) {
            const digests = i >= (login.loginPdus ?? Infinity) ? [login.headerDigest, login.dataDigest] : [];
            prefix += wireLength(whole.pdus[i]!, digests);
          }
          const head = bytes.subarray(0, prefix);
          const expected: Framed = { pdus: whole.pdus.slice(0, n), errors: [], buffered: 0 };
          for (let k = 1; k < head.length; k++) {
            const split = frame([head.subarray(0, k), head.subarray(k)], login, fromClient, n);
            assertSameFrames(split, expected, `${what} split at ${k}`);
          }
          // Random splits of the whole stream, small and TCP-sized chunks.
          for (const [seed, maxChunk] of [
            [1, 7],
            [2, 300],
            [3, 70000],
          ]) {
            assertSameFrames(
              frame(randomSplits(bytes, seed!, maxChunk!), login, fromClient),
              whole,
              `${what} seed ${seed}`,
            );
          }
        }
      }
    }
  },
);

test(
  'rfc7143 13.1: digests in the CHAP+digest capture start after the final Login Response and verify',
  {
    skip,
  },
  () => {
    const [conn] = connections(DIGESTS);
    const login = loginOutcome(conn!);
    // Security stage (CHAP_A, CHAP_N/R, mutual CHAP_R) then one operational exchange: the 4th
    // Login Response (T=1, NSG=3) is the last PDU without digests in each direction.
    assert.equal(login.loginPdus, 4);
    assert.equal(login.headerDigest, true);
    assert.equal(login.dataDigest, true);
    for (const fromClient of [true, false]) {
      const bytes = (fromClient ? conn!.clientToServer : conn!.serverToClient).bytes;
      const framed = frame([bytes], login, fromClient);
      assert.deepEqual(framed.errors, []);
      assert.ok(framed.pdus.length > 4, 'full-feature PDUs captured');
      const withData = framed.pdus.slice(4).filter((p) => p.data.length > 0).length;
      if (!fromClient) assert.ok(withData > 0, 'target side has data segments with data digests');

      // Framing on without digests goes wrong right after the first full-feature PDU.
      const naive = frame(
        [bytes],
        { ...login, loginPdus: null, maxC2s: 1 << 24, maxS2c: 1 << 24 },
        fromClient,
      );
      assert.ok(naive.pdus[4]!.bhs.equals(framed.pdus[4]!.bhs), 'first full-feature PDU frames either way');
      assert.ok(
        !naive.pdus[5]?.bhs.equals(framed.pdus[5]!.bhs),
        'the next one needs the header digest skipped',
      );
    }
  },
);

test('rfc7143 7.8: corrupting the capture yields header/data digest errors, not exceptions', { skip }, () => {
  const [conn] = connections(DIGESTS);
  const login = loginOutcome(conn!);
  const bytes = conn!.serverToClient.bytes;
  const clean = frame([bytes], login, false);
  let offset = 0;
  const starts: number[] = [];
  for (const [i, pdu] of clean.pdus.entries()) {
    starts.push(offset);
    offset += wireLength(pdu, i >= 4 ? [true, true] : []);
  }
  // Flip a bit in the 5th PDU's header: its header digest fails, and that is fatal.
  const badHeader = Buffer.from(bytes);
  badHeader[starts[4]! + 20]! ^= 0x01;
  const h = frame([badHeader], login, false);
  assert.equal(h.errors.length, 1);
  assert.equal(h.errors[0]!.kind, 'header-digest');
  assert.equal(h.errors[0]!.fatal, true);
  assert.equal(h.pdus.length, 4);

  // Flip a bit in the first data segment after login: only that PDU is dropped.
  const victim = clean.pdus.findIndex((p, i) => i >= 4 && p.data.length > 0);
  const badData = Buffer.from(bytes);
  badData[starts[victim]! + 48 + 4]! ^= 0x80;
  const d = frame([badData], login, false);
  assert.equal(d.errors.length, 1);
  assert.equal(d.errors[0]!.kind, 'data-digest');
  assert.equal(d.errors[0]!.fatal, false);
  assert.ok(d.errors[0]!.bhs?.equals(clean.pdus[victim]!.bhs), 'error carries the dropped header');
  assert.equal(d.pdus.length, clean.pdus.length - 1);
});

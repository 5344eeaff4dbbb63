import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ChapAlgorithm,
  DEFAULT_CHALLENGE_LENGTH,
  InitiatorChap,
  TargetChap,
  chapDigestLength,
  computeChapResponse,
  parseChapAlgorithmList,
  verifyChapResponse,
  type ChapStep,
  type TargetChapOptions,
} from '../../../../src/iscsi/chap.js';
import { decodeBinary, encodeBase64, type TextPair } from '../../../../src/iscsi/text.js';

// linux-kernel-initiator-chap-digests.pcap (Linux 6.1 / open-iscsi 2.1.8 against tgt 1.0.85), mutual CHAP, MD5.
// Frame 19, target -> initiator: CHAP_A=5, CHAP_I=2, CHAP_C (50 bytes, tgt's length).
const PCAP_TARGET_ID = 2;
const PCAP_TARGET_CHALLENGE =
  '0xf96aae807944f7149121439f6201d8fc58736563e5ada0867537498e9779dcf11979b4e8e535f01709da75c1c32a3f5e976c';
// Frame 21, initiator -> target: CHAP_N=initiator1 (secret secretsecret1), CHAP_R, then its own CHAP_I/CHAP_C.
const PCAP_INITIATOR_RESPONSE = '0x60d0119e73755031383e4391efb7ac9d';
const PCAP_INITIATOR_ID = 89;
const PCAP_INITIATOR_CHALLENGE = '0x7255738dfecf42205279b70430a8058e';
// Frame 23, target -> initiator: CHAP_N=target1 (secret targetsecret2), CHAP_R.
const PCAP_TARGET_RESPONSE = '0x2ff9da95d7d7160e9e2a7d0afcfa279e';

const INCOMING: Record<string, string> = { initiator1: 'secretsecret1' };
const OUTGOING = { user: 'target1', password: 'targetsecret2' };

/** A random source that replays the pcap's CHAP_I and CHAP_C. */
function replay(id: number, challenge: string): (n: number) => Buffer {
  return (n) => (n === 1 ? Buffer.of(id) : decodeBinary(challenge)!);
}

function target(extra: Partial<TargetChapOptions> = {}): TargetChap {
  return new TargetChap({ lookupIncoming: (u) => INCOMING[u], outgoing: OUTGOING, ...extra });
}

function expectFailure(step: ChapStep, detail: number): void {
  assert.equal(step.kind, 'failure');
  if (step.kind !== 'failure') return;
  assert.equal(step.status.statusClass, 2);
  assert.equal(step.status.statusDetail, detail);
}

test('rfc1994 4.1: MD5 CHAP_R of the kernel initiator in the pcap is reproduced', () => {
  const r = computeChapResponse(
    ChapAlgorithm.MD5,
    PCAP_TARGET_ID,
    'secretsecret1',
    decodeBinary(PCAP_TARGET_CHALLENGE)!,
  );
  assert.equal(`0x${r.toString('hex')}`, PCAP_INITIATOR_RESPONSE);
});

test('rfc1994 4.1: MD5 mutual CHAP_R of tgt in the pcap is reproduced', () => {
  const r = computeChapResponse(
    ChapAlgorithm.MD5,
    PCAP_INITIATOR_ID,
    'targetsecret2',
    decodeBinary(PCAP_INITIATOR_CHALLENGE)!,
  );
  assert.equal(`0x${r.toString('hex')}`, PCAP_TARGET_RESPONSE);
});

test('rfc7143 12.1.3: TargetChap replays the pcap exchange and answers mutual CHAP like tgt did', () => {
  const chap = target({ random: replay(PCAP_TARGET_ID, PCAP_TARGET_CHALLENGE) });
  const first = chap.step([['CHAP_A', '5']]);
  assert.deepEqual(first, {
    kind: 'continue',
    response: [
      ['CHAP_A', '5'],
      ['CHAP_I', '2'],
      ['CHAP_C', PCAP_TARGET_CHALLENGE],
    ],
  });
  const second = chap.step([
    ['CHAP_N', 'initiator1'],
    ['CHAP_R', PCAP_INITIATOR_RESPONSE],
    ['CHAP_I', String(PCAP_INITIATOR_ID)],
    ['CHAP_C', PCAP_INITIATOR_CHALLENGE],
  ]);
  assert.deepEqual(second, {
    kind: 'success',
    user: 'initiator1',
    mutual: true,
    response: [
      ['CHAP_N', 'target1'],
      ['CHAP_R', PCAP_TARGET_RESPONSE],
    ],
  });
  assert.equal(chap.state, 'done');
});

test('rfc7143 12.1.3: one-way CHAP succeeds with no mutual answer', () => {
  const chap = target({ random: replay(PCAP_TARGET_ID, PCAP_TARGET_CHALLENGE) });
  chap.step([['CHAP_A', '5']]);
  const step = chap.step([
    ['CHAP_N', 'initiator1'],
    ['CHAP_R', PCAP_INITIATOR_RESPONSE],
  ]);
  assert.deepEqual(step, { kind: 'success', user: 'initiator1', mutual: false, response: [] });
});

test('rfc7143 6.1: CHAP_R is accepted base64-encoded (0b) as well as hex', () => {
  const chap = target({ random: replay(PCAP_TARGET_ID, PCAP_TARGET_CHALLENGE) });
  chap.step([['CHAP_A', '5']]);
  const step = chap.step([
    ['CHAP_N', 'initiator1'],
    ['CHAP_R', encodeBase64(decodeBinary(PCAP_INITIATOR_RESPONSE)!)],
  ]);
  assert.equal(step.kind, 'success');
});

test('rfc7143 12.1.3: the target picks the first algorithm of the initiator list it supports', () => {
  assert.deepEqual(parseChapAlgorithmList('8,7,6,5'), [8, 7, 6, 5]);
  const pick = (offer: string, algorithms?: ChapAlgorithm[]) => {
    const step = new TargetChap({ lookupIncoming: () => undefined, algorithms }).step([['CHAP_A', offer]]);
    return step.kind === 'continue' ? new Map(step.response).get('CHAP_A') : undefined;
  };
  assert.equal(pick('7,5'), '7');
  assert.equal(pick('99,6,5'), '6');
  assert.equal(pick('8,7', [ChapAlgorithm.MD5, ChapAlgorithm.SHA256]), '7');
});

test('rfc7143 12.1.3: no supported CHAP_A -> CHAP_A=Reject and authentication failure', () => {
  const step = target().step([['CHAP_A', '1,2,99']]);
  expectFailure(step, 1);
  assert.deepEqual(step.response, [['CHAP_A', 'Reject']]);
});

test('rfc7143 12.1.3: missing CHAP_A -> initiator error', () => {
  expectFailure(target().step([['CHAP_N', 'initiator1']]), 0);
});

test('rfc7143 12.1.3: the challenge comes from the CSPRNG, 50 bytes by default, fresh each time', () => {
  const challenges = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const step = target().step([['CHAP_A', '5']]);
    assert.equal(step.kind, 'continue');
    const c = new Map(step.response).get('CHAP_C')!;
    assert.match(c, /^0x[0-9a-f]+$/);
    assert.equal(decodeBinary(c)!.length, DEFAULT_CHALLENGE_LENGTH);
    const id = Number(new Map(step.response).get('CHAP_I'));
    assert.ok(Number.isInteger(id) && id >= 0 && id <= 255);
    challenges.add(c);
  }
  assert.equal(challenges.size, 4);
  const short = target({ challengeLength: 4 }).step([['CHAP_A', '5']]);
  assert.equal(decodeBinary(new Map(short.response).get('CHAP_C')!)!.length, 16); // clamped to 16
});

for (const [name, alg, length] of [
  ['SHA-1', ChapAlgorithm.SHA1, 20],
  ['SHA-256', ChapAlgorithm.SHA256, 32],
  ['SHA3-256', ChapAlgorithm.SHA3_256, 32],
  ['MD5', ChapAlgorithm.MD5, 16],
] as const) {
  test(`CHAP_A=${alg} (${name}, IANA number): initiator and target round trip, mutual, ${length}-byte responses`, () => {
    assert.equal(chapDigestLength(alg), length);
    const ini = new InitiatorChap({
      user: 'initiator1',
      secret: 'secretsecret1',
      targetUser: 'target1',
      targetSecret: 'targetsecret2',
      algorithms: [alg],
    });
    const tgt = target();
    const challenge = tgt.step(ini.offer());
    assert.equal(challenge.kind, 'continue');
    const reply = ini.respond(challenge.response)!;
    assert.equal(decodeBinary(new Map(reply).get('CHAP_R')!)!.length, length);
    const done = tgt.step(reply);
    assert.equal(done.kind, 'success');
    assert.equal(decodeBinary(new Map(done.response).get('CHAP_R')!)!.length, length);
    assert.ok(ini.verifyTarget(done.response));
  });
}

test('rfc7143 12.1.3: a wrong secret fails authentication (0x0201)', () => {
  const ini = new InitiatorChap({ user: 'initiator1', secret: 'not-the-secret' });
  const tgt = target();
  const reply = ini.respond(tgt.step(ini.offer()).response)!;
  expectFailure(tgt.step(reply), 1);
  assert.equal(tgt.state, 'failed');
});

test('tgt §4.3: an unknown user (or one not bound to the target) fails authentication', () => {
  const ini = new InitiatorChap({ user: 'stranger', secret: 'secretsecret1' });
  const tgt = target();
  expectFailure(tgt.step(ini.respond(tgt.step(ini.offer()).response)!), 1);
});

test('CHAP_R of the wrong length or encoding fails', () => {
  const tgt = target({ random: replay(PCAP_TARGET_ID, PCAP_TARGET_CHALLENGE) });
  tgt.step([['CHAP_A', '5']]);
  expectFailure(
    tgt.step([
      ['CHAP_N', 'initiator1'],
      ['CHAP_R', `${PCAP_INITIATOR_RESPONSE}00`],
    ]),
    1,
  );
  const tgt2 = target();
  tgt2.step([['CHAP_A', '5']]);
  expectFailure(
    tgt2.step([
      ['CHAP_N', 'initiator1'],
      ['CHAP_R', '60d0119e73755031383e4391efb7ac9d'],
    ]),
    0,
  );
});

test('rfc7143 12.1.3: CHAP_N/CHAP_R missing -> initiator error', () => {
  const tgt = target();
  tgt.step([['CHAP_A', '5']]);
  expectFailure(tgt.step([['CHAP_N', 'initiator1']]), 0);
});

test('rfc7143 9.2.1: a mutual challenge equal to the target challenge (reflection) is rejected', () => {
  const tgt = target({ random: replay(PCAP_TARGET_ID, PCAP_TARGET_CHALLENGE) });
  tgt.step([['CHAP_A', '5']]);
  const step = tgt.step([
    ['CHAP_N', 'initiator1'],
    ['CHAP_R', PCAP_INITIATOR_RESPONSE],
    ['CHAP_I', '2'],
    ['CHAP_C', PCAP_TARGET_CHALLENGE],
  ]);
  expectFailure(step, 1);
  assert.deepEqual(step.response, []);
});

test('tgt §4.3: mutual CHAP without an outgoing account fails authentication', () => {
  const tgt = target({ outgoing: undefined, random: replay(PCAP_TARGET_ID, PCAP_TARGET_CHALLENGE) });
  tgt.step([['CHAP_A', '5']]);
  expectFailure(
    tgt.step([
      ['CHAP_N', 'initiator1'],
      ['CHAP_R', PCAP_INITIATOR_RESPONSE],
      ['CHAP_I', String(PCAP_INITIATOR_ID)],
      ['CHAP_C', PCAP_INITIATOR_CHALLENGE],
    ]),
    1,
  );
});

test('mutual CHAP needs both CHAP_I and CHAP_C, well formed', () => {
  const mutual = (extra: TextPair[]) => {
    const tgt = target({ random: replay(PCAP_TARGET_ID, PCAP_TARGET_CHALLENGE) });
    tgt.step([['CHAP_A', '5']]);
    return tgt.step([['CHAP_N', 'initiator1'], ['CHAP_R', PCAP_INITIATOR_RESPONSE], ...extra]);
  };
  expectFailure(mutual([['CHAP_I', '89']]), 0);
  expectFailure(
    mutual([
      ['CHAP_I', '256'],
      ['CHAP_C', PCAP_INITIATOR_CHALLENGE],
    ]),
    0,
  );
  expectFailure(
    mutual([
      ['CHAP_I', '89'],
      ['CHAP_C', 'zz'],
    ]),
    0,
  );
});

test('a finished exchange refuses further steps', () => {
  const tgt = target({ random: replay(PCAP_TARGET_ID, PCAP_TARGET_CHALLENGE) });
  tgt.step([['CHAP_A', '5']]);
  tgt.step([
    ['CHAP_N', 'initiator1'],
    ['CHAP_R', PCAP_INITIATOR_RESPONSE],
  ]);
  expectFailure(tgt.step([['CHAP_A', '5']]), 0);
});

test('initiator side: a forged target mutual response or wrong target name is refused', () => {
  const ini = new InitiatorChap({
    user: 'initiator1',
    secret: 'secretsecret1',
    targetUser: 'target1',
    targetSecret: 'targetsecret2',
  });
  const tgt = target({ outgoing: { user: 'target1', password: 'other-secret' } });
  const done = tgt.step(ini.respond(tgt.step(ini.offer()).response)!);
  assert.equal(done.kind, 'success');
  assert.equal(ini.verifyTarget(done.response), false);
  assert.equal(ini.verifyTarget([['CHAP_N', 'someone'], done.response[1]!]), false);
});

test('initiator side: a target choosing an algorithm that was not offered is refused', () => {
  const ini = new InitiatorChap({ user: 'u', secret: 's', algorithms: [ChapAlgorithm.SHA256] });
  assert.equal(
    ini.respond([
      ['CHAP_A', '5'],
      ['CHAP_I', '1'],
      ['CHAP_C', '0x0102'],
    ]),
    undefined,
  );
});

test('verifyChapResponse compares whole responses only', () => {
  const c = decodeBinary(PCAP_TARGET_CHALLENGE)!;
  const r = decodeBinary(PCAP_INITIATOR_RESPONSE)!;
  assert.ok(verifyChapResponse(ChapAlgorithm.MD5, 2, 'secretsecret1', c, r));
  assert.equal(verifyChapResponse(ChapAlgorithm.MD5, 3, 'secretsecret1', c, r), false);
  assert.equal(verifyChapResponse(ChapAlgorithm.MD5, 2, 'secretsecret1', c, r.subarray(0, 8)), false);
});

/**
 * Smoke test of src/initiator against a running target:
 *   npx tsx scripts/initiator-smoke.ts [host] [port] [targetName] [lun]
 * Discovers, logs in, runs INQUIRY / REPORT LUNS / READ CAPACITY(16) / TUR, writes and reads
 * back a pattern (immediate data, unsolicited Data-Out and R2T paths), pings, logs out.
 * Extra env: DIGESTS=1 to ask for CRC32C header and data digests; CHAP_USER/CHAP_SECRET for
 * CHAP, plus CHAP_TARGET_USER/CHAP_TARGET_SECRET for mutual CHAP.
 */
import { randomBytes } from 'node:crypto';
import {
  discover,
  parseReadCapacity16,
  parseReportLuns,
  parseStandardInquiry,
  Session,
  type AuthOptions,
  type ScsiResult,
} from '../src/initiator/index.js';

const [host = '127.0.0.1', portText = '3260', targetName = 'iqn.2026-11.test:ref', lunText = '1'] =
  process.argv.slice(2);
const port = Number(portText);
const lun = Number(lunText);
const env = process.env;
const digest = env['DIGESTS'] ? 'CRC32C' : 'None';
const auth: AuthOptions = env['CHAP_USER']
  ? {
      method: 'CHAP',
      user: env['CHAP_USER'],
      secret: env['CHAP_SECRET'] ?? '',
      targetUser: env['CHAP_TARGET_USER'],
      targetSecret: env['CHAP_TARGET_SECRET'],
    }
  : { method: 'None' };

function good(what: string, r: ScsiResult): ScsiResult {
  if (r.status !== 0) {
    const s = r.sense
      ? ` sense ${r.sense.key.toString(16)}/${r.sense.asc.toString(16)}/${r.sense.ascq.toString(16)}`
      : '';
    throw new Error(`${what}: status 0x${r.status.toString(16)}${s}`);
  }
  return r;
}

const targets = await discover({ host, port });
console.log('discovery:', JSON.stringify(targets));

const s = await Session.login({
  host,
  port,
  targetName,
  auth,
  proposals: { headerDigest: digest, dataDigest: digest },
});
console.log(
  'logged in, TSIH',
  s.tsih,
  'params',
  JSON.stringify({ ...s.params, targetKeys: Object.fromEntries(s.params.targetKeys) }),
);

// The first command after login usually gets a POWER ON/RESET unit attention.
const tur = await s.testUnitReady(lun);
console.log(
  'TUR status',
  tur.status,
  tur.sense && `key ${tur.sense.key} asc 0x${tur.sense.asc.toString(16)}`,
);
good('TUR again', await s.testUnitReady(lun));

console.log('inquiry:', parseStandardInquiry(good('INQUIRY', await s.inquiry(lun)).data));
console.log('luns:', parseReportLuns(good('REPORT LUNS', await s.reportLuns()).data));
const cap = parseReadCapacity16(good('READ CAPACITY(16)', await s.readCapacity16(lun)).data)!;
console.log('capacity:', cap);

const bs = cap.blockSize;
for (const blocks of [1, 64, 2048]) {
  const data = randomBytes(blocks * bs);
  const lba = 100 + blocks;
  good(`WRITE(16) ${blocks}`, await s.write16(lun, BigInt(lba), data, bs));
  const back = good(`READ(10) ${blocks}`, await s.read10(lun, lba, blocks, bs));
  if (!back.data.equals(data)) throw new Error(`read-back mismatch for ${blocks} blocks`);
  console.log(`write/read ${blocks * bs} bytes ok (status in Data-In: ${back.statusInDataIn})`);
}

// Parallel commands exercise the CmdSN window.
const many = await Promise.all(Array.from({ length: 32 }, (_, i) => s.read16(lun, BigInt(i * 8), 8, bs)));
console.log('32 parallel reads:', many.every((r) => r.status === 0) ? 'ok' : 'FAILED');

const past = await s.read16(lun, cap.lastLba + 1n, 1, bs);
console.log('read past end: status', past.status, 'sense', past.sense && [past.sense.key, past.sense.asc]);

const short = await s.command({ lun, cdb: Buffer.from([0x12, 0, 0, 0, 200, 0]), readLength: 1000 });
console.log('INQUIRY alloc 200 / EDTL 1000 -> residual', short.residual, 'data', short.data.length);

good('SYNCHRONIZE CACHE', await s.synchronizeCache(lun));
console.log('mode sense(6) bytes:', good('MODE SENSE(6)', await s.modeSense6(lun)).data.length);
console.log('nop echo:', (await s.nop(Buffer.from('ping'))).toString());
console.log('logout response', await s.logout());

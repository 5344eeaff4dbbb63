/**
 * libiscsi's command-line clients against a real tgtd: discovery (iscsi-ls), INQUIRY
 * (iscsi-inq), READ CAPACITY(16) (iscsi-readcapacity16), a short load (iscsi-perf), and CHAP
 * credentials in the URL (tgt-behaviour.md §1.5 identity, §4.3, §4.4).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { run, TgtDaemon } from '../helpers/daemon.js';
import { IQN } from './util.js';

const TARGET = `${IQN}:libiscsi`;
const CHAP_TARGET = `${IQN}:libiscsi-chap`;
const HIDDEN = `${IQN}:libiscsi-hidden`;
/** The only initiator allowed on the CHAP target (so discovery by INITIATOR does not list it). */
const CHAP_INITIATOR = 'iqn.2026-01.org.tgt-ts.it:libiscsi-chap-client';
const CHAP_USER = 'libiscsi-user';
const CHAP_SECRET = 'libiscsi-secret';
const INITIATOR = 'iqn.2026-01.org.tgt-ts.it:libiscsi-client';
const SIZE = 64 * 1024 * 1024;

/** Skip reason when a libiscsi-bin tool is missing. */
function missing(...tools: string[]): string | false {
  const absent = tools.filter((t) => !existsSync(`/usr/bin/${t}`));
  return absent.length ? `${absent.join(', ')} not installed (Debian package libiscsi-bin)` : false;
}

describe('libiscsi clients', () => {
  let d: TgtDaemon;
  let portal: string;

  before(async () => {
    d = await TgtDaemon.start();
    portal = `iscsi://127.0.0.1:${d.port}`;
    await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: 1, bstype: 'memory', path: '64M' }] });
    await d.addTarget({
      tid: 2,
      name: CHAP_TARGET,
      luns: [{ lun: 1, bstype: 'memory', path: '16M' }],
      addresses: [],
      names: [CHAP_INITIATOR],
    });
    await d.addAccount(CHAP_USER, CHAP_SECRET, 2);
    await d.addTarget({
      tid: 3,
      name: HIDDEN,
      luns: [{ lun: 1, bstype: 'memory', path: '8M' }],
      addresses: [],
    });
  });

  after(async () => {
    try {
      await d.stopChecked();
    } finally {
      await d.cleanup();
    }
  });

  async function tool(file: string, ...args: string[]): Promise<string> {
    return toolAs(INITIATOR, file, ...args);
  }

  async function toolAs(initiator: string, file: string, ...args: string[]): Promise<string> {
    const r = await run(`/usr/bin/${file}`, ['-i', initiator, ...args], { timeoutMs: 30_000 });
    assert.equal(
      r.code,
      0,
      `${file} ${args.join(' ')} -> exit ${r.code}\n${r.stdout}${r.stderr}\ntgtd: ${d.output}`,
    );
    return r.stdout;
  }

  test(
    'tgt §4.4: iscsi-ls -s lists the allowed targets with their portal and LUNs',
    { skip: missing('iscsi-ls') },
    async () => {
      const out = await tool('iscsi-ls', '-s', portal);
      assert.match(out, new RegExp(`^Target:${TARGET} Portal:127\\.0\\.0\\.1:${d.port},1$`, 'm'));
      assert.match(out, /^Lun:0 +Type:STORAGE_ARRAY_CONTROLLER$/m);
      assert.match(out, /^Lun:1 +Type:DIRECT_ACCESS \(Size:6[34]M\)$/m);
      assert.doesNotMatch(out, new RegExp(HIDDEN), 'a target without ACL rules is not listed');
      assert.doesNotMatch(out, new RegExp(CHAP_TARGET), 'a target whose name ACL excludes us is not listed');
      // The allowed initiator sees the CHAP target (discovery itself needs no CHAP).
      const asChapClient = await toolAs(CHAP_INITIATOR, 'iscsi-ls', portal);
      assert.match(
        asChapClient,
        new RegExp(`^Target:${CHAP_TARGET} Portal:127\\.0\\.0\\.1:${d.port},1$`, 'm'),
      );
    },
  );

  test(
    'tgt §1.5: iscsi-inq shows vendor IET, product VIRTUAL-DISK, revision 0001',
    { skip: missing('iscsi-inq') },
    async () => {
      const out = await tool('iscsi-inq', `${portal}/${TARGET}/1`);
      assert.match(out, /^Peripheral Device Type:DIRECT_ACCESS$/m);
      assert.match(out, /^Vendor:IET\s*$/m);
      assert.match(out, /^Product:VIRTUAL-DISK\s*$/m);
      assert.match(out, /^Revision:0001$/m);
      const controller = await tool('iscsi-inq', `${portal}/${TARGET}/0`);
      assert.match(controller, /^Product:Controller\s*$/m, 'LUN 0 is the controller');
      const serial = await tool('iscsi-inq', '-e', '1', '-c', '128', `${portal}/${TARGET}/1`);
      assert.match(serial, /beaf11/, 'VPD 0x80 unit serial number beaf<tid><lun>');
    },
  );

  test(
    'sbc3 5.16: iscsi-readcapacity16 reports 512-byte blocks and the LUN size',
    { skip: missing('iscsi-readcapacity16') },
    async () => {
      const out = await tool('iscsi-readcapacity16', `${portal}/${TARGET}/1`);
      assert.match(out, new RegExp(`^RETURNED LOGICAL BLOCK ADDRESS:${SIZE / 512 - 1}$`, 'm'));
      assert.match(out, /^LOGICAL BLOCK LENGTH IN BYTES:512$/m);
      assert.match(out, new RegExp(`^Total size:${SIZE}$`, 'm'));
    },
  );

  test(
    'rfc7143 12.1.3: libiscsi logs in with CHAP credentials from the URL; a wrong secret fails',
    { skip: missing('iscsi-inq') },
    async () => {
      const out = await toolAs(
        CHAP_INITIATOR,
        'iscsi-inq',
        `iscsi://${CHAP_USER}%${CHAP_SECRET}@127.0.0.1:${d.port}/${CHAP_TARGET}/1`,
      );
      assert.match(out, /^Product:VIRTUAL-DISK\s*$/m);
      const wrong = await run(
        '/usr/bin/iscsi-inq',
        ['-i', CHAP_INITIATOR, `iscsi://${CHAP_USER}%wrong-secret-0@127.0.0.1:${d.port}/${CHAP_TARGET}/1`],
        { timeoutMs: 30_000 },
      );
      assert.notEqual(wrong.code, 0, 'login with a wrong CHAP secret must fail');
      assert.match(wrong.stdout + wrong.stderr, /Authentication failure\(513\)/, 'status 0x0201');
    },
  );

  test(
    'libiscsi: iscsi-perf runs 64 parallel reads for a second without errors',
    { skip: missing('iscsi-perf') },
    async () => {
      const out = await tool('iscsi-perf', '-t', '1', '-m', '64', '-b', '16', '-r', `${portal}/${TARGET}/1`);
      assert.match(out, /^finished\.$/m, out);
      const avg = /iops average (\d+)/.exec(out.split('\r').at(-1) ?? out);
      assert.ok(avg && Number(avg[1]) > 0, `no I/O completed: ${out}`);
    },
  );
});

/**
 * QEMU's iSCSI block driver (libiscsi inside qemu-img) against a real tgtd: a 256 MiB image of
 * random data copied onto a LUN and back must come out bit-identical.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, TgtDaemon } from '../helpers/daemon.js';
import { IQN } from './util.js';

const QEMU_IMG = '/usr/bin/qemu-img';
const TARGET = `${IQN}:qemu`;
const SIZE = 256 * 1024 * 1024;

/** Write `size` random bytes to `path` in 4 MiB chunks; returns their sha256. */
async function randomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for (let off = 0; off < size; off += 4 * 1024 * 1024) {
      const chunk = randomBytes(Math.min(4 * 1024 * 1024, size - off));
      hash.update(chunk);
      await fh.write(chunk, 0, chunk.length, off);
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

async function fileHash(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

describe(
  'qemu-img over iscsi://',
  { skip: existsSync(QEMU_IMG) ? false : `${QEMU_IMG} not installed` },
  () => {
    let d: TgtDaemon;
    let url: string;

    before(async () => {
      d = await TgtDaemon.start();
      const backing = await d.sparseFile('lun.img', SIZE);
      await d.addTarget({ tid: 1, name: TARGET, luns: [{ lun: 1, path: backing }] });
      url = `iscsi://127.0.0.1:${d.port}/${TARGET}/1`;
    });

    after(async () => {
      try {
        await d.stopChecked();
      } finally {
        await d.cleanup();
      }
    });

    test('qemu-img convert -f raw -O raw: 256 MiB onto the LUN and back is bit-identical', async () => {
      const source = join(d.dir, 'source.raw');
      const copy = join(d.dir, 'copy.raw');
      const sourceHash = await randomFile(source, SIZE);

      const info = await run(QEMU_IMG, ['info', '-f', 'raw', url], { timeoutMs: 60_000 });
      assert.equal(info.code, 0, `qemu-img info: ${info.stderr}`);
      assert.match(info.stdout, /virtual size: 256 MiB \(268435456 bytes\)/, info.stdout);

      // -n: the LUN exists already (qemu-img must not try to create it).
      const up = await run(QEMU_IMG, ['convert', '-n', '-f', 'raw', '-O', 'raw', source, url], {
        timeoutMs: 120_000,
      });
      assert.equal(up.code, 0, `qemu-img convert to the LUN: ${up.stderr}\ntgtd: ${d.output}`);
      const down = await run(QEMU_IMG, ['convert', '-f', 'raw', '-O', 'raw', url, copy], {
        timeoutMs: 120_000,
      });
      assert.equal(down.code, 0, `qemu-img convert from the LUN: ${down.stderr}\ntgtd: ${d.output}`);

      assert.equal(await fileHash(copy), sourceHash, 'the image read back from the LUN is identical');
      assert.equal(await fileHash(join(d.dir, 'lun.img')), sourceHash, 'the backing file holds the image');
    });
  },
);

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ADMIN_ERROR_MESSAGES, AdminError } from '../../../src/scsi/admin-error.js';

/** docs/errors.md from the repository root (works from test/ under tsx and from dist/test/). */
async function readErrorsDoc(): Promise<string> {
  for (const rel of ['../../../docs/errors.md', '../../../../docs/errors.md']) {
    try {
      return await readFile(fileURLToPath(new URL(rel, import.meta.url)), 'utf8');
    } catch {
      // try the next location
    }
  }
  throw new Error('docs/errors.md not found');
}

test('docs/errors.md lists every AdminError with its number, name and tgtadm message', async () => {
  const full = await readErrorsDoc();
  // the error table is the first section, before "## Other tgtadm exit statuses"
  const doc = full.slice(0, full.indexOf('\n## '));
  const rows = new Map<number, { name: string; message: string }>();
  for (const m of doc.matchAll(/^\| (\d+) \| (\w+) \| ([^|]+) \|/gm)) {
    rows.set(Number(m[1]), { name: m[2]!, message: m[3]!.trim() });
  }
  const codes = Object.values(AdminError).filter((v): v is number => typeof v === 'number');
  for (const code of codes) {
    const row = rows.get(code);
    assert.ok(row, `docs/errors.md has no row for ${code} (${AdminError[code]})`);
    assert.equal(row.name, AdminError[code], `name of ${code}`);
    assert.equal(row.message, ADMIN_ERROR_MESSAGES[code as AdminError], `message of ${code}`);
  }
  assert.deepEqual(
    [...rows.keys()].sort((a, b) => a - b),
    codes.sort((a, b) => a - b),
    'docs/errors.md lists codes that do not exist',
  );
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigError,
  parseConfigFile,
  parseConfigString,
  toPlain,
} from '../../../../src/mgmt/config/general.js';
import { bsdGlob, expandBraces } from '../../../../src/mgmt/config/glob.js';
import { validateConfig } from '../../../../src/mgmt/config/directives.js';

async function withDir<T>(files: Record<string, string>, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tgt-conf-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), text);
    }
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const plain = async (text: string): Promise<unknown> => toPlain(await parseConfigString(text, 't.conf'));

test('tgt §3.2: <target IQN> blocks are keyed by IQN, directives by name, repeated keys become lists', async () => {
  assert.deepEqual(
    await plain(
      [
        'default-driver iscsi',
        '<target iqn.2024-01.test:a>',
        '  backing-store /srv/a.img',
        '  backing-store /srv/b.img',
        '  initiator-address 10.0.0.1',
        '</target>',
      ].join('\n'),
    ),
    {
      'default-driver': 'iscsi',
      target: {
        'iqn.2024-01.test:a': {
          'backing-store': ['/srv/a.img', '/srv/b.img'],
          'initiator-address': '10.0.0.1',
        },
      },
    },
  );
});

test('tgt §3.4: nested <backing-store path> and <direct-store path> blocks hold LUN options', async () => {
  assert.deepEqual(
    await plain(
      '<target t>\n<backing-store /a>\nlun 3\nvendor_id X\n</backing-store>\n<direct-store /dev/sdb>\n</direct-store>\n</target>\n',
    ),
    {
      target: {
        t: { 'backing-store': { '/a': { lun: '3', vendor_id: 'X' } }, 'direct-store': { '/dev/sdb': {} } },
      },
    },
  );
});

test('Config::General -MergeDuplicateBlocks: a second <target X> block adds to the first', async () => {
  assert.deepEqual(
    await plain(
      '<target t>\nincominguser a p1\n</target>\n<target t>\nincominguser b p2\nlun 1\n</target>\n',
    ),
    { target: { t: { incominguser: ['a p1', 'b p2'], lun: '1' } } },
  );
});

test('Config::General: comments, = separator, quotes, escapes, continuation lines, here-documents, <x/>', async () => {
  assert.deepEqual(
    await plain(
      [
        '# a comment',
        'a = 1   # trailing comment',
        '/* C comment */',
        '/*',
        ' several lines',
        '*/',
        'b "quoted value"',
        'c a\\#b\\"c',
        'd first \\',
        '   second',
        'e <<EOT',
        'line 1',
        'line 2',
        'EOT',
        '<empty x/>',
        'f',
      ].join('\n'),
    ),
    {
      a: '1',
      b: 'quoted value',
      c: 'a#b"c',
      d: 'first second',
      e: 'line 1\nline 2',
      empty: { x: {} },
      f: null,
    },
  );
});

test('Config::General -UseApacheInclude -IncludeGlob -IncludeDirectories: files, globs, braces, directories, inside blocks', async () => {
  await withDir(
    {
      'main.conf': [
        'include conf.d/*.conf',
        'include dir',
        'include {x,y}.inc',
        '<target t>',
        'include in-block.inc',
        '</target>',
        'includeoptional missing.conf',
        'include none/*.conf',
      ].join('\n'),
      'conf.d/b.conf': 'b 2\n',
      'conf.d/a.conf': 'a 1\n',
      'conf.d/skip.txt': 'skip 1\n',
      'conf.d/.hidden.conf': 'hidden 1\n',
      'dir/2': 'order second\n',
      'dir/1': 'order first\n',
      'y.inc': 'xy y\n',
      'x.inc': 'xy x\n',
      'in-block.inc': 'backing-store /srv/t.img\n',
      'none/.keep': '',
    },
    async (dir) => {
      // relative includes are found from the main file's directory when it is absolute
      const conf = toPlain(await parseConfigFile(join(dir, 'main.conf')));
      assert.deepEqual(conf, {
        a: '1',
        b: '2',
        order: ['first', 'second'],
        xy: ['x', 'y'],
        target: { t: { 'backing-store': '/srv/t.img' } },
      });
    },
  );
});

test('Config::General: a file included twice is read once (with a warning)', async () => {
  await withDir({ 'm.conf': 'include a.inc\ninclude a.inc\n', 'a.inc': 'k v\n' }, async (dir) => {
    const warnings: string[] = [];
    const conf = toPlain(await parseConfigFile(join(dir, 'm.conf'), { warn: (w) => warnings.push(w) }));
    assert.deepEqual(conf, { k: 'v' });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /already loaded/);
  });
});

test('malformed input: errors name the file and line', async () => {
  const cases: Array<[string, RegExp]> = [
    ['a 1\n<target t>\nlun 1\n', /^t\.conf:2: <target t> has no closing <\/target>$/],
    ['a 1\n</target>\n', /^t\.conf:2: <\/target> closes a block that was never opened$/],
    [
      '<target t>\n<backing-store /a>\n</target>\n</backing-store>\n',
      /^t\.conf:3: <\/target> does not close <backing-store> opened at t\.conf:2$/,
    ],
    [
      '<target t>\nbacking-store /a\n<backing-store /b>\n</backing-store>\n</target>\n',
      /^t\.conf:3: <backing-store> is used both as a block/,
    ],
    [
      '<target t>\n<backing-store /b>\n</backing-store>\nbacking-store /a\n</target>\n',
      /^t\.conf:4: "backing-store" is used both as a block/,
    ],
    ['x <<EOT\nnever ends\n', /^t\.conf:1: here-document "EOT" is not terminated$/],
    [
      'include /nonexistent/tgt-ts.conf\n',
      /^t\.conf:1: the file "\/nonexistent\/tgt-ts\.conf" does not exist$/,
    ],
  ];
  for (const [text, re] of cases) {
    await assert.rejects(parseConfigString(text, 't.conf'), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
});

test('tgt §3.2-§3.4 validation: missing values, repeated single directives, accounts -> file:line', async () => {
  const cases: Array<[string, RegExp]> = [
    [
      '<target t>\ninitiator-address\n</target>\n',
      /^t\.conf:2: option initiator-address has a missing value/,
    ],
    ['default-driver iscsi\ndefault-driver iser\n', /^t\.conf:1: multiple 'default-driver' definitions/],
    ['<target t>\nincominguser bob\n</target>\n', /^t\.conf:2: incominguser needs a user and a password/],
    [
      '<target t>\n<backing-store /a>\nlun 1\nlun 2\n</backing-store>\n</target>\n',
      /^t\.conf:3: multiple 'lun' definitions/,
    ],
    ['<target>\nbacking-store /a\n</target>\n', /<target> needs a name/],
  ];
  for (const [text, re] of cases) {
    const conf = await parseConfigString(text, 't.conf');
    assert.throws(
      () => validateConfig(conf),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      text,
    );
  }
  const ok = validateConfig(
    await parseConfigString('<target t>\nbacking-store /a\nfrobnicate 1\n</target>\n', 't.conf'),
  );
  assert.deepEqual(ok.warnings, ["t.conf:3: unknown directive 'frobnicate' in target t ignored"]);
});

test('bsd_glob: brace alternatives keep their order, matches sorted within each, dot files need a dot', async () => {
  assert.deepEqual(expandBraces('a{b,c{d,e}}f'), ['abf', 'acdf', 'acef']);
  assert.deepEqual(expandBraces('a{}b'), ['a{}b']);
  await withDir({ z1: '', a1: '', '.h1': '', b2: '' }, async (dir) => {
    assert.deepEqual(
      await bsdGlob(join(dir, '{z,a,b}?')),
      ['z1', 'a1', 'b2'].map((n) => join(dir, n)),
    );
    assert.deepEqual(
      await bsdGlob(join(dir, '*1')),
      ['a1', 'z1'].map((n) => join(dir, n)),
    );
    assert.deepEqual(await bsdGlob(join(dir, '.*1')), [join(dir, '.h1')]);
    assert.deepEqual(await bsdGlob(join(dir, '[!a]1')), [join(dir, 'z1')]);
  });
});

/** Perl with Config::General and JSON::PP, to compare parsers (skipped when missing). */
function perlParse(file: string): unknown {
  const script = `use Config::General qw(ParseConfig); use JSON::PP;
my %c = ParseConfig(-ConfigFile => $ARGV[0], -UseApacheInclude => 1, -IncludeDirectories => 1, -IncludeGlob => 1, -MergeDuplicateBlocks => 1);
print JSON::PP->new->canonical->encode(\\%c);`;
  const r = spawnSync('perl', ['-e', script, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

const hasConfigGeneral =
  spawnSync('perl', ['-MConfig::General', '-MJSON::PP', '-e', '1'], { encoding: 'utf8' }).status === 0;

test(
  'Config::General differential: the same tree as Perl ParseConfig for a config using every syntax',
  { skip: hasConfigGeneral ? false : 'perl Config::General not installed' },
  async () => {
    await withDir(
      {
        'main.conf': [
          '# header',
          'default-driver iscsi   # comment',
          '/* c comment */ ',
          'ignore-errors = yes',
          'path-like /srv/*.img',
          '<target iqn.2001-04.com.example:a>',
          '   backing-store /tmp/d1.img',
          '   backing-store /tmp/d2.img',
          '   vendor_id "Some Vendor"',
          '   product_id  a\\#b',
          '   scsi_sn  "x\\"y"',
          '   params thin_provisioning=1,\\',
          '       rotation_rate=1',
          '   mode_page <<EOT',
          '8:0:18:0x14:0',
          'EOT',
          '   include conf.d/*.conf',
          '</target>',
          '<target iqn.2001-04.com.example:a>',
          '   initiator-address 10.0.0.1',
          '   <direct-store /dev/sdz/>',
          '</target>',
          '<target iqn.2001-04.com.example:c>',
          '   <backing-store /srv/x y.img>',
          '      lun 2',
          '   </backing-store>',
          '</target>',
          '<target "iqn.2001-04.com.example:b">',
          '</target>',
          'include dir',
          'include {conf.d,dir}/x*.conf',
          'includeoptional nothere.conf',
          'key',
          'crlf value\r',
        ].join('\n'),
        'conf.d/a.conf': 'incominguser joe secret1234\n',
        'conf.d/b.conf': 'outgoinguser jim secret5678\n',
        'dir/1.conf': '<target iqn.x:d1>\n backing-store /a\n</target>\n',
        'dir/xz.conf': '<target iqn.x:d2>\n backing-store /b\n</target>\n',
        'dir/.hidden': 'iSNS On\n',
      },
      async (dir) => {
        const file = join(dir, 'main.conf');
        assert.deepEqual(toPlain(await parseConfigFile(file)), perlParse(file));
      },
    );
  },
);

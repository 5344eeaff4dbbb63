/**
 * A reader for targets.conf with the semantics of Perl's Config::General as tgt-admin calls it
 * (tgt-behaviour.md §3): ParseConfig(-UseApacheInclude, -IncludeDirectories, -IncludeGlob,
 * -MergeDuplicateBlocks) with Config::General's defaults otherwise (AllowMultiOptions,
 * CComments, no IncludeRelative, no IncludeAgain, no AutoTrue, no variable interpolation).
 *
 * What it accepts, as Config::General does:
 *   - `key value` or `key = value`; a repeated key becomes a list; a value wrapped in double
 *     quotes loses them; `\#`, `\"`, `\\`, `\$` in values stand for the character itself;
 *   - `# comments` (from an unescaped `#` to the end of the line) and C comments `/* ... *\/`;
 *   - a trailing backslash continues the line; here-documents `key <<EOF ... EOF`;
 *   - blocks `<name>...</name>` and named blocks `<name value>...</name>` (nested), `<name/>`;
 *     two blocks with the same name (and value) are merged;
 *   - `include PATH` / `includeoptional PATH` anywhere, also inside blocks: a file, every
 *     regular file of a directory (byte order), or a glob (`*?[{`); relative paths are taken
 *     from the working directory, then from the main file's directory; a file read once is
 *     not read again.
 * Where Config::General silently accepts nonsense, this reader stops with a ConfigError naming
 * the file and line: a closing tag that does not match the open block, a key used both as a
 * plain option and as a block, or a file it cannot read.
 */
import { promises as fsp } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { GLOB_CHARS, bsdGlob, compareBytes } from './glob.js';

/** Where a line came from. */
export interface Loc {
  file: string;
  line: number;
}

/** A plain option value (null: the key was given without a value). */
export interface CgScalar {
  kind: 'scalar';
  value: string | null;
  at: Loc;
}

/** A block: its keys in first-seen order. */
export interface CgBlock {
  kind: 'block';
  at: Loc;
  entries: Map<string, CgValue>;
}

/** A repeated key: its values in order. */
export interface CgList {
  kind: 'list';
  items: Array<CgScalar | CgBlock>;
}

export type CgValue = CgScalar | CgBlock | CgList;

/** A syntax or include error, with the place it was found. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly at?: Loc,
  ) {
    super(at ? `${formatLoc(at)}: ${message}` : message);
  }
}

/** "file:line". */
export function formatLoc(at: Loc): string {
  return `${at.file}:${at.line}`;
}

export interface ParseOptions {
  /** Called for Config::General's warnings (a file included twice, a stray comment end). */
  warn?: (message: string) => void;
}

interface ContentLine {
  text: string;
  at: Loc;
  /** Here-document body (the line's text is then the option name). */
  heredoc?: string;
}

interface ReadState {
  content: ContentLine[];
  files: Set<string>;
  /** Directory of the main config file when its path is absolute (Config::General's ConfigPath). */
  configPath: string | undefined;
  warn: (message: string) => void;
}

/** Parse a config file (and everything it includes) into its top-level block. */
export async function parseConfigFile(path: string, options: ParseOptions = {}): Promise<CgBlock> {
  const state: ReadState = {
    content: [],
    files: new Set(),
    configPath: isAbsolute(path) ? dirname(path) : undefined,
    warn: options.warn ?? (() => {}),
  };
  await openPath(state, path, undefined);
  return parseContent(newBlock({ file: path, line: 0 }), state.content);
}

/** Parse config text (includes are resolved from the working directory). */
export async function parseConfigString(
  text: string,
  file = '(string)',
  options: ParseOptions = {},
): Promise<CgBlock> {
  const state: ReadState = {
    content: [],
    files: new Set(),
    configPath: undefined,
    warn: options.warn ?? (() => {}),
  };
  await readLines(state, text, file);
  return parseContent(newBlock({ file, line: 0 }), state.content);
}

function newBlock(at: Loc): CgBlock {
  return { kind: 'block', at, entries: new Map() };
}

// ---------------------------------------------------------------------------------------------
// reading: files, includes, comments, continuation lines, here-documents (Config::General _read)

async function openPath(state: ReadState, path: string, from: Loc | undefined): Promise<void> {
  if (GLOB_CHARS.test(path)) {
    let matches = await regularFiles(await bsdGlob(path));
    if (matches.length === 0 && state.configPath !== undefined && !isAbsolute(path)) {
      if (await isDirectory(join(state.configPath, dirname(path)))) {
        matches = await regularFiles(await bsdGlob(join(state.configPath, path)));
      }
    }
    // No match is fine: "include conf.d/*.conf" with an empty directory.
    for (const file of matches) await openPath(state, file, from);
    return;
  }
  let resolved = path;
  if (!(await exists(resolved))) {
    const alt =
      state.configPath !== undefined && !isAbsolute(path) ? join(state.configPath, path) : undefined;
    if (alt !== undefined && (await exists(alt))) resolved = alt;
    else throw new ConfigError(`the file "${path}" does not exist`, from);
  }
  const st = await fsp.stat(resolved).catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError(`cannot read "${resolved}": ${e.message}`, from);
  });
  if (st.isDirectory()) {
    let names: string[];
    try {
      names = await fsp.readdir(resolved);
    } catch (e) {
      throw new ConfigError(`cannot read directory "${resolved}": ${(e as Error).message}`, from);
    }
    const files: string[] = [];
    for (const name of names.sort(compareBytes)) {
      const file = join(resolved, name);
      if (await isFile(file)) files.push(file);
    }
    for (const file of files) await readFile(state, file, from);
    return;
  }
  await readFile(state, resolved, from);
}

async function readFile(state: ReadState, file: string, from: Loc | undefined): Promise<void> {
  if (state.files.has(file)) {
    state.warn(`File ${file} already loaded.  Use -IncludeAgain to load it again.`);
    return;
  }
  state.files.add(file);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read "${file}": ${(e as Error).message}`, from);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  await readLines(state, text, file);
}

const HEREDOC_EQ = /^\s*([^=]+?)\s*=\s*<<\s*(.+?)\s*$/;
const HEREDOC_WS = /^\s*(\S+?)\s+<<\s*(.+?)\s*$/;
const INCLUDE_QUOTED = /^\s*(include|includeoptional)\s*(["'])(.*?)(?<!\\)\2$/i;
const INCLUDE_PLAIN = /^\s*(include|includeoptional)\s+(.+?)\s*$/i;

/** Perl truthiness of a string: undefined, "" and "0" are false. */
function truthy(s: string | undefined): s is string {
  return s !== undefined && s !== '' && s !== '0';
}

async function readLines(state: ReadState, text: string, file: string): Promise<void> {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  let cComment = false;
  let longline: string | undefined;
  let longAt: Loc | undefined;
  let heredoc: { name: string; end: string; at: Loc; body: string[] } | undefined;

  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    const at = { file, line: i + 1 };

    if (heredoc) {
      const endMatch = new RegExp(`^(\\s*)${escapeRe(heredoc.end)}\\s*$`).exec(line);
      if (!endMatch) {
        heredoc.body.push(line);
        continue;
      }
      const indent = endMatch[1]!;
      const body = indent
        ? heredoc.body.map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l) + '\n').join('')
        : heredoc.body.join('\n');
      state.content.push({ text: heredoc.name, at: heredoc.at, heredoc: body });
      heredoc = undefined;
      continue;
    }

    // C comments (Config::General -CComments, on by default)
    if (/(\s*\/\*.*\*\/\s*)/.test(line)) {
      line = line.replace(/\s*\/\*.*\*\/\s*/, '');
    } else if (/^\s*\/\*/.test(line)) {
      cComment = !/\*\/\s*$/.test(line);
      continue;
    } else if (/\*\//.test(line)) {
      if (!cComment) state.warn(`${formatLoc(at)}: end of a C comment without a start`);
      cComment = false;
      line = line.replace(/^.*\*\//, '');
    }
    if (cComment) continue;

    line = line.replace(/(?<!\\)#.*$/, '');
    if (/^\s*#/.test(line)) continue;

    if (/(?<!\\)\\$/.test(line)) {
      if (longline === undefined || longline === '') longAt = at;
      longline = (longline ?? '') + line.slice(0, -1).replace(/^\s*/, '');
      continue;
    }

    // explicitly empty block: <name/> or <name value/>
    const empty = /\s*<([^/]+?.*?)\/>\s*$/.exec(line);
    if (empty) {
      const block = empty[1]!.replace(/\s\s*.*$/, '');
      state.content.push({ text: line.replace(/\/>$/, '>'), at }, { text: `</${block}>`, at });
      continue;
    }

    const hd = HEREDOC_EQ.exec(line) ?? HEREDOC_WS.exec(line);
    if (hd) {
      heredoc = { name: hd[1]!, end: hd[2]!, at, body: [] };
      continue;
    }

    if (truthy(longline)) {
      state.content.push({ text: longline + line.replace(/^\s*/, ''), at: longAt ?? at });
      longline = undefined;
      continue;
    }
    longline = undefined;
    if (/^\s*$/.test(line)) continue;

    const inc = INCLUDE_QUOTED.exec(line) ?? INCLUDE_PLAIN.exec(line);
    const incFile = inc ? (inc[3] ?? inc[2]) : undefined;
    if (inc && truthy(incFile)) {
      let target = incFile;
      if (/opt/i.test(inc[1]!) && !GLOB_CHARS.test(target)) {
        // includeoptional of a plain name: a glob matching only that file (missing is fine)
        const slash = target.lastIndexOf('/');
        const name = target.slice(slash + 1);
        target = target.slice(0, slash + 1) + [...name].map((c) => `[${c}]`).join('');
      }
      await openPath(state, target, at);
      continue;
    }
    state.content.push({ text: line, at });
  }
  if (heredoc) throw new ConfigError(`here-document "${heredoc.end}" is not terminated`, heredoc.at);
  if (cComment) state.warn(`${file}: C comment not closed at the end of the file`);
  if (longline !== undefined && longAt)
    throw new ConfigError('the last line ends with a continuation backslash', longAt);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await fsp.stat(path)).isFile();
  } catch {
    return false;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await fsp.stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function regularFiles(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) if (await isFile(p)) out.push(p);
  return out;
}

// ---------------------------------------------------------------------------------------------
// parsing: options, blocks, merging (Config::General _parse)

const BLOCK_START = /^<([^/]+?.*?)>$/;
const BLOCK_END = /^<\/(.+?)>$/;
const NAMED_BLOCK = /^(?:"([^"]+)"|(\S+))(?:\s+(?:"([^"]+)"|(.*)))?$/;

/** Config::General's value post-processing: surrounding quotes, then escapes. */
function cleanValue(value: string | null): string | null {
  if (value === null) return null;
  let v = value;
  if (truthy(v) && v.startsWith('"') && v.endsWith('"')) v = v.replace(/^"/, '').replace(/"$/, '');
  return v.replace(/\\([$\\"#])/g, '$1');
}

/** Split an option line at the first `=` (with blanks around it) or run of blanks. */
function splitOption(text: string): [string, string | null] {
  const m = /\s*=\s*|\s+/.exec(text);
  if (!m) return [text, null];
  return [text.slice(0, m.index), text.slice(m.index + m[0].length)];
}

function addOption(config: CgBlock, option: string, scalar: CgScalar): void {
  const existing = config.entries.get(option);
  if (existing === undefined) {
    config.entries.set(option, scalar);
    return;
  }
  if (existing.kind === 'block') {
    throw new ConfigError(`"${option}" is used both as a block <${option}> and as an option`, scalar.at);
  }
  if (existing.kind === 'list') existing.items.push(scalar);
  else config.entries.set(option, { kind: 'list', items: [existing, scalar] });
}

function parseContent(config: CgBlock, content: readonly ContentLine[]): CgBlock {
  let block: string | undefined;
  let blockName: string | undefined;
  let blockAt: Loc | undefined;
  let inner: ContentLine[] = [];
  // blocks opened inside the current one, to report a mismatched closing tag where it is
  let open: Array<{ name: string; at: Loc }> = [];

  for (const entry of content) {
    const text = entry.text.trim();
    if (block === undefined) {
      const start = BLOCK_START.exec(text);
      if (start && entry.heredoc === undefined) {
        const raw = start[1]!;
        const quoted = /^"([^"]+)"$/.exec(raw);
        if (quoted) {
          block = raw.replace(/"/g, '');
          blockName = undefined;
        } else {
          const named = NAMED_BLOCK.exec(raw);
          block = named ? (named[1] ?? named[2]!) : raw;
          const name = named ? (named[3] ?? named[4]) : undefined;
          blockName = truthy(name) ? name : undefined;
        }
        blockAt = entry.at;
        inner = [];
        open = [];
        continue;
      }
      const end = BLOCK_END.exec(text);
      if (end && entry.heredoc === undefined) {
        throw new ConfigError(`</${end[1]}> closes a block that was never opened`, entry.at);
      }
      let option: string;
      let value: string | null;
      if (entry.heredoc !== undefined) {
        option = text;
        value = entry.heredoc.trim();
      } else {
        [option, value] = splitOption(text);
      }
      addOption(config, option, { kind: 'scalar', value: cleanValue(value), at: entry.at });
      continue;
    }
    const innerStart = entry.heredoc === undefined ? BLOCK_START.exec(text) : null;
    if (innerStart) {
      open.push({ name: blockWord(innerStart[1]!), at: entry.at });
      inner.push(entry);
      continue;
    }
    const end = entry.heredoc === undefined ? BLOCK_END.exec(text) : null;
    if (!end) {
      inner.push(entry);
      continue;
    }
    const expected = open.length > 0 ? open[open.length - 1]! : { name: block, at: blockAt! };
    if (blockWord(end[1]!).toLowerCase() !== expected.name.toLowerCase()) {
      throw new ConfigError(
        `</${end[1]}> does not close <${expected.name}> opened at ${formatLoc(expected.at)}`,
        entry.at,
      );
    }
    if (open.length > 0) {
      open.pop();
      inner.push(entry);
      continue;
    }
    closeBlock(config, block, blockName, blockAt!, inner);
    block = undefined;
    blockName = undefined;
  }
  if (block !== undefined) {
    throw new ConfigError(
      `<${block}${blockName ? ` ${blockName}` : ''}> has no closing </${block}>`,
      blockAt,
    );
  }
  return config;
}

/** The block name of a tag body: `target iqn...` -> `target`, `"a b"` -> `a b`. */
function blockWord(tag: string): string {
  const t = tag.trim();
  const quoted = /^"([^"]+)"/.exec(t);
  return quoted ? quoted[1]! : t.split(/\s+/)[0]!;
}

function closeBlock(
  config: CgBlock,
  block: string,
  blockName: string | undefined,
  at: Loc,
  inner: readonly ContentLine[],
): void {
  const existing = config.entries.get(block);
  if (existing !== undefined && existing.kind !== 'block') {
    throw new ConfigError(`<${block}> is used both as a block and as an option "${block}"`, at);
  }
  if (blockName === undefined) {
    // -MergeDuplicateBlocks: a second <name> block adds to the first
    config.entries.set(block, parseContent(existing ?? newBlock(at), inner));
    return;
  }
  const holder = existing ?? newBlock(at);
  config.entries.set(block, holder);
  const named = holder.entries.get(blockName);
  if (named !== undefined && named.kind !== 'block') {
    throw new ConfigError(`<${block} ${blockName}> clashes with an option "${blockName}"`, at);
  }
  holder.entries.set(blockName, parseContent(named ?? newBlock(at), inner));
}

// ---------------------------------------------------------------------------------------------
// access helpers

/** The values of an entry as a list (a scalar or block is a list of one). */
export function valuesOf(v: CgValue | undefined): Array<CgScalar | CgBlock> {
  if (v === undefined) return [];
  return v.kind === 'list' ? v.items : [v];
}

/** Sorted keys, as Perl's `sort keys %hash` (byte order). */
export function sortedKeys(block: CgBlock): string[] {
  return [...block.entries.keys()].sort(compareStrings);
}

/** Perl's default string comparison (code unit order matches byte order for ASCII keys). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A plain JSON view (scalars as strings/null, lists as arrays, blocks as objects) for tests. */
export function toPlain(v: CgValue): unknown {
  if (v.kind === 'scalar') return v.value;
  if (v.kind === 'list') return v.items.map(toPlain);
  const out: Record<string, unknown> = {};
  for (const [k, val] of v.entries) out[k] = toPlain(val);
  return out;
}

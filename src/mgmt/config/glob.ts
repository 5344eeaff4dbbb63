/**
 * File name globbing as Perl's File::Glob::bsd_glob(pattern, GLOB_BRACE | GLOB_QUOTE), which is
 * what Config::General uses for `include` with -IncludeGlob (tgt-behaviour.md §3):
 *   - `{a,b}` alternatives, expanded first; the matches of each alternative are sorted on their
 *     own (byte order) and appended in brace order;
 *   - `*`, `?`, `[...]` (with `!` negation and ranges) inside one path component; a leading `.`
 *     is only matched by a literal `.`;
 *   - `\x` quotes the character x;
 *   - no match gives no result (no GLOB_NOCHECK).
 */
import { Buffer } from 'node:buffer';
import { promises as fsp } from 'node:fs';

/** Config::General's test for "this include is a glob" (a `*?[{\` anywhere). */
export const GLOB_CHARS = /[*?[{\\]/;

/** Expand `{a,b}` alternatives (nested braces allowed; `{}` and unbalanced braces are literal). */
export function expandBraces(pattern: string): string[] {
  const open = findBraceOpen(pattern);
  if (open < 0) return [pattern];
  const close = matchingBrace(pattern, open);
  if (close < 0) return [pattern];
  const inner = pattern.slice(open + 1, close);
  if (inner === '') {
    // bsd_glob keeps "{}" literally
    return expandBraces(pattern.slice(close + 1)).map((rest) => pattern.slice(0, close + 1) + rest);
  }
  const head = pattern.slice(0, open);
  const tail = pattern.slice(close + 1);
  const out: string[] = [];
  for (const alt of splitAlternatives(inner)) out.push(...expandBraces(head + alt + tail));
  return out;
}

function findBraceOpen(p: string): number {
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '\\') i++;
    else if (p[i] === '{') return i;
  }
  return -1;
}

function matchingBrace(p: string, open: number): number {
  let depth = 0;
  for (let i = open; i < p.length; i++) {
    if (p[i] === '\\') i++;
    else if (p[i] === '{') depth++;
    else if (p[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

function splitAlternatives(inner: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === '\\') i++;
    else if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(inner.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(inner.slice(start));
  return parts;
}

/** True when a path component needs directory matching (has an unquoted metacharacter). */
function hasMagic(component: string): boolean {
  for (let i = 0; i < component.length; i++) {
    const c = component[i];
    if (c === '\\') i++;
    else if (c === '*' || c === '?' || c === '[') return true;
  }
  return false;
}

/** Remove GLOB_QUOTE backslashes from a literal component. */
function unquote(component: string): string {
  return component.replace(/\\(.)/g, '$1');
}

/** Compile one path component into an anchored regular expression. */
export function componentRegExp(component: string): RegExp {
  let re = '';
  for (let i = 0; i < component.length; i++) {
    const c = component[i]!;
    if (c === '\\' && i + 1 < component.length) {
      re += escapeRe(component[++i]!);
    } else if (c === '*') {
      re += '.*';
    } else if (c === '?') {
      re += '.';
    } else if (c === '[') {
      const end = classEnd(component, i);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = component.slice(i + 1, end);
      let negate = false;
      if (body.startsWith('!')) {
        negate = true;
        body = body.slice(1);
      }
      re += `[${negate ? '^' : ''}${body.replace(/\\/g, '\\\\').replace(/\]/g, '\\]').replace(/\^/g, '\\^')}]`;
      i = end;
    } else {
      re += escapeRe(c);
    }
  }
  return new RegExp(`^${re}$`, 's');
}

/** Index of the `]` closing a class opened at `open` (a `]` right after `[` or `[!` is literal). */
function classEnd(p: string, open: number): number {
  let i = open + 1;
  if (p[i] === '!') i++;
  if (p[i] === ']') i++;
  for (; i < p.length; i++) if (p[i] === ']') return i;
  return -1;
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

/** Byte-order comparison (bsd_glob without GLOB_ALPHASORT sorts with strcmp). */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Expand one brace-free pattern against the file system. */
async function globOne(pattern: string): Promise<string[]> {
  const absolute = pattern.startsWith('/');
  const parts = pattern.split('/').filter((p, i) => p !== '' || i === 0);
  let bases: string[] = [absolute ? '/' : ''];
  const components = absolute ? parts.slice(1) : parts;
  for (let ci = 0; ci < components.length; ci++) {
    const comp = components[ci]!;
    const last = ci === components.length - 1;
    const next: string[] = [];
    for (const base of bases) {
      if (!hasMagic(comp)) {
        const candidate = join(base, unquote(comp));
        if (last || (await isDirectory(candidate))) {
          if (!last || (await exists(candidate))) next.push(candidate);
        }
        continue;
      }
      const re = componentRegExp(comp);
      const allowDot = comp.startsWith('.') || comp.startsWith('\\.');
      let names: string[];
      try {
        names = await fsp.readdir(base === '' ? '.' : base);
      } catch {
        continue;
      }
      for (const name of names.sort(compareBytes)) {
        if (name.startsWith('.') && !allowDot) continue;
        if (!re.test(name)) continue;
        const candidate = join(base, name);
        if (last || (await isDirectory(candidate))) next.push(candidate);
      }
    }
    bases = next;
  }
  return bases.filter((b) => b !== '');
}

function join(base: string, name: string): string {
  if (base === '') return name;
  return base.endsWith('/') ? base + name : `${base}/${name}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
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

/** bsd_glob(pattern, GLOB_BRACE | GLOB_QUOTE): matching paths, sorted per brace alternative. */
export async function bsdGlob(pattern: string): Promise<string[]> {
  const out: string[] = [];
  for (const alt of expandBraces(pattern)) out.push(...(await globOne(alt)));
  return out;
}

/**
 * GNU getopt_long, as tgtadm uses it: argument permutation, `--` terminator, short option
 * clusters (`-dmtarget`), `--opt=value` and `--opt value`, unambiguous long-name prefixes
 * (`--mod`), and glibc's exact diagnostics, so scripts that parse tgtadm's stderr still work.
 */

export interface LongOption {
  name: string;
  hasArg: boolean;
  /** The short option character this long option stands for. */
  val: string;
}

export interface ParsedOption {
  /** Short option character (long options report their `val`). */
  opt: string;
  arg?: string;
}

export type GetoptEvent = ParsedOption | { error: string };

/**
 * Parse `argv` (without the program name). Events come in command-line order and parsing stops
 * at the first error (tgtadm exits there). `operands` are the non-option arguments, in order.
 */
export function getoptLong(
  argv: readonly string[],
  shortOptions: string,
  longOptions: readonly LongOption[],
  program: string,
): { events: GetoptEvent[]; operands: string[] } {
  const events: GetoptEvent[] = [];
  const operands: string[] = [];
  const takesArg = shortArgTable(shortOptions);
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i]!;
    i++;
    if (arg === '--') {
      operands.push(...argv.slice(i));
      break;
    }
    if (arg.startsWith('--')) {
      const result = parseLong(arg.slice(2), argv, i, longOptions, program);
      i = result.next;
      events.push(result.event);
      if ('error' in result.event) break;
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      let stop = false;
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j]!;
        const needs = takesArg.get(c);
        if (needs === undefined) {
          events.push({ error: `${program}: invalid option -- '${c}'` });
          stop = true;
          break;
        }
        if (!needs) {
          events.push({ opt: c });
          continue;
        }
        if (j + 1 < arg.length) {
          events.push({ opt: c, arg: arg.slice(j + 1) });
        } else if (i < argv.length) {
          events.push({ opt: c, arg: argv[i]! });
          i++;
        } else {
          events.push({ error: `${program}: option requires an argument -- '${c}'` });
          stop = true;
        }
        break;
      }
      if (stop) break;
      continue;
    }
    operands.push(arg); // permutation: non-options are collected and moved to the end
  }
  return { events, operands };
}

function shortArgTable(spec: string): Map<string, boolean> {
  const table = new Map<string, boolean>();
  for (let k = 0; k < spec.length; k++) {
    const c = spec[k]!;
    if (c === ':') continue;
    table.set(c, spec[k + 1] === ':');
  }
  return table;
}

function parseLong(
  body: string,
  argv: readonly string[],
  next: number,
  longOptions: readonly LongOption[],
  program: string,
): { event: GetoptEvent; next: number } {
  const eq = body.indexOf('=');
  const name = eq >= 0 ? body.slice(0, eq) : body;
  const inlineArg = eq >= 0 ? body.slice(eq + 1) : undefined;
  let match = longOptions.find((o) => o.name === name);
  if (!match) {
    const candidates = longOptions.filter((o) => o.name.startsWith(name));
    if (candidates.length > 1) {
      const list = candidates.map((o) => ` '--${o.name}'`).join('');
      return { event: { error: `${program}: option '--${name}' is ambiguous; possibilities:${list}` }, next };
    }
    match = candidates[0];
  }
  if (!match || name === '') {
    return { event: { error: `${program}: unrecognized option '--${body}'` }, next };
  }
  if (!match.hasArg) {
    if (inlineArg !== undefined) {
      return { event: { error: `${program}: option '--${match.name}' doesn't allow an argument` }, next };
    }
    return { event: { opt: match.val }, next };
  }
  if (inlineArg !== undefined) return { event: { opt: match.val, arg: inlineArg }, next };
  if (next < argv.length) return { event: { opt: match.val, arg: argv[next]! }, next: next + 1 };
  return { event: { error: `${program}: option '--${match.name}' requires an argument` }, next };
}

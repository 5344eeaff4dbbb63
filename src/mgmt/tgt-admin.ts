/**
 * tgt-admin: configure tgtd from targets.conf (tgt-behaviour.md §3), with tgt's command line,
 * messages and `-p` output. Commands run in-process through our tgtadm (runTgtadm, the same
 * client and checks, no fork per command); `-p` prints the tgtadm command lines tgt-admin
 * would run. What differs from tgt's Perl script is listed in docs/tgt-admin.md.
 */
import { spawn } from 'node:child_process';
import { constants as fsc, promises as fsp } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ClientError, controlSocketPath } from './client.js';
import { type AdminHost, AdminExit, type AdminSettings, TgtAdmin, parseSelector } from './config/admin.js';
import { type ConfigSnapshot, fetchSnapshot } from './config/snapshot.js';
import { renderDump, snapshotFromShow } from './config/dump.js';
import { type CgBlock, ConfigError, parseConfigFile } from './config/general.js';
import { single, validateConfig } from './config/directives.js';
import {
  parseAccountShow,
  parseDiscoveryAccounts,
  parseTargetParams,
  parseTargetShow,
} from './config/show-parse.js';
import { type TgtadmIo, runTgtadm } from './tgtadm-cli.js';

/** tgt's default configuration file. */
export const DEFAULT_CONFIG_FILE = '/etc/tgt/targets.conf';

/** Where tgt-admin writes and which environment its tgtadm commands see. */
export interface TgtAdminIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

const processIo: TgtAdminIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
};

/** tgt-admin's usage text (printed by -h and without arguments). */
export function usage(configFile = DEFAULT_CONFIG_FILE): string {
  return `Usage:
tgt-admin [OPTION]...
This tool configures tgt targets.

  -e, --execute\t\t\tread ${configFile} and execute tgtadm commands
      --delete <value>\t\tdelete all or selected targets
\t\t\t\t(see "--delete help" for more info)
      --offline <value>\t\tput all or selected targets in offline state
\t\t\t\t(see "--offline help" for more info)
      --ready <value>\t\tput all or selected targets in ready state
\t\t\t\t(see "--ready help" for more info)
      --update <value>\t\tupdate configuration for all or selected targets
\t\t\t\t(see "--update help" for more info)
  -s, --show\t\t\tshow all the targets
  -C, --control-port <NNNN>\tspecify the control port to connect to
  -c, --conf <conf file>\tspecify an alternative configuration file
      --ignore-errors\t\tcontinue even if tgtadm exits with non-zero code
  -f, --force\t\t\tforce some operations even if the target is in use
  -p, --pretend\t\t\tonly print tgtadm options
      --dump\t\t\tdump current tgtd configuration
      --with-passwords\t\twith --dump: write account passwords (tgt-ts)
  -v, --verbose\t\t\tincrease verbosity (show tgtadm commands)
  -h, --help\t\t\tshow this help

`;
}

function deleteUpdateHelp(what: 'delete' | 'update'): string {
  const past = what === 'delete' ? 'deleted' : 'updated';
  return `      --${what} <value>\t\t${what} all or selected targets
\t\t\t\tThe target will be ${past} only if it's not used
\t\t\t\t(no initiator is connected to it).
\t\t\t\tIf you want to ${what} targets which are in use,
\t\t\t\tyou have to add "--force" flag.

Example usage:
      --${what} help\t      - display this help
      --${what} ALL\t      - ${what} all targets
      --${what} tid=4\t      - ${what} target 4 (target with tid 4)
      --${what} iqn.2008-08.com.example:some.target - ${what} this target

`;
}

function stateHelp(state: 'offline' | 'ready'): string {
  return `      --${state} <value>\t\t${state} all or selected targets

Example usage:
      --${state} help\t      - display this help
      --${state} ALL\t      - ${state} all targets
      --${state} tid=4\t      - ${state} target 4 (target with tid 4)
      --${state} iqn.2008-08.com.example:some.target - ${state} this target

`;
}

/** The parsed command line. */
export interface TgtAdminArgs {
  execute: boolean;
  delete?: string;
  offline?: string;
  ready?: string;
  update?: string;
  show: boolean;
  conf?: string;
  ignoreErrors: boolean;
  force: boolean;
  pretend: boolean;
  dump: boolean;
  withPasswords: boolean;
  verbose: boolean;
  help: boolean;
  controlPort?: string;
}

interface OptSpec {
  names: string[];
  key: keyof TgtAdminArgs;
  hasArg: boolean;
}

// Getopt::Long spec of tgt-admin (no_ignore_case, no bundling)
const SPECS: readonly OptSpec[] = [
  { names: ['e', 'execute'], key: 'execute', hasArg: false },
  { names: ['delete'], key: 'delete', hasArg: true },
  { names: ['offline'], key: 'offline', hasArg: true },
  { names: ['ready'], key: 'ready', hasArg: true },
  { names: ['update'], key: 'update', hasArg: true },
  { names: ['s', 'show'], key: 'show', hasArg: false },
  { names: ['c', 'conf'], key: 'conf', hasArg: true },
  { names: ['ignore-errors'], key: 'ignoreErrors', hasArg: false },
  { names: ['f', 'force'], key: 'force', hasArg: false },
  { names: ['p', 'pretend'], key: 'pretend', hasArg: false },
  { names: ['dump'], key: 'dump', hasArg: false },
  { names: ['with-passwords'], key: 'withPasswords', hasArg: false },
  { names: ['v', 'verbose'], key: 'verbose', hasArg: false },
  { names: ['h', 'help'], key: 'help', hasArg: false },
  { names: ['C', 'control-port'], key: 'controlPort', hasArg: true },
];

/** Parse argv like Perl's Getopt::Long (`-x`/`--long`, `=value` or next word, unique prefixes). */
export function parseArgs(argv: readonly string[]): { args: TgtAdminArgs; errors: string[] } {
  const args: TgtAdminArgs = {
    execute: false,
    show: false,
    ignoreErrors: false,
    force: false,
    pretend: false,
    dump: false,
    withPasswords: false,
    verbose: false,
    help: false,
  };
  const errors: string[] = [];
  const record = args as unknown as Record<string, unknown>;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') break;
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(word);
    if (!m || word === '-') continue; // not an option: ignored, as tgt-admin leaves it in @ARGV
    const name = m[1]!;
    let spec = SPECS.find((s) => s.names.includes(name));
    if (!spec) {
      const matches = SPECS.flatMap((s) => s.names.filter((n) => n.startsWith(name)).map((n) => ({ s, n })));
      const distinct = [...new Set(matches.map((x) => x.s))];
      if (distinct.length === 1) spec = distinct[0];
      else if (distinct.length > 1) {
        errors.push(`Option ${name} is ambiguous (${matches.map((x) => x.n).join(', ')})`);
        continue;
      }
    }
    if (!spec) {
      errors.push(`Unknown option: ${name}`);
      continue;
    }
    if (!spec.hasArg) {
      if (m[2] !== undefined) errors.push(`Option ${name} does not take an argument`);
      else record[spec.key] = true;
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      if (i + 1 >= argv.length) {
        errors.push(`Option ${name} requires an argument`);
        continue;
      }
      value = argv[++i]!;
    }
    record[spec.key] = value;
  }
  return { args, errors };
}

/** The host side of tgt-admin: tgtadm in-process, the file system, lsof and sg3_utils. */
function makeHost(io: TgtAdminIo): AdminHost {
  const tgtadmIo = (stdout: (t: string) => void): TgtadmIo => ({ stdout, stderr: io.stderr, env: io.env });
  return {
    tgtadm: (argv) => runTgtadm(argv, tgtadmIo(io.stdout)),
    async query(argv) {
      let text = '';
      await runTgtadm(
        argv,
        tgtadmIo((t) => (text += t)),
      );
      return text;
    },
    out: io.stdout,
    err: io.stderr,
    async pathExists(path) {
      return fsp.stat(path).then(
        () => true,
        () => false,
      );
    },
    async isDirectory(path) {
      return fsp.stat(path).then(
        (st) => st.isDirectory(),
        () => false,
      );
    },
    async deviceBusy(path) {
      try {
        const fh = await fsp.open(path, fsc.O_RDONLY | fsc.O_EXCL);
        await fh.close();
        return false;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'EBUSY';
      }
    },
    inPath: (command) => inPath(command, io.env),
    runProgram: (command, args) => runProgram(command, args, io),
  };
}

async function inPath(command: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      const st = await fsp.stat(join(dir, command));
      if (st.isFile()) {
        await fsp.access(join(dir, command), fsc.X_OK);
        return true;
      }
    } catch {
      // not here
    }
  }
  return false;
}

function runProgram(
  command: string,
  args: readonly string[],
  io: TgtAdminIo,
): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: io.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.resume();
    child.on('error', () => resolve({ code: 127, stdout }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout }));
  });
}

/** Read and check targets.conf; exits like tgt-admin when it is missing or malformed. */
async function loadConfig(file: string, io: TgtAdminIo): Promise<CgBlock> {
  try {
    await fsp.stat(file);
  } catch {
    io.stderr(`Config file ${file} not found. Exiting...\n`);
    throw new AdminExit(2);
  }
  let conf: CgBlock;
  try {
    conf = await parseConfigFile(file, { warn: (m) => io.stderr(`tgt-admin: ${m}\n`) });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.stderr(`tgt-admin: ${e.message}\n`);
    throw new AdminExit(255);
  }
  try {
    for (const w of validateConfig(conf).warnings) io.stderr(`tgt-admin: ${w}\n`);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.stderr(`tgt-admin: ${e.message}\n`);
    throw new AdminExit(1);
  }
  return conf;
}

/** The control port: -C, else the config's control-port (both, differing: an error). */
function resolvePort(cli: string | undefined, conf: CgBlock | undefined, io: TgtAdminIo): string {
  const fromConf = conf ? single(conf, 'control-port', '') : undefined;
  if (fromConf !== undefined && cli !== undefined && cli !== '0' && cli !== fromConf) {
    io.stdout('Multiple control-port definitions are not allowed!\nCheck your config file for errors.\n');
    throw new AdminExit(1);
  }
  return cli !== undefined && cli !== '0' ? cli : (fromConf ?? cli ?? '0');
}

/** Run tgt-admin; resolves with the exit status. */
export async function runTgtAdmin(argv: readonly string[], io: TgtAdminIo = processIo): Promise<number> {
  try {
    await main(argv, io);
    return 0;
  } catch (e) {
    if (e instanceof AdminExit) return e.code;
    throw e;
  }
}

async function main(argv: readonly string[], io: TgtAdminIo): Promise<void> {
  const { args, errors } = parseArgs(argv);
  for (const e of errors) io.stderr(`${e}\n`);
  if (errors.length > 0) {
    io.stderr("Try `tgt-admin --help' for more information.\n");
    throw new AdminExit(1);
  }
  if (args.help || argv.length === 0) {
    io.stdout(usage());
    return;
  }
  const settings = (port: string): AdminSettings => ({
    controlPort: port,
    pretend: args.pretend,
    force: args.force,
    verbose: args.verbose,
    ignoreErrors: args.ignoreErrors,
  });
  if (args.show) {
    await new TgtAdmin(makeHost(io), settings(args.controlPort ?? '0')).show();
    return;
  }
  const readConf = async (): Promise<CgBlock> => {
    const file = args.conf ?? DEFAULT_CONFIG_FILE;
    const conf = await loadConfig(file, io);
    if (args.conf !== undefined && (args.pretend || args.verbose))
      io.stdout(`# Using ${args.conf} as configuration file\n\n`);
    return conf;
  };
  if (args.execute) {
    const conf = await readConf();
    const admin = new TgtAdmin(makeHost(io), settings(resolvePort(args.controlPort, conf, io)));
    await admin.preflight(conf);
    await admin.execute(conf);
  } else if (args.delete !== undefined) {
    if (args.delete === 'help') {
      io.stdout(deleteUpdateHelp('delete'));
      return;
    }
    await new TgtAdmin(makeHost(io), settings(args.controlPort ?? '0')).delete(parseSelector(args.delete));
  } else if (args.update !== undefined) {
    if (args.update === 'help') {
      io.stdout(deleteUpdateHelp('update'));
      return;
    }
    const conf = await readConf();
    const admin = new TgtAdmin(makeHost(io), settings(resolvePort(args.controlPort, conf, io)));
    await admin.preflight(conf);
    await admin.update(parseSelector(args.update), conf);
  } else if (args.dump) {
    io.stdout(await dump(args.controlPort ?? '0', args.withPasswords, io));
  } else if (args.offline !== undefined || args.ready !== undefined) {
    if (args.offline !== undefined && args.ready !== undefined) {
      io.stdout("Invalid value (you can't use both ready and offline)!\n");
      throw new AdminExit(1);
    }
    const state = args.offline !== undefined ? 'offline' : 'ready';
    const value = (args.offline ?? args.ready)!;
    if (value === 'help') {
      io.stdout(stateHelp(state));
      return;
    }
    await new TgtAdmin(makeHost(io), settings(args.controlPort ?? '0')).setState(parseSelector(value), state);
  } else {
    io.stdout('No action specified.\n');
  }
}

/** --dump: the snapshot request when the daemon knows it, else what `show` tells. */
async function dump(port: string, withPasswords: boolean, io: TgtAdminIo): Promise<string> {
  const host = makeHost(io);
  let snap: ConfigSnapshot | null = null;
  try {
    snap = await fetchSnapshot(controlSocketPath(Number(port) || 0, io.env), withPasswords);
  } catch (e) {
    if (!(e instanceof ClientError)) throw e;
  }
  if (!snap) {
    if (withPasswords) io.stderr('tgt-admin: this tgtd does not give out passwords; writing placeholders\n');
    const q = (...a: string[]): Promise<string> => host.query(['-C', port, ...a]);
    const targets = parseTargetShow(await q('--op', 'show', '--mode', 'target'));
    const params = new Map<number, Record<string, string>>();
    for (const t of targets)
      params.set(
        t.tid,
        parseTargetParams(await q('--op', 'show', '--mode', 'target', '--tid', String(t.tid))),
      );
    const accounts = parseAccountShow(await q('--op', 'show', '--mode', 'account'));
    const discovery = parseDiscoveryAccounts(await q('--op', 'show', '--mode', 'sys'));
    snap = snapshotFromShow(targets, params, accounts, discovery);
  }
  return renderDump(snap, { withPasswords });
}

/**
 * CommonJS (.cts) so that bin/tgtd can size the thread pool from -t before any ES module loads.
 *
 * tgtd's command line, as tgt 1.0.x parses it (tgt-behaviour.md §1.7):
 *   -f/--foreground, -D/--nodaemonize, -C/--control-port N, -t/--nr_iothreads N, -p/--pid-file F,
 *   -d/--debug N, -V/--version, -h/--help, --iscsi k=v,... (portal=ADDR:PORT repeatable,
 *   nop_interval=N, nop_count=N).
 * tgt-ts additions: --state FILE (configuration saved after every change and restored at start,
 * docs/service.md), --iscsi dataout_timeout=N (seconds a connection may owe Data-Out before it is
 * closed, 0: never; docs/robustness.md), --iscsi logout_grace=N (seconds initiators get to log out when their
 * target is deleted with --force) and --iscsi busy_poll=USEC (longest the daemon polls for the next
 * command before it sleeps, 0: never; src/iscsi/busy-poll.ts), --workers N (targets spread over
 * tgtd and up to N worker processes, one core each; src/mgmt/workers/pool.ts).
 */
import { readFileSync } from 'node:fs';

/** The numeric `--iscsi` keys: their largest value and the option they set. */
const NUMERIC_ISCSI_OPTIONS: Record<string, { max: number; set(o: TgtdOptions, n: number): void }> = {
  nop_interval: { max: Infinity, set: (o, n) => (o.nopInterval = n) },
  nop_count: { max: Infinity, set: (o, n) => (o.nopCount = n) },
  logout_grace: { max: 3600, set: (o, n) => (o.logoutGraceSeconds = n) },
  dataout_timeout: { max: 3600, set: (o, n) => (o.dataOutTimeoutSeconds = n) },
  // A pause between commands, not a timeout: a second is already far too long.
  busy_poll: { max: 1_000_000, set: (o, n) => (o.busyPollUs = n) },
};

export const TGTD_VERSION = '1.0.85-ts';

export interface TgtdOptions {
  foreground: boolean;
  noDaemonize: boolean;
  controlPort: number;
  ioThreads: number;
  /** -t/--nr_iothreads was on the command line (it then wins over UV_THREADPOOL_SIZE). */
  ioThreadsGiven: boolean;
  pidFile: string | null;
  debug: boolean;
  /** Portal specs as given ("127.0.0.1:3260", "[::1]:3260"); empty = wildcard on 3260. */
  portals: string[];
  nopInterval: number;
  nopCount: number;
  /** --iscsi logout_grace=N (seconds); null = the driver's default. */
  logoutGraceSeconds: number | null;
  /** --iscsi dataout_timeout=N (seconds, 0 = never); null = the driver's default. */
  dataOutTimeoutSeconds: number | null;
  /** --iscsi busy_poll=USEC (0 = never); null = the default for this machine (busy-poll.ts). */
  busyPollUs: number | null;
  /** --state FILE; null = no saved state. */
  stateFile: string | null;
  /** --workers N: targets are spread over this process and up to N workers; 0: all here; null: one per CPU. */
  workers: number | null;
  /**
   * --spread targets|sessions: with workers, spread whole targets only, or also the sessions of
   * the targets this process serves (docs/multicore.md).
   */
  spread: 'targets' | 'sessions';
}

export type ParseResult =
  { kind: 'run'; options: TgtdOptions } | { kind: 'exit'; code: number; stdout?: string; stderr?: string };

export const TGTD_USAGE = `Linux SCSI Target framework daemon, version ${TGTD_VERSION}

Usage: tgtd [OPTION]
-f, --foreground        make the program run in the foreground
-D, --nodaemonize       make the program run in the foreground with logger
-C, --control-port NNNN use port NNNN for the mgmt channel
-t, --nr_iothreads NNNN specify the number of I/O threads
-p, --pid-file filename specify the pid file
-d, --debug debuglevel  print debugging information
-V, --version           print version and exit
-h, --help              display this help and exit
    --iscsi portal=ADDR:PORT,nop_interval=N,nop_count=N,logout_grace=N,dataout_timeout=N,busy_poll=USEC
                        iSCSI driver options (portal may repeat; IPv6 as [ADDR]:PORT)
    --state FILE        save the configuration to FILE after every change and
                        restore it at start
    --workers N         spread targets over this process and up to N worker
                        processes (one core each); 0: one process; default:
                        one process per CPU
    --spread WHAT       with workers, what goes to them: whole targets
                        ('targets'), or also the sessions of the targets
                        this process serves ('sessions', the default)
`;

const TRY_HELP = "Try `tgtd --help' for more information.\n";

/** Options that take a value, by short and long name. */
const WITH_VALUE: Record<string, string> = {
  '-C': 'control-port',
  '--control-port': 'control-port',
  '-t': 'nr_iothreads',
  '--nr_iothreads': 'nr_iothreads',
  '-p': 'pid-file',
  '--pid-file': 'pid-file',
  '-d': 'debug',
  '--debug': 'debug',
  '--iscsi': 'iscsi',
  '--state': 'state',
  '--workers': 'workers',
  '--spread': 'spread',
};

/** Most worker processes (each gets its own range of session ids). */
export const MAX_WORKERS = 64;

/** tgt's answer to an option value it cannot use. */
function invalidValue(option: string, value: string): ParseResult {
  return { kind: 'exit', code: 22, stderr: `${option} argument value '${value}' invalid\n${TRY_HELP}` };
}

function parseUint(text: string): number | null {
  return /^\d+$/.test(text) ? Number(text) : null;
}

/** Parse tgtd's argv (without node and script). */
export function parseTgtdArgs(argv: readonly string[]): ParseResult {
  const o: TgtdOptions = {
    foreground: false,
    noDaemonize: false,
    controlPort: 0,
    ioThreads: 16,
    ioThreadsGiven: false,
    pidFile: null,
    debug: false,
    portals: [],
    nopInterval: 0,
    nopCount: 0,
    logoutGraceSeconds: null,
    dataOutTimeoutSeconds: null,
    busyPollUs: null,
    stateFile: null,
    workers: null,
    spread: 'sessions',
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let value: string | undefined;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    if (eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const valued = WITH_VALUE[arg];
    if (valued !== undefined && value === undefined) {
      value = argv[++i];
      if (value === undefined) {
        return { kind: 'exit', code: 22, stderr: `option '${arg}' requires an argument\n${TRY_HELP}` };
      }
    }
    switch (arg) {
      case '-f':
      case '--foreground':
        o.foreground = true;
        break;
      case '-D':
      case '--nodaemonize':
        o.noDaemonize = true;
        break;
      case '-V':
      case '--version':
        return { kind: 'exit', code: 0, stdout: `${TGTD_VERSION}\n` };
      case '-h':
      case '--help':
        return { kind: 'exit', code: 0, stdout: TGTD_USAGE };
      case '-C':
      case '--control-port': {
        const n = parseUint(value!);
        if (n === null || n > 65535) {
          return { kind: 'exit', code: 22, stderr: `-C argument value '${value}' invalid\n${TRY_HELP}` };
        }
        o.controlPort = n;
        break;
      }
      case '-t':
      case '--nr_iothreads': {
        const n = parseUint(value!);
        if (n === null || n < 1 || n > 128) {
          return { kind: 'exit', code: 22, stderr: `-t argument value '${value}' invalid\n${TRY_HELP}` };
        }
        o.ioThreads = n;
        o.ioThreadsGiven = true;
        break;
      }
      case '-p':
      case '--pid-file':
        o.pidFile = value!;
        break;
      case '-d':
      case '--debug': {
        const n = parseUint(value!);
        if (n === null) {
          return { kind: 'exit', code: 22, stderr: `-d argument value '${value}' invalid\n${TRY_HELP}` };
        }
        o.debug = n > 0;
        break;
      }
      case '--state':
        if (value === '') return { kind: 'exit', code: 22, stderr: `--state needs a file name\n${TRY_HELP}` };
        o.stateFile = value!;
        break;
      case '--workers': {
        const n = parseUint(value!);
        if (n === null || n > MAX_WORKERS) return invalidValue(arg, value!);
        o.workers = n;
        break;
      }
      case '--spread':
        if (value !== 'targets' && value !== 'sessions') return invalidValue(arg, value!);
        o.spread = value;
        break;
      case '--iscsi': {
        const err = parseIscsiOptions(value!, o);
        if (err) return { kind: 'exit', code: 22, stderr: `${err}\n${TRY_HELP}` };
        break;
      }
      default:
        return {
          kind: 'exit',
          code: 1,
          stderr: `'${arg.replace(/^-+/, '')}' is an unknown option\n${TRY_HELP}`,
        };
    }
  }
  return { kind: 'run', options: o };
}

/** `--iscsi portal=A:P,portal=B:P,nop_interval=N,nop_count=N`. Returns an error message or null. */
function parseIscsiOptions(text: string, o: TgtdOptions): string | null {
  for (const item of text.split(',')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) return `invalid iscsi option '${item}'`;
    const key = item.slice(0, eq);
    const val = item.slice(eq + 1);
    if (key === 'portal') {
      if (!/^(\[[0-9a-fA-F:.%\w]+\]|[^:[\]]*)(:\d{1,5})?$/.test(val)) return `invalid portal '${val}'`;
      o.portals.push(val);
    } else if (Object.hasOwn(NUMERIC_ISCSI_OPTIONS, key)) {
      const option = NUMERIC_ISCSI_OPTIONS[key]!;
      const n = parseUint(val);
      if (n === null || n > option.max) return `invalid ${key} '${val}'`;
      option.set(o, n);
    } else {
      return `unknown iscsi option '${key}'`;
    }
  }
  return null;
}

/**
 * The Node.js flags on `bin/tgtd`'s "#!/usr/bin/env -S node ..." line, for tools that start it
 * as `node <flags> bin/tgtd` (a shebang is not read then) so they run the daemon as installed.
 */
export function tgtdNodeFlags(binTgtd: string): string[] {
  let first: string;
  try {
    first = readFileSync(binTgtd, 'utf8').split('\n', 1)[0]!;
  } catch {
    return [];
  }
  const m = /^#!\S*env -S node\s+(.*)$/.exec(first);
  return m ? m[1]!.split(/\s+/).filter((f) => f.startsWith('--')) : [];
}

/**
 * UV_THREADPOOL_SIZE for tgtd (store I/O that cannot run inline uses libuv's thread pool, tgt's
 * I/O threads): -t when given, else the environment's, else -t's default. bin/tgtd sets it before
 * the pool starts; the daemonized child gets it in its environment.
 */
export function threadPoolSize(options: TgtdOptions, env: NodeJS.ProcessEnv): string {
  if (options.ioThreadsGiven) return String(options.ioThreads);
  return env.UV_THREADPOOL_SIZE ?? String(options.ioThreads);
}

/**
 * A process's thread pool keeps the size it started with. bin/tgtd sizes it from -t before it
 * starts; a tgtd started some other way (`node dist/src/bin/tgtd.js -f -t N`) can only get it
 * from the environment: the message for a -t that the environment does not match.
 */
export function foregroundThreadPoolWarning(options: TgtdOptions, env: NodeJS.ProcessEnv): string | null {
  if (!options.ioThreadsGiven) return null;
  const size = env.UV_THREADPOOL_SIZE ?? '4';
  if (size === String(options.ioThreads)) return null;
  return (
    `tgtd: -t ${options.ioThreads} has no effect in the foreground (the I/O thread pool has ${size} threads);` +
    ` start tgtd with UV_THREADPOOL_SIZE=${options.ioThreads} in its environment\n`
  );
}

/**
 * tgtadm: tgt's management command line (tgt-behaviour.md §2.2, §2.3), with tgt 1.0.x's
 * options, client-side checks, messages, payload layout and exit codes:
 *   0 success, 22 (EINVAL) bad usage or a daemon error (`tgtadm: <message>`),
 *   107 (ENOTCONN) daemon unreachable, 1 unknown --mode/--op.
 */
import { Buffer } from 'node:buffer';
import { readdirSync } from 'node:fs';
import { ADMIN_ERROR_MESSAGES, AdminError, GLOBAL_TID } from '../scsi/admin-error.js';
import { ClientError, MAX_SOCKET_PATH, controlSocketPath, sendRequest, waitForDaemonExit } from './client.js';
import { type CIntType, strToInt } from './cstr.js';
import { type LongOption, getoptLong } from './getopt.js';
import {
  AccountDirection,
  type AdminRequest,
  LUN_NOT_GIVEN,
  MgmtMode,
  MgmtOp,
  defaultRequest,
} from './wire.js';

export const TGTADM_VERSION = '1.0.85-ts';
const PROGRAM = 'tgtadm';
const EINVAL = 22;
const ENOTCONN = 107;
const TRY_HELP = "Try `tgtadm --help' for more information.\n";

// SCSI peripheral device types (the values tgtadm puts in device_type).
const TYPE_DISK = 0x00;
const TYPE_TAPE = 0x01;
const TYPE_MMC = 0x05;
const TYPE_MEDIUM_CHANGER = 0x08;
const TYPE_OSD = 0x11;
const TYPE_PT = 0xff;

const LONG_OPTIONS: readonly LongOption[] = [
  { name: 'debug', hasArg: false, val: 'd' },
  { name: 'help', hasArg: false, val: 'h' },
  { name: 'version', hasArg: false, val: 'V' },
  { name: 'lld', hasArg: true, val: 'L' },
  { name: 'op', hasArg: true, val: 'o' },
  { name: 'mode', hasArg: true, val: 'm' },
  { name: 'tid', hasArg: true, val: 't' },
  { name: 'sid', hasArg: true, val: 's' },
  { name: 'cid', hasArg: true, val: 'c' },
  { name: 'lun', hasArg: true, val: 'l' },
  { name: 'name', hasArg: true, val: 'n' },
  { name: 'value', hasArg: true, val: 'v' },
  { name: 'backing-store', hasArg: true, val: 'b' },
  { name: 'bstype', hasArg: true, val: 'E' },
  { name: 'bsopts', hasArg: true, val: 'S' },
  { name: 'bsoflags', hasArg: true, val: 'f' },
  { name: 'blocksize', hasArg: true, val: 'y' },
  { name: 'targetname', hasArg: true, val: 'T' },
  { name: 'initiator-address', hasArg: true, val: 'I' },
  { name: 'initiator-name', hasArg: true, val: 'Q' },
  { name: 'user', hasArg: true, val: 'u' },
  { name: 'password', hasArg: true, val: 'p' },
  { name: 'host', hasArg: true, val: 'H' },
  { name: 'force', hasArg: false, val: 'F' },
  { name: 'params', hasArg: true, val: 'P' },
  { name: 'bus', hasArg: true, val: 'B' },
  { name: 'device-type', hasArg: true, val: 'Y' },
  { name: 'outgoing', hasArg: false, val: 'O' },
  { name: 'control-port', hasArg: true, val: 'C' },
];

// tgt declares -F and -O as taking an argument here (tgt-behaviour.md §2.2 note); kept as is.
const SHORT_OPTIONS = 'dhVL:o:m:t:s:c:l:n:v:b:E:f:y:T:I:Q:u:p:H:F:P:B:Y:O:C:S:';

export const TGTADM_USAGE = `Linux SCSI Target administration utility, version ${TGTADM_VERSION}

Usage: ${PROGRAM} [OPTION]
--lld <driver> --mode target --op new --tid <id> --targetname <name>
\tadd a new target with <id> and <name>. <id> must not be zero.
--lld <driver> --mode target --op delete [--force] --tid <id>
\tdelete the specific target with <id>.
\tWith force option, the specific target is deleted
\teven if there is an activity.
--lld <driver> --mode target --op show
\tshow all the targets.
--lld <driver> --mode target --op show --tid <id>
\tshow the specific target's parameters.
--lld <driver> --mode target --op update --tid <id> --name <param> --value <value>
\tchange the target parameters of the target with <id>.
--lld <driver> --mode target --op bind --tid <id> --initiator-address <address>
--lld <driver> --mode target --op bind --tid <id> --initiator-name <name>
\tenable the target to accept the specific initiators.
--lld <driver> --mode target --op unbind --tid <id> --initiator-address <address>
--lld <driver> --mode target --op unbind --tid <id> --initiator-name <name>
\tdisable the specific permitted initiators.
--lld <driver> --mode logicalunit --op new --tid <id> --lun <lun>
  --backing-store <path> --bstype <type> --bsopts <bs options> --bsoflags <options>
\tadd a new logical unit with <lun> to the specific
\ttarget with <id>. The logical unit is offered
\tto the initiators. <path> must be block device files
\t(including LVM and RAID devices) or regular files.
\tbstype option is optional.
\tbsopts are specific to the bstype.
\tbsoflags supported options are sync and direct
\t(sync:direct for both).
--lld <driver> --mode logicalunit --op delete --tid <id> --lun <lun>
\tdelete the specific logical unit with <lun> that
\tthe target with <id> has.
--lld <driver> --mode account --op new --user <name> --password <pass>
\tadd a new account with <name> and <pass>.
--lld <driver> --mode account --op delete --user <name>
\tdelete the specific account having <name>.
--lld <driver> --mode account --op bind --tid <id> --user <name> [--outgoing]
\tadd the specific account having <name> to
\tthe specific target with <id>.
\t<user> could be <IncomingUser> or <OutgoingUser>.
\tIf you use --outgoing option, the account will
\tbe added as an outgoing account.
--lld <driver> --mode account --op unbind --tid <id> --user <name> [--outgoing]
\tdelete the specific account having <name> from specific
\ttarget. The --outgoing option must be added if you
\tdelete an outgoing account.
--lld <driver> --mode lld --op start
\tStart the specified lld without restarting the tgtd process.
--control-port <port> use control port <port>
--help
\tdisplay this help and exit

Report bugs to <stgt@vger.kernel.org>.
`;

/** What the command line asks for: either exit now, or send one request. */
export type TgtadmPlan =
  | { kind: 'exit'; code: number; stdout?: string; stderr?: string }
  | { kind: 'request'; req: AdminRequest; payload: string; controlPort: number; debug: boolean };

const MODES: Record<string, MgmtMode> = {
  system: MgmtMode.System,
  sys: MgmtMode.System,
  target: MgmtMode.Target,
  tgt: MgmtMode.Target,
  logicalunit: MgmtMode.Device,
  lu: MgmtMode.Device,
  portal: MgmtMode.Portal,
  pt: MgmtMode.Portal,
  session: MgmtMode.Session,
  sess: MgmtMode.Session,
  connection: MgmtMode.Connection,
  conn: MgmtMode.Connection,
  account: MgmtMode.Account,
  lld: MgmtMode.Lld,
};

const OPS: Record<string, MgmtOp> = {
  new: MgmtOp.New,
  delete: MgmtOp.Delete,
  bind: MgmtOp.Bind,
  unbind: MgmtOp.Unbind,
  show: MgmtOp.Show,
  update: MgmtOp.Update,
  stat: MgmtOp.Stats,
  start: MgmtOp.Start,
  stop: MgmtOp.Stop,
};

const DEVICE_TYPES: Record<string, number> = {
  disk: TYPE_DISK,
  tape: TYPE_TAPE,
  cd: TYPE_MMC,
  changer: TYPE_MEDIUM_CHANGER,
  osd: TYPE_OSD,
  ssc: TYPE_TAPE,
  pt: TYPE_PT,
};

class Exit {
  constructor(
    readonly code: number,
    readonly stderr = '',
    readonly stdout = '',
  ) {}
}

const fail = (msg: string, code = EINVAL): Exit => new Exit(code, `${PROGRAM}: ${msg}\n`);

function own<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

/** Parse tgtadm's argv (without node and script) into a request or an immediate exit. */
export function planTgtadm(argv: readonly string[]): TgtadmPlan {
  try {
    return buildPlan(argv);
  } catch (e) {
    if (e instanceof Exit) return { kind: 'exit', code: e.code, stdout: e.stdout, stderr: e.stderr };
    throw e;
  }
}

interface Collected {
  op: number;
  opName: string;
  mode: number;
  req: AdminRequest;
  name?: string;
  value?: string;
  path?: string;
  targetname?: string;
  address?: string;
  iqnname?: string;
  user?: string;
  password?: string;
  bstype?: string;
  bsopts?: string;
  bsoflags?: string;
  blocksize?: string;
  targetOps?: string;
  portalOps?: string;
  controlPort: number;
  debug: boolean;
  seen: string[];
}

function buildPlan(argv: readonly string[]): TgtadmPlan {
  const { events, operands } = getoptLong(argv, SHORT_OPTIONS, LONG_OPTIONS, PROGRAM);
  const c: Collected = {
    op: -1,
    opName: '',
    mode: -1,
    req: defaultRequest(0, 0),
    controlPort: 0,
    debug: false,
    seen: [],
  };
  for (const ev of events) {
    if ('error' in ev) throw new Exit(EINVAL, `${ev.error}\n${TRY_HELP}`);
    c.seen.push(ev.opt);
    applyOption(c, ev.opt, ev.arg ?? '');
  }
  if (operands.length > 0)
    throw new Exit(EINVAL, `${PROGRAM}: unrecognized option '${operands[0]}'\n${TRY_HELP}`);
  if (c.op < 0) throw fail('specify the operation type');
  if (c.mode < 0) throw fail('specify the mode');
  c.req.mode = c.mode;
  c.req.op = c.op;
  validate(c);
  return {
    kind: 'request',
    req: c.req,
    payload: buildPayload(c),
    controlPort: c.controlPort,
    debug: c.debug,
  };
}

function parseNumber(ch: string, arg: string, type: CIntType, min?: bigint): bigint {
  const r = strToInt(arg, type, min);
  if (r.ok) return r.value;
  const what = r.reason === 'range' ? 'out of range' : 'invalid';
  throw new Exit(EINVAL, `-${ch} argument value '${arg}' ${what}\n${TRY_HELP}`);
}

function applyOption(c: Collected, ch: string, arg: string): void {
  const req = c.req;
  switch (ch) {
    case 'L':
      req.lld = arg;
      break;
    case 'o': {
      const op = own(OPS, arg);
      if (op === undefined) throw fail(`unknown operation: ${arg}`, 1);
      c.op = op;
      c.opName = arg;
      break;
    }
    case 'm': {
      const mode = own(MODES, arg);
      if (mode === undefined) throw fail(`unknown mode: ${arg}`, 1);
      c.mode = mode;
      break;
    }
    case 't':
      req.tid = Number(parseNumber(ch, arg, 'int32', 0n));
      break;
    case 's':
      req.sid = parseNumber(ch, arg, 'uint64');
      break;
    case 'c':
      req.cid = Number(parseNumber(ch, arg, 'uint32'));
      break;
    case 'l':
      req.lun = parseNumber(ch, arg, 'uint64');
      break;
    case 'P':
      // Decided by the mode given *before* --params, exactly as tgtadm does.
      if (c.mode === MgmtMode.Portal) c.portalOps = arg;
      else c.targetOps = arg;
      break;
    case 'n':
      c.name = arg;
      break;
    case 'v':
      c.value = arg;
      break;
    case 'b':
      c.path = arg;
      break;
    case 'T':
      c.targetname = arg;
      break;
    case 'I':
      c.address = arg;
      break;
    case 'Q':
      c.iqnname = arg;
      break;
    case 'u':
      c.user = arg;
      break;
    case 'p':
      c.password = arg;
      break;
    case 'B':
      req.hostNo = busToHost(arg);
      break;
    case 'H':
      req.hostNo = Number(parseNumber(ch, arg, 'uint32', 0n));
      break;
    case 'F':
      req.force = 1;
      break;
    case 'f':
      c.bsoflags = arg;
      break;
    case 'y':
      c.blocksize = arg;
      break;
    case 'E':
      c.bstype = arg;
      break;
    case 'S':
      c.bsopts = arg;
      break;
    case 'Y': {
      const t = own(DEVICE_TYPES, arg);
      if (t === undefined) throw fail(`unknown target type: ${arg}`);
      req.deviceType = t;
      break;
    }
    case 'O':
      req.acDir = AccountDirection.Outgoing;
      break;
    case 'C':
      c.controlPort = Number(parseNumber(ch, arg, 'int16', 0n));
      break;
    case 'V':
      throw new Exit(0, '', `${TGTADM_VERSION}\n`);
    case 'd':
      c.debug = true;
      break;
    case 'h':
      throw new Exit(0, '', TGTADM_USAGE);
    default:
      throw new Exit(EINVAL, TRY_HELP);
  }
}

/** `--bus <bus>,<device>`: the SCSI host number under /sys/bus/<bus>/devices/<device>. */
function busToHost(arg: string): number {
  const comma = arg.indexOf(',');
  if (comma < 0) return -EINVAL >>> 0; // tgt stores -EINVAL as the host number
  const bus = arg.slice(0, comma);
  let host = -1;
  try {
    for (const entry of readdirSync(`/sys/bus/${bus}/devices/${arg.slice(comma + 1)}`).sort()) {
      if (!entry.startsWith('host')) continue;
      const digits = /^\d*/.exec(entry.slice(4))![0];
      host = digits === '' ? 0 : Number(digits);
    }
  } catch {
    // no such bus/device: reported below
  }
  if (host < 0) throw fail(`can't find bus: ${bus}`);
  return host >>> 0;
}

/** The first option (short letter) given that is not in `allowed` (debug is always allowed). */
function disallowedOption(c: Collected, allowed: string): string | undefined {
  return c.seen.find((ch) => !allowed.includes(ch) && ch !== 'd');
}

function requireOnly(c: Collected, allowed: string, message: (ch: string) => string): void {
  const bad = disallowedOption(c, allowed);
  if (bad !== undefined) throw fail(message(bad));
}

// tgt-behaviour.md §2.3: tgtadm's client-side checks, mode by mode, in tgtadm's order.
function validate(c: Collected): void {
  const req = c.req;
  const notAllowed = (mode: string) => (ch: string) =>
    `${mode} mode: option '-${ch}' is not allowed/supported`;
  const needNameValue = (): void => {
    if (c.name === undefined || c.value === undefined)
      throw fail("update operation requires 'name' and 'value' options");
  };
  switch (c.mode) {
    case MgmtMode.System:
      switch (c.op) {
        case MgmtOp.Update:
          requireOnly(c, 'LmonvC', notAllowed('system'));
          needNameValue();
          break;
        case MgmtOp.Show:
        case MgmtOp.Delete:
        case MgmtOp.Stats:
          break;
        default:
          throw fail(`operation ${c.opName} not supported in system mode`);
      }
      break;
    case MgmtMode.Target:
      if (req.tid <= 0 && c.op !== MgmtOp.Show) {
        throw fail(req.tid === 0 ? "'tid' cannot be 0" : "'tid' option is necessary");
      }
      switch (c.op) {
        case MgmtOp.New:
          requireOnly(c, 'LmotTC', notAllowed('target'));
          if (c.targetname === undefined) throw fail('creating new target requires a name, use --targetname');
          break;
        case MgmtOp.Delete:
          requireOnly(c, 'LmotCF', notAllowed('target'));
          break;
        case MgmtOp.Show:
        case MgmtOp.Stats:
          requireOnly(c, 'LmotC', notAllowed('target'));
          break;
        case MgmtOp.Bind:
        case MgmtOp.Unbind:
          requireOnly(c, 'LmotIQBHC', notAllowed('target'));
          if (c.address === undefined && c.iqnname === undefined && req.hostNo === 0) {
            throw fail(`${c.opName} operation requires initiator-address, initiator-nameor bus`);
          }
          break;
        case MgmtOp.Update:
          requireOnly(c, 'LmotnvC', notAllowed('target'));
          needNameValue();
          break;
        default:
          throw fail(`operation ${c.opName} not supported in target mode`);
      }
      break;
    case MgmtMode.Account:
      switch (c.op) {
        case MgmtOp.New:
          requireOnly(c, 'LmoupfC', notAllowed('account'));
          if (c.user === undefined || c.password === undefined)
            throw fail("'user' and 'password' options are required");
          break;
        case MgmtOp.Show:
          requireOnly(c, 'LmoC', notAllowed('account'));
          break;
        case MgmtOp.Delete:
          requireOnly(c, 'LmouC', notAllowed('account'));
          break;
        case MgmtOp.Bind:
        case MgmtOp.Unbind:
          requireOnly(c, 'LmotuOC', notAllowed('account'));
          if (c.user === undefined) throw fail("'user' option is necessary");
          if (req.tid === -1) req.tid = GLOBAL_TID;
          break;
        default:
          throw fail(`operation ${c.opName} not supported in account mode`);
      }
      break;
    case MgmtMode.Device:
      if (req.tid <= 0) throw fail(req.tid === 0 ? "'tid' must not be 0" : "'tid' option is necessary");
      if (req.lun === LUN_NOT_GIVEN) throw fail("'lun' option is necessary");
      switch (c.op) {
        case MgmtOp.New:
          requireOnly(c, 'LmofytlbEYCS', notAllowed('logicalunit'));
          if (
            c.path === undefined &&
            req.deviceType !== TYPE_MMC &&
            req.deviceType !== TYPE_TAPE &&
            req.deviceType !== TYPE_DISK
          ) {
            throw fail("'backing-store' option is necessary");
          }
          break;
        case MgmtOp.Delete:
        case MgmtOp.Stats:
          requireOnly(c, 'LmotlC', notAllowed('logicalunit'));
          break;
        case MgmtOp.Update:
          requireOnly(c, 'LmofytlPC', (ch) => `option '-${ch}' not supported in logicalunit mode`);
          break;
        default:
          throw fail(`operation ${c.opName} not supported in logicalunit mode`);
      }
      break;
    case MgmtMode.Portal:
      switch (c.op) {
        case MgmtOp.New:
        case MgmtOp.Delete:
          requireOnly(c, 'LmoCP', notAllowed('portal'));
          if (c.portalOps === undefined) throw fail('you must specify --param portal=<portal>');
          break;
        case MgmtOp.Show:
          requireOnly(c, 'LmoC', (ch) => `option '-${ch}' not supported in portal mode`);
          break;
        default:
          throw fail(`operation ${c.opName} not supported in portal mode`);
      }
      break;
    case MgmtMode.Lld:
      switch (c.op) {
        case MgmtOp.Start:
        case MgmtOp.Stop:
        case MgmtOp.Show:
          requireOnly(c, 'LmoC', notAllowed('lld'));
          break;
        default:
          throw fail(`option ${c.op} not supported in lld mode`);
      }
      break;
    default:
      break; // session and connection: no client-side checks in tgtadm
  }
}

/** The payload in tgtadm's order (tgt-behaviour.md §2.1). */
function buildPayload(c: Collected): string {
  const items: string[] = [];
  // printf("%s=%s") with a NULL value prints "(null)" in glibc; keep that.
  if (c.name !== undefined) items.push(`${c.name}=${c.value ?? '(null)'}`);
  if (c.path !== undefined) items.push(`path=${c.path}`);
  if (c.req.deviceType === TYPE_TAPE) items.push('bstype=ssc');
  else if (c.bstype !== undefined) items.push(`bstype=${c.bstype}`);
  if (c.bsopts !== undefined) items.push(`bsopts=${c.bsopts}`);
  if (c.bsoflags !== undefined) items.push(`bsoflags=${c.bsoflags}`);
  if (c.blocksize !== undefined) items.push(`blocksize=${c.blocksize}`);
  if (c.targetname !== undefined) items.push(`targetname=${c.targetname}`);
  if (c.address !== undefined) items.push(`initiator-address=${c.address}`);
  if (c.iqnname !== undefined) items.push(`initiator-name=${c.iqnname}`);
  if (c.user !== undefined) items.push(`user=${c.user}`);
  if (c.password !== undefined) items.push(`password=${c.password}`);
  // The trailing ',' is tgtadm's ("makes parsing params in modules easier").
  if (c.targetOps !== undefined) items.push(`targetOps ${c.targetOps},`);
  if (c.portalOps !== undefined) items.push(`portalOps ${c.portalOps},`);
  return items.join(',');
}

export interface TgtadmIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

const processIo: TgtadmIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
};

/** Run tgtadm; resolves with the exit status. */
export async function runTgtadm(argv: readonly string[], io: TgtadmIo = processIo): Promise<number> {
  const plan = planTgtadm(argv);
  if (plan.kind === 'exit') {
    if (plan.stdout) io.stdout(plan.stdout);
    if (plan.stderr) io.stderr(plan.stderr);
    return plan.code;
  }
  const path = controlSocketPath(plan.controlPort, io.env);
  const notConnected = `${PROGRAM}: failed to send request hdr to tgt daemon, Transport endpoint is not connected\n`;
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    io.stderr(`${PROGRAM}: management path too long: ${path}\n${notConnected}`);
    return ENOTCONN;
  }
  let rsp;
  try {
    rsp = await sendRequest(path, plan.req, plan.payload);
  } catch (e) {
    if (!(e instanceof ClientError)) throw e;
    if (e.failure === 'connect') {
      io.stderr(notConnected);
      return ENOTCONN;
    }
    // tgtadm prints these and exits 0; a request that got no answer is a failure here.
    io.stderr(`${PROGRAM}: ${e.message}\n`);
    return EINVAL;
  }
  if (plan.debug) io.stderr(`ipc_mgmt_req 348: sent to tgtd ${plan.req.len + payloadLength(plan.payload)}\n`);
  if (rsp.err !== AdminError.Success) {
    const msg = (ADMIN_ERROR_MESSAGES as Record<number, string>)[rsp.err] ?? '(unknown tgtadm_errno)';
    io.stderr(`${PROGRAM}: ${msg}\n`);
    return EINVAL;
  }
  if (plan.req.mode === MgmtMode.System && plan.req.op === MgmtOp.Delete) await waitForDaemonExit(path);
  if (rsp.text) io.stdout(rsp.text);
  return 0;
}

function payloadLength(payload: string): number {
  return payload.length > 0 ? Buffer.byteLength(payload, 'latin1') + 1 : 0;
}

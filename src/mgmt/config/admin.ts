/**
 * What tgt-admin does (tgt-behaviour.md §3): compare targets.conf with the running daemon and
 * issue tgtadm commands, in tgt-admin's order and with its exact command lines, so that `-p`
 * prints what Debian's tgt-admin prints for the same config and daemon state.
 *
 * Deliberate differences from tgt's Perl tgt-admin (all listed in docs/tgt-admin.md):
 *   - the config is validated before any command runs (no half-configured daemon);
 *   - `control-port` from the config applies to every command, the state queries included;
 *   - options inside a backing-store block are processed in sorted order (Perl: hash order);
 *   - `-I ALL` is bound only when neither initiator-address nor initiator-name is given;
 *   - block-size at target level is a default for every LUN, like the other LUN directives;
 *   - discovery accounts already bound are not bound again; global directives run once per run;
 *   - forced deletes unbind initiator names with -Q (not -I) and delete with --force;
 *   - bs-type memory/null (tgt-ts stores whose path is not a file) skip the file checks.
 */
import type { CgBlock, CgValue } from './general.js';
import { compareStrings, sortedKeys, valuesOf } from './general.js';
import { LU_PARAM_KEYS, isTargetUpdateKey, perlSplitSpace, scalars, single } from './directives.js';
import {
  type ShownTarget,
  isAddressAcl,
  isnsEnabled,
  parseAccountShow,
  parseDiscoveryAccounts,
  parseTargetShow,
} from './show-parse.js';

/** The caching mode page tgt-admin sets for `write-cache off` (WCE cleared). */
export const WRITE_CACHE_OFF_PAGE = '8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0';

/** What tgt-admin needs from the outside world (injected so tests can fake it). */
export interface AdminHost {
  /** Run tgtadm (argv without the program name); its output goes to the user. Exit status. */
  tgtadm(argv: readonly string[]): Promise<number>;
  /** Run a tgtadm query and return its stdout (its stderr goes to the user). */
  query(argv: readonly string[]): Promise<string>;
  out(text: string): void;
  err(text: string): void;
  pathExists(path: string): Promise<boolean>;
  isDirectory(path: string): Promise<boolean>;
  /** open(O_RDONLY | O_EXCL) fails with EBUSY (mounted, swap, md member...). */
  deviceBusy(path: string): Promise<boolean>;
  /** Is an executable of that name in $PATH? */
  inPath(command: string): Promise<boolean>;
  /** Run a program and collect its stdout (lsof, sg_inq, sg_readcap). */
  runProgram(command: string, args: readonly string[]): Promise<{ code: number; stdout: string }>;
}

export interface AdminSettings {
  /** -C as given ("0" when absent): printed verbatim in the commands. */
  controlPort: string;
  pretend: boolean;
  force: boolean;
  verbose: boolean;
  ignoreErrors: boolean;
}

/** tgt-admin stops with this exit status. */
export class AdminExit extends Error {
  override name = 'AdminExit';
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** A target selector: ALL, tid=N or a target name. */
export type Selector = { kind: 'all' } | { kind: 'tid'; tid: string } | { kind: 'name'; name: string };

/** Parse tgt-admin's <value> of --update/--delete/--offline/--ready. */
export function parseSelector(value: string): Selector {
  if (value === 'ALL') return { kind: 'all' };
  const m = /^tid=(.+)/.exec(value);
  if (m) return { kind: 'tid', tid: m[1]! };
  return { kind: 'name', name: value };
}

/** Bstypes whose backing-store "path" is not a file (tgt: rbd, glfs; tgt-ts: memory, null). */
const NON_FILE_BSTYPES = /rbd|glfs|memory|null|sheepdog/;

type Mode = 'execute' | 'update';

/** Per-target LUN numbering data (tgt-admin's make_key / find_next_lun). */
type DataKey = Map<string, { lun?: string; allowInUse?: string }>;

/** One run of tgt-admin against one daemon. */
export class TgtAdmin {
  private shown: ShownTarget[] = [];
  /** Target name -> tid, for running targets and the ones this run added. */
  private readonly tids = new Map<string, number>();
  private readonly accounts = new Set<string>();
  private discovery: { incoming: string[]; outgoing?: string } = { incoming: [] };
  private nextTid = 0;
  private defaultDriver: string | undefined;
  private globalsDone = false;
  private mode: Mode = 'execute';

  constructor(
    private readonly host: AdminHost,
    readonly settings: AdminSettings,
  ) {}

  private get port(): string {
    return this.settings.controlPort;
  }

  // -------------------------------------------------------------------------------------------
  // running commands (tgt-admin's execute())

  /** Print (pretend/verbose) and run one step; a display without argv is a comment. */
  private async step(display: string, argv?: readonly string[]): Promise<void> {
    if (this.settings.pretend) {
      this.host.out(`${display}\n`);
      return;
    }
    if (this.settings.verbose) this.host.out(`${display}\n`);
    if (!argv) return;
    const code = await this.host.tgtadm(argv);
    if (code !== 0 && !this.settings.ignoreErrors) {
      this.host.out(`Command:\n\t${display}\nexited with code: ${code}.\n`);
      throw new AdminExit(code);
    }
  }

  private comment(text: string): Promise<void> {
    return this.step(text);
  }

  private blank(): Promise<void> {
    return this.step('');
  }

  /** Print a message and stop (tgt-admin's print + exit 1). */
  private fail(message: string, code = 1): never {
    this.host.out(message);
    throw new AdminExit(code);
  }

  // -------------------------------------------------------------------------------------------
  // daemon state

  /** tgt-admin's process_targets: read `target show`. */
  async loadTargets(): Promise<void> {
    this.shown = parseTargetShow(
      await this.host.query(['-C', this.port, '--op', 'show', '--mode', 'target']),
    );
    for (const t of this.shown) this.tids.set(t.name, t.tid);
    this.nextTid = this.shown.reduce((max, t) => Math.max(max, t.tid), 0);
  }

  /** tgt-admin's process_accounts, plus the discovery bindings (to bind them only once). */
  async loadAccounts(): Promise<void> {
    for (const u of parseAccountShow(
      await this.host.query(['-C', this.port, '--op', 'show', '--mode', 'account']),
    ))
      this.accounts.add(u);
  }

  private shownByName(name: string): ShownTarget | undefined {
    return this.shown.find((t) => t.name === name);
  }

  /** Stop before doing anything when direct-store needs sg_inq and it is missing. */
  async preflight(conf: CgBlock): Promise<void> {
    const targets = this.configTargets(conf);
    const direct = targets
      ? [...targets.entries.values()].some((t) => t.kind === 'block' && t.entries.has('direct-store'))
      : false;
    if (direct && !(await this.host.inPath('sg_inq'))) {
      this.fail("Command 'sg_inq' (needed by 'option direct-store') is not in your path - can't continue!\n");
    }
  }

  // -------------------------------------------------------------------------------------------
  // -e / --execute

  /** -e: add the targets of the config that are not running, then remove those not in it. */
  async execute(conf: CgBlock): Promise<void> {
    this.mode = 'execute';
    await this.loadTargets();
    await this.loadAccounts();
    await this.addTargets(conf, undefined);
    await this.removeTargets(conf);
  }

  private configTargets(conf: CgBlock): CgBlock | undefined {
    const t = conf.entries.get('target');
    return t?.kind === 'block' ? t : undefined;
  }

  private inConfig(conf: CgBlock, name: string): boolean {
    return this.configTargets(conf)?.entries.has(name) ?? false;
  }

  /** Global directives (first two loops of tgt-admin's add_targets). */
  private async globals(conf: CgBlock): Promise<void> {
    if (this.globalsDone) return;
    this.globalsDone = true;
    const sys = await this.host.query(['-C', this.port, '--op', 'show', '--mode', 'sys']);
    const isns = isnsEnabled(sys);
    this.discovery = parseDiscoveryAccounts(sys);
    for (const k of sortedKeys(conf)) {
      const v = conf.entries.get(k)!;
      if (k === 'default-driver') {
        this.defaultDriver = single(conf, k, '');
      } else if (k === 'ignore-errors') {
        if (scalars(v).includes('yes')) this.settings.ignoreErrors = true;
      } else if (k === 'iSNSAccessControl' || k === 'iSNSServerIP' || k === 'iSNSServerPort') {
        if (!isns) await this.isnsUpdate(k, single(conf, k, '')!);
      } else if (k === 'incomingdiscoveryuser' || k === 'outgoingdiscoveryuser') {
        for (const entry of scalars(v)) await this.discoveryUser(k === 'outgoingdiscoveryuser', entry);
      } else if (k === 'account') {
        // tgt-ts: an account bound to nothing (written by --dump)
        for (const entry of scalars(v)) {
          const [user, pass] = perlSplitSpace(entry) as [string, string];
          await this.accountNew(user, pass, undefined);
        }
      }
    }
    if (conf.entries.has('iSNS')) {
      if (!isns) await this.isnsUpdate('iSNS', single(conf, 'iSNS', '')!);
      else await this.comment('# iSNS already enabled');
    }
    if (this.defaultDriver === undefined) {
      await this.comment('# default-driver not defined, defaulting to iscsi.\n');
      this.defaultDriver = 'iscsi';
    }
  }

  private isnsUpdate(name: string, value: string): Promise<void> {
    return this.step(`tgtadm -C ${this.port} --op update --mode sys --name ${name} -v ${value}`, [
      '-C',
      this.port,
      '--op',
      'update',
      '--mode',
      'sys',
      '--name',
      name,
      '-v',
      value,
    ]);
  }

  private async accountNew(user: string, pass: string, driver: string | undefined): Promise<void> {
    if (this.accounts.has(user)) return;
    const lld = driver === undefined ? '' : ` --lld ${driver}`;
    await this.step(
      `tgtadm -C ${this.port}${lld} --mode account --op new --user=${user} --password=${pass}`,
      ['-C', this.port, ...(driver === undefined ? [] : ['--lld', driver])].concat([
        '--mode',
        'account',
        '--op',
        'new',
        `--user=${user}`,
        `--password=${pass}`,
      ]),
    );
    this.accounts.add(user);
  }

  private async discoveryUser(outgoing: boolean, entry: string): Promise<void> {
    const [user, pass] = perlSplitSpace(entry) as [string, string];
    await this.accountNew(user, pass, undefined);
    const bound = outgoing ? this.discovery.outgoing === user : this.discovery.incoming.includes(user);
    if (bound) return; // tgt binds again and fails with "this account already exists"
    await this.step(
      `tgtadm -C ${this.port} --mode account --op bind --user=${user} ${outgoing ? ' --outgoing' : ''}`,
      [
        '-C',
        this.port,
        '--mode',
        'account',
        '--op',
        'bind',
        `--user=${user}`,
        ...(outgoing ? ['--outgoing'] : []),
      ],
    );
    if (outgoing) this.discovery.outgoing = user;
    else this.discovery.incoming.push(user);
  }

  /**
   * tgt-admin's add_targets: every config target (or only `only`), in sorted name order.
   * In update mode a running target is deleted first and re-created with the same tid.
   */
  private async addTargets(conf: CgBlock, only: string | undefined): Promise<void> {
    await this.globals(conf);
    const targets = this.configTargets(conf);
    if (!targets) return;
    const configured = only !== undefined && this.tids.has(only) && this.shownByName(only) !== undefined;
    for (const name of sortedKeys(targets)) {
      if (only !== undefined && name !== only) continue;
      let inUse = false;
      if (only !== undefined) inUse = await this.mainDelete(name, undefined);
      const running = this.shownByName(name) !== undefined;
      if (!running || (this.mode === 'update' && !inUse)) {
        let tid: number;
        if (this.mode === 'update' && configured) {
          tid = this.tids.get(name)!;
        } else if (this.mode === 'update' && !this.settings.pretend) {
          tid = Math.max(0, ...this.tids.values()) + 1;
        } else {
          tid = this.nextTid + 1;
        }
        const block = targets.entries.get(name) as CgBlock;
        const controllerTid = single(block, 'controller_tid', `target ${name}`);
        if (controllerTid !== undefined) tid = Number(controllerTid);
        this.nextTid = tid;
        await this.addTarget(name, block, tid);
        this.tids.set(name, tid);
      } else if (this.mode === 'execute') {
        await this.comment(`# Target ${name} already exists!`);
      }
    }
    if (only !== undefined && !this.inConfig(conf, only) && !configured) {
      this.fail(
        `Target ${only} is currently not configured\nand does not exist in the config file - can't continue!\n`,
      );
    }
    await this.blank();
  }

  /** Create one target: target new, then its directives in sorted key order, then -I ALL. */
  private async addTarget(name: string, block: CgBlock, tid: number): Promise<void> {
    const driver = single(block, 'driver', `target ${name}`) ?? this.defaultDriver ?? 'iscsi';
    const dataKey = makeDataKey(block);
    const P = this.port;
    await this.comment(`# Adding target: ${name}`);
    await this.step(`tgtadm -C ${P} --lld ${driver} --op new --mode target --tid ${tid} -T ${name}`, [
      '-C',
      P,
      '--lld',
      driver,
      '--op',
      'new',
      '--mode',
      'target',
      '--tid',
      String(tid),
      '-T',
      name,
    ]);
    const ctx: TargetCtx = { name, block, tid, driver, dataKey };
    let hasAddress = false;
    let hasName = false;
    for (const key of sortedKeys(block)) {
      const v = block.entries.get(key)!;
      if (key === 'backing-store' || key === 'direct-store') {
        for (const path of storePaths(v)) await this.addStore(ctx, path, v, key === 'direct-store');
      } else if (key === 'incominguser') {
        for (const entry of scalars(v)) {
          const [user, pass] = perlSplitSpace(entry) as [string, string];
          await this.accountNew(user, pass, driver);
          await this.accountBind(ctx, user, false);
        }
      } else if (key === 'outgoinguser') {
        const all = scalars(v);
        if (all.length > 1)
          await this.comment(`# Warning: only one ${key} is allowed. Will only use the first one.`);
        const [user, pass] = perlSplitSpace(all[0]!) as [string, string];
        await this.accountNew(user, pass, driver);
        await this.accountBind(ctx, user, true);
      } else if (key === 'initiator-address' || key === 'initiator-name') {
        const flag = key === 'initiator-address' ? '-I' : '-Q';
        if (flag === '-I') hasAddress = true;
        else hasName = true;
        for (const value of scalars(v)) await this.aclBind(ctx, flag, value);
      } else if (isTargetUpdateKey(key)) {
        const all = scalars(v);
        if (all.length > 1)
          await this.comment(`# Warning: only one ${key} is allowed. Will only use the first one.`);
        await this.step(
          `tgtadm -C ${P} --lld ${driver} --mode target --op update --tid ${tid} --name ${key} --value ${all[0]}`,
          ['-C', P, '--lld', driver, '--mode', 'target', '--op', 'update', '--tid', String(tid)].concat([
            '--name',
            key,
            '--value',
            all[0]!,
          ]),
        );
      }
    }
    // tgt binds ALL whenever no initiator-address is given, which opens initiator-name-only
    // targets to everyone (tgt-behaviour.md §7 #2); here a name rule alone restricts.
    if (!hasAddress && !hasName) await this.aclBind(ctx, '-I', 'ALL');
  }

  private accountBind(ctx: TargetCtx, user: string, outgoing: boolean): Promise<void> {
    const P = this.port;
    return this.step(
      `tgtadm -C ${P} --lld ${ctx.driver} --mode account --op bind --tid=${ctx.tid} --user=${user}${outgoing ? ' --outgoing' : ''}`,
      [
        '-C',
        P,
        '--lld',
        ctx.driver,
        '--mode',
        'account',
        '--op',
        'bind',
        `--tid=${ctx.tid}`,
        `--user=${user}`,
      ].concat(outgoing ? ['--outgoing'] : []),
    );
  }

  private aclBind(ctx: TargetCtx, flag: '-I' | '-Q', value: string): Promise<void> {
    const P = this.port;
    return this.step(
      `tgtadm -C ${P} --lld ${ctx.driver} --op bind --mode target --tid ${ctx.tid} ${flag} ${value}`,
      [
        '-C',
        P,
        '--lld',
        ctx.driver,
        '--op',
        'bind',
        '--mode',
        'target',
        '--tid',
        String(ctx.tid),
        flag,
        value,
      ],
    );
  }

  // -------------------------------------------------------------------------------------------
  // LUNs (tgt-admin's add_backing_direct)

  private async addStore(ctx: TargetCtx, path: string, storeValue: CgValue, direct: boolean): Promise<void> {
    const t = ctx.block;
    const where = `target ${ctx.name}`;
    const lunBlock = storeValue.kind === 'block' ? storeValue.entries.get(path) : undefined;
    const lunOpts = lunBlock?.kind === 'block' ? lunBlock : undefined;
    const targetBsType = single(t, 'bs-type', where) ?? '';
    const bsType = (lunOpts && single(lunOpts, 'bs-type', '')) ?? targetBsType;

    let canAlloc = true;
    if (!/rbd/.test(targetBsType) && !this.settings.force && single(t, 'allow-in-use', where) !== 'yes') {
      canAlloc = await this.checkDevice(path, ctx.dataKey);
    }
    const nonFile = NON_FILE_BSTYPES.test(targetBsType) || NON_FILE_BSTYPES.test(bsType);
    const usable =
      canAlloc && (nonFile || ((await this.host.pathExists(path)) && !(await this.host.isDirectory(path))));
    if (!usable) {
      if (!canAlloc) {
        await this.comment(`# Skipping device ${path} - it is in use.`);
        await this.comment(`# You can override it with --force or 'allow-in-use yes' config option.`);
        await this.comment(`# Note - do so only if you know what you're doing, you may damage your data.`);
      } else {
        await this.comment(`# Skipping device: ${path}`);
        await this.comment(`# ${path} does not exist - please check the configuration file`);
      }
      return;
    }

    const reserved = ctx.dataKey.get(path)?.lun;
    let lun = has(reserved) ? reserved : findNextLun(path, ctx.dataKey);
    const targetLun = single(t, 'lun', where);
    if (has(targetLun)) lun = targetLun;

    const commands: Array<[string, string[]] | string> = [];
    const added = new Set<string>();
    let deviceType: string | undefined;
    let bsTypeOpt: string | undefined;
    let bsopts: string | undefined;
    let bsoflags: string | undefined;
    let blockSize: string | undefined;
    if (lunOpts) {
      for (const opt of sortedKeys(lunOpts)) {
        const values = scalars(lunOpts.entries.get(opt));
        const value = values[0]!;
        if (opt === 'mode_page' || opt === 'params') {
          for (const each of values) commands.push(this.luParam(ctx, opt, each, lun));
          continue;
        }
        if (opt === 'write-cache') {
          commands.push(this.luParam(ctx, opt, value, lun));
          added.add('write_cache');
          continue;
        }
        if (LU_PARAM_KEYS.includes(opt)) commands.push(this.luParam(ctx, opt, value, lun));
        added.add(opt);
        if (opt === 'device-type') deviceType = value;
        else if (opt === 'bs-type') bsTypeOpt = value;
        else if (opt === 'bsopts') bsopts = value;
        else if (opt === 'bsoflags') bsoflags = value;
        else if (opt === 'block-size') blockSize = value;
      }
    }

    const fromDevice = direct ? await this.directStoreParams(path, t) : {};
    if (fromDevice.blockSize !== undefined && blockSize === undefined) blockSize = fromDevice.blockSize;

    for (const opt of ['scsi_id', 'sense_format', 'removable', 'online', 'path', 'readonly']) {
      const v = single(t, opt, where);
      if (!added.has(opt) && has(v)) {
        commands.push(this.luParam(ctx, opt, v, lun));
        added.add(opt);
      }
    }
    for (const opt of [
      'vendor_id',
      'product_id',
      'product_rev',
      'scsi_sn',
      'lbppbe',
      'la_lba',
      'optimal_xfer_gran',
      'optimal_xfer_len',
    ]) {
      const own = single(t, opt, where);
      const v = has(own) ? own : fromDevice.params?.[opt];
      if (!added.has(opt) && has(v)) {
        commands.push(this.luParam(ctx, opt, v, lun));
        added.add(opt);
      }
    }
    if (!added.has('write_cache'))
      commands.push(this.luParam(ctx, 'write-cache', single(t, 'write-cache', where) ?? '', lun));
    for (const opt of ['mode_page', 'params']) {
      for (const v of scalars(t.entries.get(opt))) if (has(v)) commands.push(this.luParam(ctx, opt, v, lun));
    }
    if (!added.has('device-type')) deviceType = single(t, 'device-type', where);
    if (!added.has('bs-type')) bsTypeOpt = single(t, 'bs-type', where);
    if (!added.has('bsopts')) bsopts = single(t, 'bsopts', where);
    if (!added.has('bsoflags')) bsoflags = single(t, 'bsoflags', where);
    // tgt ignores a target-level block-size; here it is a default like the other LUN directives
    if (!added.has('block-size') && blockSize === undefined) blockSize = single(t, 'block-size', where);

    const opt = (flag: string, v: string | undefined): string => (has(v) ? `${flag} ${v}` : '');
    const P = this.port;
    const argv = [
      '-C',
      P,
      '--lld',
      ctx.driver,
      '--op',
      'new',
      '--mode',
      'logicalunit',
      '--tid',
      String(ctx.tid),
    ];
    argv.push('--lun', lun, '-b', path);
    if (has(deviceType)) argv.push('--device-type', deviceType);
    if (has(bsTypeOpt)) argv.push('--bstype', bsTypeOpt);
    if (has(bsopts)) argv.push('--bsopts', bsopts);
    if (has(bsoflags)) argv.push('--bsoflags', bsoflags);
    if (has(blockSize)) argv.push('--blocksize', blockSize);
    await this.step(
      `tgtadm -C ${P} --lld ${ctx.driver} --op new --mode logicalunit --tid ${ctx.tid} --lun ${lun} -b "${path}" ` +
        [
          opt('--device-type', deviceType),
          opt('--bstype', bsTypeOpt),
          opt('--bsopts', bsopts),
          opt('--bsoflags', bsoflags),
          opt('--blocksize', blockSize),
        ].join(' '),
      argv,
    );
    // mode pages first (tgt-admin: commands matching "params mode_page"), then the rest in order
    const displayOf = (c: [string, string[]] | string): string => (typeof c === 'string' ? c : c[0]);
    const first = commands.filter((c) => /params mode_page/.test(displayOf(c)));
    const last = commands.filter((c) => !/params mode_page/.test(displayOf(c)));
    for (const c of [...first, ...last]) {
      if (typeof c === 'string') await this.comment(c);
      else await this.step(c[0], c[1]);
    }
  }

  /** tgt-admin's add_params: the command (or comment) for one LU directive. */
  private luParam(ctx: TargetCtx, param: string, value: string, lun: string): [string, string[]] | string {
    const P = this.port;
    const head = `tgtadm -C ${P} --lld ${ctx.driver} --op update --mode logicalunit --tid ${ctx.tid} --lun=${lun} --params`;
    const argv = (params: string): string[] => [
      '-C',
      P,
      '--lld',
      ctx.driver,
      '--op',
      'update',
      '--mode',
      'logicalunit',
      '--tid',
      String(ctx.tid),
      `--lun=${lun}`,
      '--params',
      params,
    ];
    if (param === 'write-cache') {
      if (value === 'off')
        return [`${head} mode_page=${WRITE_CACHE_OFF_PAGE}`, argv(`mode_page=${WRITE_CACHE_OFF_PAGE}`)];
      if (value === 'on' || value === '') return `# Write cache is enabled (default) for lun ${lun}.`;
      return `# WARNING! Unknown value (${value}) to write-cache! Accepted values are "on" and "off".`;
    }
    if (param === 'params') return [`${head} "${value}"`, argv(value)];
    return [`${head} ${param}="${value}"`, argv(`${param}=${value}`)];
  }

  /** tgt-admin's check_device: is a device or file in use (mounted, or opened by anyone)? */
  private async checkDevice(path: string, dataKey: DataKey): Promise<boolean> {
    if (dataKey.get(path)?.allowInUse === 'yes') return true;
    if (!(await this.host.pathExists(path))) return true;
    if (await this.host.deviceBusy(path)) {
      await this.comment(`# Device ${path} is used by the system (mounted, used by swap?).`);
      return false;
    }
    if (!(await this.host.inPath('lsof'))) {
      await this.comment(`# Command 'lsof' is not in your path.`);
      await this.comment(`# Can't reliably check if device is not in use.`);
      return true;
    }
    const r = await this.host.runProgram('lsof', [path]);
    if (r.code === 0) {
      await this.comment(`# Device ${path} is used (already tgtd target?).`);
      await this.comment(`# Run 'lsof ${path}' to see the details.`);
      return false;
    }
    return true;
  }

  /** direct-store: identity, transfer lengths and geometry of the device (sg_inq, sg_readcap). */
  private async directStoreParams(
    path: string,
    t: CgBlock,
  ): Promise<{ params?: Record<string, string>; blockSize?: string }> {
    const params: Record<string, string> = {};
    let blockSize: string | undefined;
    const inq = await this.host.runProgram('sg_inq', [path]);
    const id =
      /Vendor identification:\s+?(.*?)\n\s+Product identification:\s+(.*?)\n\s+Product revision level:\s+(.*?)\n(?:\s+Unit serial number:\s+(.*?)\n)?/s.exec(
        inq.stdout,
      );
    const setIfAbsent = (k: string, v: string | undefined): void => {
      if (!has(single(t, k, '')) && has(v)) params[k] = v;
    };
    if (id) {
      setIfAbsent('vendor_id', id[1]);
      setIfAbsent('product_id', id[2]);
      setIfAbsent('product_rev', id[3]);
      setIfAbsent('scsi_sn', id[4]);
    }
    const b0 = await this.host.runProgram('sg_inq', ['-p', '0xb0', path]);
    const xfer =
      /Optimal transfer length granularity:\s+?(\d+).*?\n\s+Maximum transfer length:\s+?(\d+).*?\n\s+Optimal transfer length:\s+?(\d+).*?\n/s.exec(
        b0.stdout,
      );
    if (xfer) {
      setIfAbsent('optimal_xfer_gran', xfer[1]);
      setIfAbsent('optimal_xfer_len', xfer[3]);
    }
    const cap = await this.host.runProgram('sg_readcap', ['-16', path]);
    const geo =
      /Logical block length=(\d+).*?\n\s+Logical blocks per physical block exponent=(\d+).*?\n\s+Lowest aligned logical block address=(\d+).*?\n/s.exec(
        cap.stdout,
      );
    if (geo) {
      blockSize = geo[1];
      setIfAbsent('lbppbe', geo[2]);
      setIfAbsent('la_lba', geo[3]);
    }
    return blockSize === undefined ? { params } : { params, blockSize };
  }

  // -------------------------------------------------------------------------------------------
  // deleting

  /** -e: delete running targets that are not in the config (tgt-admin's remove_targets). */
  private async removeTargets(conf: CgBlock): Promise<void> {
    if (!this.configTargets(conf)) return; // tgt-admin removes nothing when the config has no target
    if (!this.settings.pretend) await this.loadTargets();
    for (const t of [...this.shown].sort((a, b) => a.tid - b.tid)) {
      if (!this.inConfig(conf, t.name)) await this.mainDelete(t.name, undefined);
    }
  }

  /**
   * tgt-admin's main_delete: delete one target unless initiators are connected (then only
   * with -f: unbind its ACL, drop its connections, delete it). Returns true when it was in
   * use and left alone.
   */
  private async mainDelete(name: string | undefined, tidArg: string | undefined): Promise<boolean> {
    const t = name === undefined ? undefined : this.shownByName(name);
    const P = this.port;
    if (t && t.sessions.size > 0) {
      if (!this.settings.force) {
        const what = this.mode === 'update' ? 'updated' : 'deleted';
        await this.comment(`# Target with tid ${t.tid} (${t.name}) is in use, it won't be ${what}.`);
        return true;
      }
      await this.comment(`# Removing target: ${t.name}`);
      for (const acl of t.acl) {
        // tgt unbinds every entry with -I, which fails for initiator names
        const flag = isAddressAcl(acl) ? '-I' : '-Q';
        await this.step(`tgtadm -C ${P} --op unbind --mode target --tid ${t.tid} ${flag} ${acl}`, [
          '-C',
          P,
          '--op',
          'unbind',
          '--mode',
          'target',
          '--tid',
          String(t.tid),
          flag,
          acl,
        ]);
      }
      for (const [sid, cid] of t.sessions) {
        await this.step(`tgtadm -C ${P} --op delete --mode conn --tid ${t.tid} --sid ${sid} --cid ${cid}`, [
          '-C',
          P,
          '--op',
          'delete',
          '--mode',
          'conn',
          '--tid',
          String(t.tid),
          '--sid',
          sid,
          '--cid',
          cid,
        ]);
      }
      // --force: the sessions may still be closing when the target is deleted
      await this.step(`tgtadm -C ${P} --mode target --op delete --force --tid=${t.tid}`, [
        '-C',
        P,
        '--mode',
        'target',
        '--op',
        'delete',
        '--force',
        `--tid=${t.tid}`,
      ]);
    } else if (t) {
      await this.comment(`# Removing target: ${t.name}`);
      await this.step(`tgtadm -C ${P} --mode target --op delete --tid=${t.tid}`, [
        '-C',
        P,
        '--mode',
        'target',
        '--op',
        'delete',
        `--tid=${t.tid}`,
      ]);
    } else if (tidArg !== undefined) {
      await this.comment(`# Target with tid ${tidArg} does not exist!`);
    } else {
      await this.comment(`# Target with name ${name} does not exist!`);
    }
    if (t) {
      this.shown = this.shown.filter((s) => s !== t);
      await this.blank();
    }
    return false;
  }

  /** --delete ALL | tid=N | name. */
  async delete(sel: Selector): Promise<void> {
    this.mode = 'execute';
    await this.loadTargets();
    if (sel.kind === 'all') {
      for (const t of [...this.shown]) await this.mainDelete(t.name, undefined);
    } else if (sel.kind === 'tid') {
      const t = this.shown.find((s) => String(s.tid) === sel.tid);
      await this.mainDelete(t?.name, sel.tid);
    } else {
      await this.mainDelete(sel.name, undefined);
    }
  }

  // -------------------------------------------------------------------------------------------
  // --update

  /** --update ALL | tid=N | name: re-create targets from the config (in-use ones need -f). */
  async update(sel: Selector, conf: CgBlock): Promise<void> {
    this.mode = 'update';
    await this.loadAccounts();
    await this.loadTargets();
    const configNames = this.configTargets(conf) ? sortedKeys(this.configTargets(conf)!) : [];
    const one = async (name: string): Promise<void> => {
      const configured = this.shownByName(name) !== undefined;
      if (!this.inConfig(conf, name) && configured) await this.mainDelete(name, undefined);
      else await this.addTargets(conf, name);
    };
    if (sel.kind === 'all') {
      const running = [...this.shown].sort((a, b) => a.tid - b.tid).map((t) => t.name);
      for (const name of [...running.filter((n) => !configNames.includes(n)), ...configNames])
        await one(name);
    } else if (sel.kind === 'tid') {
      const t = this.shown.find((s) => String(s.tid) === sel.tid);
      if (!t) this.fail(`There is no target with tid ${sel.tid}, can't continue!\n`);
      await one(t.name);
    } else {
      await one(sel.name);
    }
  }

  // -------------------------------------------------------------------------------------------
  // --offline / --ready, --show

  /** --offline/--ready ALL | tid=N | name. */
  async setState(sel: Selector, state: 'offline' | 'ready'): Promise<void> {
    await this.loadTargets();
    const P = this.port;
    const update = (tid: string, display: string): Promise<void> =>
      this.step(display, [
        '-C',
        P,
        '--op',
        'update',
        '--mode',
        'target',
        `--tid=${tid}`,
        '-n',
        'state',
        '-v',
        state,
      ]);
    if (sel.kind === 'all') {
      for (const t of this.shown)
        await update(
          String(t.tid),
          `tgtadm -C ${P} --op update --mode target --tid=${t.tid} -n state -v ${state}`,
        );
    } else if (sel.kind === 'tid') {
      await update(sel.tid, `tgtadm -C ${P} --op update --mode target --tid=${sel.tid} -n state -v ${state}`);
    } else {
      const t = this.shownByName(sel.name);
      if (!t) this.fail(`There is no target with name "${sel.name}", can't ${state} it!\n`);
      await update(
        String(t.tid),
        `tgtadm -C ${P} --op update --mode target --tid=${t.tid} --name="${sel.name}" -n state -v ${state}`,
      );
    }
  }

  /** -s: `tgtadm --op show --mode target`. */
  async show(): Promise<void> {
    const P = this.port;
    await this.step(`tgtadm -C ${P} --op show --mode target`, ['-C', P, '--op', 'show', '--mode', 'target']);
  }
}

/** Perl's `length $v`: defined and not empty ("0" counts). */
function has(v: string | undefined | null): v is string {
  return v !== undefined && v !== null && v !== '';
}

interface TargetCtx {
  name: string;
  block: CgBlock;
  tid: number;
  driver: string;
  dataKey: DataKey;
}

/** The paths of a backing-store/direct-store directive, sorted (line form, list or blocks). */
function storePaths(v: CgValue): string[] {
  if (v.kind === 'block') return sortedKeys(v);
  return [...new Set(scalars(v))].sort(compareStrings);
}

/** LUN numbers and allow-in-use reserved by block-form stores (tgt-admin's make_key). */
function makeDataKey(target: CgBlock): DataKey {
  const key: DataKey = new Map();
  for (const store of ['backing-store', 'direct-store']) {
    const v = target.entries.get(store);
    if (v?.kind !== 'block') continue;
    for (const path of v.entries.keys()) {
      const b = v.entries.get(path);
      if (b?.kind !== 'block') continue;
      const entry: { lun?: string; allowInUse?: string } = {};
      const lun = valuesOf(b.entries.get('lun'))[0];
      const aiu = valuesOf(b.entries.get('allow-in-use'))[0];
      if (lun?.kind === 'scalar' && lun.value !== null) entry.lun = lun.value;
      if (aiu?.kind === 'scalar' && aiu.value !== null) entry.allowInUse = aiu.value;
      key.set(path, entry);
    }
  }
  return key;
}

/** The first LUN from 1 up that no store has reserved; it is then reserved for `path`. */
function findNextLun(path: string, dataKey: DataKey): string {
  const taken = new Set<string>();
  for (const e of dataKey.values()) {
    if (e.lun !== undefined) taken.add(e.lun);
    if (e.allowInUse !== undefined) taken.add(e.allowInUse);
  }
  let n = 1;
  while (taken.has(String(n))) n++;
  const found = String(n);
  const entry = dataKey.get(path) ?? {};
  entry.lun = found;
  dataKey.set(path, entry);
  return found;
}

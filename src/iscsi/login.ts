/**
 * The login phase of one connection (RFC 7143 6, 11.12, 11.13): stage transitions, the login
 * keys (InitiatorName, TargetName, SessionType), target lookup and access control, CHAP, the
 * operational negotiation, and finally session creation, reinstatement or joining.
 *
 *   SecurityNegotiation (0) --T--> LoginOperationalNegotiation (1) --T--> FullFeaturePhase (3)
 *            \______________________________T_________________________________/
 *
 * Each Login Request gets exactly one Login Response. A failure ends the login with a status
 * class/detail (11.13.5) and the connection is closed after the response is sent.
 */
import { Buffer } from 'node:buffer';
import type { ScsiTarget } from '../scsi/target.js';
import { TargetChap } from './chap.js';
import type { IscsiDriver } from './driver.js';
import { LoginNegotiator, type LoginStatus as NegotiationStatus, type SessionType } from './negotiate.js';
import { LoginRequestView, type IncomingPdu } from './pdu.js';
import { decideRedirect, redirectFor, staticDestination, type RedirectDecision } from './redirect.js';
import { LoginStage, LoginStatus } from './spec.js';
import { encodeText, parseText, TextFormatError, type TextPair } from './text.js';

/** What the connection must do with the response to one Login Request. */
export interface LoginReply {
  transit: boolean;
  csg: number;
  nsg: number;
  status: number;
  pairs: TextPair[];
  /** Set when this response completes login: the connection enters full feature phase. */
  fullFeature: boolean;
  /** Close the connection after sending (login failed). */
  close: boolean;
}

export class LoginPhase {
  private readonly view = new LoginRequestView(Buffer.alloc(48));
  private first = true;
  private stage = LoginStage.SecurityNegotiation;
  private textParts: Buffer[] = [];
  private textLength = 0;
  private negotiator: LoginNegotiator | null = null;
  private chap: TargetChap | null = null;
  private authenticated = false;

  isid = Buffer.alloc(6);
  tsih = 0;
  cid = 0;
  /** CmdSN carried by the login (the session's first CmdSN, RFC 7143 11.12.6). */
  cmdSn = 0;
  expStatSn = 0;
  initiatorName = '';
  initiatorAlias: string | undefined;
  sessionType: SessionType = 'Normal';
  target: ScsiTarget | null = null;

  constructor(
    private readonly driver: IscsiDriver,
    private readonly remoteAddress: string,
  ) {}

  /** ISID as 12 hex digits. */
  get isidHex(): string {
    return this.isid.toString('hex');
  }

  get negotiated(): LoginNegotiator | null {
    return this.negotiator;
  }

  /**
   * Handle one Login Request PDU. The reply is a promise only while a redirect callback runs
   * (first request of a login to a target with RedirectCallback).
   */
  handle(pdu: IncomingPdu): LoginReply | Promise<LoginReply> {
    const v = this.view.wrap(pdu.bhs);
    const csg = v.csg;
    if (this.first) {
      v.isid.copy(this.isid);
      this.tsih = v.tsih;
      this.cid = v.cid;
      this.cmdSn = v.cmdSN;
      this.expStatSn = v.expStatSN;
      // 11.12.4: the target supports version 0 only.
      if (v.versionMin > 0) return this.fail(LoginStatus.UnsupportedVersion, csg);
    } else if (!v.isid.equals(this.isid) || v.tsih !== this.tsih || v.cid !== this.cid) {
      // 11.12.5-11.12.7: ISID, TSIH and CID stay the same for the whole login.
      return this.fail(LoginStatus.InitiatorError, csg);
    }
    // 11.12.2: C=1 requires T=0.
    if (v.transit && v.continue) return this.fail(LoginStatus.InitiatorError, csg);
    if (csg !== this.stage && !(this.first && csg === LoginStage.LoginOperationalNegotiation)) {
      return this.fail(LoginStatus.InitiatorError, csg);
    }
    if (csg === LoginStage.FullFeaturePhase || (csg as number) === 2)
      return this.fail(LoginStatus.InitiatorError, csg);

    // Text spanning several PDUs (6.2.1): answer each piece with an empty response.
    this.textLength += pdu.data.length;
    if (this.textLength > this.driver.limits.maxLoginTextBytes)
      return this.fail(LoginStatus.InitiatorError, csg);
    if (pdu.data.length) this.textParts.push(Buffer.from(pdu.data));
    if (v.continue) return this.reply(false, csg, csg, []);
    const text = this.textParts.length === 1 ? this.textParts[0]! : Buffer.concat(this.textParts);
    this.textParts = [];
    this.textLength = 0;
    // RFC 7143 6.1: every key=value pair, the last one included, is followed by a NUL.
    if (text.length > 0 && text[text.length - 1] !== 0) return this.fail(LoginStatus.InitiatorError, csg);

    let pairs: TextPair[];
    try {
      pairs = parseText(text);
    } catch (e) {
      if (e instanceof TextFormatError) return this.fail(LoginStatus.InitiatorError, csg);
      throw e;
    }

    // Read the header now: `v` views a buffer that the next PDU reuses.
    const transit = v.transit;
    const nsg = v.nsg;
    if (this.first) {
      const err = this.identify(pairs);
      if (err !== LoginStatus.Success) return this.fail(err, csg);
      // tgt §4.8: the redirect is decided once the target is known, before state and ACL checks.
      const redirect = this.redirectDecision();
      if (redirect instanceof Promise)
        return redirect.then((d) => this.afterRedirect(d, csg, transit, nsg, pairs));
      return this.afterRedirect(redirect, csg, transit, nsg, pairs);
    }
    return this.proceed(csg, transit, nsg, pairs, []);
  }

  /** Finish the first request once the redirect is decided. */
  private afterRedirect(
    decision: RedirectDecision,
    csg: number,
    transit: boolean,
    nsg: number,
    pairs: TextPair[],
  ): LoginReply {
    if (decision.kind === 'redirect') {
      this.driver.log(`iscsi: login to ${this.target?.name} redirected to ${decision.targetAddress}`);
      return this.fail(decision.status, csg, [['TargetAddress', decision.targetAddress]]);
    }
    if (decision.kind === 'error') {
      this.driver.log(`iscsi: login to ${this.target?.name}: ${decision.message}`);
      return this.fail(LoginStatus.TargetError, csg);
    }
    const err = this.startLogin();
    if (err !== LoginStatus.Success) return this.fail(err, csg);
    this.first = false;
    const response: TextPair[] = [];
    // 13.9: the first Login Response carries the portal group tag.
    if (this.sessionType === 'Normal') response.push(['TargetPortalGroupTag', '1']);
    if (csg === LoginStage.LoginOperationalNegotiation) {
      // The security stage was skipped: only allowed when no authentication is required.
      if (this.authRequired()) return this.fail(LoginStatus.AuthenticationFailure, csg);
      this.authenticated = true;
      this.stage = LoginStage.LoginOperationalNegotiation;
    }
    return this.proceed(csg, transit, nsg, pairs, response);
  }

  /** Stage processing of one complete request (security or operational negotiation). */
  private proceed(
    csg: number,
    requestedTransit: boolean,
    nsg: number,
    pairs: TextPair[],
    response: TextPair[],
  ): LoginReply {
    const negotiator = this.negotiator!;

    let transit = requestedTransit;
    if (transit && (nsg <= csg || nsg === 2)) return this.fail(LoginStatus.InitiatorError, csg);

    if (csg === LoginStage.SecurityNegotiation) {
      const step = negotiator.processSecurity(pairs, this.authRequired());
      response.push(...step.response);
      if (step.error) return this.failWith(step.error, csg, response);
      const method = negotiator.selectedAuthMethod;
      if (method === 'None') {
        this.authenticated = true;
      } else if (method === 'CHAP') {
        if (step.chapPairs.length > 0) {
          const chap = this.chap ?? (this.chap = this.newChap());
          const r = chap.step(step.chapPairs);
          response.push(...r.response);
          if (r.kind === 'failure') return this.failWith(r.status, csg, response);
          if (r.kind === 'success') this.authenticated = true;
        }
      } else if (transit) {
        // T=1 without any AuthMethod negotiated.
        if (this.authRequired()) return this.fail(LoginStatus.AuthenticationFailure, csg, response);
        this.authenticated = true;
      }
      // 11.13.3: the target answers T=0 until authentication has completed.
      if (!this.authenticated) transit = false;
    } else {
      const step = negotiator.processOperational(pairs);
      response.push(...step.response);
      if (step.error) return this.failWith(step.error, csg, response);
      if (!this.requiredDigestsHeld(response)) return this.fail(LoginStatus.InitiatorError, csg, response);
      if (transit) {
        const proposals = negotiator.proposals();
        response.push(...proposals.response);
        if (proposals.awaitingAnswers) transit = false;
      }
    }

    if (!transit) return this.reply(false, csg, csg, response);
    if (nsg === LoginStage.FullFeaturePhase && !this.requiredDigestsHeld(null)) {
      return this.fail(LoginStatus.InitiatorError, csg, response);
    }
    this.stage = nsg;
    return this.reply(true, csg, nsg, response, nsg === LoginStage.FullFeaturePhase);
  }

  /**
   * A target set to HeaderDigest/DataDigest=CRC32C-Required (params.ts) refuses a session without
   * that digest (RFC 7143 13.1): with `response`, as soon as the answer settles on something else;
   * without, for the negotiated result when full feature phase would start.
   */
  private requiredDigestsHeld(response: readonly TextPair[] | null): boolean {
    const params = this.target ? this.driver.paramsFor(this.target) : this.driver.discoveryParams;
    const negotiated = response ? null : this.negotiator!.result();
    for (const key of ['HeaderDigest', 'DataDigest'] as const) {
      const choice = params.digest(key);
      if (!choice.crc32c || choice.none) continue;
      if (negotiated) {
        if (!(key === 'HeaderDigest' ? negotiated.headerDigest : negotiated.dataDigest)) return false;
      } else if (response!.some(([k, v]) => k === key && v !== 'CRC32C')) {
        return false;
      }
    }
    return true;
  }

  /** Login keys of the first request (11.12, 13.4-13.7, 13.21) and the target lookup. */
  private identify(pairs: readonly TextPair[]): number {
    const keys = new Map(pairs);
    const name = keys.get('InitiatorName');
    if (!name) return LoginStatus.MissingParameter;
    this.initiatorName = name;
    this.initiatorAlias = keys.get('InitiatorAlias');
    const type = keys.get('SessionType') ?? 'Normal';
    if (type !== 'Normal' && type !== 'Discovery') return LoginStatus.SessionTypeNotSupported;
    // tgtd --workers: discovery is tgtd's (it has every target and the discovery accounts).
    if (type === 'Discovery' && !this.driver.servesDiscovery) return LoginStatus.ServiceUnavailable;
    this.sessionType = type;
    if (type === 'Normal') {
      const targetName = keys.get('TargetName');
      if (!targetName) return LoginStatus.MissingParameter;
      const target = this.driver.system.findTargetByName(targetName);
      if (!target || target.lld !== this.driver.name) return LoginStatus.NotFound;
      // tgtd --workers: another process serves it (the connection could not be handed there, or
      // that process is being replaced); try again later (RFC 7143 11.13.5).
      if (!this.driver.serves(target)) return LoginStatus.ServiceUnavailable;
      this.target = target;
    }
    return LoginStatus.Success;
  }

  /** The redirect for this login: decided at once unless a callback has to run. */
  private redirectDecision(): RedirectDecision | Promise<RedirectDecision> {
    const target = this.target;
    if (!target) return { kind: 'none' };
    const settings = this.driver.paramsFor(target).redirect;
    if (settings.callback === undefined) return redirectFor(staticDestination(settings), this.remoteAddress);
    return decideRedirect(settings, target.name, this.remoteAddress, this.driver.redirectCallbackTimeoutMs);
  }

  /** Target state, ACL, session checks and the negotiator (after the redirect check). */
  private startLogin(): number {
    const name = this.initiatorName;
    const target = this.target;
    if (target) {
      // The target may have been deleted while a redirect callback ran.
      if (this.driver.system.targets.get(target.tid) !== target) return LoginStatus.NotFound;
      // tgt §2.5: an offline target refuses new logins with a target error.
      if (target.state !== 'ready') return LoginStatus.ServiceUnavailable;
      if (!target.aclAllows(this.remoteAddress, name)) return LoginStatus.AuthorizationFailure;
    }
    if (this.tsih !== 0) {
      // Adding a connection to an existing session (11.12.6).
      const s = this.driver.sessions.get(this.tsih);
      if (!s || s.isClosed || s.initiatorName !== name || s.isid !== this.isidHex) {
        return LoginStatus.SessionDoesNotExist;
      }
      if (s.target !== this.target) return LoginStatus.CannotIncludeInSession;
      let sameCid = false;
      for (const c of s.connections) if (c.cid === this.cid) sameCid = true;
      if (!sameCid && s.connections.size >= s.params.maxConnections) return LoginStatus.TooManyConnections;
    }
    const session = this.tsih !== 0 ? this.driver.sessions.get(this.tsih) : undefined;
    this.negotiator = new LoginNegotiator({
      params: this.target ? this.driver.paramsFor(this.target) : this.driver.discoveryParams,
      sessionType: this.sessionType,
      ...(session ? { leadingSession: session.params } : {}),
    });
    return LoginStatus.Success;
  }

  /** CHAP is required when the target (or, for discovery, the system) has incoming accounts bound. */
  private authRequired(): boolean {
    return this.boundAccounts().incoming.length > 0;
  }

  private boundAccounts(): { incoming: string[]; outgoing?: string | undefined } {
    return this.target ? this.target.accounts : this.driver.system.discoveryAccounts;
  }

  private newChap(): TargetChap {
    const bound = this.boundAccounts();
    const system = this.driver.system;
    const outUser = bound.outgoing;
    const outPassword = outUser !== undefined ? system.lookupAccount(outUser) : undefined;
    return new TargetChap({
      lookupIncoming: (user) => (bound.incoming.includes(user) ? system.lookupAccount(user) : undefined),
      outgoing:
        outUser !== undefined && outPassword !== undefined
          ? { user: outUser, password: outPassword }
          : undefined,
    });
  }

  private reply(
    transit: boolean,
    csg: number,
    nsg: number,
    pairs: TextPair[],
    fullFeature = false,
  ): LoginReply {
    return {
      transit,
      csg,
      nsg: transit ? nsg : 0,
      status: LoginStatus.Success,
      pairs,
      fullFeature,
      close: false,
    };
  }

  private fail(status: number, csg: number, pairs: TextPair[] = []): LoginReply {
    return { transit: false, csg, nsg: 0, status, pairs, fullFeature: false, close: true };
  }

  private failWith(status: NegotiationStatus, csg: number, pairs: TextPair[]): LoginReply {
    return this.fail((status.statusClass << 8) | status.statusDetail, csg, pairs);
  }
}

/** Encode login response text. */
export function loginText(pairs: readonly TextPair[]): Buffer {
  return pairs.length ? encodeText(pairs) : Buffer.alloc(0);
}

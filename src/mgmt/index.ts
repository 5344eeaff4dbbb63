/** The management plane: control socket server, tgtadm client and command line. */
export {
  startControlServer,
  ControlServerError,
  type ControlServer,
  type ControlServerOptions,
} from './server.js';
export {
  dispatch,
  type MgmtSystem,
  type DriverStatHooks,
  type DispatchResult,
  type LuCreateOptions,
} from './dispatch.js';
export {
  sendRequest,
  controlSocketPath,
  waitForDaemonExit,
  probeDaemon,
  ClientError,
  DEFAULT_SOCKET_PREFIX,
  type AdminResponse,
} from './client.js';
export { runTgtadm, planTgtadm, TGTADM_VERSION } from './tgtadm-cli.js';
export * from './wire.js';
export * from './show.js';

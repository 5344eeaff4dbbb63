/** tgtadm entry point: tgt's management command line (see src/mgmt/tgtadm-cli.ts). */
import { runTgtadm } from '../mgmt/tgtadm-cli.js';

runTgtadm(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`tgtadm: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);

/** tgt-admin entry point: configure tgtd from targets.conf (see src/mgmt/tgt-admin.ts). */
import { runTgtAdmin } from '../mgmt/tgt-admin.js';

runTgtAdmin(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`tgt-admin: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);

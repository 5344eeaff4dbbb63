#!/usr/bin/env node
// Full-size "Done when" runs of issue 5 (docs/robustness.md, "Done-when runs"). Runs the built
// test/integration/soak.test.ts with:
//   (a) every hostile case twice, then all of them interleaved at random for --minutes (default 5),
//       against LUN 2 while two honest sessions run a verified read/write load on LUN 1;
//   (b) --kills (default 1000) connection kills in the middle of a verified write load;
//   (c) libiscsi's iSCSI family with header digests and without (skipped without libiscsi-bin).
// Prints progress and a summary; exits non-zero on any violation or failed check.
//
// Usage: npm run soak [-- --minutes N] [--kills N] [--seed N] [--half-open N] [--settle-ms N]
// (run `npm run build` first when calling this file directly; `npm run soak` builds).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const testFile = resolve(root, 'dist/test/integration/soak.test.js');

const options = { minutes: 5, kills: 1000, seed: undefined, 'half-open': 500, 'settle-ms': 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const key = argv[i].replace(/^--/, '');
  const value = Number(argv[i + 1]);
  if (!(key in options) || !Number.isFinite(value) || value < 0) {
    console.error(
      `soak: usage: soak.mjs [--minutes N] [--kills N] [--seed N] [--half-open N] [--settle-ms N]`,
    );
    process.exit(2);
  }
  options[key] = value;
  i++;
}
if (!existsSync(testFile)) {
  console.error(`soak: ${testFile} not found (npm run build)`);
  process.exit(2);
}
const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);

const started = new Date();
console.log(
  `soak: started ${started.toISOString()}: (a) ${options.minutes} min of hostile cases, ` +
    `(b) ${options.kills} kills (settle ${options['settle-ms']} ms), (c) libiscsi iSCSI family; seed ${seed}`,
);
const child = spawn(process.execPath, ['--test-reporter=spec', testFile], {
  cwd: root,
  env: {
    ...process.env,
    SOAK_HOSTILE_MINUTES: String(options.minutes),
    SOAK_KILLS: String(options.kills),
    SOAK_SEED: String(seed),
    SOAK_HALF_OPEN: String(options['half-open']),
    SOAK_SETTLE_MS: String(options['settle-ms']),
    SOAK_PROGRESS: '1',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});

const summaries = [];
const counts = {};
let stdoutTail = '';
let stderrTail = '';

/** Pass lines through; keep "soak: summary" lines and the runner's closing counts. */
function lines(stream, onLine) {
  let buffered = '';
  stream.setEncoding('utf8').on('data', (chunk) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop();
    for (const line of parts) onLine(line);
  });
  stream.on('end', () => buffered && onLine(buffered));
}

lines(child.stdout, (line) => {
  process.stdout.write(`${line}\n`);
  const m = /^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$/.exec(line);
  if (m) counts[m[1]] = Number(m[2]);
  stdoutTail = (stdoutTail + line + '\n').slice(-4000);
});
lines(child.stderr, (line) => {
  const m = /^soak: summary (.*)$/.exec(line);
  if (m) summaries.push(m[1]);
  else process.stderr.write(`${line}\n`);
  stderrTail = (stderrTail + line + '\n').slice(-4000);
});

const code = await new Promise((resolveExit) =>
  child.on('close', (c, signal) => resolveExit(c ?? (signal ? 1 : 0))),
);
const seconds = Math.round((Date.now() - started.getTime()) / 1000);
console.log('\nsoak: ---- summary ----');
console.log(
  `soak: date ${started.toISOString()}, duration ${Math.floor(seconds / 60)} min ${seconds % 60} s`,
);
console.log(
  `soak: command npm run soak -- --minutes ${options.minutes} --kills ${options.kills} --seed ${seed}`,
);
for (const s of summaries) console.log(`soak: ${s}`);
console.log(
  `soak: checks ${counts.pass ?? '?'} passed, ${counts.fail ?? '?'} failed, ${counts.skipped ?? 0} skipped, ` +
    `${counts.todo ?? 0} todo (known tgtd bugs, see the test names)`,
);
const ok = code === 0 && counts.fail === 0 && (counts.cancelled ?? 0) === 0;
console.log(`soak: result ${ok ? 'PASS' : 'FAIL'}`);
process.exit(ok ? 0 : 1);

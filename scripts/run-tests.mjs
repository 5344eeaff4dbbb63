#!/usr/bin/env node
// Runs the compiled test files (dist/test/<kind>/**/*.test.js) with node:test.
// Usage: node scripts/run-tests.mjs unit [integration]
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const kinds = process.argv.slice(2);
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
}
for (const kind of kinds.length ? kinds : ['unit']) {
  const dir = join('dist', 'test', kind);
  if (existsSync(dir)) walk(dir);
}
if (files.length === 0) {
  console.error('no test files found (run npm run build first)');
  process.exit(1);
}
files.sort();
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);

#!/usr/bin/env node
// `npm test`: builds, runs every project's Jest suite through Nx, then prints one line
// `tests: N passed, M failed` computed from Jest's own results (reports/jest/*.json).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const reports = join(root, 'reports', 'jest');
rmSync(reports, { recursive: true, force: true });

// The programs the suite starts, before anything else: installed as root, else one
// command to run is printed and nothing runs (rather than dozens of failures one by one).
const preflight = spawnSync(process.execPath, [join(root, 'tools', 'system-packages.mjs')], { stdio: 'inherit' });
if (preflight.status !== 0) {
  console.log('tests: 0 passed, 1 failed');
  process.exit(1);
}

const extra = process.argv.slice(2);
const nx = spawnSync(
  'npx',
  ['nx', 'run-many', '-t', 'test', '--outputStyle=stream', '--skipNxCache', ...extra],
  { cwd: root, stdio: 'inherit', env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' } },
);

let passed = 0;
let failed = 0;
let files = [];
try {
  files = readdirSync(reports).filter((f) => f.endsWith('.json'));
} catch {
  // no project wrote a summary: counted as a failure below
}
for (const file of files) {
  const s = JSON.parse(readFileSync(join(reports, file), 'utf8'));
  passed += s.passed;
  // A suite that failed to load has no failed test but is a failure all the same.
  failed += s.failed + s.suiteErrors;
  console.log(`  ${s.project}: ${s.passed} passed, ${s.failed} failed${s.suiteErrors ? `, ${s.suiteErrors} suites did not run` : ''}`);
  for (const f of s.failures ?? []) console.log(`    failed: ${f.file}: ${f.test}`);
}
const status = nx.status ?? 1;
if (status !== 0 && failed === 0) failed = 1; // Nx failed before or outside Jest (build, crash)
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(status !== 0 || failed > 0 ? 1 : 0);

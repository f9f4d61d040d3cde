#!/usr/bin/env node
// `npm run fuzz -- [--cases N] [--target admin|frames|socketio|sequences|tokens|all] [--seed S]
//                 [--time-limit-s T] [--no-build]`
//
// Long fuzz runs: each target's spec (test/fuzz/<target>.fuzz.spec.ts: one real gateway
// process with its own Redis) runs N generated cases (TIDINGS_FUZZ_RUNS; the suite runs
// 10,000), one target after the other. Each target stops after T seconds (default 1,800):
// a bounded run reports how many cases it got through. Prints, per target, the cases run,
// the time, whether it failed (with fast-check's seed and path to replay the failure:
// `--seed S` and the spec's message), gateway deaths, error logs and the process's memory,
// then the target's own counts. Exit code 1 if any target failed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const TARGETS = ['admin', 'frames', 'socketio', 'sequences', 'tokens'];
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '10000' },
    target: { type: 'string', default: 'all' },
    seed: { type: 'string' },
    'time-limit-s': { type: 'string', default: '1800' },
    'no-build': { type: 'boolean', default: false },
  },
});
const cases = Number(values.cases);
const timeLimitS = Number(values['time-limit-s']);
const targets = values.target === 'all' ? TARGETS : values.target.split(',');
if (!Number.isSafeInteger(cases) || cases < 1) throw new Error(`--cases: a positive integer, not ${values.cases}`);
if (!(timeLimitS > 0)) throw new Error(`--time-limit-s: a positive number, not ${values['time-limit-s']}`);
for (const t of targets) if (!TARGETS.includes(t)) throw new Error(`--target: one of ${TARGETS.join(', ')} or all, not ${t}`);

if (!values['no-build']) {
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit', env: { ...process.env, NX_DAEMON: 'false' } });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

const results = [];
for (const target of targets) {
  const report = join(root, 'reports', 'fuzz', `${target}.json`);
  rmSync(report, { force: true });
  const started = Date.now();
  console.log(`\n== fuzz ${target}: ${cases} cases, at most ${timeLimitS} s`);
  const run = spawnSync('npx', ['jest', '--runTestsByPath', `fuzz/${target}.fuzz.spec.ts`], {
    cwd: join(root, 'test'),
    stdio: 'inherit',
    env: {
      ...process.env,
      TIDINGS_FUZZ_RUNS: String(cases),
      TIDINGS_FUZZ_TIME_LIMIT_MS: String(Math.round(timeLimitS * 1000)),
      ...(values.seed !== undefined ? { TIDINGS_FUZZ_SEED: values.seed } : {}),
    },
  });
  const r = existsSync(report) ? JSON.parse(readFileSync(report, 'utf8')) : undefined;
  results.push({ target, status: run.status, wallS: (Date.now() - started) / 1000, report: r });
}

console.log('\n== fuzz figures');
let failed = false;
for (const { target, status, wallS, report: r } of results) {
  if (!r) {
    failed = true;
    console.log(`${target}: no report (the spec did not get to run its property; jest exit ${status}), ${wallS.toFixed(0)} s`);
    continue;
  }
  const bad = r.failed || status !== 0;
  failed ||= bad;
  console.log(
    `${target}: ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s (${((r.ms / Math.max(1, r.cases)) * 1000).toFixed(0)} us/case)` +
      `${r.interrupted ? ', stopped by the time limit' : ''}, ${bad ? 'FAILED' : 'no failure'}, seed ${r.seed}` +
      `${r.path ? `, path ${r.path}` : ''}, gateway deaths ${r.deaths.length}, error logs ${r.errorLogs}` +
      `, rss ${r.rssKb.start} -> ${r.rssKb.end} kB, live heap ${r.liveHeapMb?.start} -> ${r.liveHeapMb?.end} MB`,
  );
  console.log(`  counts ${JSON.stringify(r.counts)}`);
  if (r.failed) console.log(`  counterexample ${r.counterexample?.slice(0, 1_000)}\n  error ${r.error?.slice(0, 1_000)}`);
  for (const d of r.deaths) console.log(`  death after case ${d.afterCase}: ${JSON.stringify(d.fatal?.err ?? d.code)}; cases before: ${d.recentCases.join(' | ').slice(0, 1_000)}`);
}
process.exit(failed ? 1 : 0);

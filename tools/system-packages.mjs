#!/usr/bin/env node
/**
 * The Debian packages the test suite starts as real processes, checked before anything else
 * runs (`npm test` and `.ci/run` both call this). Missing ones are installed when we run as
 * root (CI, a fresh container); otherwise we stop at once with the one command to run,
 * rather than let dozens of tests fail one by one.
 *
 *   node tools/system-packages.mjs            check; install as root, else print the command
 *   node tools/system-packages.mjs --check    check only (exit 1 when something is missing)
 */
import { spawnSync } from 'node:child_process';

/** [command the suite runs, Debian package that provides it, what for]. */
export const SYSTEM_PACKAGES = [
  ['redis-server', 'redis-server', 'Redis, Redis Cluster and Sentinel scenarios (sentinels run as `redis-server FILE --sentinel`)'],
  ['haproxy', 'haproxy', 'the load-balanced cluster scenarios and deploy/tls'],
  ['promtool', 'prometheus', 'deploy/prometheus rules and scrape config'],
  ['nginx', 'nginx-light', 'deploy/tls (nginx example)'],
  ['openssl', 'openssl', 'certificates for the TLS scenarios'],
  ['systemd-analyze', 'systemd', 'deploy/systemd (systemd-analyze, systemd-sysusers)'],
  ['chromium', 'chromium', 'the console and the client in a real browser (Playwright drives Debian chromium)'],
];

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

export function missingPackages() {
  return SYSTEM_PACKAGES.filter(([command]) => !has(command));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const missing = missingPackages();
  if (missing.length === 0) process.exit(0);
  const names = [...new Set(missing.map(([, pkg]) => pkg))];
  const line = `apt-get install -y --no-install-recommends ${names.join(' ')}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (process.argv.includes('--check') || !isRoot || !has('apt-get')) {
    process.stderr.write(
      `The test suite needs these programs, which are missing:\n${missing.map(([c, p, why]) => `  ${c} (Debian package ${p}): ${why}`).join('\n')}\n` +
        `Install them with:\n  sudo ${line}\n`,
    );
    process.exit(1);
  }
  process.stdout.write(`installing ${names.join(' ')}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...names]]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (r.status !== 0) {
      process.stderr.write(`apt-get ${args[0]} failed (exit ${r.status}); run: ${line}\n`);
      process.exit(1);
    }
  }
  // The packages may start services of their own; the suite starts what it needs itself.
  const still = missingPackages();
  if (still.length) {
    process.stderr.write(`still missing after install: ${still.map(([c]) => c).join(', ')}\n`);
    process.exit(1);
  }
}

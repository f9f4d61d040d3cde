#!/usr/bin/env node
// `npm run cluster`: the docker-compose.yml topology as local processes on 127.0.0.1, for
// machines without Docker: one redis-server, three gateways on the Redis bus and shared
// history, and HAProxy in front of their client and admin ports, health-checking /readyz.
// Ctrl-C (or SIGTERM) stops everything it started, by PID. Needs the Debian packages
// redis-server and haproxy (`apt-get install -y redis-server haproxy`; .ci/run does it).
//
//   node tools/local-cluster.mjs [--gateways N] [--base-port P] [--drain-ms MS]
//
// Ports (base 22280): HAProxy client 22280 and admin 22281 (Aphlict's defaults, so a
// Phorge config needs no change), HAProxy stats 22289, Redis 22290, gateway i client
// 22290+2i-1... see the table it prints.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { haproxyConfig } = createRequire(import.meta.url)(join(root, 'deploy', 'haproxy-config.cjs'));
const MAIN = join(root, 'services', 'gateway', 'dist', 'main.js');

function parseArgs(argv) {
  const opts = { gateways: 3, basePort: 22280, drainMs: 10_000 };
  for (let i = 0; i < argv.length; i++) {
    const [key, inline] = argv[i].split('=', 2);
    const value = () => {
      const v = inline ?? argv[++i];
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) fail(`${key}: "${v}" is not a whole number`);
      return n;
    };
    if (key === '--gateways') opts.gateways = value();
    else if (key === '--base-port') opts.basePort = value();
    else if (key === '--drain-ms') opts.drainMs = value();
    else if (key === '--help' || key === '-h') {
      process.stdout.write('usage: node tools/local-cluster.mjs [--gateways N (3)] [--base-port P (22280)] [--drain-ms MS (10000)]\n');
      process.exit(0);
    } else fail(`unknown option ${argv[i]} (try --help)`);
  }
  if (opts.gateways < 1 || opts.gateways > 9) fail('--gateways: 1 to 9');
  return opts;
}

function fail(message) {
  process.stderr.write(`local-cluster: ${message}\n`);
  process.exit(2);
}

function need(command, pkg) {
  const r = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  if (r.status !== 0) fail(`${command} not found: install the Debian package (apt-get install -y ${pkg})`);
  return r.stdout.trim();
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function waitForPort(port, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = createConnection(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        if (Date.now() > deadline) reject(new Error(`${what} did not listen on ${port} within ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

async function waitForReady(adminPort, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${what} was not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const opts = parseArgs(process.argv.slice(2));
const redisServer = need('redis-server', 'redis-server');
const haproxy = need('haproxy', 'haproxy');

const p = opts.basePort;
const ports = {
  client: p,
  admin: p + 1,
  stats: p + 9,
  redis: p + 10,
  gateways: Array.from({ length: opts.gateways }, (_, i) => ({ name: `gw${i + 1}`, clientPort: p + 11 + 2 * i, adminPort: p + 12 + 2 * i })),
};
const all = [ports.client, ports.admin, ports.stats, ports.redis, ...ports.gateways.flatMap((g) => [g.clientPort, g.adminPort])];
for (const port of all) if (!(await portIsFree(port))) fail(`port ${port} on 127.0.0.1 is in use; pick another --base-port`);

const dir = mkdtempSync(join(tmpdir(), 'tidings-cluster-'));
/** @type {{name: string, child: import('node:child_process').ChildProcess, stopSignal: NodeJS.Signals}[]} */
const started = [];
let stopping = false;

function launch(name, command, args, env, stopSignal = 'SIGTERM') {
  const log = join(dir, `${name}.log`);
  const out = createWriteStream(log);
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  child.once('error', (err) => process.stderr.write(`local-cluster: ${name}: ${err.message}\n`));
  child.once('exit', (code, signal) => {
    if (!stopping) process.stdout.write(`local-cluster: ${name} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); see ${log}\n`);
  });
  started.push({ name, child, stopSignal, log });
  return child;
}

async function stopAll(reason) {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`\nlocal-cluster: ${reason}: stopping ${started.length} processes\n`);
  // Load balancer first, then gateways (SIGINT: close at once), Redis last.
  for (const group of [['haproxy'], ports.gateways.map((g) => g.name), ['redis']]) {
    await Promise.all(
      started
        .filter((s) => group.includes(s.name) && s.child.exitCode === null && s.child.signalCode === null)
        .map(
          (s) =>
            new Promise((resolve) => {
              const force = setTimeout(() => s.child.kill('SIGKILL'), 15_000);
              s.child.once('exit', () => {
                clearTimeout(force);
                resolve();
              });
              process.kill(s.child.pid, s.stopSignal);
            }),
        ),
    );
  }
  process.stdout.write(`local-cluster: stopped; logs kept in ${dir}\n`);
  process.exit(0);
}
process.once('SIGINT', () => void stopAll('SIGINT'));
process.once('SIGTERM', () => void stopAll('SIGTERM'));

try {
  launch('redis', redisServer, ['--port', String(ports.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
  await waitForPort(ports.redis, 10_000, 'redis-server');
  const redisUrl = `redis://127.0.0.1:${ports.redis}`;

  for (const g of ports.gateways) {
    const config = join(dir, `${g.name}.json`);
    writeFileSync(
      config,
      JSON.stringify(
        {
          servers: [
            { type: 'client', port: g.clientPort, listen: '127.0.0.1' },
            { type: 'admin', port: g.adminPort, listen: '127.0.0.1' },
          ],
          pidfile: join(dir, `${g.name}.pid`),
        },
        null,
        2,
      ),
    );
    launch(g.name, process.execPath, [MAIN, `--config=${config}`], {
      TIDINGS_REDIS_URL: redisUrl,
      TIDINGS_SHUTDOWN_DRAIN_MS: String(opts.drainMs),
      // HAProxy connects from 127.0.0.1 and adds X-Forwarded-For on both frontends: believe it,
      // so per-address limits see each client's own address (clients can bind 127.0.0.2, ...).
      TIDINGS_LIMITS_TRUST_PROXY: '127.0.0.1',
    }, 'SIGINT');
  }
  await Promise.all(ports.gateways.map((g) => waitForReady(g.adminPort, 20_000, g.name)));

  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    haproxyConfig({
      header: 'Written by tools/local-cluster.mjs',
      gateways: ports.gateways.map((g) => ({ ...g, host: '127.0.0.1' })),
      clientBind: `127.0.0.1:${ports.client}`,
      adminBind: `127.0.0.1:${ports.admin}`,
      statsBind: `127.0.0.1:${ports.stats}`,
      checkIntervalMs: 1000,
    }),
  );
  // -db: foreground, no daemon; SIGUSR1 would stop it softly, SIGTERM stops it at once.
  launch('haproxy', haproxy, ['-db', '-f', cfg]);
  await waitForPort(ports.client, 10_000, 'haproxy');
  await waitForPort(ports.admin, 10_000, 'haproxy');
} catch (err) {
  process.stderr.write(`local-cluster: ${err.message}\n`);
  for (const s of started) process.stderr.write(`  ${s.name} log: ${s.log}\n`);
  await stopAll('start failed');
}

const row = (a, b, c) => `  ${a.padEnd(22)}${b.padEnd(40)}${c}\n`;
process.stdout.write(
  '\nTidings local cluster (all on 127.0.0.1)\n' +
    row('what', 'address', 'pid') +
    row('clients (HAProxy)', `ws://127.0.0.1:${ports.client}/`, String(started.find((s) => s.name === 'haproxy').child.pid)) +
    row('admin (HAProxy)', `http://127.0.0.1:${ports.admin}/`, '') +
    row('HAProxy stats', `http://127.0.0.1:${ports.stats}/`, '') +
    row('redis', `redis://127.0.0.1:${ports.redis}`, String(started.find((s) => s.name === 'redis').child.pid)) +
    ports.gateways
      .map((g) =>
        row(`${g.name} client/admin`, `${g.clientPort} / http://127.0.0.1:${g.adminPort}/`, String(started.find((s) => s.name === g.name).child.pid)),
      )
      .join('') +
    `\nTry:  node services/gateway/dist/main.js notify --admin http://127.0.0.1:${ports.admin} --subscribers PHID-USER-demo\n` +
    `      node services/gateway/dist/main.js status --admin http://127.0.0.1:${ports.gateways[0].adminPort}\n` +
    `Configs and logs: ${dir}\n` +
    `pids: ${started.map((s) => `${s.name}=${s.child.pid}`).join(' ')}\n` +
    'Ctrl-C stops everything.\n',
);

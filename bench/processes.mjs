/**
 * The processes a benchmark run starts and measures: gateway nodes (the built
 * services/gateway/dist/main.js, on 127.0.0.1), a private redis-server, and readings of
 * their CPU time and RSS from /proc. Only processes started here are ever stopped, by PID.
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sleep } from './stats.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const GATEWAY_MAIN = join(ROOT, 'services/gateway/dist/main.js');

/** Kernel clock ticks per second, the unit of utime/stime in /proc/PID/stat. */
export const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time a process has used, in microseconds: {user, system} (utime, stime). */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at state, field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1e6) / CLOCK_TICKS, system: (Number(fields[12]) * 1e6) / CLOCK_TICKS };
}

/**
 * Run-queue figures of a process's main thread (the event loop), from /proc/PID/schedstat:
 * time runnable but waiting for a CPU, and timeslices, each of which began with a wake-up
 * or a preemption. Nanoseconds; zeros where the kernel lacks CONFIG_SCHED_INFO.
 */
export function schedStat(pid) {
  try {
    const [, waitNs, slices] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return { waitNs: waitNs || 0, slices: slices || 0 };
  } catch {
    return { waitNs: 0, slices: 0 };
  }
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** This process's open-file limit (soft), from /proc/self/limits. */
export function openFileLimit() {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m ? NaN : m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** Load average and uptime line, noted beside each run (other work shares the cores). */
export function machineLoad() {
  try {
    return execFileSync('uptime').toString().trim();
  } catch {
    return readFileSync('/proc/loadavg', 'utf8').trim();
  }
}

/** A port free on 127.0.0.1 now (for configs that must name ports before start: the relay). */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * Starts one gateway node. `config` is merged over client and admin servers on 127.0.0.1
 * (port 0 unless given). `main` is the gateway's entry point: this checkout's build, or
 * another build of the gateway to compare with (bench/subscriptions.mjs --baseline).
 * Resolves once its log says 'gateway started'.
 */
export async function startGateway({ config = {}, clientPort = 0, adminPort = 0, name = 'gateway', env = {}, nodeArgs = [], logFile, main = GATEWAY_MAIN } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-bench-'));
  const file = join(dir, 'aphlict.json');
  writeFileSync(
    file,
    JSON.stringify({
      servers: [
        { type: 'client', port: clientPort, listen: '127.0.0.1' },
        { type: 'admin', port: adminPort, listen: '127.0.0.1' },
      ],
      ...config,
    }),
  );
  const child = spawn(process.execPath, [...nodeArgs, main, `--config=${file}`], {
    env: { ...process.env, TIDINGS_SHUTDOWN_DRAIN_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise((res) => child.once('exit', (code, signal) => res(code ?? signal)));
  const warnings = [];
  const ports = await new Promise((res, rej) => {
    let client = 0;
    let admin = 0;
    const timer = setTimeout(() => rej(new Error(`${name} did not start within 20 s: ${stderr}`)), 20_000);
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`${name} exited (${code}) before it started: ${stderr}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (logFile) appendFileSync(logFile, `${name} ${line}\n`);
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        return;
      }
      if (rec.msg === 'client server listening' && !client) client = rec.port;
      else if (rec.msg === 'admin server listening' && !admin) admin = rec.port;
      else if (rec.msg === 'gateway started') {
        clearTimeout(timer);
        res({ client, admin });
      } else if (rec.level >= 40 && warnings.length < 20) warnings.push(rec.msg);
    });
  });
  return {
    name,
    pid: child.pid,
    /** The temporary directory of its config file, removed by stop(). */
    dir,
    clientPort: ports.client,
    adminPort: ports.admin,
    clientUrl: `ws://127.0.0.1:${ports.client}`,
    warnings,
    cpuMicros: () => cpuMicros(child.pid),
    rssBytes: () => rssBytes(child.pid),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
        if (!done) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts another Aphlict-compatible server for comparison (e.g. a real Aphlict's
 * aphlict_server.js, kept outside this repository) on free fixed ports, as
 * `node SCRIPT --config=FILE`; ready once its admin port answers GET /status/.
 */
export async function startForeignServer({ script, name = 'aphlict' }) {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-bench-foreign-'));
  const clientPort = await freePort();
  const adminPort = await freePort();
  const file = join(dir, 'aphlict.json');
  writeFileSync(
    file,
    JSON.stringify({
      servers: [
        { type: 'client', port: clientPort, listen: '127.0.0.1', 'ssl.key': null, 'ssl.cert': null, 'ssl.chain': null },
        { type: 'admin', port: adminPort, listen: '127.0.0.1', 'ssl.key': null, 'ssl.cert': null, 'ssl.chain': null },
      ],
      logs: [{ path: join(dir, 'aphlict.log') }],
      pidfile: join(dir, 'aphlict.pid'),
    }),
  );
  const child = spawn(process.execPath, [script, `--config=${file}`], { cwd: dirname(script), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise((res) => child.once('exit', (code, signal) => res(code ?? signal)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited before it started: ${stderr}`);
    const ok = await new Promise((res) => {
      http.get({ host: '127.0.0.1', port: adminPort, path: '/status/' }, (r) => (r.resume(), res(r.statusCode === 200))).on('error', () => res(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not answer on its admin port within 20 s: ${stderr}`);
    }
    await sleep(200);
  }
  return {
    name,
    pid: child.pid,
    clientPort,
    adminPort,
    clientUrl: `ws://127.0.0.1:${clientPort}`,
    warnings: [],
    cpuMicros: () => cpuMicros(child.pid),
    rssBytes: () => rssBytes(child.pid),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A private redis-server on a free port, nothing saved to disk. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tidings-bench-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise((res) => child.once('exit', (code) => res(code)));
  let out = '';
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`redis-server did not start: ${out}`)), 10_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      rej(err);
    });
    child.stdout.on('data', (d) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        res();
      }
    });
  });
  return {
    name: 'redis-server',
    pid: child.pid,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5_000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

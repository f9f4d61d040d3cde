/**
 * HAProxy in front of bench gateways, with the configuration the repository deploys
 * (deploy/haproxy-config.cjs: leastconn for client sockets, round robin for publishes, both
 * health-checked on /readyz, retries with redispatch), on free ports of 127.0.0.1. Started in
 * the foreground (-db) and stopped by its PID.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './processes.mjs';
import { sleep } from './stats.mjs';

const { haproxyConfig } = createRequire(import.meta.url)('../deploy/haproxy-config.cjs');

/** Whether `haproxy` is on the PATH. */
export function haveHaproxy() {
  return spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).status === 0;
}

async function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = createConnection(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * Starts HAProxy before `gateways` (bench gateway handles: name, clientPort, adminPort).
 * `maxconn` unset lets HAProxy derive it from its open-file limit (two descriptors per
 * proxied connection). Resolves with its client and admin ports and stop().
 */
export async function startHaproxy({ gateways, checkIntervalMs = 1_000, maxconn }) {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-bench-haproxy-'));
  const clientPort = await freePort();
  const adminPort = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    haproxyConfig({
      header: 'Written by bench/haproxy.mjs',
      gateways: gateways.map((g) => ({ name: g.name, host: '127.0.0.1', clientPort: g.clientPort, adminPort: g.adminPort })),
      clientBind: `127.0.0.1:${clientPort}`,
      adminBind: `127.0.0.1:${adminPort}`,
      checkIntervalMs,
      maxconn,
    }),
  );
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d) => (output = (output + d.toString()).slice(-8000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await Promise.race([
      Promise.all([waitForPort(clientPort, 10_000), waitForPort(adminPort, 10_000)]),
      exited.then(() => {
        throw new Error(`haproxy exited at start: ${output}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    name: 'haproxy',
    pid: child.pid,
    clientPort,
    adminPort,
    clientUrl: `ws://127.0.0.1:${clientPort}`,
    /** What HAProxy printed (warnings about maxconn and file descriptors land here). */
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5_000)]);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A real HAProxy for tests: config from deploy/haproxy-config.cjs written to a tmp dir, run in
 * the foreground (`haproxy -db`) on 127.0.0.1 ports, stopped by its PID; server states read
 * from its stats CSV.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, sleep } from '@tidings/testing';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { haproxyConfig } = require(resolve(__dirname, '../../deploy/haproxy-config.cjs')) as {
  haproxyConfig: (o: Record<string, unknown>) => string;
};

export interface Backend {
  name: string;
  clientPort: number;
  adminPort: number;
}

export interface HaproxyProcess {
  clientUrl: string;
  adminUrl: string;
  statsUrl: string;
  child: ChildProcess;
  /** Server states per backend: {"tidings_clients/gw1": "UP", ...}. */
  states(): Promise<Record<string, string>>;
  /** Waits until each named server of both backends has the state (UP, DOWN). */
  waitFor(servers: string[], state: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startHaproxy(backends: Backend[], checkIntervalMs = 300): Promise<HaproxyProcess> {
  const [client, admin, stats] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'tidings-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    haproxyConfig({
      gateways: backends.map((b) => ({ ...b, host: '127.0.0.1' })),
      clientBind: `127.0.0.1:${client}`,
      adminBind: `127.0.0.1:${admin}`,
      statsBind: `127.0.0.1:${stats}`,
      checkIntervalMs,
    }),
  );
  let stderr = '';
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d) => (stderr += d.toString()));
  // A haproxy that could not be spawned emits 'error' and never 'exit': either ends it.
  let spawnFailed = false;
  const exited = new Promise<void>((res) => {
    child.once('exit', () => res());
    child.once('error', (err) => {
      spawnFailed = true;
      stderr += `cannot start haproxy (install the Debian package haproxy): ${err.message}`;
      res();
    });
  });
  const statsUrl = `http://127.0.0.1:${stats}/`;
  const handle: HaproxyProcess = {
    clientUrl: `ws://127.0.0.1:${client}`,
    adminUrl: `http://127.0.0.1:${admin}`,
    statsUrl,
    child,
    async states() {
      const csv = await (await fetch(`${statsUrl};csv`)).text();
      const out: Record<string, string> = {};
      for (const line of csv.split('\n')) {
        const f = line.split(',');
        if (f.length > 17 && !line.startsWith('#') && f[1] !== 'FRONTEND' && f[1] !== 'BACKEND') out[`${f[0]}/${f[1]}`] = f[17];
      }
      return out;
    },
    async waitFor(servers, state, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        let states: Record<string, string> = {};
        try {
          states = await handle.states();
        } catch {
          // not listening yet
        }
        const ok = servers.every((s) => ['tidings_clients', 'tidings_admin'].every((b) => states[`${b}/${s}`]?.startsWith(state)));
        if (ok) return;
        if (spawnFailed || child.exitCode !== null) throw new Error(`haproxy exited: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`haproxy: ${servers.join(', ')} not ${state} within ${timeoutMs} ms: ${JSON.stringify(states)}`);
        await sleep(50);
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  return handle;
}

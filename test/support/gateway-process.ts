/**
 * Real gateway processes for tests: `node services/gateway/dist/main.js --config=FILE`,
 * listening on port 0 on 127.0.0.1; the addresses are read back from its JSON log lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * The gateway to run: this tree's build, or TIDINGS_GATEWAY_MAIN (another build's main.js,
 * to show that a spec fails on the code before a fix).
 */
export const GATEWAY_MAIN = process.env.TIDINGS_GATEWAY_MAIN || resolve(__dirname, '../../services/gateway/dist/main.js');

export interface GatewayProcess {
  pid: number;
  clientUrl: string;
  adminUrl: string;
  adminPort: number;
  clientPort: number;
  fingerprint: string;
  child: ChildProcess;
  /** Log records seen so far (parsed JSON lines). */
  logs: Record<string, unknown>[];
  /** What the process wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM (drain) or SIGINT; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** kill -9. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

export interface SpawnOptions {
  /** Config file content; servers default to client and admin on 127.0.0.1 port 0. */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Fixed ports (restart a node on the same address). */
  clientPort?: number;
  adminPort?: number;
  startTimeoutMs?: number;
  /** Run as this user and group (the test runner must be root); the config file is made readable to them. */
  uid?: number;
  gid?: number;
}

export async function spawnGateway(options: SpawnOptions = {}): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-gw-'));
  const config = {
    servers: [
      { type: 'client', port: options.clientPort ?? 0, listen: '127.0.0.1' },
      { type: 'admin', port: options.adminPort ?? 0, listen: '127.0.0.1' },
    ],
    ...options.config,
  };
  const file = join(dir, 'aphlict.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  if (options.uid !== undefined) chmodSync(dir, 0o755);
  const child = spawn(process.execPath, [GATEWAY_MAIN, `--config=${file}`], {
    env: { ...process.env, TIDINGS_SHUTDOWN_DRAIN_MS: '0', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: options.uid,
    gid: options.gid,
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));

  const ready = new Promise<{ client: number; admin: number; fingerprint: string }>((res, rej) => {
    let client = 0;
    let admin = 0;
    const timer = setTimeout(
      () => rej(new Error(`gateway did not start within ${options.startTimeoutMs ?? 15_000} ms: ${stderr}`)),
      options.startTimeoutMs ?? 15_000,
    );
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`gateway exited with ${code} before it started: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(rec);
      if (rec.msg === 'client server listening' && !client) client = rec.port as number;
      if (rec.msg === 'admin server listening' && !admin) admin = rec.port as number;
      if (rec.msg === 'gateway started') {
        clearTimeout(timer);
        res({ client, admin, fingerprint: rec.fingerprint as string });
      }
    });
  });
  const { client, admin, fingerprint } = await ready;
  return {
    pid: child.pid!,
    clientUrl: `ws://127.0.0.1:${client}`,
    adminUrl: `http://127.0.0.1:${admin}`,
    clientPort: client,
    adminPort: admin,
    fingerprint,
    child,
    logs,
    stderr: () => stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A real Redis for tests: REDIS_URL if set (shared, never stopped by us), else a container
 * when a container runtime answers, else a `redis-server` started here on a free port.
 * Tests that stop or restart Redis ask for `own: true` and always get a server they own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisHandle {
  url: string;
  port: number;
  /** Whether stop/restart are allowed (a server this test started). */
  owned: boolean;
  /** Stops the server (kill by our own PID). Data is not kept. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A redis-server process of our own on 127.0.0.1. */
export async function startRedisServer(port?: number): Promise<RedisHandle> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'tidings-redis-'));
  let child: ChildProcess | undefined;
  const handle: RedisHandle = {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    owned: true,
    async start() {
      if (child && child.exitCode === null) return;
      child = spawn(
        'redis-server',
        ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'],
        { stdio: 'ignore' },
      );
      child.once('error', (err) => {
        throw new Error(`cannot start redis-server (install the Debian package redis-server): ${err.message}`);
      });
      await waitForPort(p, 10_000);
    },
    async stop() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
  };
  await handle.start();
  const stop = handle.stop;
  handle.stop = async () => {
    await stop();
  };
  process.once('exit', () => {
    try {
      child?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  });
  return handle;
}

async function containerRuntimeAnswers(): Promise<boolean> {
  if (process.env.TIDINGS_TEST_CONTAINERS === '0') return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 5_000).unref()),
    ]);
    return true;
  } catch {
    return false;
  }
}

async function startRedisContainer(): Promise<RedisHandle> {
  const { GenericContainer } = await import('testcontainers');
  let container = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
  const port = container.getMappedPort(6379);
  return {
    url: `redis://${container.getHost()}:${port}`,
    port,
    owned: true,
    async stop() {
      await container.stop();
    },
    async start() {
      container = await new GenericContainer('redis:7-alpine').withExposedPorts({ container: 6379, host: port }).start();
    },
  };
}

let containersChecked: Promise<boolean> | undefined;

/** Redis for a test file. `own`: a server this test may stop and restart. */
export async function startRedis(options: { own?: boolean } = {}): Promise<RedisHandle> {
  if (!options.own && process.env.REDIS_URL) {
    const url = process.env.REDIS_URL;
    return {
      url,
      port: Number(new URL(url).port || 6379),
      owned: false,
      async stop() {
        // shared server: never stopped by a test
      },
      async start() {},
    };
  }
  containersChecked ??= containerRuntimeAnswers();
  if (await containersChecked) return startRedisContainer();
  return startRedisServer();
}

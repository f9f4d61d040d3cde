/**
 * Helpers for the Redis bus scenarios: a real Redis Cluster of our own (three masters,
 * no replicas, on free ports of 127.0.0.1 with their own tmp dirs), and gateway nodes
 * that share a Redis (and optionally the Aphlict relay, with fixed ports so each node's
 * `cluster` can list the others).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis';
import { spawnGateway, type GatewayProcess } from './gateway-process';
import { notification, post } from './http';
import { connectSocket, messagesOf, type TestSocket } from './ws-client';

const run = promisify(execFile);

export interface RedisClusterHandle {
  /** `host:port,host:port,...` as `redis.clusterNodes` takes it. */
  nodes: string;
  ports: number[];
  /** Kills every server we started (by PID) and removes their directories. */
  stop(): Promise<void>;
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 });
  return stdout;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts `count` redis-server processes with --cluster-enabled yes and creates the cluster. */
export async function startRedisCluster(count = 3): Promise<RedisClusterHandle> {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      // The cluster bus port defaults to port + 10000, which may be taken or out of range.
      const busPort = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'tidings-redis-cluster-'));
      dirs.push(dir);
      ports.push(port);
      const child = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--cluster-port', String(busPort),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          '--cluster-config-file', join(dir, 'nodes.conf'),
          '--cluster-node-timeout', '2000',
          '--dir', dir,
          '--save', '',
          '--appendonly', 'no',
          '--protected-mode', 'no',
        ],
        { stdio: 'ignore' },
      );
      children.push(child);
      process.once('exit', () => child.kill('SIGKILL'));
    }
    for (const port of ports) {
      await waitUntil(async () => (await redisCli(port, 'PING')).trim() === 'PONG', 10_000, `redis-server on ${port} did not answer`);
    }
    await run(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 30_000 },
    );
    for (const port of ports) {
      await waitUntil(
        async () => (await redisCli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'),
        15_000,
        `cluster node ${port} did not reach cluster_state:ok`,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes: ports.map((p) => `127.0.0.1:${p}`).join(','), ports, stop };
}

export interface BusNodesOptions {
  /** `redis` config section of every node (url or clusterNodes, keyPrefix, ...). */
  redis: Record<string, unknown>;
  /** Also join the nodes by the Aphlict relay: every node lists every node, itself included. */
  relay?: boolean;
  /** Extra config keys for every node. */
  config?: Record<string, unknown>;
}

/** Starts `count` gateway processes on the same Redis, one by one (two shared cores). */
export async function startBusNodes(count: number, options: BusNodesOptions): Promise<GatewayProcess[]> {
  const ports: { client: number; admin: number }[] = [];
  for (let i = 0; i < count; i++) ports.push({ client: await freePort(), admin: await freePort() });
  const cluster = options.relay ? ports.map((p) => ({ host: '127.0.0.1', port: p.admin, protocol: 'http' })) : [];
  const nodes: GatewayProcess[] = [];
  try {
    for (const p of ports) {
      nodes.push(
        await spawnGateway({
          clientPort: p.client,
          adminPort: p.admin,
          config: { cluster, redis: options.redis, ...options.config },
        }),
      );
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw err;
  }
  return nodes;
}

/** A unique key prefix per test file and run, so a shared Redis never mixes runs. */
export function uniquePrefix(name: string): string {
  return `tidings-test:${name}:${process.pid}:${Date.now().toString(36)}:`;
}

/** A raw socket on a node, subscribed to `phids` (instance from the `~` path segment). */
export async function subscribedSocket(clientUrl: string, phids: string[], instance?: string): Promise<TestSocket> {
  const socket = await connectSocket(instance ? `${clientUrl}/~${instance}/` : clientUrl);
  socket.send('subscribe', phids);
  await socket.roundTrip(); // the subscription is in place once the pong is back
  return socket;
}

/** `key` of every message frame a socket received, in order. */
export function keysOf(socket: TestSocket): string[] {
  return messagesOf(socket.received).map((m) => String(m.key));
}

/** Which expected keys a socket lacks, and which keys it got more than once. */
export function deliveryFaults(received: string[], expected: Iterable<string>): { missing: string[]; duplicates: string[] } {
  const counts = new Map<string, number>();
  for (const k of received) counts.set(k, (counts.get(k) ?? 0) + 1);
  return {
    missing: [...expected].filter((k) => !counts.has(k)),
    duplicates: [...counts].filter(([, n]) => n > 1).map(([k]) => k),
  };
}

export interface SteadyPublisher {
  /** Keys answered 200, in order. */
  acked: string[];
  /** Keys answered otherwise or not at all, with the status (0: no answer). */
  failed: { key: string; status: number }[];
  /** Every publish in order: the node's index in nodes(), the status (0: no answer), when it was answered (Date.now()). */
  results: { key: string; node: number; status: number; at: number }[];
  /** Resolves when the loop ended (max reached or stop()). */
  done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Publishes one message every 1000/ratePerSec ms to the nodes in turn, at most `max`
 * messages and `maxMs` in all (bounded in count and time), one request at a time.
 */
export function publishSteadily(options: {
  nodes: () => GatewayProcess[];
  phids: string[];
  ratePerSec: number;
  max: number;
  maxMs: number;
  instance?: string;
}): SteadyPublisher {
  const state: SteadyPublisher = { acked: [], failed: [], results: [], done: Promise.resolve(), stop: async () => undefined };
  let stopped = false;
  const interval = 1_000 / options.ratePerSec;
  const started = Date.now();
  state.done = (async () => {
    for (let i = 0; i < options.max && !stopped && Date.now() - started < options.maxMs; i++) {
      const tickAt = started + i * interval;
      const targets = options.nodes();
      const index = i % targets.length;
      const node = targets[index];
      const message = notification(options.phids);
      const key = message.key as string;
      let status = 0;
      try {
        const res = await Promise.race([
          post(node.adminUrl, message, { instance: options.instance }),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('publish timed out')), 5_000).unref()),
        ]);
        status = res.status;
      } catch {
        status = 0;
      }
      if (status === 200) state.acked.push(key);
      else state.failed.push({ key, status });
      state.results.push({ key, node: index, status, at: Date.now() });
      const wait = tickAt + interval - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  state.stop = async () => {
    stopped = true;
    await state.done;
  };
  return state;
}

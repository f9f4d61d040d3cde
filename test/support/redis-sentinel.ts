/**
 * Replicated Redis for tests, all real processes on free ports of 127.0.0.1: a master with
 * replicas (`replicaof`), and a Sentinel topology (a master, one replica, three sentinels
 * started as `redis-server FILE --sentinel`, so the Debian package redis-server is all it
 * needs). Every process is ours: stopped by its PID, its files in a temp directory (sentinels
 * rewrite their config files), removed at stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redis';

const HOST = '127.0.0.1';

export interface RedisNodeHandle {
  port: number;
  url: string;
  /** Whether the process runs. */
  isRunning(): boolean;
  /** Starts it (again, same port, no data kept) with the arguments given, or those of the last start. */
  start(args?: string[]): Promise<void>;
  /** kill -9 of our process; resolves once it exited. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT of our process: a server that stops reading, its connections left open. */
  pause(): void;
  resume(): void;
}

async function until<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = ` (last error: ${(err as Error).message})`;
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms${lastError}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One command on a short-lived connection (no retries, bounded). */
async function ask<T>(port: number, password: string | undefined, command: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host: HOST, port, password, lazyConnect: true, retryStrategy: () => null, connectTimeout: 2_000, commandTimeout: 2_000, maxRetriesPerRequest: 0 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}

/** Every process this module started, killed if the test process exits without stop(). */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function spawnRedis(args: string[]): ChildProcess {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', (err) => {
    throw new Error(`cannot start redis-server (install the Debian package redis-server): ${err.message}`);
  });
  return child;
}

function killChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A redis-server of ours on `port` (free if not given), no persistence, in `dir`. */
async function startRedisNode(dir: string, args: string[], options: { port?: number; password?: string } = {}): Promise<RedisNodeHandle> {
  const port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;
  let lastArgs = args;
  const auth = options.password ? ['--requirepass', options.password, '--masterauth', options.password] : [];
  const handle: RedisNodeHandle = {
    port,
    url: options.password ? `redis://:${encodeURIComponent(options.password)}@${HOST}:${port}` : `redis://${HOST}:${port}`,
    isRunning: () => !!child && child.exitCode === null && child.signalCode === null,
    async start(next = lastArgs) {
      if (handle.isRunning()) throw new Error(`redis-server on ${port} already runs`);
      lastArgs = next;
      child = spawnRedis([
        '--port', String(port),
        '--bind', HOST,
        '--save', '',
        '--appendonly', 'no',
        '--dir', dir,
        '--protected-mode', 'no',
        // A replica's full sync starts at once (Redis 7 waits 5 s for more replicas to join it).
        '--repl-diskless-sync-delay', '0',
        ...auth,
        ...next,
      ]);
      await until(async () => (await ask(port, options.password, (r) => r.ping())) === 'PONG', 10_000, `redis-server on ${port} did not answer`);
    },
    async kill() {
      const c = child;
      child = undefined;
      await killChild(c);
    },
    pause() {
      if (!handle.isRunning()) throw new Error(`redis-server on ${port} does not run`);
      child!.kill('SIGSTOP');
    },
    resume() {
      if (handle.isRunning()) child!.kill('SIGCONT');
    },
  };
  await handle.start(args);
  return handle;
}

/** Waits until the server on `port` is a replica whose link to its master is up. */
export async function waitForReplicaLink(port: number, password?: string, timeoutMs = 10_000): Promise<void> {
  await until(
    async () => (await ask(port, password, (r) => r.info('replication'))).includes('master_link_status:up'),
    timeoutMs,
    `replica on ${port} did not sync with its master`,
  );
}

/**
 * Waits until a write on the master on `port` is acknowledged by `count` replicas (WAIT on
 * a probe key). A replica that just synced gets the master's stream only after its own
 * first acknowledgement, which it sends once a second: until then WAIT does not count it.
 */
export async function waitForReplicasAcknowledging(port: number, count: number, password?: string, timeoutMs = 10_000): Promise<void> {
  await until(
    () =>
      ask(port, password, async (r) => {
        await r.set('tidings-test:replication-probe', String(Date.now()));
        return ((await r.call('WAIT', String(count), '200')) as number) >= count;
      }),
    timeoutMs,
    `the master on ${port} did not get a write acknowledged by ${count} replicas`,
  );
}

export interface ReplicatedRedisHandle {
  master: RedisNodeHandle;
  replicas: RedisNodeHandle[];
  /** Kills every server (by PID) and removes their directory. */
  stop(): Promise<void>;
}

/** A master and `replicaCount` replicas (`--replicaof`), resolved once every replica is in sync. */
export async function startReplicatedRedis(replicaCount = 1): Promise<ReplicatedRedisHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-redis-repl-'));
  const nodes: RedisNodeHandle[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const master = await startRedisNode(dir, []);
    nodes.push(master);
    for (let i = 0; i < replicaCount; i++) nodes.push(await startRedisNode(dir, ['--replicaof', HOST, String(master.port)]));
    for (const replica of nodes.slice(1)) await waitForReplicaLink(replica.port);
    await waitForReplicasAcknowledging(master.port, replicaCount);
    return { master, replicas: nodes.slice(1), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface SentinelTopologyOptions {
  /** Master group name. Default `mymaster`. */
  masterName?: string;
  /** `sentinel down-after-milliseconds`. Default 1000. */
  downAfterMs?: number;
  /** `sentinel failover-timeout`. Default 5000. */
  failoverTimeoutMs?: number;
  /** requirepass (and masterauth) of the master and replica; the sentinels get it as auth-pass. */
  password?: string;
  /** requirepass of the sentinels themselves (and sentinel-pass between them). */
  sentinelPassword?: string;
}

export interface SentinelTopology {
  masterName: string;
  /** `127.0.0.1:PORT` of each sentinel, as `redis.sentinels` takes them. */
  sentinels: string[];
  sentinelPorts: number[];
  /** The data servers (the first started as master), by port. */
  servers: Map<number, RedisNodeHandle>;
  /** The master's port as a majority of the sentinels that answer name it now. */
  masterPort(): Promise<number>;
  /** Resolves with the new master's port once every running sentinel names one other than `oldPort`. */
  waitForFailover(oldPort: number, timeoutMs: number): Promise<number>;
  /** Starts a killed server again as a replica of the current master, resolved once in sync. */
  rejoinAsReplica(port: number): Promise<void>;
  /** Kills every process (by PID) and removes the directory. */
  stop(): Promise<void>;
}

/**
 * A master, one replica and three sentinels (quorum 2) watching them; resolved once every
 * sentinel knows the replica and the two other sentinels, so a failover can be elected.
 */
export async function startSentinelTopology(options: SentinelTopologyOptions = {}): Promise<SentinelTopology> {
  const masterName = options.masterName ?? 'mymaster';
  const { password, sentinelPassword } = options;
  const dir = mkdtempSync(join(tmpdir(), 'tidings-sentinel-'));
  const servers = new Map<number, RedisNodeHandle>();
  const sentinelChildren: ChildProcess[] = [];
  const sentinelPorts: number[] = [];
  const stop = async () => {
    await Promise.all([...servers.values()].map((s) => s.kill()));
    await Promise.all(sentinelChildren.map((c) => killChild(c)));
    rmSync(dir, { recursive: true, force: true });
  };
  const askSentinel = <T>(port: number, command: (r: Redis) => Promise<T>) => ask(port, sentinelPassword, command);
  const masterOf = async (port: number) => Number(((await askSentinel(port, (r) => r.call('SENTINEL', 'get-master-addr-by-name', masterName))) as string[])[1]);

  try {
    const master = await startRedisNode(dir, [], { password });
    servers.set(master.port, master);
    const replica = await startRedisNode(dir, ['--replicaof', HOST, String(master.port)], { password });
    servers.set(replica.port, replica);
    await waitForReplicaLink(replica.port, password);
    await waitForReplicasAcknowledging(master.port, 1, password);

    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const file = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        file,
        [
          `port ${port}`,
          `bind ${HOST}`,
          'protected-mode no',
          `dir ${dir}`,
          `sentinel monitor ${masterName} ${HOST} ${master.port} 2`,
          `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 5_000}`,
          `sentinel parallel-syncs ${masterName} 1`,
          ...(password ? [`sentinel auth-pass ${masterName} ${password}`] : []),
          ...(sentinelPassword ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`] : []),
          '',
        ].join('\n'),
      );
      const child = spawnRedis([file, '--sentinel']);
      sentinelChildren.push(child);
      sentinelPorts.push(port);
    }
    // Sentinels find each other through hello messages on the master (every 2 s).
    for (const port of sentinelPorts) {
      await until(
        async () => {
          const fields = (await askSentinel(port, (r) => r.call('SENTINEL', 'MASTER', masterName))) as string[];
          const info = new Map<string, string>();
          for (let i = 0; i + 1 < fields.length; i += 2) info.set(fields[i], fields[i + 1]);
          return info.get('flags') === 'master' && info.get('num-slaves') === '1' && info.get('num-other-sentinels') === '2';
        },
        15_000,
        `sentinel on ${port} did not learn the replica and the other sentinels`,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const topology: SentinelTopology = {
    masterName,
    sentinels: sentinelPorts.map((p) => `${HOST}:${p}`),
    sentinelPorts,
    servers,
    async masterPort() {
      const named = await Promise.all(sentinelPorts.map((p) => masterOf(p).catch(() => 0)));
      const counts = new Map<number, number>();
      for (const p of named) if (p) counts.set(p, (counts.get(p) ?? 0) + 1);
      const [port, votes] = [...counts].sort((a, b) => b[1] - a[1])[0] ?? [0, 0];
      if (votes < 2) throw new Error(`no master named by a majority of the sentinels: ${named.join(', ')}`);
      return port;
    },
    waitForFailover(oldPort, timeoutMs) {
      return until(
        async () => {
          const named = await Promise.all(sentinelPorts.map((p) => masterOf(p)));
          return named.every((p) => p !== oldPort && p === named[0]) ? named[0] : undefined;
        },
        timeoutMs,
        `the sentinels did not fail over from ${oldPort}`,
      );
    },
    async rejoinAsReplica(port) {
      const server = servers.get(port);
      if (!server) throw new Error(`no server of ours on ${port}`);
      const masterPort = await topology.masterPort();
      if (masterPort === port) throw new Error(`${port} is still the master the sentinels name`);
      // Started as a replica at once: a master without persistence that came back empty
      // and stayed master until Sentinel noticed could wipe its replicas' data.
      await server.start(['--replicaof', HOST, String(masterPort)]);
      await waitForReplicaLink(port, password);
      await waitForReplicasAcknowledging(masterPort, 1, password);
    },
    stop,
  };
  return topology;
}

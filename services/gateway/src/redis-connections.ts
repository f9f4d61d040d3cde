/**
 * Every Redis connection the gateway opens (bus, history, Socket.IO's adapter) is made
 * here, from `redis.url`, `redis.clusterNodes` or `redis.sentinels`, with one retry policy
 * and one way of logging outages.
 */
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import { parseHostPort, type Logger, type TidingsConfig } from '@tidings/protocol';

export type RedisConnection = Redis | Cluster;
type RedisSettings = TidingsConfig['redis'];

/**
 * TCP keepalive on every Redis connection: the first probe after 5 s of silence, then
 * (Node's libuv) one a second, ten of them. A peer that died without closing (a host gone,
 * a NAT that forgot the flow) is noticed in about 15 s, not the kernel's default two hours,
 * and ioredis reconnects. The bus canary covers the failures keepalive cannot see.
 */
export const REDIS_KEEPALIVE_MS = 5_000;

/** Reconnect delays: 100 ms, 200 ms, ... capped at 1 s, for ever. */
export const redisRetryDelay = (attempt: number): number => Math.min(100 * attempt, 1_000);

/** How the config reaches Redis: one server, a Redis Cluster, or the master Sentinel names; none without Redis. */
export type RedisMode = 'standalone' | 'cluster' | 'sentinel';

export function redisModeOf(redis: RedisSettings): RedisMode | null {
  if (redis.sentinels.length > 0) return 'sentinel';
  if (redis.clusterNodes) return 'cluster';
  if (redis.url) return 'standalone';
  return null;
}

/** Parses `host:port,host:port` (redis.clusterNodes). */
export function parseClusterNodes(spec: string): ClusterNode[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((hostPort) => {
      const at = hostPort.lastIndexOf(':');
      const host = at > 0 ? hostPort.slice(0, at).replace(/^\[|\]$/g, '') : hostPort;
      const port = at > 0 ? Number(hostPort.slice(at + 1)) : 6379;
      if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`redis.clusterNodes: bad port in "${hostPort}"`);
      return { host, port };
    });
}

/** redis.sentinels as ioredis takes them (the config check has refused anything that is not HOST:PORT). */
export function parseSentinels(list: readonly string[]): { host: string; port: number }[] {
  return list.map((text) => {
    const address = parseHostPort(text);
    if (!address) throw new Error(`redis.sentinels: "${text}" is not HOST:PORT`);
    return address;
  });
}

/**
 * Where Redis is, for a log line: never a password (redis.url's is masked, redis.password
 * and redis.sentinelPassword only show whether they are set).
 */
export function describeRedisTarget(redis: RedisSettings): Record<string, unknown> {
  switch (redisModeOf(redis)) {
    case 'sentinel':
      return {
        mode: 'sentinel',
        sentinels: redis.sentinels,
        sentinelName: redis.sentinelName,
        password: redis.password ? 'set' : 'none',
        sentinelPassword: redis.sentinelPassword ? 'set' : 'none',
      };
    case 'cluster':
      return { mode: 'cluster', target: redis.clusterNodes };
    case 'standalone':
      return { mode: 'standalone', target: redactUrl(redis.url) };
    default:
      return { mode: 'none' };
  }
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparsable)';
  }
}

export interface RedisConnectionOptions {
  /** Client name shown by CLIENT LIST. */
  name: string;
  /**
   * Fail fast while disconnected: no offline queue, no resend of in-flight commands, and
   * redis.commandTimeoutMs on every command (bus and history, so a publish never hangs).
   * Off: ioredis queues commands until it connects (Socket.IO's adapter subscribes at once).
   */
  failFast: boolean;
  /** Connect on the first command or connect() rather than at once. */
  lazyConnect: boolean;
  /** Cluster: one subscriber per shard for sharded pub/sub (SSUBSCRIBE). */
  shardedSubscribers?: boolean;
}

/** Opens a standalone, cluster or Sentinel-followed connection as the config says; retries for ever. */
export function createRedisConnection(redis: RedisSettings, options: RedisConnectionOptions): RedisConnection {
  const timeout = redis.commandTimeoutMs;
  const connection: RedisOptions = {
    connectionName: options.name,
    retryStrategy: redisRetryDelay,
    connectTimeout: Math.max(timeout, 1_000),
    keepAlive: REDIS_KEEPALIVE_MS,
    ...(options.failFast ? { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: timeout } : {}),
  };
  const mode = redisModeOf(redis);
  if (mode === 'cluster') {
    return new Cluster(parseClusterNodes(redis.clusterNodes), {
      lazyConnect: options.lazyConnect,
      enableOfflineQueue: !options.failFast,
      clusterRetryStrategy: redisRetryDelay,
      maxRedirections: 16,
      shardedSubscribers: options.shardedSubscribers ?? false,
      slotsRefreshTimeout: Math.max(timeout, 1_000),
      redisOptions: connection,
    });
  }
  if (mode === 'sentinel') {
    // Each (re)connect asks the sentinels in turn for the master of sentinelName and checks
    // the ROLE of what it reached, so after a failover the next retry lands on the promoted
    // replica. Sentinel also kills the clients of a demoted master, which sends them here too.
    return new Redis({
      ...connection,
      lazyConnect: options.lazyConnect,
      sentinels: parseSentinels(redis.sentinels),
      name: redis.sentinelName,
      role: 'master',
      password: redis.password || undefined,
      sentinelPassword: redis.sentinelPassword || undefined,
      sentinelRetryStrategy: redisRetryDelay,
      sentinelCommandTimeout: timeout,
    });
  }
  return new Redis(redis.url, { ...connection, lazyConnect: options.lazyConnect });
}

/** Logs a connection's first error of each outage (ioredis emits one per attempt) and its return. */
export function watchRedisErrors(client: RedisConnection, logger: Logger, role: string): void {
  let reported = false;
  client.on('error', (err: Error) => {
    if (reported) return logger.debug({ role, err: err.message }, 'redis: error');
    reported = true;
    logger.warn({ role, err: err.message }, 'redis: connection failed, retrying');
  });
  client.on('ready', () => {
    if (reported) logger.info({ role }, 'redis: connected again');
    reported = false;
  });
}

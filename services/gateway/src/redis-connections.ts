/**
 * Every Redis connection the gateway opens (bus, history, Socket.IO's adapter) is made
 * here, from `redis.url` or `redis.clusterNodes`, with one retry policy and one way of
 * logging outages.
 */
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import type { Logger, TidingsConfig } from '@tidings/protocol';

export type RedisConnection = Redis | Cluster;

/**
 * TCP keepalive on every Redis connection: the first probe after 5 s of silence, then
 * (Node's libuv) one a second, ten of them. A peer that died without closing (a host gone,
 * a NAT that forgot the flow) is noticed in about 15 s, not the kernel's default two hours,
 * and ioredis reconnects. The bus canary covers the failures keepalive cannot see.
 */
export const REDIS_KEEPALIVE_MS = 5_000;

/** Reconnect delays: 100 ms, 200 ms, ... capped at 1 s, for ever. */
export const redisRetryDelay = (attempt: number): number => Math.min(100 * attempt, 1_000);

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
}

/** Opens a standalone or cluster connection as the config says; retries for ever. */
export function createRedisConnection(redis: TidingsConfig['redis'], options: RedisConnectionOptions): RedisConnection {
  const timeout = redis.commandTimeoutMs;
  const connection: RedisOptions = {
    connectionName: options.name,
    retryStrategy: redisRetryDelay,
    connectTimeout: Math.max(timeout, 1_000),
    keepAlive: REDIS_KEEPALIVE_MS,
    ...(options.failFast ? { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: timeout } : {}),
  };
  if (redis.clusterNodes) {
    return new Cluster(parseClusterNodes(redis.clusterNodes), {
      lazyConnect: options.lazyConnect,
      enableOfflineQueue: !options.failFast,
      clusterRetryStrategy: redisRetryDelay,
      maxRedirections: 16,
      slotsRefreshTimeout: Math.max(timeout, 1_000),
      redisOptions: connection,
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

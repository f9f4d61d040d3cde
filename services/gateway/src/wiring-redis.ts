/**
 * Redis bus and shared history, when `redis.url` or `redis.clusterNodes` is set.
 *
 * Two connections per node: one for commands (history script, reads, canaries), one
 * subscribed to the bus channel. Both connect lazily in bus.start(), retry forever with
 * a capped backoff, and have the offline queue off, so while Redis is down a publish fails
 * at once (admin 503 history_unavailable) instead of piling up; every command also has
 * redis.commandTimeoutMs. The history store publishes each message inside its append
 * script and the bus only subscribes (see libs/history/src/redis-history.ts).
 */
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import type { Logger, TidingsConfig } from '@tidings/protocol';
import { RedisBus, createRedisKeys, type Bus } from '@tidings/bus';
import { RedisHistory, type HistoryStore } from '@tidings/history';

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

function connectionOptions(config: TidingsConfig, name: string): RedisOptions {
  const timeout = config.redis.commandTimeoutMs;
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    // Fail in-flight commands when the connection drops rather than resend them later.
    maxRetriesPerRequest: 0,
    commandTimeout: timeout,
    connectTimeout: Math.max(timeout, 1_000),
    retryStrategy: redisRetryDelay,
    connectionName: name,
  };
}

/** Logs a connection's first error of each outage (ioredis emits one per attempt). */
function watchErrors(client: Redis | Cluster, logger: Logger, role: string): void {
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

export function createRedisCollaborators(config: TidingsConfig, logger: Logger): { history?: HistoryStore; bus?: Bus } {
  const { url, clusterNodes, keyPrefix, commandTimeoutMs } = config.redis;
  if (!url && !clusterNodes) return {};
  const log = logger.child({ part: 'redis' });
  let client: Redis | Cluster;
  let subscriber: Redis | Cluster;
  if (clusterNodes) {
    const nodes = parseClusterNodes(clusterNodes);
    const clusterOptions = (name: string) => ({
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: redisRetryDelay,
      maxRedirections: 16,
      slotsRefreshTimeout: Math.max(commandTimeoutMs, 1_000),
      redisOptions: { ...connectionOptions(config, name), lazyConnect: false },
    });
    client = new Cluster(nodes, clusterOptions('tidings-commands'));
    subscriber = new Cluster(nodes, clusterOptions('tidings-bus'));
  } else {
    client = new Redis(url, connectionOptions(config, 'tidings-commands'));
    subscriber = new Redis(url, connectionOptions(config, 'tidings-bus'));
  }
  watchErrors(client, log, 'commands');
  watchErrors(subscriber, log, 'subscriber');
  const keys = createRedisKeys(keyPrefix);
  const bus = new RedisBus({
    client,
    subscriber,
    keys,
    logger: log,
    publishedByHistory: true,
    commandTimeoutMs,
    startTimeoutMs: commandTimeoutMs,
    closeSubscriber: true,
  });
  const history = new RedisHistory({
    client,
    keys,
    maxMessages: config.history.maxMessages,
    maxAgeMs: config.history.maxAgeMs,
    commandTimeoutMs,
    announce: { channel: bus.busChannel, encode: (e) => bus.encode(e) },
    closeClient: true,
    logger: log,
  });
  log.info(
    { mode: clusterNodes ? 'cluster' : 'standalone', target: clusterNodes || redactUrl(url), keyPrefix, nodeId: bus.nodeId },
    'redis: shared history and bus configured',
  );
  return { history, bus };
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

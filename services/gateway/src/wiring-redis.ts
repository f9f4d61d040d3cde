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
import type { Logger, TidingsConfig } from '@tidings/protocol';
import { RedisBus, createRedisKeys, type Bus } from '@tidings/bus';
import { ANNOUNCE_ARGV_BASE, ANNOUNCE_KEYS_BASE, RedisHistory, type HistoryStore } from '@tidings/history';
import { createRedisConnection, watchRedisErrors } from './redis-connections';

export function createRedisCollaborators(config: TidingsConfig, logger: Logger): { history?: HistoryStore; bus?: Bus } {
  const { url, clusterNodes, keyPrefix, commandTimeoutMs } = config.redis;
  if (!url && !clusterNodes) return {};
  const log = logger.child({ part: 'redis' });
  const client = createRedisConnection(config.redis, { name: 'tidings-commands', failFast: true, lazyConnect: true });
  const subscriber = createRedisConnection(config.redis, { name: 'tidings-bus', failFast: true, lazyConnect: true });
  watchRedisErrors(client, log, 'commands');
  watchRedisErrors(subscriber, log, 'subscriber');
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
    announce: bus.announcer({ keys: ANNOUNCE_KEYS_BASE, args: ANNOUNCE_ARGV_BASE }),
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

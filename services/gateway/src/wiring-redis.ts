/**
 * Redis bus and shared history, when `redis.url`, `redis.clusterNodes` or `redis.sentinels`
 * is set.
 *
 * Two connections per node: one for commands (history script, reads, canaries), one
 * subscribed to the bus channel. Both connect lazily in bus.start(), retry forever with
 * a capped backoff, and have the offline queue off, so while Redis is down a publish fails
 * at once (admin 503 history_unavailable) instead of piling up; every command also has
 * redis.commandTimeoutMs. The history store publishes each message inside its append
 * script and the bus only subscribes (see libs/history/src/redis-history.ts).
 *
 * With redis.waitReplicas, a third connection carries the appends and their WAIT: Redis
 * runs a client's commands in order, so a WAIT that lasts (a replica slow or gone) would
 * hold every replay, backfill and canary behind it on a shared connection.
 */
import type { Logger, TidingsConfig } from '@tidings/protocol';
import { RedisBus, RedisInterestBus, createRedisKeys, type Bus } from '@tidings/bus';
import { ANNOUNCE_ARGV_BASE, ANNOUNCE_KEYS_BASE, RedisHistory, type HistoryStore } from '@tidings/history';
import { createRedisConnection, describeRedisTarget, redisModeOf, watchRedisErrors } from './redis-connections';

export function createRedisCollaborators(config: TidingsConfig, logger: Logger): { history?: HistoryStore; bus?: Bus } {
  const { keyPrefix, commandTimeoutMs, waitReplicas } = config.redis;
  if (!redisModeOf(config.redis)) return {};
  const log = logger.child({ part: 'redis' });
  const client = createRedisConnection(config.redis, { name: 'tidings-commands', failFast: true, lazyConnect: true });
  const interest = config.redis.bus === 'interest';
  // A Redis Cluster routes by interest with sharded pub/sub: one subscriber per shard.
  const sharded = interest && !!config.redis.clusterNodes;
  const subscriber = createRedisConnection(config.redis, { name: 'tidings-bus', failFast: true, lazyConnect: true, shardedSubscribers: sharded });
  watchRedisErrors(client, log, 'commands');
  watchRedisErrors(subscriber, log, 'subscriber');
  // Not lazy: nothing else connects it, and its first append should not be the one refused.
  const appendClient = waitReplicas > 0 ? createRedisConnection(config.redis, { name: 'tidings-appends', failFast: true, lazyConnect: false }) : undefined;
  if (appendClient) watchRedisErrors(appendClient, log, 'appends');
  const keys = createRedisKeys(keyPrefix);
  const common = { client, subscriber, keys, logger: log, commandTimeoutMs, startTimeoutMs: commandTimeoutMs, closeSubscriber: true };
  const bus = interest ? new RedisInterestBus({ ...common, sharded, leaseMs: config.redis.routingLeaseMs }) : new RedisBus({ ...common, publishedByHistory: true });
  const history = new RedisHistory({
    client,
    keys,
    maxMessages: config.history.maxMessages,
    maxAgeMs: config.history.maxAgeMs,
    commandTimeoutMs,
    waitReplicas,
    appendClient,
    announce: bus.announcer({ keys: ANNOUNCE_KEYS_BASE, args: ANNOUNCE_ARGV_BASE }),
    closeClient: true,
    logger: log,
  });
  log.info({ ...describeRedisTarget(config.redis), routing: config.redis.bus, keyPrefix, waitReplicas, nodeId: bus.nodeId }, 'redis: shared history and bus configured');
  return { history, bus };
}

/**
 * Socket.IO's adapter: in memory on a node without Redis; with Redis, @socket.io/redis-adapter
 * (classic PUBLISH, or the sharded one with SPUBLISH on Redis 7 when `redis.sharded`).
 *
 * Why notifications do NOT travel through the adapter: the node already carries every
 * message to every node once (its bus or the relay) and calls deliver() on each node, where
 * the Socket.IO server emits with `io.local` to its own rooms. Broadcasting through the
 * adapter as well would publish each message to Redis a second time and deliver it twice on
 * every other node. So a publish costs one trip to Redis (the bus), and the adapter only
 * serves Socket.IO's own cross-node features: fetchSockets(), server-side emits to rooms on
 * every node, socketsJoin/Leave, serverSideEmit. The sharded adapter runs in `static` mode:
 * one channel per namespace, not one SSUBSCRIBE per PHID room.
 *
 * The adapter's pub/sub clients are created here from config.redis and closed here (they are
 * not the bus's clients: a subscriber connection cannot be shared).
 */
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { Logger, TidingsConfig } from '@tidings/protocol';
import { createRedisConnection, redisModeOf, watchRedisErrors, type RedisConnection } from '../redis-connections';

type AdapterConstructor = ReturnType<typeof createAdapter>;
type RedisClient = RedisConnection;

export interface SocketIoAdapterHandle {
  kind: 'memory' | 'redis' | 'redis-sharded';
  /** Passed to io.adapter(); undefined keeps Socket.IO's in-memory adapter. */
  adapter?: AdapterConstructor;
  status(): Record<string, unknown>;
  /** Disconnects the Redis clients created here. Idempotent. */
  close(): Promise<void>;
}

export function createSocketIoAdapter(config: TidingsConfig, logger: Logger): SocketIoAdapterHandle {
  const { redis } = config;
  if (!redisModeOf(redis)) {
    return { kind: 'memory', status: () => ({ adapter: 'memory' }), close: async () => undefined };
  }
  // Not fail-fast: the adapter subscribes as soon as it is built, before the connection is up.
  const pub = createRedisConnection(redis, { name: 'tidings-socketio-pub', failFast: false, lazyConnect: false });
  const sub = createRedisConnection(redis, { name: 'tidings-socketio-sub', failFast: false, lazyConnect: false });
  watchRedisErrors(pub, logger, 'socket.io pub');
  watchRedisErrors(sub, logger, 'socket.io sub');
  const kind = redis.sharded ? 'redis-sharded' : 'redis';
  const adapter = redis.sharded
    ? createShardedAdapter(pub, sub, { channelPrefix: `${redis.keyPrefix}socket.io`, subscriptionMode: 'static' })
    : createAdapter(pub, sub, { key: `${redis.keyPrefix}socket.io`, requestsTimeout: 5_000 });
  let closing: Promise<void> | undefined;
  return {
    kind,
    adapter: adapter as AdapterConstructor,
    status: () => ({ adapter: kind, redis: { pub: pub.status, sub: sub.status } }),
    close() {
      closing ??= Promise.all([pub, sub].map((c) => closeClient(c))).then(() => undefined);
      return closing;
    },
  };
}

/**
 * QUIT when connected, so replies still pending (the adapter's UNSUBSCRIBE at close) arrive
 * instead of rejecting with "Connection is closed" where nobody catches; disconnect() when
 * Redis is down or does not answer within a second, since QUIT would wait for it.
 */
async function closeClient(client: RedisClient): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.quit().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1_000);
    }),
  ]);
  clearTimeout(timer);
  client.disconnect();
}

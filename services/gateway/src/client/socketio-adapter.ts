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
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { Logger, TidingsConfig } from '@tidings/protocol';

type AdapterConstructor = ReturnType<typeof createAdapter>;
type RedisClient = Redis | Cluster;

export interface SocketIoAdapterHandle {
  kind: 'memory' | 'redis' | 'redis-sharded';
  /** Passed to io.adapter(); undefined keeps Socket.IO's in-memory adapter. */
  adapter?: AdapterConstructor;
  status(): Record<string, unknown>;
  /** Disconnects the Redis clients created here. Idempotent. */
  close(): Promise<void>;
}

function createClient(redis: TidingsConfig['redis'], logger: Logger, role: 'pub' | 'sub'): RedisClient {
  const options: RedisOptions = {
    // Never give up reconnecting; cross-node calls time out on their own (Socket.IO's requestsTimeout).
    retryStrategy: (times) => Math.min(times * 200, 5_000),
    connectionName: `tidings-socketio-${role}`,
  };
  let client: RedisClient;
  if (redis.clusterNodes) {
    const nodes = redis.clusterNodes
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((hostPort) => {
        const i = hostPort.lastIndexOf(':');
        return { host: hostPort.slice(0, i), port: Number(hostPort.slice(i + 1)) };
      });
    client = new Cluster(nodes, { redisOptions: options });
  } else {
    client = new Redis(redis.url, options);
  }
  // Log state changes, not every retry: a Redis that is down must not flood the log.
  let lastError = '';
  client.on('error', (err: Error) => {
    if (err.message === lastError) return;
    lastError = err.message;
    logger.warn({ err: err.message, role }, 'socket.io adapter: redis error');
  });
  client.on('ready', () => {
    if (lastError) logger.info({ role }, 'socket.io adapter: redis connected again');
    lastError = '';
  });
  return client;
}

export function createSocketIoAdapter(config: TidingsConfig, logger: Logger): SocketIoAdapterHandle {
  const { redis } = config;
  if (!redis.url && !redis.clusterNodes) {
    return { kind: 'memory', status: () => ({ adapter: 'memory' }), close: async () => undefined };
  }
  const pub = createClient(redis, logger, 'pub');
  const sub = createClient(redis, logger, 'sub');
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

/**
 * Every Redis key and channel name Tidings uses, built from `redis.keyPrefix` in this one
 * file (as BullMQ's queue-keys.ts), so several clusters can share one Redis and a reader
 * can see the whole keyspace at a glance.
 *
 * Redis Cluster: a multi-key script must touch keys of one hash slot. Every history key of
 * an instance carries the hash tag `{<prefix>h:<instance>}`, so the append script (log,
 * meta, dedupe key) always runs in one slot, and different instances spread over the cluster.
 * Pub/sub channels are not keys: a classic PUBLISH is broadcast to every cluster node.
 */
export interface RedisKeys {
  /** The prefix every name starts with. */
  readonly prefix: string;
  /** The bus channel: every node of this prefix publishes and subscribes here. */
  readonly busChannel: string;
  /** Sorted set of an instance's kept messages (score: acceptedAt, member: encoded envelope). */
  historyLog(instance: string): string;
  /** Hash of an instance's offset counter and epoch (positions). */
  historyMeta(instance: string): string;
  /** Dedupe marker of one message id, kept with a TTL past the history window. */
  historySeen(instance: string, id: string): string;
  /** Interest routing: hash of the gateways routing for an instance, each with its lease's expiry. */
  gatewayLeases(instance: string): string;
  /** Interest routing: set of the gateways with a socket subscribed to (instance, PHID). */
  interest(instance: string, phid: string): string;
  /**
   * Interest routing: the channel one gateway receives an instance's messages on. In the
   * instance's hash slot, so the append script can SPUBLISH to it on a Redis Cluster and a
   * message crosses only the shard that owns its instance.
   */
  gatewayChannel(instance: string, gatewayId: string): string;
}

/**
 * The instance the interest bus's canary travels in: a name no real instance can have (the
 * instance rule forbids `~`), so its keys and channels never meet a tenant's.
 */
export const CANARY_INSTANCE = '~tidings';

/** Builds the names for a prefix (`tidings:` by default, see the gateway config). */
export function createRedisKeys(prefix = 'tidings:'): RedisKeys {
  // Braces inside the instance would end the hash tag early; instance names are bounded
  // and contain no '/', but may contain braces, so they are replaced in the tag only.
  const tag = (instance: string) => `{${prefix}h:${instance.replace(/[{}]/g, '_')}}`;
  return {
    prefix,
    busChannel: `${prefix}bus`,
    historyLog: (instance) => `${tag(instance)}:log:${instance}`,
    historyMeta: (instance) => `${tag(instance)}:meta:${instance}`,
    historySeen: (instance, id) => `${tag(instance)}:seen:${instance}:${id}`,
    gatewayLeases: (instance) => `${tag(instance)}:gw:${instance}`,
    interest: (instance, phid) => `${tag(instance)}:i:${instance}:${phid}`,
    gatewayChannel: (instance, gatewayId) => `${tag(instance)}:to:${instance}:${gatewayId}`,
  };
}

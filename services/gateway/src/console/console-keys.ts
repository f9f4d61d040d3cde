/**
 * The Redis keys of the console's gateway directory, built from `redis.keyPrefix` as the
 * bus builds its own (libs/bus/src/keys.ts): every gateway announces a snapshot of itself
 * there every few seconds, so whichever gateway serves the console shows the whole cluster.
 *
 * Two keys, one hash slot (the hash tag `{<prefix>console}`), so the announce and list
 * scripts run on a Redis Cluster too:
 * - a sorted set of gateway fingerprints, scored by when their announcement expires (Redis
 *   time, ms): a gateway that stops announcing drops out of the list by itself;
 * - a hash from fingerprint to its last snapshot (JSON).
 */
export interface ConsoleKeys {
  /** Sorted set: fingerprint -> expiry (epoch ms on Redis's clock). */
  readonly gateways: string;
  /** Hash: fingerprint -> GatewaySnapshot as JSON. */
  readonly snapshots: string;
}

export function createConsoleKeys(prefix = 'tidings:'): ConsoleKeys {
  const tag = `{${prefix}console}`;
  return { gateways: `${tag}:gateways`, snapshots: `${tag}:snapshots` };
}

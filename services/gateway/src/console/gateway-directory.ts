/**
 * The cluster's gateways in Redis, for the console: each gateway announces its snapshot
 * every few seconds with a short lifetime, and any gateway lists the live ones. Expiry is
 * decided on Redis's clock (TIME inside the scripts, as history does), so gateways whose
 * clocks disagree still agree on who is up. Expired entries are swept by every announce,
 * and both keys expire by themselves a while after the last gateway of the prefix stopped.
 */
import type { GatewaySnapshot, Logger } from '@tidings/protocol';
import type { RedisConnection } from '../redis-connections';
import type { ConsoleKeys } from './console-keys';

/** KEYS: gateways, snapshots. ARGV: fingerprint, snapshot JSON, lifetime ms. Returns how many expired entries it swept. */
const ANNOUNCE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(expired))
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl * 10)
redis.call('PEXPIRE', KEYS[2], ttl * 10)
return #expired
`;

/** KEYS: gateways, snapshots. Returns the snapshots of the gateways whose announcement has not expired. */
const LIST = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))
`;

/** KEYS: gateways, snapshots. ARGV: fingerprint. */
const REMOVE = `
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[1])
`;

type DirectoryCommands = {
  consoleAnnounce(gateways: string, snapshots: string, fingerprint: string, json: string, ttlMs: number): Promise<number>;
  consoleList(gateways: string, snapshots: string): Promise<(string | null)[]>;
  consoleRemove(gateways: string, snapshots: string, fingerprint: string): Promise<number>;
};

export interface GatewayDirectoryOptions {
  client: RedisConnection;
  keys: ConsoleKeys;
  /** How long an announcement counts, ms: a gateway that stops announcing is gone after this. */
  ttlMs: number;
  logger: Logger;
}

export class GatewayDirectory {
  private readonly client: RedisConnection & DirectoryCommands;

  constructor(private readonly options: GatewayDirectoryOptions) {
    const client = options.client;
    client.defineCommand('consoleAnnounce', { numberOfKeys: 2, lua: ANNOUNCE });
    client.defineCommand('consoleList', { numberOfKeys: 2, lua: LIST });
    client.defineCommand('consoleRemove', { numberOfKeys: 2, lua: REMOVE });
    this.client = client as RedisConnection & DirectoryCommands;
  }

  /** Writes (or refreshes) this gateway's entry; resolves with the number of expired entries swept. */
  announce(snapshot: GatewaySnapshot): Promise<number> {
    const { keys, ttlMs } = this.options;
    return this.client.consoleAnnounce(keys.gateways, keys.snapshots, snapshot.fingerprint, JSON.stringify(snapshot), ttlMs);
  }

  /** The live gateways' snapshots, by fingerprint. An entry that does not decode is logged and left out. */
  async list(): Promise<GatewaySnapshot[]> {
    const { keys, logger } = this.options;
    const raw = await this.client.consoleList(keys.gateways, keys.snapshots);
    const snapshots: GatewaySnapshot[] = [];
    for (const text of raw) {
      if (typeof text !== 'string') continue; // swept between the two reads of the script: cannot happen, but harmless
      try {
        const value = JSON.parse(text) as GatewaySnapshot;
        if (typeof value?.fingerprint === 'string') snapshots.push(value);
        else logger.warn({ bytes: text.length }, 'console: a gateway announcement without a fingerprint was ignored');
      } catch {
        logger.warn({ bytes: text.length }, 'console: a gateway announcement that is not JSON was ignored');
      }
    }
    return snapshots.sort((a, b) => a.fingerprint.localeCompare(b.fingerprint));
  }

  /** Takes this gateway out at once (a clean shutdown), rather than after its lifetime. */
  async remove(fingerprint: string): Promise<void> {
    const { keys } = this.options;
    await this.client.consoleRemove(keys.gateways, keys.snapshots, fingerprint);
  }
}

/**
 * History shared through Redis, per instance, so a `replay` on any node returns what any
 * node accepted.
 *
 * Layout per instance (names come from the gateway's key builder, @tidings/bus keys.ts;
 * all keys of an instance share one hash tag, so on Redis Cluster the script stays in one
 * slot):
 * - log:  sorted set, score = acceptedAt, member = 16 hex digits of an insertion counter
 *         + the envelope's JSON (the counter keeps messages of one millisecond in order);
 * - seq:  that counter;
 * - seen: one key per message id with a TTL of twice the window, so an id is stored once
 *         even after count trimming evicted it (a copy relayed back late is not re-added).
 *
 * append() is one script, one round trip: dedupe, add, trim by age and count, refresh
 * TTLs and, when `announce` is set, PUBLISH the bus message in the same script. That is
 * the split between HistoryStore and Bus with Redis: the store publishes (atomically with
 * the append, and only the first copy of an id), the bus subscribes, decodes and runs
 * canaries; its publish() sends nothing (RedisBus `publishedByHistory`). So one publish
 * reaches Redis once, and a message is in shared history iff it went out on the bus.
 */
import type { Cluster, Redis } from 'ioredis';
import { silentLogger, type Envelope, type Logger } from '@tidings/protocol';
import { HISTORY_DEFAULTS, type HistoryOptions, type HistoryStats, type HistoryStore } from './history-store';

export type RedisClient = Redis | Cluster;

/** Key names of an instance's history (see @tidings/bus createRedisKeys). */
export interface RedisHistoryKeys {
  historyLog(instance: string): string;
  historySeq(instance: string): string;
  historySeen(instance: string, id: string): string;
}

export interface RedisHistoryOptions extends HistoryOptions {
  client: RedisClient;
  keys: RedisHistoryKeys;
  /** Longest wait for one Redis command; the promise rejects after it. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Also PUBLISH each newly stored message in the append script (see the file comment). */
  announce?: { channel: string; encode(envelope: Envelope): string };
  /** Close (QUIT) the client on close(). Default false: the caller owns it. */
  closeClient?: boolean;
  logger?: Logger;
}

/** Thrown when Redis did not answer in time; says what timed out. */
export class HistoryTimeoutError extends Error {
  override name = 'HistoryTimeoutError';
}

// KEYS: log, seq, seen. ARGV: payload, acceptedAt, minScore, maxMessages, seenTtlMs,
// logTtlMs, channel ('' for none), bus text. Returns 1 when stored, 0 for a duplicate id.
const APPEND_LUA = `
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[5]) then return 0 end
local score = tonumber(ARGV[2])
local minScore = tonumber(ARGV[3])
if score >= minScore then
  local seq = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], score, string.format('%016x', seq) .. ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
  local n = redis.call('ZCARD', KEYS[1])
  local max = tonumber(ARGV[4])
  if n > max then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1) end
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
if ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return 1
`;

const SEQ_DIGITS = 16;

type AppendCommand = (
  log: string,
  seq: string,
  seen: string,
  payload: string,
  acceptedAt: number,
  minScore: number,
  maxMessages: number,
  seenTtlMs: number,
  logTtlMs: number,
  channel: string,
  busText: string,
) => Promise<number>;

export class RedisHistory implements HistoryStore {
  private readonly client: RedisClient;
  private readonly keys: RedisHistoryKeys;
  private readonly maxMessages: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly announce?: RedisHistoryOptions['announce'];
  private readonly logger: Logger;
  private readonly closeClient: boolean;
  private closing?: Promise<void>;
  /** Counts for /status/: stored, duplicates skipped, malformed entries dropped on read. */
  readonly counts = { stored: 0, duplicates: 0, malformed: 0 };

  constructor(options: RedisHistoryOptions) {
    this.client = options.client;
    this.keys = options.keys;
    this.maxMessages = options.maxMessages ?? HISTORY_DEFAULTS.maxMessages;
    this.maxAgeMs = options.maxAgeMs ?? HISTORY_DEFAULTS.maxAgeMs;
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.commandTimeoutMs ?? 2_000;
    this.announce = options.announce;
    this.logger = options.logger ?? silentLogger;
    this.closeClient = options.closeClient ?? false;
    if (!(this.maxMessages > 0) || !(this.maxAgeMs > 0)) {
      throw new Error('RedisHistory: maxMessages and maxAgeMs must be positive');
    }
    // defineCommand runs EVALSHA and falls back to EVAL after a NOSCRIPT (restart, failover).
    if (!('tidingsHistoryAppend' in this.client)) {
      this.client.defineCommand('tidingsHistoryAppend', { numberOfKeys: 3, lua: APPEND_LUA });
    }
  }

  /** Stores the message unless its (instance, id) is already stored. Resolves true when stored now. */
  async appendOnce(entry: Envelope): Promise<boolean> {
    const append = (this.client as unknown as { tidingsHistoryAppend: AppendCommand }).tidingsHistoryAppend.bind(this.client);
    const now = this.now();
    const payload = JSON.stringify({
      id: entry.id,
      instance: entry.instance,
      subscribers: entry.subscribers,
      frame: entry.frame,
      acceptedAt: entry.acceptedAt,
    });
    const stored = await this.timed(
      append(
        this.keys.historyLog(entry.instance),
        this.keys.historySeq(entry.instance),
        this.keys.historySeen(entry.instance, entry.id),
        payload,
        entry.acceptedAt,
        now - this.maxAgeMs,
        this.maxMessages,
        2 * this.maxAgeMs + 10_000,
        this.maxAgeMs + 10_000,
        this.announce?.channel ?? '',
        this.announce ? this.announce.encode(entry) : '',
      ),
      'history append',
    );
    if (stored === 1) this.counts.stored++;
    else this.counts.duplicates++;
    return stored === 1;
  }

  async append(entry: Envelope): Promise<void> {
    await this.appendOnce(entry);
  }

  async since(instance: string, sinceMs: number): Promise<Envelope[]> {
    const min = Math.max(sinceMs, this.now() - this.maxAgeMs);
    const members = await this.timed(this.client.zrangebyscore(this.keys.historyLog(instance), min, '+inf'), 'history read');
    const out: Envelope[] = [];
    for (const member of members) {
      const entry = this.decode(member);
      if (entry) out.push(entry);
    }
    return out;
  }

  async stats(instance: string): Promise<HistoryStats> {
    const key = this.keys.historyLog(instance);
    const min = this.now() - this.maxAgeMs;
    const [size, oldest] = await this.timed(
      Promise.all([this.client.zcount(key, min, '+inf'), this.client.zrangebyscore(key, min, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)]),
      'history stats',
    );
    return { size, oldestAt: oldest.length >= 2 ? Number(oldest[1]) : null };
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (!this.closeClient) return;
    if (this.client.status !== 'ready') {
      this.client.disconnect();
      return;
    }
    await this.timed(this.client.quit(), 'history QUIT').catch(() => this.client.disconnect());
  }

  private decode(member: string): Envelope | null {
    try {
      const e = JSON.parse(member.slice(SEQ_DIGITS)) as Envelope;
      if (
        typeof e.id === 'string' &&
        typeof e.instance === 'string' &&
        Array.isArray(e.subscribers) &&
        typeof e.frame === 'string' &&
        typeof e.acceptedAt === 'number'
      ) {
        return e;
      }
    } catch {
      // fall through
    }
    this.counts.malformed++;
    this.logger.warn({ bytes: member.length }, 'history: malformed entry in Redis dropped');
    return null;
  }

  private timed<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HistoryTimeoutError(`${what}: Redis did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}

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
 *
 * Time: every score, every trim and every window is Redis's own clock (TIME inside the
 * scripts), never a node's. Nodes whose clocks are skewed by seconds still store, trim and
 * replay the same "last 60 s". On Redis Cluster an instance's keys live on one master, so
 * each instance has one clock. Needs Redis 5 or later (scripts replicated by effects).
 */
import type { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { silentLogger, type Envelope, type Logger } from '@tidings/protocol';
import { HISTORY_DEFAULTS, type HistoryOptions, type HistoryStats, type HistoryStore } from './history-store';

export type RedisClient = Redis | Cluster;

/** Something that can run a pipeline of the history's commands: a Redis connection. */
interface PipelineServer {
  pipeline(): { tidingsHistoryStats(log: string, maxAgeMs: number): unknown; exec(): Promise<[Error | null, unknown][] | null> };
}

function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

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

/** A failed history command; the message starts with the operation (`history append: ...`). */
export class HistoryError extends Error {
  override name = 'HistoryError';
}

/** Thrown when Redis did not answer in time; says what timed out. */
export class HistoryTimeoutError extends HistoryError {
  override name = 'HistoryTimeoutError';
}

/** Redis's clock in ms, inside a script. */
const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// KEYS: log, seq, seen. ARGV: payload, maxAgeMs, maxMessages, seenTtlMs, logTtlMs, channel
// ('' for none), bus text. Returns 1 when stored, 0 for a duplicate id.
const APPEND_LUA = `
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then return 0 end
${NOW_MS}
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], now, string.format('%016x', seq) .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
local n = redis.call('ZCARD', KEYS[1])
local max = tonumber(ARGV[3])
if n > max then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
return 1
`;

// KEYS: log. ARGV: ageMs (already at most the window). Members stored within the last ageMs.
const RECENT_LUA = `
${NOW_MS}
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
`;

// KEYS: log. ARGV: maxAgeMs. Returns {size, age of the oldest in ms or -1}.
const STATS_LUA = `
${NOW_MS}
local min = now - tonumber(ARGV[1])
local size = redis.call('ZCOUNT', KEYS[1], min, '+inf')
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], min, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if oldest[2] then return {size, now - tonumber(oldest[2])} end
return {size, -1}
`;

const SEQ_DIGITS = 16;

type AppendCommand = (
  log: string,
  seq: string,
  seen: string,
  payload: string,
  maxAgeMs: number,
  maxMessages: number,
  seenTtlMs: number,
  logTtlMs: number,
  channel: string,
  busText: string,
) => Promise<number>;
type RecentCommand = (log: string, ageMs: number) => Promise<string[]>;
type StatsCommand = (log: string, maxAgeMs: number) => Promise<[number, number]>;
interface HistoryCommands {
  tidingsHistoryAppend: AppendCommand;
  tidingsHistoryRecent: RecentCommand;
  tidingsHistoryStats: StatsCommand;
}

export class RedisHistory implements HistoryStore {
  private readonly client: RedisClient;
  private readonly keys: RedisHistoryKeys;
  private readonly maxMessages: number;
  private readonly maxAgeMs: number;
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
      this.client.defineCommand('tidingsHistoryRecent', { numberOfKeys: 1, lua: RECENT_LUA, readOnly: true });
      this.client.defineCommand('tidingsHistoryStats', { numberOfKeys: 1, lua: STATS_LUA, readOnly: true });
    }
  }

  private get commands(): HistoryCommands {
    return this.client as unknown as HistoryCommands;
  }

  /** Stores the message unless its (instance, id) is already stored. Resolves true when stored now. */
  async appendOnce(entry: Envelope): Promise<boolean> {
    const payload = JSON.stringify({
      id: entry.id,
      instance: entry.instance,
      subscribers: entry.subscribers,
      frame: entry.frame,
      acceptedAt: entry.acceptedAt,
    });
    const stored = await this.timed(
      this.commands.tidingsHistoryAppend(
        this.keys.historyLog(entry.instance),
        this.keys.historySeq(entry.instance),
        this.keys.historySeen(entry.instance, entry.id),
        payload,
        this.maxAgeMs,
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

  async recent(instance: string, ageMs: number): Promise<Envelope[]> {
    const window = Math.max(0, Math.min(ageMs, this.maxAgeMs));
    const members = await this.timed(this.commands.tidingsHistoryRecent(this.keys.historyLog(instance), window), 'history read');
    const out: Envelope[] = [];
    for (const member of members) {
      const entry = this.decode(member);
      if (entry) out.push(entry);
    }
    return out;
  }

  async stats(instance: string): Promise<HistoryStats> {
    const [size, age] = await this.timed(this.commands.tidingsHistoryStats(this.keys.historyLog(instance), this.maxAgeMs), 'history stats');
    return { size, oldestAgeMs: age < 0 ? null : age };
  }

  /**
   * One pipeline per Redis server: a standalone Redis answers every instance in one round
   * trip; on a Cluster the instances are grouped by the master that owns their slot.
   */
  async sizes(instances: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (instances.length === 0) return out;
    const groups = this.groupByServer(instances);
    await this.timed(
      Promise.all(
        [...groups].map(async ([server, names]) => {
          const pipeline = server.pipeline();
          for (const name of names) pipeline.tidingsHistoryStats(this.keys.historyLog(name), this.maxAgeMs);
          const results = (await pipeline.exec()) ?? [];
          results.forEach(([err, value], i) => {
            // A slot that moved meanwhile (MOVED) is left out rather than guessed.
            if (!err) out.set(names[i], (value as [number, number])[0]);
          });
        }),
      ),
      'history sizes',
    );
    return out;
  }

  private groupByServer(instances: readonly string[]): Map<PipelineServer, string[]> {
    const groups = new Map<PipelineServer, string[]>();
    const add = (server: PipelineServer, name: string) => {
      const list = groups.get(server);
      if (list) list.push(name);
      else groups.set(server, [name]);
    };
    if (!isCluster(this.client)) {
      for (const name of instances) add(this.client as unknown as PipelineServer, name);
      return groups;
    }
    const cluster = this.client;
    const byKey = new Map<string, PipelineServer>();
    for (const node of cluster.nodes('master')) byKey.set(`${node.options.host}:${node.options.port}`, node as unknown as PipelineServer);
    const slots = (cluster as unknown as { slots: string[][] }).slots;
    for (const name of instances) {
      const owner = slots[calculateSlot(this.keys.historyLog(name))]?.[0];
      const server = owner ? byKey.get(owner) : undefined;
      // Slot map not known yet: the cluster client routes a one-command pipeline itself.
      add(server ?? (cluster as unknown as PipelineServer), name);
    }
    return groups;
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

  /**
   * Bounds a command by commandTimeoutMs, and names the operation in whatever it rejects
   * with (a refused connection reads "history append: Connection is closed.", not a bare
   * ioredis message).
   */
  private timed<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HistoryTimeoutError(`${what}: Redis did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([
      promise.catch((err: Error) => {
        throw new HistoryError(`${what}: ${err.message}`, { cause: err });
      }),
      timeout,
    ]).finally(() => clearTimeout(timer));
  }
}

/**
 * History shared through Redis, per instance, so a `replay` on any node returns what any
 * node accepted.
 *
 * Layout per instance (names come from the gateway's key builder, @tidings/bus keys.ts;
 * all keys of an instance share one hash tag, so on Redis Cluster the script stays in one
 * slot):
 * - log:  sorted set, score = Redis's time of the append, member = 16 hex digits of the
 *         message's offset + the envelope's JSON (the offset also keeps messages of one
 *         millisecond in order);
 * - meta: hash of the offset counter (`seq`) and the history's `epoch` (drawn when the hash
 *         is created: a flush, a restart without persistence or a day idle loses the hash,
 *         and the next epoch tells clients their offsets mean nothing any more). Outlives
 *         the log (TTL a day), so offsets go on across idle periods;
 * - seen: one key per message id with a TTL of twice the window, so an id is stored once
 *         even after count trimming evicted it (a copy relayed back late is not re-added).
 *
 * append() is one script, one round trip: dedupe, add, trim by age and count, refresh
 * TTLs and, when `announce` is set, publish the bus message in the same script (the bus
 * supplies that part: one PUBLISH, or one per interested gateway). That is
 * the split between HistoryStore and Bus with Redis: the store publishes (atomically with
 * the append, and only the first copy of an id), the bus subscribes, decodes and runs
 * canaries; its publish() sends nothing (RedisBus `publishedByHistory`). So one publish
 * reaches Redis once, and a message is in shared history iff it went out on the bus.
 *
 * Replicas: with `waitReplicas`, the append script and a WAIT go out together in one
 * pipeline on one connection (one write, one round trip), and the append is acknowledged
 * only once that many replicas hold it, so a failover to any of them keeps it.
 *
 * Time: every score, every trim and every window is Redis's own clock (TIME inside the
 * scripts), never a node's. Nodes whose clocks are skewed by seconds still store, trim and
 * replay the same "last 60 s". On Redis Cluster an instance's keys live on one master, so
 * each instance has one clock. Needs Redis 5 or later (scripts replicated by effects).
 */
import type { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { createHash, randomBytes } from 'node:crypto';
import { silentLogger, type Envelope, type Logger, type Position } from '@tidings/protocol';
import { HISTORY_DEFAULTS, type HistoryOptions, type HistoryStats, type HistoryStore, type ReplayAfter } from './history-store';
import { isRecovered } from './memory-history';

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
  /** Hash of the instance's offset counter (`seq`) and epoch. */
  historyMeta(instance: string): string;
  historySeen(instance: string, id: string): string;
}

export interface RedisHistoryOptions extends HistoryOptions {
  client: RedisClient;
  keys: RedisHistoryKeys;
  /** Longest wait for one Redis command; the promise rejects after it. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Also publish each newly stored message in the append script (see the file comment). */
  announce?: Announcer;
  /**
   * Replicas that must hold each append before appendOnce() resolves (Redis WAIT, sent in
   * the same pipeline as the script); fewer within 3/4 of commandTimeoutMs reject it as a
   * failed store. Default 0: acknowledged once the master stored it, no WAIT sent.
   */
  waitReplicas?: number;
  /**
   * Connection for appends (default: client). A WAIT holds its connection in Redis until it
   * returns, so with waitReplicas the caller may keep reads and other traffic off it.
   */
  appendClient?: RedisClient;
  /** Close (QUIT) the client (and appendClient) on close(). Default false: the caller owns them. */
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

// KEYS: log, meta, seen, then the announcer's. ARGV: payload, maxAgeMs, maxMessages,
// seenTtlMs, logTtlMs, metaTtlMs, epoch candidate, then the announcer's. Returns
// {1, offset, epoch} when stored, {0} for a duplicate id. The announcer's Lua runs after
// the store with `seq` (the offset), `epoch` and `now` in scope: it publishes the message,
// in the same step that stored it.
const STORE_LUA = `
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then return {0} end
${NOW_MS}
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[7])
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local epoch = redis.call('HGET', KEYS[2], 'epoch')
redis.call('ZADD', KEYS[1], now, string.format('%016x', seq) .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
local n = redis.call('ZCARD', KEYS[1])
local max = tonumber(ARGV[3])
if n > max then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
`;

/** Where an announcer's KEYS and ARGV start (after the store's own). */
export const ANNOUNCE_KEYS_BASE = 3;
export const ANNOUNCE_ARGV_BASE = 7;

/**
 * How the append script announces a message it stored (the bus builds it): Lua run at the
 * end of the script, after the store, with \`seq\` (the offset), \`epoch\` and \`now\` in
 * scope; its keys follow the store's (KEYS[ANNOUNCE_KEYS_BASE + 1] on) and its arguments
 * follow the store's (ARGV[ANNOUNCE_ARGV_BASE + 1] on). On Redis Cluster its keys must
 * share the instance's hash tag.
 */
export interface Announcer {
  lua: string;
  keys(envelope: Envelope): string[];
  args(envelope: Envelope): (string | number)[];
}

/** An instance's epoch, drawn (from the node's candidate) the first time it is asked for. */
const HEAD = `
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[2])
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')`;

// KEYS: log, meta. ARGV: ageMs (already at most the window), epoch candidate, metaTtlMs.
// Returns {epoch, members stored within the last ageMs}.
const RECENT_LUA = `
${NOW_MS}
${HEAD}
return {epoch, redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')}
`;

// KEYS: log, meta. ARGV: offset, epoch candidate, metaTtlMs, maxAgeMs, client epoch.
// Returns {offset now, epoch, offset of the oldest kept (-1: none), members after the
// offset (all kept members when the client's epoch is not this one)}.
const AFTER_LUA = `
${NOW_MS}
${HEAD}
local since = tonumber(ARGV[1])
if ARGV[5] ~= epoch then since = -1 end
local members = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[4]), '+inf')
local out = {}
local oldest = -1
for _, m in ipairs(members) do
  local offset = tonumber(string.sub(m, 1, 16), 16)
  if oldest < 0 then oldest = offset end
  if offset > since then out[#out + 1] = m end
end
return {seq, epoch, oldest, out}
`;

// KEYS: log, meta. ARGV: (unused), epoch candidate, metaTtlMs. Returns {offset now, epoch}.
const HEAD_LUA = `
${HEAD}
return {seq, epoch}
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

/**
 * How long an instance's offset counter and epoch outlive its last append. Far longer
 * than the history window: a client that comes back after an idle hour still learns that
 * it missed nothing; after a day the epoch is drawn again (and it refetches, the safe answer).
 */
const META_TTL_MS = 24 * 60 * 60 * 1_000;

const SEQ_DIGITS = 16;

type RecentCommand = (log: string, meta: string, ageMs: number, epochCandidate: string, metaTtlMs: number) => Promise<[string, string[]]>;
type AfterCommand = (
  log: string,
  meta: string,
  offset: number,
  epochCandidate: string,
  metaTtlMs: number,
  maxAgeMs: number,
  clientEpoch: string,
) => Promise<[number, string, number, string[]]>;
type HeadCommand = (log: string, meta: string, unused: string, epochCandidate: string, metaTtlMs: number) => Promise<[number, string]>;
type StatsCommand = (log: string, maxAgeMs: number) => Promise<[number, number]>;
interface HistoryCommands {
  tidingsHistoryRecent: RecentCommand;
  tidingsHistoryAfter: AfterCommand;
  tidingsHistoryHead: HeadCommand;
  tidingsHistoryStats: StatsCommand;
}

/** What the append script answers: {1, offset, epoch} when stored, {0} for a duplicate. */
type AppendResult = [0] | [1, number, string];

/** A pipeline of the append connection: the script and WAIT are queued, then written at once by exec(). */
interface AppendPipeline {
  wait(replicas: number, timeoutMs: number): unknown;
  exec(): Promise<[Error | null, unknown][] | null>;
}

export class RedisHistory implements HistoryStore {
  private readonly client: RedisClient;
  private readonly appendClient: RedisClient;
  private readonly waitReplicas: number;
  private readonly keys: RedisHistoryKeys;
  private readonly maxMessages: number;
  private readonly maxAgeMs: number;
  private readonly timeoutMs: number;
  private readonly announce?: RedisHistoryOptions['announce'];
  /** The append script's command, named by its text (another announcer makes another script). */
  private readonly appendCommand: string;
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
    this.appendClient = options.appendClient ?? this.client;
    this.waitReplicas = options.waitReplicas ?? 0;
    if (!(this.maxMessages > 0) || !(this.maxAgeMs > 0)) {
      throw new Error('RedisHistory: maxMessages and maxAgeMs must be positive');
    }
    if (!Number.isInteger(this.waitReplicas) || this.waitReplicas < 0) {
      throw new Error('RedisHistory: waitReplicas must be a whole number, 0 or more');
    }
    const appendLua = `${STORE_LUA}${this.announce?.lua ?? ''}\nreturn {1, seq, epoch}\n`;
    this.appendCommand = `tidingsHistoryAppend_${createHash('sha1').update(appendLua).digest('hex').slice(0, 12)}`;
    // defineCommand runs EVALSHA and falls back to EVAL after a NOSCRIPT (restart, failover).
    for (const client of new Set([this.client, this.appendClient])) {
      if (!(this.appendCommand in client)) client.defineCommand(this.appendCommand, { lua: appendLua });
    }
    if (!('tidingsHistoryRecent' in this.client)) {
      this.client.defineCommand('tidingsHistoryRecent', { numberOfKeys: 2, lua: RECENT_LUA });
      this.client.defineCommand('tidingsHistoryAfter', { numberOfKeys: 2, lua: AFTER_LUA });
      this.client.defineCommand('tidingsHistoryHead', { numberOfKeys: 2, lua: HEAD_LUA });
      this.client.defineCommand('tidingsHistoryStats', { numberOfKeys: 1, lua: STATS_LUA, readOnly: true });
    }
  }

  private get commands(): HistoryCommands {
    return this.client as unknown as HistoryCommands;
  }

  /**
   * Stores the message unless its (instance, id) is already stored. Resolves with its
   * position when stored now, null for a duplicate.
   */
  async appendOnce(entry: Envelope): Promise<Position | null> {
    const payload = JSON.stringify({
      id: entry.id,
      instance: entry.instance,
      subscribers: entry.subscribers,
      frame: entry.frame,
      acceptedAt: entry.acceptedAt,
      touched: entry.touched,
    });
    const keys = [this.keys.historyLog(entry.instance), this.keys.historyMeta(entry.instance), this.keys.historySeen(entry.instance, entry.id)];
    if (this.announce) keys.push(...this.announce.keys(entry));
    const args = [payload, this.maxAgeMs, this.maxMessages, 2 * this.maxAgeMs + 10_000, this.maxAgeMs + 10_000, META_TTL_MS, newEpoch()];
    if (this.announce) args.push(...this.announce.args(entry));
    const command: (string | number)[] = [keys.length, ...keys, ...args];
    const result = await this.timed(this.waitReplicas > 0 ? this.appendAndWait(command) : this.runAppend(this.appendClient, command), 'history append');
    if (result[0] !== 1) {
      this.counts.duplicates++;
      return null;
    }
    this.counts.stored++;
    return { offset: Number(result[1]), epoch: String(result[2]) };
  }

  private runAppend(client: RedisClient, command: (string | number)[]): Promise<AppendResult> {
    const append = (client as unknown as Record<string, (...args: (string | number)[]) => Promise<AppendResult>>)[this.appendCommand];
    return append.apply(client, command);
  }

  /**
   * The append script and WAIT queued in one pipeline, so both leave in one write and WAIT
   * follows the script on the same connection: it returns once `waitReplicas` replicas
   * acknowledged every write of that connection so far, this append included. Fewer within
   * the wait's timeout (3/4 of commandTimeoutMs, so Redis answers before the command times
   * out here) is a failed store: the caller answers 503 and the publisher may retry.
   * (A NOSCRIPT, after a SCRIPT FLUSH on a live connection, makes ioredis resend the script
   * after the WAIT; such an append is acknowledged without that WAIT. A new connection
   * always sends the script itself first.)
   */
  private async appendAndWait(command: (string | number)[]): Promise<AppendResult> {
    const waitMs = Math.max(1, Math.floor((this.timeoutMs * 3) / 4));
    const pipeline = this.appendClient.pipeline() as unknown as AppendPipeline;
    (pipeline as unknown as Record<string, (...args: (string | number)[]) => unknown>)[this.appendCommand](...command);
    pipeline.wait(this.waitReplicas, waitMs);
    const [[appendError, stored], [waitError, replicas]] = (await pipeline.exec()) ?? [
      [new Error('pipeline discarded'), null],
      [null, null],
    ];
    if (appendError) throw appendError;
    if (waitError) throw waitError;
    if ((replicas as number) < this.waitReplicas) {
      throw new Error(`${replicas} of ${this.waitReplicas} replicas confirmed the write within ${waitMs} ms (WAIT)`);
    }
    return stored as AppendResult;
  }

  append(entry: Envelope): Promise<Position | null> {
    return this.appendOnce(entry);
  }

  async recent(instance: string, ageMs: number): Promise<Envelope[]> {
    const window = Math.max(0, Math.min(ageMs, this.maxAgeMs));
    const [epoch, members] = await this.timed(
      this.commands.tidingsHistoryRecent(this.keys.historyLog(instance), this.keys.historyMeta(instance), window, newEpoch(), META_TTL_MS),
      'history read',
    );
    return this.decodeAll(members, epoch);
  }

  async after(instance: string, since: Position): Promise<ReplayAfter> {
    const [seq, epoch, oldest, members] = await this.timed(
      this.commands.tidingsHistoryAfter(
        this.keys.historyLog(instance),
        this.keys.historyMeta(instance),
        since.offset,
        newEpoch(),
        META_TTL_MS,
        this.maxAgeMs,
        since.epoch,
      ),
      'history read',
    );
    const head = { offset: Number(seq), epoch: String(epoch) };
    return { entries: this.decodeAll(members, head.epoch), head, recovered: isRecovered(since, head, Number(oldest) < 0 ? null : Number(oldest)) };
  }

  async head(instance: string): Promise<Position> {
    const [seq, epoch] = await this.timed(
      this.commands.tidingsHistoryHead(this.keys.historyLog(instance), this.keys.historyMeta(instance), '', newEpoch(), META_TTL_MS),
      'history head',
    );
    return { offset: Number(seq), epoch: String(epoch) };
  }

  private decodeAll(members: string[], epoch: string): Envelope[] {
    const out: Envelope[] = [];
    for (const member of members) {
      const entry = this.decode(member);
      if (entry) {
        entry.position = { offset: parseInt(member.slice(0, SEQ_DIGITS), 16), epoch };
        out.push(entry);
      }
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
    const clients = this.appendClient === this.client ? [this.client] : [this.client, this.appendClient];
    await Promise.all(
      clients.map(async (client) => {
        if (client.status !== 'ready') return client.disconnect();
        await this.timed(client.quit(), 'history QUIT').catch(() => client.disconnect());
      }),
    );
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

function newEpoch(): string {
  return randomBytes(8).toString('hex');
}

/**
 * The bus over Redis, routed by interest (`redis.bus: "interest"`): a gateway receives only
 * the messages that have a recipient among its own sockets, so adding gateways adds
 * capacity instead of multiplying every gateway's work.
 *
 * Why this design (measured in bench/run.mjs --scenario scale; see README's capacity model):
 * - Per-gateway channels fed from an interest registry, not channels per PHID or per bucket
 *   of PHIDs. With a channel per PHID, a gateway holding several of a message's PHIDs gets
 *   one copy per PHID, and a publish costs one PUBLISH per addressed PHID; with buckets,
 *   a gateway with many sockets subscribes to every bucket and gets everything again. With
 *   a registry, each interested gateway gets exactly one copy and a publish costs one
 *   PUBLISH per interested gateway.
 * - The registry lives in the instance's hash slot: per (instance, PHID) a set of gateway
 *   ids, per instance a hash of gateway leases. The history append script (one round trip,
 *   atomic with storing the message) reads the sets of the message's PHIDs and publishes to
 *   each interested gateway's channel, also in that slot: on a Redis Cluster it SPUBLISHes,
 *   and a message crosses only the shard that owns its instance.
 * - Keeping it current: the hub and Socket.IO report when (instance, PHID) gains its first
 *   local subscriber and loses its last; changes are queued and written every `flushMs`,
 *   one script per instance, so a reconnect storm of thousands of sockets costs a handful
 *   of round trips. settled() resolves once what was queued is written: a socket's
 *   subscribe is answered only then, so "subscribed" means "routed here".
 * - A gateway that dies: its lease (refreshed every leaseMs/3) lapses within `leaseMs`; the
 *   publish script then skips it and drops it from the sets it reads. Entries nobody reads
 *   expire with their keys (TTL three resync periods; live gateways rewrite theirs every
 *   `resyncMs`). A gateway that restarts has a new id and registers its sockets again.
 * - Redis lost the registry (restart, failover without it, flush): the canary travels the
 *   same route (an interest of its own in CANARY_INSTANCE), so it stops coming back, the
 *   canary reconnects the bus, and every (re)connect writes the whole registry before the
 *   bus reports itself up (then the node backfills from history).
 */
import { BusBase, BusError, type BusBaseOptions } from './bus-base';
import { CANARY_INSTANCE, type RedisKeys } from './keys';
import { quit, withTimeout, type Announcer, type AnnouncerBase, type RedisClient } from './redis-bus';

export interface RedisInterestBusOptions extends BusBaseOptions {
  /** Connection for registry writes and canaries (may be shared with the history store). */
  client: RedisClient;
  /** Dedicated connection for (S)SUBSCRIBE. */
  subscriber: RedisClient;
  keys: RedisKeys;
  /** SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub; a Redis Cluster). Default false. */
  sharded?: boolean;
  /** Longest wait for one Redis command. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Longest wait of start() for the first connection before it resolves anyway. Default 2000 ms. */
  startTimeoutMs?: number;
  /** How often queued interest changes are written. Default 20 ms. */
  flushMs?: number;
  /** How long a gateway that stopped refreshing is still published to. Default 15,000 ms. */
  leaseMs?: number;
  /** How often the whole registry of this gateway is written again. Default 10 minutes. */
  resyncMs?: number;
  /** Close the subscriber on close(). Default false. */
  closeSubscriber?: boolean;
}

const DEFAULTS = { commandTimeoutMs: 2_000, startTimeoutMs: 2_000, flushMs: 20, leaseMs: 15_000, resyncMs: 600_000, sharded: false };

/** PHIDs per registry script call (bounds one command's size during a full resync). */
const CHUNK = 500;

const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// KEYS: leases, then interest sets. ARGV: gateway id, leaseMs, interest TTL ms, then one
// '+' (add) or '-' (remove) per interest set. Refreshes the lease with Redis's clock.
const REGISTER_LUA = `
${NOW_MS}
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for i = 2, #KEYS do
  if ARGV[i + 2] == '+' then
    redis.call('SADD', KEYS[i], ARGV[1])
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
  else
    redis.call('SREM', KEYS[i], ARGV[1])
  end
end
return 1
`;

/**
 * Routes `text` to every gateway in the interest sets KEYS[k+2..] whose lease in KEYS[k+1]
 * holds, once each; a lapsed gateway is dropped from the sets read. `k`/`a`: where its keys
 * and arguments start. Arguments: text, channel prefix, origin id, '1' to echo to the
 * origin, the publish command.
 */
function routeLua(k: number, a: number, text: string): string {
  return `
local routed = {}
for i = ${k + 2}, #KEYS do
  for _, gw in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    if routed[gw] == nil then
      local lease = tonumber(redis.call('HGET', KEYS[${k + 1}], gw) or '0')
      routed[gw] = lease >= now
      if routed[gw] and (gw ~= ARGV[${a + 3}] or ARGV[${a + 4}] == '1') then
        redis.call(ARGV[${a + 5}], ARGV[${a + 2}] .. gw, ${text})
      end
    end
    if routed[gw] == false then redis.call('SREM', KEYS[i], gw) end
  end
end
`;
}

// The canary's own route: KEYS leases, interest set; ARGV text, prefix, origin, '1', command.
const CANARY_LUA = `
${NOW_MS}
${routeLua(0, 0, 'ARGV[1]')}
return 1
`;

export class RedisInterestBus extends BusBase {
  readonly isPublishedByHistory = true;
  private readonly client: RedisClient;
  private readonly subscriber: RedisClient;
  private readonly keys: RedisKeys;
  private readonly options: RedisInterestBusOptions & typeof DEFAULTS;
  private state: 'new' | 'running' | 'closing' = 'new';
  private closing?: Promise<void>;
  private readonly handlers: [string, (...args: unknown[]) => void][] = [];
  /** What this gateway routes now: instance -> PHIDs with a local subscriber. */
  private readonly interests = new Map<string, Set<string>>();
  /** Changes not yet written: instance -> PHID -> add or remove. */
  private pending = new Map<string, Map<string, '+' | '-'>>();
  /** Channels subscribed now, by instance. */
  private readonly channels = new Set<string>();
  private flushTimer?: NodeJS.Timeout;
  private leaseTimer?: NodeJS.Timeout;
  private resyncTimer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private retryTimer?: NodeJS.Timeout;
  /** A failed registry or channel write is tried again after this timer. */
  private rewriteTimer?: NodeJS.Timeout;
  /** Interest changes queued so far, and how many of them are written (settled()). */
  private queuedGeneration = 0;
  private writtenGeneration = 0;
  /** settled() callers: each waits for a generation, or for the bus to go down. */
  private readonly settleWaiters = new Set<{ generation: number; resolve(): void }>();
  /** Until the first connect: resolves once it is up (or start's timeout passed). */
  private firstUp?: Promise<void>;
  private readonly canaryPhid: string;
  /** Counts for /status/. */
  readonly routing = { flushes: 0, registered: 0, unregistered: 0, resyncs: 0, failedWrites: 0 };

  constructor(options: RedisInterestBusOptions) {
    super(options);
    if (options.client === options.subscriber) {
      throw new Error('RedisInterestBus: options.client and options.subscriber must be different connections');
    }
    this.options = { ...DEFAULTS, ...options };
    this.client = options.client;
    this.subscriber = options.subscriber;
    this.keys = options.keys;
    this.canaryPhid = `canary:${this.nodeId}`;
    // defineCommand runs EVALSHA and falls back to EVAL after a NOSCRIPT (restart, failover).
    if (!('tidingsRegister' in this.client)) {
      this.client.defineCommand('tidingsRegister', { lua: REGISTER_LUA });
      this.client.defineCommand('tidingsCanary', { numberOfKeys: 2, lua: CANARY_LUA });
    }
  }

  /** A first local subscriber of (instance, PHID): route its messages here. */
  watch(instance: string, phid: string): void {
    let phids = this.interests.get(instance);
    if (!phids) this.interests.set(instance, (phids = new Set()));
    if (phids.has(phid)) return;
    phids.add(phid);
    this.queue(instance, phid, '+');
  }

  /** The last local subscriber of (instance, PHID) left. */
  unwatch(instance: string, phid: string): void {
    const phids = this.interests.get(instance);
    if (!phids?.delete(phid)) return;
    if (!phids.size) this.interests.delete(instance);
    this.queue(instance, phid, '-');
  }

  /**
   * Resolves once every change queued so far is written. While the bus is down it resolves
   * at once: nothing can be routed then, and the reconnect writes everything before the
   * node backfills what was missed.
   */
  settled(): Promise<void> {
    // Before the first connect (the node is starting, not yet ready) the first write of the
    // whole registry is what to wait for; in a later outage, nothing.
    if (!this.isConnected) return this.firstUp ?? Promise.resolve();
    const generation = this.queuedGeneration;
    if (this.writtenGeneration >= generation) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter = {
        generation,
        resolve: () => {
          clearTimeout(timer);
          this.settleWaiters.delete(waiter);
          resolve();
        },
      };
      // A write that keeps failing is retried; the caller waits at most this long for it.
      const timer = setTimeout(waiter.resolve, 2 * this.options.commandTimeoutMs + this.options.flushMs);
      timer.unref();
      this.settleWaiters.add(waiter);
    });
  }

  /** Changes up to `generation` are written: wakes their waiters. */
  private written(generation: number): void {
    if (generation > this.writtenGeneration) this.writtenGeneration = generation;
    for (const waiter of [...this.settleWaiters]) if (waiter.generation <= this.writtenGeneration) waiter.resolve();
  }

  /** The bus went down or closed: nothing can be routed now; nobody waits for it. */
  private releaseWaiters(): void {
    for (const waiter of [...this.settleWaiters]) waiter.resolve();
  }

  /** PHIDs routed here now (status). */
  get watched(): number {
    let n = 0;
    for (const phids of this.interests.values()) n += phids.size;
    return n;
  }

  /**
   * The part of the history append script that routes a stored message: to every gateway
   * interested in one of its PHIDs, once each, its position spliced into the frame; to this
   * node only while it wants its echoes (sockets with positions).
   */
  announcer(base: AnnouncerBase): Announcer {
    const k = base.keys;
    const a = base.args;
    return {
      lua: routeLua(k, a, `ARGV[${a + 1}] .. '"p":[' .. seq .. ',"' .. epoch .. '"],' .. ARGV[${a + 6}]`),
      keys: (envelope) => [this.keys.gatewayLeases(envelope.instance), ...envelope.subscribers.map((phid) => this.keys.interest(envelope.instance, phid))],
      args: (envelope) => {
        const { head, tail } = this.splitForPosition(envelope);
        return [head, this.channelPrefix(envelope.instance), this.nodeId, this.echoes ? '1' : '0', this.publishCommand, tail];
      },
    };
  }

  override describe(): ReturnType<BusBase["describe"]> & { routing: string; watched: number } & RedisInterestBus['routing'] {
    return { ...super.describe(), routing: 'interest', watched: this.watched, ...this.routing };
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    this.watch(CANARY_INSTANCE, this.canaryPhid);
    this.pending.clear(); // the first connect writes everything
    const event = this.options.sharded ? 'smessage' : 'message';
    this.listen(event, (channel: string, text: string) => {
      if (this.channels.has(channel)) this.onText(text);
    });
    this.listen('ready', () => void this.onSubscriberReady());
    this.listen('close', () => {
      this.channels.clear();
      this.markDown(new BusError('BUS_DOWN', 'redis: subscriber connection closed'));
    });
    this.listen('error', (err: Error) => {
      this.logger.debug({ err: err.message }, 'bus: redis error');
      if (!this.isConnected) this.markDown(err);
    });
    const settledUp = new Promise<void>((resolve) => {
      const done = () => {
        this.off('up', done);
        this.off('down', done);
        resolve();
      };
      this.on('up', done);
      this.on('down', done);
    });
    if (this.client.status === 'wait') this.client.connect().catch(() => undefined);
    this.firstUp = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timeout);
        this.off('up', done);
        resolve();
      };
      const timeout = setTimeout(done, this.options.startTimeoutMs);
      timeout.unref();
      this.on('up', done);
    });
    if (this.subscriber.status === 'ready') void this.onSubscriberReady();
    else if (this.subscriber.status === 'wait') this.subscriber.connect().catch((err: Error) => this.markDown(err));
    this.leaseTimer = setInterval(() => void this.refreshLeases(), Math.max(100, Math.floor(this.options.leaseMs / 3)));
    this.leaseTimer.unref();
    this.resyncTimer = setInterval(() => void this.writeAll('periodic').catch(() => undefined), this.options.resyncMs);
    this.resyncTimer.unref();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settledUp, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.startTimeoutMs)))]);
    clearTimeout(timer);
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  protected override markDown(error: Error, since?: number): void {
    super.markDown(error, since);
    this.releaseWaiters();
  }

  protected dropConnection(): void {
    if (this.state !== 'running') return;
    this.channels.clear();
    const stream = (this.subscriber as { stream?: { destroy(): void } }).stream;
    if (stream && !(this.subscriber as { isCluster?: boolean }).isCluster) stream.destroy();
    else this.subscriber.disconnect(true);
  }

  /** Messages are routed by the history store's append script (announcer()): nothing to send. */
  override async publish(): Promise<void> {
    return;
  }

  protected async send(text: string, kind: 'message' | 'canary'): Promise<void> {
    if (this.state !== 'running') throw new BusError('BUS_CLOSED', 'redis bus: not running');
    // Messages are published by the history store's append script (announcer()).
    if (kind === 'message') throw new BusError('BUS_CLOSED', 'interest bus: messages are published by the history store');
    const canary = this.client as unknown as { tidingsCanary(...args: (string | number)[]): Promise<number> };
    await withTimeout(
      canary.tidingsCanary(
        this.keys.gatewayLeases(CANARY_INSTANCE),
        this.keys.interest(CANARY_INSTANCE, this.canaryPhid),
        text,
        this.channelPrefix(CANARY_INSTANCE),
        this.nodeId,
        '1',
        this.publishCommand,
      ),
      this.options.commandTimeoutMs,
      'redis bus: canary',
    );
  }

  private get publishCommand(): string {
    return this.options.sharded ? 'SPUBLISH' : 'PUBLISH';
  }

  /** Channels of an instance are this prefix plus a gateway id. */
  private channelPrefix(instance: string): string {
    return this.keys.gatewayChannel(instance, '');
  }

  private queue(instance: string, phid: string, op: '+' | '-'): void {
    let changes = this.pending.get(instance);
    if (!changes) this.pending.set(instance, (changes = new Map()));
    changes.set(phid, op);
    this.queuedGeneration++;
    if (!this.flushTimer && this.state === 'running') {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        // In order: a removal never overtakes the addition it undoes.
        this.flushing = this.flushing.then(() => this.flush());
      }, this.options.flushMs);
      this.flushTimer.unref();
    }
  }

  /** Writes what changed since the last flush: one script per instance, subscriptions alongside. */
  private async flush(): Promise<void> {
    if (!this.isConnected) return; // the next connect writes everything
    const changes = this.pending;
    const generation = this.queuedGeneration;
    this.pending = new Map();
    this.routing.flushes++;
    try {
      await Promise.all([...changes].map(([instance, ops]) => this.register(instance, ops)));
      await this.syncChannels();
      this.written(generation);
    } catch (err) {
      this.routing.failedWrites++;
      this.logger.warn({ err: (err as Error).message }, 'bus: interest registry write failed; trying again');
      // Owed, unless a later change of the same PHID is queued already. The canary only
      // watches its own instance, so the write is retried here rather than left to a reconnect.
      for (const [instance, ops] of changes) for (const [phid, op] of ops) this.queueQuiet(instance, phid, op);
      this.scheduleRewrite();
    }
  }

  /** Flushes again after a failed write (pending holds what failed; syncChannels retries channels). */
  private scheduleRewrite(): void {
    if (this.rewriteTimer || this.state !== 'running') return;
    this.rewriteTimer = setTimeout(() => {
      this.rewriteTimer = undefined;
      this.flushing = this.flushing.then(() => this.flush());
    }, Math.max(this.options.flushMs, 250));
    this.rewriteTimer.unref();
  }

  private queueQuiet(instance: string, phid: string, op: '+' | '-'): void {
    let changes = this.pending.get(instance);
    if (!changes) this.pending.set(instance, (changes = new Map()));
    if (!changes.has(phid)) changes.set(phid, op);
  }

  private async register(instance: string, ops: Map<string, '+' | '-'>): Promise<void> {
    const entries = [...ops];
    const register = this.client as unknown as { tidingsRegister(numKeys: number, ...args: (string | number)[]): Promise<number> };
    for (let i = 0; i < Math.max(1, entries.length); i += CHUNK) {
      const chunk = entries.slice(i, i + CHUNK);
      const keys = [this.keys.gatewayLeases(instance), ...chunk.map(([phid]) => this.keys.interest(instance, phid))];
      const args = [this.nodeId, this.options.leaseMs, 3 * this.options.resyncMs, ...chunk.map(([, op]) => op)];
      await withTimeout(register.tidingsRegister(keys.length, ...keys, ...args), this.options.commandTimeoutMs, 'redis bus: interest registry');
      for (const [, op] of chunk) {
        if (op === '+') this.routing.registered++;
        else this.routing.unregistered++;
      }
    }
  }

  /** Subscribes to the channels of instances routed here, and leaves the others. */
  private async syncChannels(): Promise<void> {
    const wanted = new Set<string>();
    for (const instance of this.interests.keys()) wanted.add(this.keys.gatewayChannel(instance, this.nodeId));
    const join = [...wanted].filter((c) => !this.channels.has(c));
    const leave = [...this.channels].filter((c) => !wanted.has(c));
    const sub = this.subscriber as unknown as Record<string, (...channels: string[]) => Promise<unknown>>;
    const [subscribe, unsubscribe] = this.options.sharded ? ['ssubscribe', 'sunsubscribe'] : ['subscribe', 'unsubscribe'];
    // Joined before the reply, so that a message routed here as the SUBSCRIBE lands is kept.
    for (const c of join) this.channels.add(c);
    for (const c of leave) this.channels.delete(c);
    // One command per channel: on a Cluster each may live on another shard.
    const results = await Promise.allSettled([
      ...join.map((c) => withTimeout(sub[subscribe].call(this.subscriber, c), this.options.commandTimeoutMs, `redis bus: ${subscribe}`)),
      ...leave.map((c) => withTimeout(sub[unsubscribe].call(this.subscriber, c), this.options.commandTimeoutMs, `redis bus: ${unsubscribe}`)),
    ]);
    // A channel whose SUBSCRIBE failed is not joined: the next sync subscribes to it again. (A
    // failed UNSUBSCRIBE leaves a channel whose messages are ignored: harmless.)
    join.forEach((c, i) => {
      if (results[i].status === 'rejected') this.channels.delete(c);
    });
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Writes this gateway's whole registry (every instance, every PHID) and its leases. */
  private async writeAll(why: string): Promise<void> {
    this.routing.resyncs++;
    this.pending.clear();
    const generation = this.queuedGeneration;
    await Promise.all(
      [...this.interests].map(([instance, phids]) => this.register(instance, new Map([...phids].map((phid) => [phid, '+' as const])))),
    );
    this.written(generation);
    this.logger.debug({ why, instances: this.interests.size, watched: this.watched }, 'bus: interest registry written');
  }

  private async refreshLeases(): Promise<void> {
    if (!this.isConnected) return;
    try {
      await Promise.all([...this.interests.keys()].map((instance) => this.register(instance, new Map())));
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'bus: lease refresh failed');
    }
  }

  /** After every (re)connect: the whole registry, then the channels, then up (the node backfills). */
  private async onSubscriberReady(): Promise<void> {
    if (this.state !== 'running') return;
    clearTimeout(this.retryTimer);
    try {
      this.channels.clear();
      // The registry is written on the command connection, which reconnects on its own.
      await this.commandsReady();
      await this.writeAll('connect');
      await this.syncChannels();
      if (this.state !== 'running') return;
      this.markUp();
      this.firstUp = undefined;
      // Changes queued while the registry was being written (they found the bus not yet up).
      if (this.pending.size) this.flushing = this.flushing.then(() => this.flush());
    } catch (err) {
      this.markDown(err as Error);
      // The subscriber may stay connected: try again rather than wait for its next 'ready'.
      if (this.state === 'running') {
        this.retryTimer = setTimeout(() => {
          if (this.subscriber.status === 'ready') void this.onSubscriberReady();
        }, 500);
        this.retryTimer.unref();
      }
    }
  }

  /** Resolves once the command connection is ready; rejects after commandTimeoutMs. */
  private commandsReady(): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    return withTimeout(
      new Promise<void>((resolve) => this.client.once('ready', () => resolve())),
      this.options.commandTimeoutMs,
      'redis bus: command connection',
    );
  }

  private async doClose(): Promise<void> {
    const wasRunning = this.state === 'running';
    this.state = 'closing';
    clearTimeout(this.flushTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.rewriteTimer);
    this.releaseWaiters();
    clearInterval(this.leaseTimer);
    clearInterval(this.resyncTimer);
    this.failCanaries(new BusError('BUS_CLOSED', 'redis bus: closed'));
    if (wasRunning && this.client.status === 'ready') {
      // Leave the registry at once rather than after the lease: others stop publishing here.
      const unregister = [...this.interests].map(([instance, phids]) => this.register(instance, new Map([...phids].map((p) => [p, '-' as const]))));
      await Promise.race([Promise.allSettled(unregister), new Promise((r) => setTimeout(r, this.options.commandTimeoutMs).unref())]);
    }
    for (const [event, fn] of this.handlers) this.subscriber.off(event, fn);
    this.handlers.length = 0;
    if (this.options.closeSubscriber) await quit(this.subscriber);
  }

  private listen<A extends unknown[]>(event: string, fn: (...args: A) => void): void {
    const handler = fn as (...args: unknown[]) => void;
    this.subscriber.on(event, handler);
    this.handlers.push([event, handler]);
  }
}

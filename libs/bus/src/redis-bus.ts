/**
 * The bus over Redis pub/sub (ioredis), for a standalone Redis or a Redis Cluster.
 *
 * One channel per key prefix (`<prefix>bus`), shared by every node and instance. Why not
 * shard it: a message is PUBLISHed once whatever the number of nodes (the publisher's cost
 * is one command), and Redis fans it out once per subscribed node. Sharding by instance or
 * by PHID would let a node skip messages for which it has no socket, but in Phorge's usual
 * layout every node holds sockets of every instance (the load balancer spreads them), so
 * per-instance channels would cost SUBSCRIBE churn and buy nothing; per-PHID channels
 * would cost one subscription per PHID on every node. With one channel, the work a node
 * does for a message is one decode plus a hub lookup that finds exactly its recipients:
 * cost follows recipients, not the number of channels or nodes a message could reach.
 *
 * Redis Cluster: classic PUBLISH/SUBSCRIBE work on any cluster node; the cluster bus
 * broadcasts every PUBLISH to all nodes, so each gateway's subscriber may sit on any node
 * and ioredis moves it when that node fails. SPUBLISH (sharded pub/sub) would pin this
 * single channel to one shard and its replicas; at notification rates the broadcast is
 * cheap, and classic PUBLISH is also what the history script can issue atomically.
 *
 * Faults: the subscriber connection's state drives `up`/`down`. A node whose Redis is
 * down at start still starts (start() resolves after the first attempt), the client keeps
 * retrying, and `up` with `reconnect: true` tells the gateway to backfill from history.
 */
import type { Cluster, Redis } from 'ioredis';
import type { Envelope } from '@tidings/protocol';
import { BusBase, BusError, type BusBaseOptions } from './bus-base';
import type { RedisKeys } from './keys';

export type RedisClient = Redis | Cluster;

/** Where a store's own KEYS and ARGV end in its append script (RedisHistory's ANNOUNCE_*_BASE). */
export interface AnnouncerBase {
  keys: number;
  args: number;
}

/** What RedisHistory's append script runs to publish a stored message (its `Announcer`). */
export interface Announcer {
  lua: string;
  keys(envelope: Envelope): string[];
  args(envelope: Envelope): (string | number)[];
}

export interface RedisBusOptions extends BusBaseOptions {
  /** Connection for PUBLISH (may be shared with the history store). */
  client: RedisClient;
  /** Dedicated connection for SUBSCRIBE (a subscribed connection cannot run other commands). */
  subscriber: RedisClient;
  keys: RedisKeys;
  /**
   * The history store publishes each message in the same script that appends it (one
   * round trip, atomic: stored iff published), so publish() here sends nothing and
   * resolves. Default false: publish() PUBLISHes itself.
   */
  publishedByHistory?: boolean;
  /** Longest wait for a PUBLISH. Default 2000 ms (redis.commandTimeoutMs). */
  commandTimeoutMs?: number;
  /** Longest wait of start() for the first connection before it resolves anyway. Default 2000 ms. */
  startTimeoutMs?: number;
  /** Close the subscriber / client on close(). Default false (the caller owns them). */
  closeSubscriber?: boolean;
  closeClient?: boolean;
}

const DEFAULTS = { commandTimeoutMs: 2_000, startTimeoutMs: 2_000 };

export class RedisBus extends BusBase {
  private readonly client: RedisClient;
  private readonly subscriber: RedisClient;
  private readonly channel: string;
  private readonly options: RedisBusOptions & typeof DEFAULTS;
  private state: 'new' | 'running' | 'closing' = 'new';
  private closing?: Promise<void>;
  private readonly handlers: [string, (...args: unknown[]) => void][] = [];

  constructor(options: RedisBusOptions) {
    super(options);
    if (options.client === options.subscriber) {
      throw new Error('RedisBus: options.client and options.subscriber must be different connections');
    }
    this.options = { ...DEFAULTS, ...options };
    this.client = options.client;
    this.subscriber = options.subscriber;
    this.channel = options.keys.busChannel;
  }

  get busChannel(): string {
    return this.channel;
  }

  /** Whether publish() leaves the PUBLISH to the history store's append script. */
  get isPublishedByHistory(): boolean {
    return !!this.options.publishedByHistory;
  }

  /**
   * The part of the history append script that publishes a stored message: one PUBLISH on
   * the channel, the message's position spliced into its frame (see bus-codec). `base`:
   * where the store's own KEYS and ARGV end.
   */
  announcer(base: AnnouncerBase): Announcer {
    const a = base.args;
    return {
      lua: `redis.call('PUBLISH', ARGV[${a + 1}], ARGV[${a + 2}] .. '"p":[' .. seq .. ',"' .. epoch .. '"],' .. ARGV[${a + 3}])\n`,
      keys: () => [],
      args: (envelope) => {
        const { head, tail } = this.splitForPosition(envelope);
        return [this.channel, head, tail];
      },
    };
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    const sub = this.subscriber;
    this.listen('message', (channel: string, text: string) => {
      if (channel === this.channel) this.onText(text);
    });
    this.listen('ready', () => void this.subscribe());
    this.listen('close', () => this.markDown(new BusError('BUS_DOWN', 'redis: subscriber connection closed')));
    this.listen('error', (err: Error) => {
      // Without a listener ioredis prints every failed attempt; the state is logged once per outage.
      this.logger.debug({ err: err.message }, 'bus: redis error');
      if (!this.isConnected) this.markDown(err);
    });
    // Resolve once both connections are usable (or the first attempt failed, or the
    // timeout passed): a node must start, with or without Redis.
    const subscribed = new Promise<void>((resolve) => {
      const done = () => {
        this.off('up', done);
        this.off('down', done);
        resolve();
      };
      this.on('up', done);
      this.on('down', done);
    });
    const clientReady = new Promise<void>((resolve) => {
      if (this.client.status === 'ready') return resolve();
      const done = () => {
        this.client.off('ready', done);
        this.client.off('error', done);
        resolve();
      };
      this.client.on('ready', done);
      this.client.on('error', done);
    });
    // The command connection is lazy too; with the offline queue off it must be connected here.
    if (this.client.status === 'wait') this.client.connect().catch(() => undefined);
    if (sub.status === 'ready') void this.subscribe();
    else if (sub.status === 'wait') {
      sub.connect().catch((err: Error) => this.markDown(err));
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([subscribed, clientReady]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.startTimeoutMs))),
    ]);
    clearTimeout(timer);
  }

  override async publish(message: Envelope): Promise<void> {
    // The history append script already published it, atomically with storing it.
    if (this.options.publishedByHistory) return;
    await super.publish(message);
  }

  protected async send(text: string): Promise<void> {
    if (this.state !== 'running') throw new BusError('BUS_CLOSED', 'redis bus: not running');
    await withTimeout(this.client.publish(this.channel, text), this.options.commandTimeoutMs, 'redis bus: PUBLISH');
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  /**
   * Cuts the subscriber's TCP connection; ioredis reconnects (retry policy) and the 'ready'
   * handler subscribes again. Destroyed, not ended: a peer that stopped answering would
   * never finish a graceful close. On a Cluster, the client reconnects as a whole.
   */
  protected dropConnection(): void {
    if (this.state !== 'running') return;
    const stream = (this.subscriber as { stream?: { destroy(): void } }).stream;
    if (stream && !(this.subscriber as { isCluster?: boolean }).isCluster) stream.destroy();
    else this.subscriber.disconnect(true);
  }

  private async doClose(): Promise<void> {
    const wasRunning = this.state === 'running';
    this.state = 'closing';
    this.failCanaries(new BusError('BUS_CLOSED', 'redis bus: closed'));
    if (wasRunning && this.subscriber.status === 'ready') {
      await withTimeout(this.subscriber.unsubscribe(this.channel), this.options.commandTimeoutMs, 'redis bus: UNSUBSCRIBE').catch(
        () => undefined,
      );
    }
    for (const [event, fn] of this.handlers) this.subscriber.off(event, fn);
    this.handlers.length = 0;
    if (this.options.closeSubscriber) await quit(this.subscriber);
    if (this.options.closeClient) await quit(this.client);
  }

  private listen<A extends unknown[]>(event: string, fn: (...args: A) => void): void {
    const handler = fn as (...args: unknown[]) => void;
    this.subscriber.on(event, handler);
    this.handlers.push([event, handler]);
  }

  /** (Re)subscribes after every connect; up only once Redis confirmed the subscription. */
  private async subscribe(): Promise<void> {
    if (this.state !== 'running') return;
    try {
      await withTimeout(this.subscriber.subscribe(this.channel), this.options.commandTimeoutMs, 'redis bus: SUBSCRIBE');
      if (this.state === 'running') this.markUp();
    } catch (err) {
      this.markDown(err as Error);
    }
  }
}

/** Rejects with an error naming what timed out; the command itself may still complete. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BusError('BUS_TIMEOUT', `${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function quit(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  await withTimeout(client.quit(), 1_000, 'redis: QUIT').catch(() => client.disconnect());
}

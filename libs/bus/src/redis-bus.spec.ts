/** RedisBus against a real Redis: delivery, echoes, canaries, malformed traffic, faults. */
import { Redis, type RedisOptions } from 'ioredis';
import type { Envelope } from '@tidings/protocol';
import { startRedis, startRedisServer, type RedisHandle } from '@tidings/testing';
import type { BusMessage } from './bus';
import { createRedisKeys } from './keys';
import { RedisBus } from './redis-bus';

let redis: RedisHandle;
const buses: RedisBus[] = [];
const extra: Redis[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
  for (const c of extra.splice(0)) c.disconnect();
});

afterAll(async () => {
  if (redis.owned) await redis.stop();
});

const fast: RedisOptions = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 100 };
let run = 0;
const prefix = () => `tidings-test:${process.pid}:bus${++run}:`;
const envelope = (id: string): Envelope => ({ id, instance: 'default', subscribers: ['PHID-a'], frame: `{"k":"${id}"}`, acceptedAt: 1 });

function createBus(url: string, keyPrefix: string, nodeId: string) {
  const client = new Redis(url, fast);
  const subscriber = new Redis(url, fast);
  for (const c of [client, subscriber]) c.on('error', () => undefined);
  const bus = new RedisBus({
    client,
    subscriber,
    keys: createRedisKeys(keyPrefix),
    nodeId,
    commandTimeoutMs: 500,
    startTimeoutMs: 500,
    closeClient: true,
    closeSubscriber: true,
  });
  const got: BusMessage[] = [];
  bus.on('message', (m) => got.push(m));
  buses.push(bus);
  return { bus, got };
}

async function until(check: () => boolean, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('RedisBus', () => {
  it('delivers each message once to every other node, drops its own echo', async () => {
    const p = prefix();
    const nodes = ['a', 'b', 'c'].map((id) => createBus(redis.url, p, id));
    await Promise.all(nodes.map((n) => n.bus.start()));
    expect(nodes.every((n) => n.bus.isConnected)).toBe(true);
    await nodes[0].bus.publish(envelope('1'));
    await nodes[1].bus.publish(envelope('2'));
    await until(() => nodes[2].got.length === 2 && nodes[0].got.length === 1 && nodes[1].got.length === 1, 'deliveries');
    await nodes[2].bus.roundTrip(1_000); // everything sent before the canary has arrived
    expect(nodes[0].got).toEqual([{ ...envelope('2'), origin: 'b' }]);
    expect(nodes[1].got).toEqual([{ ...envelope('1'), origin: 'a' }]);
    expect(nodes[2].got.map((m) => m.id)).toEqual(['1', '2']);
  });

  it('keeps key prefixes apart', async () => {
    const one = createBus(redis.url, prefix(), 'a');
    const two = createBus(redis.url, prefix(), 'b');
    const three = createBus(redis.url, one.bus.busChannel.replace(/bus$/, ''), 'c');
    await Promise.all([one.bus.start(), two.bus.start(), three.bus.start()]);
    await one.bus.publish(envelope('x'));
    await until(() => three.got.length === 1, 'same-prefix delivery');
    await two.bus.roundTrip(1_000);
    expect(two.got).toEqual([]);
  });

  it('measures a round trip through its own subscription', async () => {
    const { bus } = createBus(redis.url, prefix(), 'a');
    await bus.start();
    const ms = await bus.roundTrip(1_000);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(1_000);
  });

  it('times out a canary that Redis does not deliver in time', async () => {
    const { bus } = createBus(redis.url, prefix(), 'a');
    await bus.start();
    const admin = new Redis(redis.url);
    extra.push(admin);
    // CLIENT PAUSE WRITE holds every PUBLISH (the canary's) until the pause ends.
    await admin.call('CLIENT', 'PAUSE', '400', 'WRITE');
    await expect(bus.roundTrip(100)).rejects.toThrow(/canary did not come back within 100 ms|PUBLISH timed out/);
    await new Promise((r) => setTimeout(r, 400));
    expect(await bus.roundTrip(1_000)).toBeGreaterThanOrEqual(0);
  });

  it('logs and drops malformed messages on the channel and keeps working', async () => {
    const p = prefix();
    const { bus, got } = createBus(redis.url, p, 'a');
    await bus.start();
    const raw = new Redis(redis.url);
    extra.push(raw);
    await raw.publish(`${p}bus`, 'not json');
    await raw.publish(`${p}bus`, JSON.stringify({ t: 'msg', o: 'z', e: { id: 1 } }));
    await raw.publish(`${p}bus`, JSON.stringify({ t: 'msg', o: 'z', e: envelope('ok') }));
    await until(() => got.length === 1, 'the good message');
    expect(got[0].id).toBe('ok');
    expect(bus.stats.malformed).toBe(2);
  });

  it('starts while Redis is down without hanging, then connects, reports downSince and delivers', async () => {
    const own = await startRedisServer();
    await own.stop();
    try {
      const p = prefix();
      const a = createBus(own.url, p, 'a');
      const ups: { reconnect: boolean; downSince: number | null }[] = [];
      a.bus.on('up', (info) => ups.push(info));
      const started = Date.now();
      await a.bus.start();
      expect(Date.now() - started).toBeLessThan(1_500);
      expect(a.bus.isConnected).toBe(false);
      await expect(a.bus.publish(envelope('lost'))).rejects.toThrow(/not connected/);
      await own.start();
      await until(() => a.bus.isConnected, 'connect after Redis came up', 5_000);
      expect(ups).toEqual([{ reconnect: true, downSince: expect.any(Number) }]);
      const b = createBus(own.url, p, 'b');
      await b.bus.start();
      await b.bus.publish(envelope('1'));
      await until(() => a.got.length === 1, 'delivery after connecting');
    } finally {
      await own.stop();
    }
  });

  it('survives a Redis restart: down, then up again, resubscribed', async () => {
    const own = await startRedisServer();
    try {
      const p = prefix();
      const a = createBus(own.url, p, 'a');
      const b = createBus(own.url, p, 'b');
      const events: string[] = [];
      a.bus.on('down', () => events.push('down'));
      a.bus.on('up', (info) => events.push(`up:${info.reconnect}:${info.downSince !== null}`));
      await Promise.all([a.bus.start(), b.bus.start()]);
      await own.stop();
      await until(() => !a.bus.isConnected, 'down');
      await own.start();
      await until(() => a.bus.isConnected && b.bus.isConnected, 'up again', 5_000);
      await b.bus.publish(envelope('after'));
      await until(() => a.got.length === 1, 'delivery after the restart');
      expect(events).toEqual(['up:false:false', 'down', 'up:true:true']);
    } finally {
      await own.stop();
    }
  });

  it('refuses one connection for both roles', () => {
    const c = new Redis(redis.url, fast);
    extra.push(c);
    expect(() => new RedisBus({ client: c, subscriber: c, keys: createRedisKeys('x:') })).toThrow(/different connections/);
  });
});

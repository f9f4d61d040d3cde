/** RedisHistory beyond the shared contract: idempotent appends, publish in the script, timeouts. */
import { Redis } from 'ioredis';
import type { Envelope } from '@tidings/protocol';
import { startRedis, startRedisServer, type RedisHandle } from '@tidings/testing';
import { RedisHistory } from './redis-history';

let redis: RedisHandle;
const clients: Redis[] = [];
const client = (url = redis.url, options = {}) => {
  const c = new Redis(url, options);
  c.on('error', () => undefined);
  clients.push(c);
  return c;
};

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  if (redis.owned) await redis.stop();
});

let run = 0;
/** Test key names (production names come from @tidings/bus keys.ts, which this lib may not import). */
const testKeys = (prefix: string) => ({
  busChannel: `${prefix}bus`,
  historyLog: (instance: string) => `{${prefix}${instance}}:log`,
  historySeq: (instance: string) => `{${prefix}${instance}}:seq`,
  historySeen: (instance: string, id: string) => `{${prefix}${instance}}:seen:${id}`,
});

const freshKeys = () => testKeys(`tidings-test:${process.pid}:rh${++run}:`);
const envelope = (id: string, acceptedAt = Date.now(), instance = 'default'): Envelope => ({
  id,
  instance,
  subscribers: ['PHID-USER-a'],
  frame: JSON.stringify({ subscribers: ['PHID-USER-a'], key: id }),
  acceptedAt,
});

describe('RedisHistory', () => {
  it('stores an (instance, id) once, however many copies arrive', async () => {
    const history = new RedisHistory({ client: client(), keys: freshKeys() });
    expect(await history.appendOnce(envelope('a'))).toBe(true);
    expect(await history.appendOnce(envelope('a'))).toBe(false);
    await Promise.all([history.append(envelope('b')), history.append(envelope('b')), history.append(envelope('b'))]);
    expect(await history.appendOnce(envelope('a', Date.now(), 'other'))).toBe(true);
    expect((await history.since('default', 0)).map((e) => e.id)).toEqual(['a', 'b']);
    expect(history.counts).toMatchObject({ stored: 3, duplicates: 3 });
  });

  it('does not store again an id that count trimming evicted (a copy relayed back late)', async () => {
    const history = new RedisHistory({ client: client(), keys: freshKeys(), maxMessages: 2 });
    for (const id of ['1', '2', '3']) await history.append(envelope(id));
    await history.append(envelope('1'));
    expect((await history.since('default', 0)).map((e) => e.id)).toEqual(['2', '3']);
  });

  it('publishes the announcement in the append script, once per stored id', async () => {
    const keys = freshKeys();
    const sub = client();
    const got: string[] = [];
    sub.on('message', (_channel: string, text: string) => got.push(text));
    await sub.subscribe(keys.busChannel);
    const history = new RedisHistory({
      client: client(),
      keys,
      announce: { channel: keys.busChannel, encode: (e) => `bus:${e.id}` },
    });
    await history.append(envelope('x'));
    await history.append(envelope('x'));
    await history.append(envelope('y'));
    const deadline = Date.now() + 2_000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual(['bus:x', 'bus:y']);
  });

  it('fails fast and names the operation when Redis is down, and works again after', async () => {
    const own = await startRedisServer();
    try {
      const c = client(own.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
      await new Promise((r) => c.once('ready', r));
      const history = new RedisHistory({ client: c, keys: freshKeys(), commandTimeoutMs: 500 });
      await history.append(envelope('before'));
      await own.stop();
      const started = Date.now();
      await expect(history.append(envelope('during'))).rejects.toThrow();
      await expect(history.since('default', 0)).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(1_500);
      await own.start();
      await new Promise((r) => (c.status === 'ready' ? r(null) : c.once('ready', r)));
      await history.append(envelope('after'));
      expect((await history.since('default', 0)).map((e) => e.id)).toEqual(['after']);
    } finally {
      await own.stop();
    }
  });

  it('times out a command that Redis does not answer', async () => {
    const own = await startRedisServer();
    const blocker = client(own.url);
    const c = client(own.url);
    try {
      await c.ping();
      const history = new RedisHistory({ client: c, keys: freshKeys(), commandTimeoutMs: 200 });
      // CLIENT PAUSE holds every other client's commands: the append cannot be answered in time.
      await blocker.call('CLIENT', 'PAUSE', '1000', 'ALL');
      await expect(history.append(envelope('slow'))).rejects.toThrow(/history append: Redis did not answer within 200 ms/);
    } finally {
      await own.stop();
    }
  });
});

/** RedisHistory beyond the shared contract: idempotent appends, publish in the script, timeouts. */
import { Redis } from 'ioredis';
import type { Envelope } from '@tidings/protocol';
import { startRedis, startRedisServer, type RedisHandle } from '@tidings/testing';
import { HistoryError, RedisHistory } from './redis-history';

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
  historyMeta: (instance: string) => `{${prefix}${instance}}:meta`,
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
    expect(await history.appendOnce(envelope('a'))).toMatchObject({ offset: 1 });
    expect(await history.appendOnce(envelope('a'))).toBeNull();
    await Promise.all([history.append(envelope('b')), history.append(envelope('b')), history.append(envelope('b'))]);
    expect(await history.appendOnce(envelope('a', Date.now(), 'other'))).toMatchObject({ offset: 1 });
    expect((await history.recent('default', 60_000)).map((e) => e.id)).toEqual(['a', 'b']);
    expect(history.counts).toMatchObject({ stored: 3, duplicates: 3 });
  });

  it('does not store again an id that count trimming evicted (a copy relayed back late)', async () => {
    const history = new RedisHistory({ client: client(), keys: freshKeys(), maxMessages: 2 });
    for (const id of ['1', '2', '3']) await history.append(envelope(id));
    await history.append(envelope('1'));
    expect((await history.recent('default', 60_000)).map((e) => e.id)).toEqual(['2', '3']);
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
      announce: {
        lua: `redis.call('PUBLISH', ARGV[8], ARGV[9] .. '"p":[' .. seq .. ',"' .. epoch .. '"],' .. ARGV[10])`,
        keys: () => [],
        args: (e) => [keys.busChannel, `bus:${e.id}:`, 'end'],
      },
    });
    await history.append(envelope('x'));
    await history.append(envelope('x'));
    await history.append(envelope('y'));
    const deadline = Date.now() + 2_000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    // The script splices each message's position in between the two halves.
    expect(got).toEqual([expect.stringMatching(/^bus:x:"p":\[1,"[0-9a-f]{16}"\],end$/), expect.stringMatching(/^bus:y:"p":\[2,"[0-9a-f]{16}"\],end$/)]);
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
      const append = history.append(envelope('during'));
      await expect(append).rejects.toBeInstanceOf(HistoryError);
      await expect(append).rejects.toThrow(/^history append: /);
      await expect(history.recent('default', 60_000)).rejects.toThrow(/^history read: /);
      await expect(history.stats('default')).rejects.toThrow(/^history stats: /);
      expect(Date.now() - started).toBeLessThan(1_500);
      await own.start();
      await new Promise((r) => (c.status === 'ready' ? r(null) : c.once('ready', r)));
      await history.append(envelope('after'));
      expect((await history.recent('default', 60_000)).map((e) => e.id)).toEqual(['after']);
    } finally {
      await own.stop();
    }
  });

  it('trims by age inside the append script, not only when reading', async () => {
    const keys = freshKeys();
    const c = client();
    const history = new RedisHistory({ client: c, keys, maxAgeMs: 200 });
    await history.append(envelope('old'));
    expect(await c.zcard(keys.historyLog('default'))).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    await history.append(envelope('new'));
    // Read straight from Redis: the old member is gone from the set itself.
    const members = await c.zrange(keys.historyLog('default'), 0, -1);
    expect(members.map((m) => (JSON.parse(m.slice(16)) as Envelope).id)).toEqual(['new']);
  });

  it('sets TTLs on every key it writes, so an idle instance leaves nothing behind', async () => {
    const keys = freshKeys();
    const c = client();
    const history = new RedisHistory({ client: c, keys, maxAgeMs: 1_000 });
    await history.append(envelope('a'));
    const logTtl = await c.pttl(keys.historyLog('default'));
    expect(logTtl).toBeGreaterThan(0);
    expect(logTtl).toBeLessThanOrEqual(1_000 + 10_000);
    // The offset counter and epoch outlive the log (a day), so offsets go on across idle periods.
    const metaTtl = await c.pttl(keys.historyMeta('default'));
    expect(metaTtl).toBeGreaterThan(23 * 3_600_000);
    expect(metaTtl).toBeLessThanOrEqual(24 * 3_600_000);
    const seenTtl = await c.pttl(keys.historySeen('default', 'a'));
    expect(seenTtl).toBeGreaterThan(1_000 + 10_000); // outlives the log: a late copy is not stored again
    expect(seenTtl).toBeLessThanOrEqual(2 * 1_000 + 10_000);
  });

  it("uses Redis's clock, not the node's: a node whose clock is off still stores and replays the same window", async () => {
    const keys = freshKeys();
    const history = new RedisHistory({ client: client(), keys, maxAgeMs: 300 });
    // Two nodes, one two minutes behind and one two minutes ahead of Redis.
    await history.append(envelope('behind', Date.now() - 120_000));
    await history.append(envelope('ahead', Date.now() + 120_000));
    expect((await history.recent('default', 60_000)).map((e) => e.id)).toEqual(['behind', 'ahead']);
    await new Promise((r) => setTimeout(r, 400));
    expect(await history.recent('default', 60_000)).toEqual([]); // both aged out together
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

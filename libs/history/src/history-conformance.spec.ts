/**
 * One suite for the HistoryStore contract, run against every implementation: memory, and
 * Redis (a real server from startRedis()).
 */
import { Redis } from 'ioredis';
import type { Envelope } from '@tidings/protocol';
import { startRedis, type RedisHandle } from '@tidings/testing';
import type { HistoryOptions, HistoryStore } from './history-store';
import { MemoryHistory } from './memory-history';
import { RedisHistory } from './redis-history';

let redis: RedisHandle;
const clients: Redis[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.quit()));
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

const factories: [string, (options: HistoryOptions) => HistoryStore][] = [
  ['MemoryHistory', (options) => new MemoryHistory(options)],
  [
    'RedisHistory',
    (options) => {
      const client = new Redis(redis.url);
      clients.push(client);
      // A fresh prefix per store: tests never see each other's keys.
      const keys = testKeys(`tidings-test:${process.pid}:${++run}:`);
      return new RedisHistory({ ...options, client, keys, commandTimeoutMs: 2_000 });
    },
  ],
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function envelope(instance: string, id: string, subscribers = ['PHID-USER-a']): Envelope {
  return { id, instance, subscribers, frame: JSON.stringify({ subscribers, key: id }), acceptedAt: Date.now() };
}

const ids = (entries: Envelope[]) => entries.map((e) => e.id);

// Every store keeps time on its own clock (Redis's TIME for RedisHistory), so these tests use
// real time with short windows rather than a fake clock.
describe.each(factories)('history store conformance - %s', (_name, create) => {
  let store: HistoryStore;

  afterEach(async () => {
    await store.close();
  });

  it('returns the messages of the window, oldest first, with every field', async () => {
    store = create({ maxMessages: 100, maxAgeMs: 60_000 });
    const sent: Envelope[] = [];
    for (let i = 0; i < 5; i++) {
      sent.push(envelope('default', `m${i}`));
      await store.append(sent[i]);
    }
    const all = await store.recent('default', 60_000);
    expect(ids(all)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(all[2]).toEqual(sent[2]);
  });

  it('reads only the requested window', async () => {
    store = create({ maxMessages: 100, maxAgeMs: 60_000 });
    await store.append(envelope('default', 'early'));
    await sleep(300);
    await store.append(envelope('default', 'late'));
    expect(ids(await store.recent('default', 150))).toEqual(['late']);
    expect(ids(await store.recent('default', 60_000))).toEqual(['early', 'late']);
    // Never more than the history window, whatever is asked.
    expect(ids(await store.recent('default', 10 * 60_000))).toEqual(['early', 'late']);
  });

  it('keeps the order of appends within one millisecond', async () => {
    store = create({ maxMessages: 100, maxAgeMs: 60_000 });
    const order = ['z', 'a', 'm', 'b'];
    await Promise.all(order.map((id) => store.append(envelope('default', id))));
    expect(ids(await store.recent('default', 60_000))).toEqual(order);
  });

  it('keeps at most maxMessages per instance, dropping the oldest', async () => {
    store = create({ maxMessages: 3, maxAgeMs: 60_000 });
    for (let i = 0; i < 5; i++) await store.append(envelope('default', `m${i}`));
    await store.append(envelope('other', 'o1'));
    expect(ids(await store.recent('default', 60_000))).toEqual(['m2', 'm3', 'm4']);
    expect(ids(await store.recent('other', 60_000))).toEqual(['o1']);
  });

  it('drops messages older than maxAgeMs, on its own clock', async () => {
    store = create({ maxMessages: 100, maxAgeMs: 400 });
    await store.append(envelope('default', 'old'));
    await sleep(250);
    await store.append(envelope('default', 'new'));
    await sleep(250);
    expect(ids(await store.recent('default', 60_000))).toEqual(['new']);
    const stats = await store.stats('default');
    expect(stats.size).toBe(1);
    expect(stats.oldestAgeMs).toBeGreaterThanOrEqual(200);
    expect(stats.oldestAgeMs).toBeLessThan(400);
    await sleep(250);
    expect(await store.recent('default', 60_000)).toEqual([]);
    expect(await store.stats('default')).toEqual({ size: 0, oldestAgeMs: null });
  });

  it('keeps instances apart', async () => {
    store = create({ maxMessages: 100, maxAgeMs: 60_000 });
    await store.append(envelope('a', '1'));
    await store.append(envelope('b', '2'));
    expect(ids(await store.recent('a', 60_000))).toEqual(['1']);
    expect(ids(await store.recent('b', 60_000))).toEqual(['2']);
    expect(await store.recent('c', 60_000)).toEqual([]);
  });

  it('reports size and the age of the oldest message', async () => {
    store = create({ maxMessages: 100, maxAgeMs: 60_000 });
    expect(await store.stats('default')).toEqual({ size: 0, oldestAgeMs: null });
    await store.append(envelope('default', '1'));
    await sleep(100);
    await store.append(envelope('default', '2'));
    const stats = await store.stats('default');
    expect(stats.size).toBe(2);
    expect(stats.oldestAgeMs).toBeGreaterThanOrEqual(90);
    expect(stats.oldestAgeMs).toBeLessThan(5_000);
  });

  it('reports the sizes of several instances at once', async () => {
    store = create({ maxMessages: 100, maxAgeMs: 60_000 });
    for (const [instance, n] of [['a', 1], ['b', 3]] as const) {
      for (let i = 0; i < n; i++) await store.append(envelope(instance, `${instance}${i}`));
    }
    expect(await store.sizes(['a', 'b', 'empty'])).toEqual(new Map([['a', 1], ['b', 3], ['empty', 0]]));
    expect(await store.sizes([])).toEqual(new Map());
  });

  it('keeps unicode frames byte for byte', async () => {
    store = create({ maxMessages: 100, maxAgeMs: 60_000 });
    const e = { ...envelope('default', 'u'), frame: JSON.stringify({ subscribers: ['x'], text: 'héllo ✓ 日本 🎉' }) };
    await store.append(e);
    expect((await store.recent('default', 60_000))[0].frame).toBe(e.frame);
  });
});

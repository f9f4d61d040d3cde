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

function envelope(instance: string, id: string, acceptedAt: number, subscribers = ['PHID-USER-a']): Envelope {
  return { id, instance, subscribers, frame: JSON.stringify({ subscribers, key: id }), acceptedAt };
}

describe.each(factories)('history store conformance - %s', (_name, create) => {
  let clock = 1_700_000_000_000;
  const now = () => clock;
  let store: HistoryStore;

  beforeEach(() => {
    clock = 1_700_000_000_000;
  });

  afterEach(async () => {
    await store.close();
  });

  it('returns messages at or after sinceMs, oldest first, with every field', async () => {
    store = create({ now, maxMessages: 100, maxAgeMs: 60_000 });
    for (let i = 0; i < 5; i++) await store.append(envelope('default', `m${i}`, clock + i * 10));
    clock += 100;
    const all = await store.since('default', 0);
    expect(all.map((e) => e.id)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(all[2]).toEqual(envelope('default', 'm2', 1_700_000_000_020));
    expect((await store.since('default', 1_700_000_000_020)).map((e) => e.id)).toEqual(['m2', 'm3', 'm4']);
  });

  it('keeps the order of appends within one millisecond', async () => {
    store = create({ now, maxMessages: 100, maxAgeMs: 60_000 });
    const ids = ['z', 'a', 'm', 'b'];
    for (const id of ids) await store.append(envelope('default', id, clock));
    expect((await store.since('default', 0)).map((e) => e.id)).toEqual(ids);
  });

  it('keeps at most maxMessages per instance, dropping the oldest', async () => {
    store = create({ now, maxMessages: 3, maxAgeMs: 60_000 });
    for (let i = 0; i < 5; i++) await store.append(envelope('default', `m${i}`, clock + i));
    await store.append(envelope('other', 'o1', clock));
    expect((await store.since('default', 0)).map((e) => e.id)).toEqual(['m2', 'm3', 'm4']);
    expect((await store.since('other', 0)).map((e) => e.id)).toEqual(['o1']);
  });

  it('drops messages older than maxAgeMs', async () => {
    store = create({ now, maxMessages: 100, maxAgeMs: 1_000 });
    await store.append(envelope('default', 'old', clock));
    clock += 600;
    await store.append(envelope('default', 'new', clock));
    clock += 600;
    expect((await store.since('default', 0)).map((e) => e.id)).toEqual(['new']);
    expect(await store.stats('default')).toEqual({ size: 1, oldestAt: clock - 600 });
    clock += 1_000;
    expect(await store.since('default', 0)).toEqual([]);
    expect(await store.stats('default')).toEqual({ size: 0, oldestAt: null });
  });

  it('keeps instances apart', async () => {
    store = create({ now, maxMessages: 100, maxAgeMs: 60_000 });
    await store.append(envelope('a', '1', clock));
    await store.append(envelope('b', '2', clock));
    expect((await store.since('a', 0)).map((e) => e.id)).toEqual(['1']);
    expect((await store.since('b', 0)).map((e) => e.id)).toEqual(['2']);
    expect(await store.since('c', 0)).toEqual([]);
  });

  it('reports size and the oldest message time', async () => {
    store = create({ now, maxMessages: 100, maxAgeMs: 60_000 });
    expect(await store.stats('default')).toEqual({ size: 0, oldestAt: null });
    await store.append(envelope('default', '1', clock - 50));
    await store.append(envelope('default', '2', clock));
    expect(await store.stats('default')).toEqual({ size: 2, oldestAt: clock - 50 });
  });

  it('keeps unicode frames byte for byte', async () => {
    store = create({ now, maxMessages: 100, maxAgeMs: 60_000 });
    const e = { ...envelope('default', 'u', clock), frame: JSON.stringify({ subscribers: ['x'], text: 'héllo ✓ 日本 🎉' }) };
    await store.append(e);
    expect((await store.since('default', 0))[0].frame).toBe(e.frame);
  });
});

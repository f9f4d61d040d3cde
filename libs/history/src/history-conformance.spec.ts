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
  historyMeta: (instance: string) => `{${prefix}${instance}}:meta`,
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
    expect(all[2]).toEqual({ ...sent[2], position: { offset: 3, epoch: expect.stringMatching(/^[0-9a-f]{16}$/) } });
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

  describe('positions', () => {
    it('gives each message the next offset of its instance under one epoch, also on reads', async () => {
      store = create({ maxMessages: 100, maxAgeMs: 60_000 });
      const head = await store.head('default');
      expect(head.offset).toBe(0);
      expect(head.epoch).toMatch(/^[0-9a-f]{16}$/);
      expect(await store.head('default')).toEqual(head); // drawn once
      const p1 = await store.append(envelope('default', 'a'));
      const p2 = await store.append(envelope('default', 'b'));
      const other = await store.append(envelope('other', 'x'));
      expect([p1, p2]).toEqual([
        { offset: 1, epoch: head.epoch },
        { offset: 2, epoch: head.epoch },
      ]);
      expect(other?.offset).toBe(1);
      expect(other?.epoch).not.toBe(head.epoch);
      expect((await store.recent('default', 60_000)).map((e) => e.position)).toEqual([p1, p2]);
      expect(await store.head('default')).toEqual({ offset: 2, epoch: head.epoch });
    });

    it('replays what came after a position, and says it is all only when nothing after it left history', async () => {
      store = create({ maxMessages: 3, maxAgeMs: 60_000 });
      const positions = [];
      for (const id of ['m1', 'm2', 'm3', 'm4', 'm5']) positions.push(await store.append(envelope('default', id)));
      const { epoch } = positions[0]!;
      const after = (offset: number, e = epoch) => store.after('default', { offset, epoch: e });
      // m3..m5 are kept: from offset 2 on, everything is there.
      expect(await after(2)).toMatchObject({ recovered: true, head: { offset: 5, epoch } });
      expect(ids((await after(2)).entries)).toEqual(['m3', 'm4', 'm5']);
      expect(ids((await after(4)).entries)).toEqual(['m5']);
      expect(await after(5)).toEqual({ entries: [], recovered: true, head: { offset: 5, epoch } });
      // m2 was trimmed: a client at offset 1 cannot have everything.
      expect(await after(1)).toMatchObject({ recovered: false });
      expect(ids((await after(1)).entries)).toEqual(['m3', 'm4', 'm5']);
      // Another epoch: offsets mean nothing; every kept message, and not recovered.
      const foreign = await after(4, 'another-epoch');
      expect(foreign.recovered).toBe(false);
      expect(ids(foreign.entries)).toEqual(['m3', 'm4', 'm5']);
      // A position ahead of history is not one of this history's.
      expect(await after(9)).toMatchObject({ recovered: false });
    });

    it('keeps counting after every message aged out, so an old position is not taken for a recent one', async () => {
      store = create({ maxMessages: 100, maxAgeMs: 200 });
      const first = await store.append(envelope('default', 'a'));
      await store.append(envelope('default', 'b'));
      await sleep(300);
      expect(await store.recent('default', 60_000)).toEqual([]);
      expect(await store.after('default', first!)).toMatchObject({ recovered: false, entries: [] });
      expect(await store.after('default', { offset: 2, epoch: first!.epoch })).toMatchObject({ recovered: true });
      const third = await store.append(envelope('default', 'c'));
      expect(third).toEqual({ offset: 3, epoch: first!.epoch });
    });
  });
});

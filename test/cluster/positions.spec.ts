/**
 * Recovery with positions, against real gateway processes: without Redis (the node's
 * memory history), and two nodes on one Redis. A client that asked for positions gets each
 * message's {offset, epoch}; a replay by position sends what came after it and says whether
 * that is provably everything. Clients that did not ask see Aphlict's bytes, unchanged.
 */
import { io, type Socket } from 'socket.io-client';
import { connectSocket, messagesOf, post, sleep, spawnGateway, startRedisServer, type GatewayProcess, type RedisHandle, type TestSocket } from '@tidings/testing';
import { uniquePrefix } from '../support/redis-cluster';

const gateways: GatewayProcess[] = [];
const sockets: TestSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.ws.terminate();
  await Promise.all(gateways.splice(0).map((g) => g.kill()));
});

async function gateway(config: Record<string, unknown> = {}): Promise<GatewayProcess> {
  const g = await spawnGateway({ config });
  gateways.push(g);
  return g;
}

async function socket(url: string, phids: string[], positions: boolean): Promise<TestSocket> {
  const s = await connectSocket(url);
  sockets.push(s);
  s.send('subscribe', phids);
  if (positions) {
    s.send('positions', true);
    await s.waitFor((r) => r.some((f) => f.type === 'positions'), 5_000, 'the positions answer');
  }
  await s.roundTrip();
  return s;
}

type Tidings = { offset: number; epoch: string };
const positionsOf = (s: TestSocket) => messagesOf(s.received).filter((m) => m.type !== 'positions' && m.type !== 'replayed').map((m) => m.tidings as Tidings);
const keys = (s: TestSocket) => messagesOf(s.received).filter((m) => m.key !== undefined).map((m) => m.key);

describe('positions without Redis (memory history)', () => {
  it('numbers deliveries, replays what came after a position and says whether that is all', async () => {
    const g = await gateway({ history: { maxMessages: 5 } });
    const plain = await socket(g.clientUrl, ['PHID-P'], false);
    const first = await socket(g.clientUrl, ['PHID-P'], true);
    const start = first.received.find((f) => f.type === 'positions') as unknown as Tidings;
    expect(start.offset).toBe(0);
    for (const key of ['a', 'b', 'c']) await post(g.adminUrl, { subscribers: ['PHID-P'], key });
    await first.waitFor((r) => messagesOf(r).length === 4, 5_000, 'three numbered messages');
    expect(positionsOf(first)).toEqual([1, 2, 3].map((offset) => ({ offset, epoch: start.epoch })));
    // Plain sockets get exactly what Aphlict sends: no position key.
    await plain.waitFor((r) => messagesOf(r).length === 3, 5_000, 'the plain messages');
    expect(messagesOf(plain.received).every((m) => !('tidings' in m))).toBe(true);

    // The client leaves at offset 3; two more messages; it comes back and asks from there.
    first.ws.terminate();
    for (const key of ['d', 'e']) await post(g.adminUrl, { subscribers: ['PHID-P', 'PHID-OTHER'], key });
    const back = await socket(g.clientUrl, ['PHID-P'], false);
    back.send('replay', { since: { offset: 3, epoch: start.epoch } });
    await back.waitFor((r) => r.some((f) => f.type === 'replayed'), 5_000, 'the replayed frame');
    expect(keys(back)).toEqual(['d', 'e']);
    expect(back.received.find((f) => f.type === 'replayed')).toEqual({ type: 'replayed', recovered: true, offset: 5, epoch: start.epoch });
    expect(positionsOf(back).slice(0, 2).map((p) => p.offset)).toEqual([4, 5]);

    // Five more push a, b, c and d out (maxMessages 5): a client at offset 3 missed d for good.
    for (const key of ['f', 'g', 'h', 'i', 'j']) await post(g.adminUrl, { subscribers: ['PHID-P'], key });
    const late = await socket(g.clientUrl, ['PHID-P'], false);
    late.send('replay', { since: { offset: 3, epoch: start.epoch } });
    await late.waitFor((r) => r.some((f) => f.type === 'replayed'), 5_000, 'the replayed frame');
    expect(late.received.find((f) => f.type === 'replayed')).toMatchObject({ recovered: false, offset: 10 });
    expect(keys(late)).toEqual(['f', 'g', 'h', 'i', 'j']);
  });

  it('tells a client from before a restart that its epoch is gone', async () => {
    const g = await gateway();
    const s = await socket(g.clientUrl, ['PHID-R'], true);
    const before = s.received.find((f) => f.type === 'positions') as unknown as Tidings;
    await g.kill();
    const again = await gateway();
    const t = await socket(again.clientUrl, ['PHID-R'], false);
    t.send('replay', { since: before });
    await t.waitFor((r) => r.some((f) => f.type === 'replayed'), 5_000, 'the replayed frame');
    const replayed = t.received.find((f) => f.type === 'replayed') as unknown as Tidings & { recovered: boolean };
    expect(replayed.recovered).toBe(false);
    expect(replayed.epoch).not.toBe(before.epoch);
  });
});

describe('positions with Redis, two nodes', () => {
  let redis: RedisHandle;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis.stop());

  it.each(['broadcast', 'interest'])("%s bus: delivers every node's messages to a positioned socket once, in offset order, and replays across nodes", async (bus) => {
    const config = { redis: { url: redis.url, keyPrefix: uniquePrefix(`positions-${bus}`), bus } };
    const a = await gateway(config);
    const b = await gateway(config);
    const onB = await socket(b.clientUrl, ['PHID-Q'], true);
    const plainOnB = await socket(b.clientUrl, ['PHID-Q'], false);
    const epoch = (onB.received.find((f) => f.type === 'positions') as unknown as Tidings).epoch;
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const key = `k${i}`;
      sent.push(key);
      await post((i % 2 ? a : b).adminUrl, { subscribers: ['PHID-Q'], key });
    }
    await onB.waitFor((r) => messagesOf(r).length === 21, 5_000, 'twenty numbered messages');
    await plainOnB.waitFor((r) => messagesOf(r).length === 20, 5_000, 'twenty plain messages');
    expect(keys(onB)).toEqual(sent);
    expect(positionsOf(onB)).toEqual(sent.map((_, i) => ({ offset: i + 1, epoch })));
    // Plain sockets get every message once, but no order across nodes: this node's own
    // publishes are delivered at once, the other node's after the trip through Redis.
    expect([...keys(plainOnB)].sort()).toEqual([...sent].sort());
    expect(messagesOf(plainOnB.received).every((m) => !('tidings' in m))).toBe(true);

    // A replay on the other node, from the middle: the rest, and recovered.
    const onA = await socket(a.clientUrl, ['PHID-Q'], false);
    onA.send('replay', { since: { offset: 15, epoch } });
    await onA.waitFor((r) => r.some((f) => f.type === 'replayed'), 5_000, 'the replayed frame');
    expect(keys(onA)).toEqual(sent.slice(15));
    expect(onA.received.find((f) => f.type === 'replayed')).toEqual({ type: 'replayed', recovered: true, offset: 20, epoch });

    // History lost (Redis flushed): a new epoch, and clients learn they must refetch.
    const { Redis } = await import('ioredis');
    const control = new Redis(redis.url);
    await control.flushall();
    control.disconnect();
    await post(a.adminUrl, { subscribers: ['PHID-Q'], key: 'after-flush' });
    const late = await socket(b.clientUrl, ['PHID-Q'], false);
    late.send('replay', { since: { offset: 20, epoch } });
    await late.waitFor((r) => r.some((f) => f.type === 'replayed'), 5_000, 'the replayed frame');
    const replayed = late.received.find((f) => f.type === 'replayed') as unknown as Tidings & { recovered: boolean };
    expect(replayed.recovered).toBe(false);
    expect(replayed.epoch).not.toBe(epoch);
    expect(replayed.offset).toBe(1);
  });

  it('Socket.IO: auth {positions: true} gets the position as the second argument, and replays by position', async () => {
    const g = await gateway({ redis: { url: redis.url, keyPrefix: uniquePrefix('positions-sio') } });
    const s: Socket = io(g.clientUrl.replace(/^ws/, 'http'), { path: '/socket.io/', auth: { positions: true }, transports: ['websocket'], reconnection: false, forceNew: true });
    try {
      const head = await new Promise<Tidings>((resolve, reject) => {
        s.once('positions', resolve);
        s.once('connect_error', reject);
      });
      expect(head.offset).toBe(0);
      expect(await s.timeout(5_000).emitWithAck('subscribe', ['PHID-S'])).toEqual({ ok: true });
      const got: [Record<string, unknown>, Tidings | undefined][] = [];
      s.on('message', (m: Record<string, unknown>, p?: Tidings) => got.push([m, p]));
      for (const key of ['x', 'y']) await post(g.adminUrl, { subscribers: ['PHID-S'], key });
      for (let i = 0; i < 200 && got.length < 2; i++) await sleep(10);
      expect(got.map(([m, p]) => [m.key, p])).toEqual([
        ['x', { offset: 1, epoch: head.epoch }],
        ['y', { offset: 2, epoch: head.epoch }],
      ]);
      expect('tidings' in got[0][0]).toBe(false);
      got.length = 0;
      const ack = await s.timeout(5_000).emitWithAck('replay', { since: { offset: 1, epoch: head.epoch } });
      expect(ack).toEqual({ ok: true, replayed: 1, recovered: true, offset: 2, epoch: head.epoch });
      expect(got.map(([m, p]) => [m.key, p?.offset])).toEqual([['y', 2]]);
    } finally {
      s.close();
    }
  });
});

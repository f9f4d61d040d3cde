/**
 * @tidings/client with positions against real gateway processes on one Redis (and, for the
 * fallback, against a small server that speaks Aphlict's raw protocol and nothing more):
 * - kill -9 of the client's node while publishing: it reconnects to the other node, replays
 *   by position, is told `recovered: true`, and its application sees every acknowledged
 *   message exactly once, those published without a uniqueID included;
 * - history trimmed while it is away: `recovered: false`, the application must refetch;
 * - subscribe() resolves once the server holds the subscription: a publish made right
 *   after it, on another node, arrives;
 * - an Aphlict server ignores the request for positions: the client replays by age, with no
 *   `recovered`, and hands a message's own `tidings` field to the application untouched.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { post, sleep, spawnGateway, startRedisServer, type GatewayProcess, type RedisHandle } from '@tidings/testing';
import { connect, type ClientStatus, type Position, type TidingsClient, type TidingsMessage } from '@tidings/client';
import { deliveryFaults, keysOf, publishSteadily, startBusNodes, subscribedSocket, uniquePrefix } from '../support/redis-cluster';

let redis: RedisHandle;
let nodes: GatewayProcess[] = [];
const clients: TidingsClient[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(() => redis.stop());

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.kill()));
  nodes = [];
});

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function track(client: TidingsClient) {
  clients.push(client);
  const messages: { message: TidingsMessage; position?: Position }[] = [];
  const statuses: ClientStatus[] = [];
  client.on('message', (message, position) => messages.push({ message, position }));
  client.on('status', (s) => statuses.push(s));
  return { client, messages, statuses, keys: () => messages.map((m) => String(m.message.key)) };
}

const opens = (statuses: ClientStatus[]) => statuses.filter((s): s is Extract<ClientStatus, { state: 'open' }> => s.state === 'open');

/**
 * Publishes messages WITHOUT a uniqueID (only their position tells copies apart), one every
 * 1000/ratePerSec ms to the live nodes in turn; bounded in count and time like publishSteadily.
 */
function publishBare(options: { nodes: () => GatewayProcess[]; phid: string; instance: string; ratePerSec: number; max: number; maxMs: number }) {
  const acked: string[] = [];
  const started = Date.now();
  const done = (async () => {
    for (let i = 0; i < options.max && Date.now() - started < options.maxMs; i++) {
      const targets = options.nodes();
      const key = `bare-${i}`;
      try {
        const res = await Promise.race([
          post(targets[i % targets.length].adminUrl, { type: 'notification', key, subscribers: [options.phid] }, { instance: options.instance }),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('publish timed out')), 5_000).unref()),
        ]);
        if (res.status === 200) acked.push(key);
      } catch {
        // not acknowledged: not expected either
      }
      const wait = started + (i + 1) * (1_000 / options.ratePerSec) - Date.now();
      if (wait > 0) await sleep(wait);
    }
  })();
  return { acked, done };
}

describe.each(['aphlict', 'socket.io'] as const)('client with positions over %s, two nodes on one Redis', (transport) => {
  it('kill -9 of its node while publishing: reconnects to the other node, replays by position, recovered, every acknowledged message once (without uniqueID too)', async () => {
    nodes = await startBusNodes(2, { redis: { url: redis.url, keyPrefix: uniquePrefix(`client-positions-${transport}`) } });
    const [victim, survivor] = nodes;
    const PHID = `PHID-POS-${transport}`;
    const reconnect = { initialDelayMs: 200, maxDelayMs: 1_000 };
    const app = track(connect([victim.clientUrl, survivor.clientUrl], { transport, instance: 'acme', reconnect }));
    // Positive control for the messages without uniqueID: the same client without positions.
    const plain = track(connect([victim.clientUrl, survivor.clientUrl], { transport, instance: 'acme', reconnect, positions: false }));
    await Promise.all([app.client.subscribe([PHID]), plain.client.subscribe([PHID])]);
    const control = await subscribedSocket(survivor.clientUrl, [PHID], 'acme');
    expect(app.client.position).not.toBeNull();

    let alive = [...nodes];
    const withIds = publishSteadily({ nodes: () => alive, phids: [PHID], ratePerSec: 25, max: 100, maxMs: 4_000, instance: 'acme' });
    const bare = publishBare({ nodes: () => alive, phid: PHID, instance: 'acme', ratePerSec: 25, max: 100, maxMs: 4_000 });
    await sleep(1_500);
    await victim.kill();
    alive = [survivor];
    await Promise.all([withIds.done, bare.done]);
    const acked = [...withIds.acked, ...bare.acked];
    expect(withIds.acked.length).toBeGreaterThan(70);
    expect(bare.acked.length).toBeGreaterThan(70);

    await until(() => acked.every((k) => app.keys().includes(k)), 'every acknowledged message');
    await sleep(500);
    expect(deliveryFaults(app.keys(), acked)).toEqual({ missing: [], duplicates: [] });
    expect(app.client.url).toBe(survivor.clientUrl);
    expect(opens(app.statuses)).toEqual([
      { state: 'open', reconnected: false },
      { state: 'open', reconnected: true, recovered: true },
    ]);
    expect(app.client.stats).toMatchObject({ reconnects: 1, replays: 1 });
    // Every message came with its position, none with the wire's key; the position is the last one.
    expect(app.messages.every((m) => m.position && !('tidings' in m.message))).toBe(true);
    const last = app.messages[app.messages.length - 1].position!;
    expect(app.client.position).toEqual(last);
    expect(new Set(app.messages.map((m) => m.position!.epoch)).size).toBe(1);

    // The control: what the survivor delivered to a plain raw socket is complete too.
    expect(deliveryFaults(keysOf(control), acked)).toEqual({ missing: [], duplicates: [] });
    await control.close();
    // Without positions, the replay by age overlaps what the client had: messages with a
    // uniqueID are dropped as before, those without reach the application twice.
    await until(() => acked.every((k) => plain.keys().includes(k)), 'every acknowledged message, plain client');
    const plainFaults = deliveryFaults(plain.keys(), acked);
    expect(plainFaults.missing).toEqual([]);
    expect(plainFaults.duplicates.length).toBeGreaterThan(0);
    expect(plainFaults.duplicates.every((k) => k.startsWith('bare-'))).toBe(true);
    expect(opens(plain.statuses).pop()).toEqual({ state: 'open', reconnected: true });
  });

  it('history trimmed while it is away: recovered: false, and it still gets what was kept', async () => {
    const config = { history: { maxMessages: 5 } };
    const redisConfig = { url: redis.url, keyPrefix: uniquePrefix(`client-trimmed-${transport}`) };
    nodes = await startBusNodes(2, { redis: redisConfig, config });
    const [home, other] = nodes;
    const PHID = `PHID-TRIM-${transport}`;
    // Only `home` in its list: while home is down the client stays away.
    const app = track(connect(home.clientUrl, { transport, reconnect: { initialDelayMs: 200, maxDelayMs: 200, jitter: 0 } }));
    await app.client.subscribe([PHID]);
    for (const key of ['k0', 'k1']) expect((await post(other.adminUrl, { type: 'notification', key, subscribers: [PHID] })).status).toBe(200);
    await until(() => app.messages.length === 2, 'the first two messages');
    const before = app.client.position!;
    expect(before.offset).toBe(2);

    await home.kill();
    await until(() => app.statuses.some((s) => s.state === 'reconnecting' && s.attempt >= 2), 'the client away');
    // Ten more while it is away: history keeps the last five (offsets 8 to 12).
    const away = Array.from({ length: 10 }, (_, i) => `a${i}`);
    for (const key of away) expect((await post(other.adminUrl, { type: 'notification', key, subscribers: [PHID] })).status).toBe(200);
    nodes[0] = await spawnGateway({
      clientPort: home.clientPort,
      adminPort: home.adminPort,
      config: { redis: redisConfig, ...config },
    });
    await until(() => opens(app.statuses).length === 2, 'the reconnect');
    expect(opens(app.statuses)[1]).toEqual({ state: 'open', reconnected: true, recovered: false });
    // The open status comes after the replay: what history kept has been delivered already.
    expect(app.keys()).toEqual(['k0', 'k1', ...away.slice(5)]);
    expect(app.messages.slice(2).map((m) => m.position!.offset)).toEqual([8, 9, 10, 11, 12]);
    expect(app.client.position).toEqual({ offset: 12, epoch: before.epoch });
  });

  it('subscribe() resolves once the server holds it: a message published right after, on another node, arrives', async () => {
    nodes = await startBusNodes(2, { redis: { url: redis.url, keyPrefix: uniquePrefix(`client-subscribe-${transport}`) } });
    const [a, b] = nodes;
    for (let round = 0; round < 5; round++) {
      const PHID = `PHID-NOW-${transport}-${round}`;
      const app = track(connect(a.clientUrl, { transport }));
      await app.client.subscribe([PHID]);
      expect((await post(b.adminUrl, { type: 'notification', key: `now-${round}`, subscribers: [PHID] })).status).toBe(200);
      await until(() => app.messages.length === 1, `the message published right after subscribe() (round ${round})`, 5_000);
      await app.client.close();
    }
  });
});

describe('client against an Aphlict server (raw protocol only, no positions)', () => {
  /** Aphlict's client side as far as a client sees it: pongs, unknown commands ignored, no `since`. */
  async function startAphlictLike() {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    const frames: { command: string; data: unknown }[] = [];
    const sockets = new Set<WebSocket>();
    wss.on('connection', (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('message', (raw) => {
        let frame: { command?: unknown; data?: unknown };
        try {
          frame = JSON.parse(raw.toString());
        } catch {
          return;
        }
        if (frame.command === 'ping') return ws.send('{"type":"pong"}');
        frames.push({ command: String(frame.command), data: frame.data });
        // subscribe, unsubscribe and replay are taken in silence; anything else ignored.
      });
    });
    return {
      url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
      frames,
      sockets,
      send: (message: Record<string, unknown>) => {
        for (const ws of sockets) ws.send(JSON.stringify(message));
      },
      close: async () => {
        for (const ws of sockets) ws.terminate();
        await new Promise((r) => wss.close(r));
      },
    };
  }

  it('no answer to positions: replays by age on reconnect, no recovered, and a message field named tidings reaches the app untouched', async () => {
    const server = await startAphlictLike();
    try {
      const app = track(connect(server.url, { reconnect: { initialDelayMs: 100, maxDelayMs: 100 }, replayMarginMs: 1_000 }));
      await app.client.subscribe(['PHID-A']);
      expect(server.frames).toEqual([
        { command: 'positions', data: true },
        { command: 'subscribe', data: ['PHID-A'] },
      ]);
      expect(app.client.position).toBeNull();
      const own = { type: 'notification', key: 'k', subscribers: ['PHID-A'], uniqueID: 'u1', tidings: { offset: 5, epoch: 'the-app-s-own' } };
      server.send(own);
      await until(() => app.messages.length === 1, 'the message');
      expect(app.messages[0]).toEqual({ message: own, position: undefined });
      expect(app.client.position).toBeNull();

      for (const ws of server.sockets) ws.close(1001, 'going away');
      await until(() => opens(app.statuses).length === 2, 'the reconnect');
      expect(opens(app.statuses)).toEqual([
        { state: 'open', reconnected: false },
        { state: 'open', reconnected: true },
      ]);
      const after = server.frames.slice(2);
      expect(after.map((f) => f.command)).toEqual(['positions', 'subscribe', 'replay']);
      const replay = after[2].data as Record<string, unknown>;
      expect(Object.keys(replay)).toEqual(['age']);
      expect(replay.age).toBeGreaterThanOrEqual(1_000);
      expect(replay.age).toBeLessThan(5_000);
      // A duplicate by uniqueID is still dropped.
      server.send(own);
      await sleep(200);
      expect(app.messages).toHaveLength(1);
      expect(app.client.stats.duplicates).toBe(1);
    } finally {
      await server.close();
    }
  });
});

/**
 * Three gateway processes sharing one Redis (bus and history), no relay. Every socket on
 * every node gets each message exactly once, whichever node it was published to; history
 * is shared (a 200 means replayable from every node); instances stay apart, replay included.
 */
import {
  getStatus,
  notification,
  post,
  sleep,
  startRedis,
  type GatewayProcess,
  type RedisHandle,
  type TestSocket,
} from '@tidings/testing';
import { deliveryFaults, keysOf, startBusNodes, subscribedSocket, uniquePrefix } from '../support/redis-cluster';

const PHID = 'PHID-USER-bus';

let redis: RedisHandle;
let nodes: GatewayProcess[] = [];
const sockets: TestSocket[] = [];

async function socketOn(node: GatewayProcess, phids: string[], instance?: string): Promise<TestSocket> {
  const s = await subscribedSocket(node.clientUrl, phids, instance);
  sockets.push(s);
  return s;
}

beforeAll(async () => {
  redis = await startRedis();
  nodes = await startBusNodes(3, { redis: { url: redis.url, keyPrefix: uniquePrefix('bus') } });
});

afterAll(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.stop('SIGINT')));
  if (redis.owned) await redis.stop();
});

describe('redis bus - three nodes', () => {
  it('every node reports its bus connected, each with its own node id', async () => {
    const states = await Promise.all(nodes.map(async (n) => (await getStatus(n.adminUrl)).bus as { connected: boolean; nodeId: string }));
    expect(states.every((b) => b.connected)).toBe(true);
    expect(new Set(states.map((b) => b.nodeId)).size).toBe(3);
  });

  it('a message published to each node in turn reaches every socket on every node exactly once', async () => {
    const byNode = await Promise.all(nodes.map(async (n) => [await socketOn(n, [PHID]), await socketOn(n, [PHID, 'PHID-other'])]));
    const bystanders = await Promise.all(nodes.map((n) => socketOn(n, ['PHID-USER-nobody'])));
    const published: string[] = [];
    for (let round = 0; round < 3; round++) {
      for (const node of nodes) {
        const message = notification([PHID]);
        const res = await post(node.adminUrl, message);
        expect(res.status).toBe(200);
        published.push(message.key as string);
      }
    }
    const everyone = byNode.flat();
    await Promise.all(everyone.map((s) => s.waitFor(() => published.every((k) => keysOf(s).includes(k)), 10_000, 'all messages')));
    await sleep(300); // room for a late duplicate
    await Promise.all(sockets.map((s) => s.roundTrip()));
    for (const s of everyone) expect(deliveryFaults(keysOf(s), published)).toEqual({ missing: [], duplicates: [] });
    for (const s of everyone) expect(keysOf(s).length).toBe(published.length);
    for (const s of bystanders) expect(keysOf(s)).toEqual([]);
    const statuses = await Promise.all(nodes.map((n) => getStatus(n.adminUrl)));
    // Each node got 6 of the 9 from the bus (the other 3 were published to it) and dropped its own echoes.
    for (const st of statuses) expect(st['messages.fromBus']).toBeGreaterThanOrEqual(6);
  });

  it('a 200 means the message is replayable from every node at once', async () => {
    for (const [i, node] of nodes.entries()) {
      const message = notification([PHID]);
      expect((await post(node.adminUrl, message)).status).toBe(200);
      const other = nodes[(i + 1) % nodes.length];
      const late = await socketOn(other, [PHID]);
      late.send('replay', { age: 60_000 });
      await late.waitFor(() => keysOf(late).includes(message.key as string), 5_000, 'the replayed message');
    }
  });

  it('keeps instances apart across nodes, replay included', async () => {
    const alphaOn1 = await socketOn(nodes[1], [PHID], 'alpha');
    const betaOn1 = await socketOn(nodes[1], [PHID], 'beta');
    const defaultOn2 = await socketOn(nodes[2], [PHID]);
    const toAlpha = notification([PHID]);
    const toBeta = notification([PHID]);
    expect((await post(nodes[0].adminUrl, toAlpha, { instance: 'alpha' })).status).toBe(200);
    expect((await post(nodes[2].adminUrl, toBeta, { instance: 'beta' })).status).toBe(200);
    await alphaOn1.waitFor(() => keysOf(alphaOn1).includes(toAlpha.key as string), 5_000, 'alpha message');
    await betaOn1.waitFor(() => keysOf(betaOn1).includes(toBeta.key as string), 5_000, 'beta message');
    await sleep(200);
    await Promise.all([alphaOn1, betaOn1, defaultOn2].map((s) => s.roundTrip()));
    expect(keysOf(alphaOn1)).toEqual([toAlpha.key]);
    expect(keysOf(betaOn1)).toEqual([toBeta.key]);
    expect(keysOf(defaultOn2)).toEqual([]);

    // Replay on a third node sees only its own instance's history.
    const alphaReplay = await socketOn(nodes[2], [PHID], 'alpha');
    const gammaReplay = await socketOn(nodes[2], [PHID], 'gamma');
    alphaReplay.send('replay', { age: 60_000 });
    gammaReplay.send('replay', { age: 60_000 });
    await alphaReplay.waitFor(() => keysOf(alphaReplay).length > 0, 5_000, 'alpha replay');
    await gammaReplay.roundTrip();
    expect(keysOf(alphaReplay)).toEqual([toAlpha.key]);
    expect(keysOf(gammaReplay)).toEqual([]);
    expect((await getStatus(nodes[1].adminUrl, 'alpha'))['history.size']).toBe(1);
    expect((await getStatus(nodes[0].adminUrl, 'beta'))['history.size']).toBe(1);
  });

  it('a message without uniqueID, or published twice, is delivered once per socket', async () => {
    const s = await socketOn(nodes[1], [PHID]);
    const plain = notification([PHID]);
    delete plain.uniqueID;
    const twice = notification([PHID]);
    expect((await post(nodes[0].adminUrl, plain)).status).toBe(200);
    expect((await post(nodes[0].adminUrl, twice)).status).toBe(200);
    expect((await post(nodes[2].adminUrl, twice)).status).toBe(200);
    await s.waitFor(() => keysOf(s).length >= 2, 5_000, 'two messages');
    await sleep(300);
    await s.roundTrip();
    expect(keysOf(s).sort()).toEqual([plain.key, twice.key].sort());
    // History kept the twice-published id once: a replay returns it once.
    const r = await socketOn(nodes[1], [PHID]);
    r.send('replay', { age: 60_000 });
    await r.waitFor(() => keysOf(r).includes(twice.key as string), 5_000, 'replay');
    await r.roundTrip();
    expect(keysOf(r).filter((k) => k === twice.key)).toHaveLength(1);
  });
});

describe('redis bus - touched', () => {
  it("a node whose fingerprint is in a message's touched neither delivers nor records it, whichever path brings it", async () => {
    const [first, second, third] = nodes;
    const onFirst = await socketOn(first, ['PHID-USER-touched']);
    const onSecond = await socketOn(second, ['PHID-USER-touched']);
    const onThird = await socketOn(third, ['PHID-USER-touched']);
    const before = (await getStatus(second.adminUrl))['messages.touchedDropped'] as number;
    const message = notification(['PHID-USER-touched'], { touched: [second.fingerprint] });
    expect((await post(first.adminUrl, message)).status).toBe(200);
    // Positive control: the nodes not in touched deliver it.
    await onFirst.waitFor((r) => r.some((m) => m.key === message.key), 5_000, 'the message on the first node');
    await onThird.waitFor((r) => r.some((m) => m.key === message.key), 5_000, 'the message on the third node');
    // Then a later message, which the second node does deliver: the touched one came before it.
    const later = notification(['PHID-USER-touched']);
    expect((await post(first.adminUrl, later)).status).toBe(200);
    await onSecond.waitFor((r) => r.some((m) => m.key === later.key), 5_000, 'the later message on the second node');
    expect(onSecond.received.some((m) => m.key === message.key)).toBe(false);
    expect((await getStatus(second.adminUrl))['messages.touchedDropped']).toBe(before + 1);
  });
});

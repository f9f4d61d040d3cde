/**
 * Bus and Aphlict relay both on: three nodes share one Redis and each lists every node
 * (itself included) in `cluster`. Every message reaches each node by two paths; every
 * socket must still get it exactly once, and shared history must hold it once.
 */
import { getStatus, notification, post, sleep, startRedis, type GatewayProcess, type RedisHandle, type TestSocket } from '@tidings/testing';
import { deliveryFaults, keysOf, startBusNodes, subscribedSocket, uniquePrefix } from '../support/redis-cluster';

const PHID = 'PHID-USER-both';

let redis: RedisHandle;
let nodes: GatewayProcess[] = [];
const sockets: TestSocket[] = [];

beforeAll(async () => {
  redis = await startRedis();
  nodes = await startBusNodes(3, {
    redis: { url: redis.url, keyPrefix: uniquePrefix('bus-relay') },
    relay: true,
    config: { relay: { timeoutMs: 1_000, retryMinMs: 100, retryMaxMs: 1_000 } },
  });
});

afterAll(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.stop('SIGINT')));
  if (redis.owned) await redis.stop();
});

describe('redis bus and relay together', () => {
  it('every socket on every node gets each message exactly once, and history keeps it once', async () => {
    for (const node of nodes) {
      for (let i = 0; i < 2; i++) sockets.push(await subscribedSocket(node.clientUrl, [PHID]));
    }
    const published: string[] = [];
    for (let round = 0; round < 4; round++) {
      for (const node of nodes) {
        const message = notification([PHID]);
        if (round === 3) delete message.uniqueID; // ids the first node assigns travel too
        const res = await post(node.adminUrl, message);
        expect(res.status).toBe(200);
        published.push(message.key as string);
      }
    }
    await Promise.all(sockets.map((s) => s.waitFor(() => published.every((k) => keysOf(s).includes(k)), 10_000, 'all messages')));
    await sleep(600); // the relay path is slower: give its copies time to arrive
    await Promise.all(sockets.map((s) => s.roundTrip()));
    for (const s of sockets) expect(deliveryFaults(keysOf(s), published)).toEqual({ missing: [], duplicates: [] });
    for (const s of sockets) expect(keysOf(s)).toHaveLength(published.length);

    const statuses = await Promise.all(nodes.map((n) => getStatus(n.adminUrl)));
    // Both paths carried copies: some arrived twice at a node and were dropped there.
    const dropped = statuses.reduce((sum, st) => sum + (st['messages.duplicatesDropped'] as number) + (st['messages.touchedDropped'] as number), 0);
    expect(dropped).toBeGreaterThan(0);
    for (const st of statuses) expect(st['history.size']).toBe(published.length);

    const late = await subscribedSocket(nodes[2].clientUrl, [PHID]);
    sockets.push(late);
    late.send('replay', { age: 60_000 });
    await late.waitFor(() => keysOf(late).length >= published.length, 5_000, 'replay');
    await sleep(100);
    await late.roundTrip();
    expect(deliveryFaults(keysOf(late), published)).toEqual({ missing: [], duplicates: [] });
  });
});

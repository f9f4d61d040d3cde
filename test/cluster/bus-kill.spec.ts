/**
 * kill -9 of one node while publishing at a steady rate: its clients reconnect to another
 * node and, after `replay`, have every message that was acknowledged (200) by any node.
 * The surviving nodes' sockets get each acknowledged message exactly once.
 */
import { sleep, startRedis, type GatewayProcess, type RedisHandle, type TestSocket } from '@tidings/testing';
import { deliveryFaults, keysOf, publishSteadily, startBusNodes, subscribedSocket, uniquePrefix } from '../support/redis-cluster';

const PHID = 'PHID-USER-kill';

let redis: RedisHandle;
let nodes: GatewayProcess[] = [];
const sockets: TestSocket[] = [];

beforeAll(async () => {
  redis = await startRedis();
  nodes = await startBusNodes(3, { redis: { url: redis.url, keyPrefix: uniquePrefix('bus-kill'), commandTimeoutMs: 500 } });
});

afterAll(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.kill()));
  if (redis.owned) await redis.stop();
});

describe('redis bus - kill -9 of a node while publishing', () => {
  it('its clients reconnect elsewhere and, after replay, have every acknowledged message', async () => {
    const survivors = [nodes[0], nodes[1]];
    const victim = nodes[2];
    const steady: TestSocket[] = [];
    for (const node of survivors) for (let i = 0; i < 2; i++) steady.push(await subscribedSocket(node.clientUrl, [PHID]));
    const orphans: TestSocket[] = [];
    for (let i = 0; i < 3; i++) orphans.push(await subscribedSocket(victim.clientUrl, [PHID]));
    sockets.push(...steady, ...orphans);

    let alive = [...nodes];
    const publisher = publishSteadily({ nodes: () => alive, phids: [PHID], ratePerSec: 40, max: 160, maxMs: 6_000 });
    await sleep(1_200);
    await victim.kill(); // SIGKILL: no drain, no goodbye
    alive = survivors;
    const closes = await Promise.all(orphans.map((s) => s.closed));
    expect(closes.every((c) => c.code === 1006)).toBe(true);

    // The clients come back through the load balancer to a surviving node, then replay.
    await sleep(300);
    const reconnected: TestSocket[] = [];
    for (const [i] of orphans.entries()) {
      const s = await subscribedSocket(survivors[i % 2].clientUrl, [PHID]);
      s.send('replay', { age: 60_000 });
      reconnected.push(s);
    }
    sockets.push(...reconnected);
    await publisher.done;
    const acked = publisher.acked;
    expect(acked.length).toBeGreaterThan(100);
    // Publishes to the dead node failed (no answer): they were never acknowledged.
    expect(publisher.failed.every((f) => f.status === 0)).toBe(true);

    for (const s of steady) {
      await s.waitFor(() => acked.every((k) => keysOf(s).includes(k)), 10_000, 'every acknowledged message');
    }
    for (const [i, s] of reconnected.entries()) {
      const before = keysOf(orphans[i]);
      await s.waitFor(() => acked.every((k) => before.includes(k) || keysOf(s).includes(k)), 10_000, 'every acknowledged message');
      // The replay alone covers everything acknowledged within the window.
      expect(deliveryFaults(keysOf(s), acked).missing).toEqual([]);
    }
    await sleep(300);
    await Promise.all([...steady, ...reconnected].map((s) => s.roundTrip()));
    for (const s of steady) expect(deliveryFaults(keysOf(s), acked).duplicates).toEqual([]);
    for (const n of survivors) expect(n.child.exitCode).toBeNull();
  });
});

/**
 * A real Redis Cluster (three masters, no replicas, started here): two gateways configured
 * with redis.clusterNodes deliver across nodes and replay works. The history script keeps
 * an instance's keys in one slot (hash tags); pub/sub is classic PUBLISH, which the cluster
 * broadcasts to every node, so the two gateways' subscribers may sit on different masters.
 */
import { Cluster } from 'ioredis';
import { getStatus, notification, post, sleep, type GatewayProcess, type TestSocket } from '@tidings/testing';
import {
  deliveryFaults,
  keysOf,
  startBusNodes,
  startRedisCluster,
  subscribedSocket,
  uniquePrefix,
  type RedisClusterHandle,
} from '../support/redis-cluster';

const PHID = 'PHID-USER-cluster';

let cluster: RedisClusterHandle;
let nodes: GatewayProcess[] = [];
const sockets: TestSocket[] = [];
const prefix = uniquePrefix('redis-cluster');

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  nodes = await startBusNodes(2, {
    redis: { clusterNodes: cluster.nodes, keyPrefix: prefix },
    config: { health: { canaryIntervalMs: 200, canaryMaxAgeMs: 1_000 } },
  });
}, 60_000);

afterAll(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.stop('SIGINT')));
  await cluster?.stop();
});

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('redis cluster', () => {
  it('two gateways deliver across nodes exactly once, and replay from shared history', async () => {
    // A node may see the cluster's connection pool flap while slots are first loaded: it
    // reports down, reconnects and resubscribes by itself.
    for (const n of nodes) await until(async () => ((await getStatus(n.adminUrl)).bus as { connected: boolean }).connected, 10_000, 'bus up');
    // Ready: a canary made the round trip through the cluster.
    for (const n of nodes) await until(async () => (await fetch(`${n.adminUrl}/readyz`)).status === 200, 5_000, 'ready');
    const onA = await subscribedSocket(nodes[0].clientUrl, [PHID]);
    const onB = await subscribedSocket(nodes[1].clientUrl, [PHID]);
    sockets.push(onA, onB);
    // Several instances, so history keys land in different slots (and masters).
    const instances = ['default', 'alpha', 'beta', 'gamma', 'delta'];
    const published: string[] = [];
    for (let i = 0; i < 6; i++) {
      const message = notification([PHID]);
      const res = await post(nodes[i % 2].adminUrl, message);
      expect(res.status).toBe(200);
      published.push(message.key as string);
    }
    for (const s of [onA, onB]) await s.waitFor(() => published.every((k) => keysOf(s).includes(k)), 5_000, 'all messages');
    await sleep(200);
    await Promise.all([onA, onB].map((s) => s.roundTrip()));
    for (const s of [onA, onB]) expect(deliveryFaults(keysOf(s), published)).toEqual({ missing: [], duplicates: [] });

    const perInstance = new Map<string, string>();
    for (const instance of instances.slice(1)) {
      const message = notification([PHID]);
      expect((await post(nodes[0].adminUrl, message, { instance })).status).toBe(200);
      perInstance.set(instance, message.key as string);
    }
    const replayB = await subscribedSocket(nodes[1].clientUrl, [PHID]);
    sockets.push(replayB);
    replayB.send('replay', { age: 60_000 });
    await replayB.waitFor(() => keysOf(replayB).length >= published.length, 5_000, 'replay');
    await sleep(100);
    await replayB.roundTrip();
    expect(keysOf(replayB)).toEqual(published);
    for (const [instance, key] of perInstance) {
      const s = await subscribedSocket(nodes[1].clientUrl, [PHID], instance);
      sockets.push(s);
      s.send('replay', { age: 60_000 });
      await s.waitFor(() => keysOf(s).length > 0, 5_000, `replay of ${instance}`);
      expect(keysOf(s)).toEqual([key]);
    }

    // The instances' history keys really are spread over more than one master.
    const client = new Cluster(cluster.nodes.split(',').map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) })));
    try {
      await new Promise((resolve, reject) => {
        client.once('ready', resolve);
        client.once('error', reject);
      });
      const owners = new Set<number>();
      for (const master of client.nodes('master')) {
        const keys = await master.keys(`*${prefix}*log*`);
        if (keys.length) owners.add(master.options.port as number);
      }
      expect(owners.size).toBeGreaterThan(1);
    } finally {
      client.disconnect();
    }
  });
});

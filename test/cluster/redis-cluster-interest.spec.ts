/**
 * Routing by interest on a real Redis Cluster (three masters, started here): sharded pub/sub.
 * The append script SPUBLISHes to each interested gateway's channel in the instance's slot,
 * so a message crosses only the shard that owns its instance; the gateways subscribe per
 * shard. Several instances spread over the masters.
 */
import { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { getStatus, notification, post, sleep, type GatewayProcess, type TestSocket } from '@tidings/testing';
import { deliveryFaults, keysOf, startBusNodes, startRedisCluster, subscribedSocket, uniquePrefix, type RedisClusterHandle } from '../support/redis-cluster';

let cluster: RedisClusterHandle;
let nodes: GatewayProcess[] = [];
const sockets: TestSocket[] = [];
const prefix = uniquePrefix('cluster-interest');
const INSTANCES = ['default', 'alpha', 'beta', 'gamma', 'delta', 'epsilon'];

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  nodes = await startBusNodes(3, {
    redis: { clusterNodes: cluster.nodes, keyPrefix: prefix, bus: 'interest' },
    config: { health: { canaryIntervalMs: 200, canaryMaxAgeMs: 2_000 } },
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

/** The master that owns a key's slot (port). */
async function ownerOf(key: string): Promise<number> {
  const client = new Cluster(cluster.nodes.split(',').map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) })));
  try {
    await new Promise((resolve, reject) => {
      client.once('ready', resolve);
      client.once('error', reject);
    });
    const slot = calculateSlot(key);
    const owner = (client as unknown as { slots: string[][] }).slots[slot][0];
    return Number(owner.split(':')[1]);
  } finally {
    client.disconnect();
  }
}

it('routes by interest over sharded pub/sub: each message once, to the gateways that want it, through its own shard only', async () => {
  for (const n of nodes) await until(async () => (await fetch(`${n.adminUrl}/readyz`)).status === 200, 15_000, 'ready');
  const [a, b, c] = nodes;
  // Sockets of every instance on A and B; C holds none of these PHIDs.
  const subs = new Map<string, TestSocket[]>();
  for (const instance of INSTANCES) {
    const s = [await subscribedSocket(a.clientUrl, ['PHID-CI'], instance), await subscribedSocket(b.clientUrl, ['PHID-CI'], instance)];
    sockets.push(...s);
    subs.set(instance, s);
  }
  const before = await Promise.all(nodes.map(async (n) => ((await getStatus(n.adminUrl)).bus as { received: number }).received));
  // Count each master's published messages: a message's instance decides its shard.
  const masters = cluster.nodes.split(',').map((hp) => Number(hp.split(':')[1]));
  const statsOf = async () =>
    new Map(
      await Promise.all(
        masters.map(async (port) => {
          const r = new Redis(port, '127.0.0.1');
          const info = await r.info('commandstats');
          r.disconnect();
          const m = /cmdstat_spublish:calls=(\d+)/.exec(info);
          return [port, m ? Number(m[1]) : 0] as const;
        }),
      ),
    );
  const spublishBefore = await statsOf();
  const published = new Map<string, string[]>();
  for (const instance of INSTANCES) {
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) {
      const message = notification(['PHID-CI']);
      expect((await post(c.adminUrl, message, { instance })).status).toBe(200);
      keys.push(message.key as string);
    }
    published.set(instance, keys);
  }
  for (const [instance, s] of subs) {
    for (const socket of s) await socket.waitFor(() => published.get(instance)!.every((k) => keysOf(socket).includes(k)), 5_000, `${instance}'s messages`);
  }
  await sleep(200);
  for (const [instance, s] of subs) {
    for (const socket of s) {
      await socket.roundTrip();
      expect(deliveryFaults(keysOf(socket), published.get(instance)!)).toEqual({ missing: [], duplicates: [] });
    }
  }
  const after = await Promise.all(nodes.map(async (n) => ((await getStatus(n.adminUrl)).bus as { received: number }).received));
  const total = INSTANCES.length * 3;
  expect(after.map((x, i) => x - before[i])).toEqual([total, total, 0]);

  // Each instance's messages were SPUBLISHed by the master that owns its slot: two copies
  // each (A and B), and the canaries of the gateways on the canary instance's master.
  const spublishAfter = await statsOf();
  const expected = new Map(masters.map((p) => [p, 0]));
  for (const instance of INSTANCES) {
    const owner = await ownerOf(`{${prefix}h:${instance}}:log:${instance}`);
    expected.set(owner, expected.get(owner)! + 3 * 2);
  }
  const canaryOwner = await ownerOf(`{${prefix}h:~tidings}:gw:~tidings`);
  for (const port of masters) {
    const calls = spublishAfter.get(port)! - spublishBefore.get(port)!;
    if (port === canaryOwner) expect(calls).toBeGreaterThanOrEqual(expected.get(port)!);
    else expect(calls).toBe(expected.get(port));
  }
  expect(new Set([...expected.values()].filter((n) => n > 0)).size).toBeGreaterThan(0);
  expect([...expected.values()].filter((n) => n > 0).length).toBeGreaterThan(1); // spread over shards
});

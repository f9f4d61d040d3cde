/**
 * Nodes whose Redis is down when they start: they start anyway, say so in logs and
 * /status/, serve local sockets and the relay, answer publishes 503 history_unavailable
 * quickly, keep retrying, and once Redis is up deliver across nodes and replay. A retry
 * of a refused message is then stored (200) without being delivered twice.
 */
import { getStatus, notification, post, sleep, startRedis, type GatewayProcess, type RedisHandle, type TestSocket } from '@tidings/testing';
import { keysOf, startBusNodes, subscribedSocket, uniquePrefix } from '../support/redis-cluster';

const PHID = 'PHID-USER-downstart';

let redis: RedisHandle;
let nodes: GatewayProcess[] = [];
const sockets: TestSocket[] = [];

beforeAll(async () => {
  redis = await startRedis({ own: true });
  await redis.stop();
});

afterAll(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.kill()));
  await redis.stop();
});

type BusStatus = { connected: boolean; nodeId: string; downSince: number | null };
const busOf = async (n: GatewayProcess) => (await getStatus(n.adminUrl)).bus as BusStatus;

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('redis down at start', () => {
  it('nodes start, serve sockets and the relay, and join the bus once Redis is up', async () => {
    const started = Date.now();
    nodes = await startBusNodes(2, {
      redis: { url: redis.url, keyPrefix: uniquePrefix('down-start'), commandTimeoutMs: 500 },
      relay: true,
      config: {
        relay: { timeoutMs: 1_000, retryMinMs: 100, retryMaxMs: 1_000 },
        health: { canaryIntervalMs: 200, canaryMaxAgeMs: 1_000 },
      },
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    const [a, b] = nodes;
    for (const n of nodes) {
      expect(n.logs.some((l) => l.msg === 'bus: down, retrying' || l.msg === 'redis: connection failed, retrying')).toBe(true);
      const bus = await busOf(n);
      expect(bus.connected).toBe(false);
      expect(bus.downSince).toEqual(expect.any(Number));
      expect((await fetch(`${n.adminUrl}/readyz`)).status).toBe(503);
    }

    const onA = await subscribedSocket(a.clientUrl, [PHID]);
    const onB = await subscribedSocket(b.clientUrl, [PHID]);
    sockets.push(onA, onB);
    // Without Redis: not durable, so 503, but local sockets and the relay still deliver.
    const early = notification([PHID]);
    const t0 = Date.now();
    const res = await post(a.adminUrl, early);
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: 'history_unavailable' });
    await onA.waitFor(() => keysOf(onA).includes(early.key as string), 5_000, 'local delivery');
    await onB.waitFor(() => keysOf(onB).includes(early.key as string), 5_000, 'relay delivery');
    expect((await getStatus(a.adminUrl))['history.error']).toEqual(expect.any(String));

    await redis.start();
    await until(async () => (await busOf(a)).connected && (await busOf(b)).connected, 10_000, 'both buses connected');
    for (const n of nodes) expect(n.logs.some((l) => l.msg === 'bus: connected again')).toBe(true);
    // Ready once a canary made the round trip through Redis.
    for (const n of nodes) await until(async () => (await fetch(`${n.adminUrl}/readyz`)).status === 200, 5_000, 'ready');

    const later = notification([PHID]);
    expect((await post(b.adminUrl, later)).status).toBe(200);
    for (const s of [onA, onB]) await s.waitFor(() => keysOf(s).includes(later.key as string), 5_000, 'delivery after Redis came up');
    const replayer = await subscribedSocket(a.clientUrl, [PHID]);
    sockets.push(replayer);
    replayer.send('replay', { age: 60_000 });
    await replayer.waitFor(() => keysOf(replayer).includes(later.key as string), 5_000, 'replay from shared history');
    await sleep(200);
    await Promise.all([onA, onB, replayer].map((s) => s.roundTrip()));
    expect(keysOf(onA)).toEqual([early.key, later.key]);
    expect(keysOf(onB)).toEqual([early.key, later.key]);
    // The early message never reached shared history (it was answered 503).
    expect(keysOf(replayer)).toEqual([later.key]);

    // The publisher retries the refused message: it is stored now (200), not delivered twice.
    expect((await post(a.adminUrl, early)).status).toBe(200);
    const second = await subscribedSocket(b.clientUrl, [PHID]);
    sockets.push(second);
    second.send('replay', { age: 60_000 });
    await second.waitFor(() => keysOf(second).length >= 2, 5_000, 'replay with the retried message');
    await sleep(200);
    await Promise.all([onA, onB, second].map((s) => s.roundTrip()));
    // History is in the order messages were stored (Redis's clock): the retry came last.
    expect(keysOf(second)).toEqual([later.key, early.key]);
    expect(keysOf(onA)).toEqual([early.key, later.key]);
    expect(keysOf(onB)).toEqual([early.key, later.key]);
    for (const n of nodes) expect(n.child.exitCode).toBeNull();
  });
});

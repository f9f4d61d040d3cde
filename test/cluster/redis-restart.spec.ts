/**
 * Restart of Redis while three nodes publish at a steady rate: publishes during the outage
 * are refused (503, fast), nothing crashes, every node resubscribes, and every socket on
 * every node ends with every acknowledged message exactly once (live, or by the backfill
 * a node runs from shared history when its bus comes back).
 */
import { getStatus, sleep, startRedis, type GatewayProcess, type RedisHandle, type TestSocket } from '@tidings/testing';
import { deliveryFaults, keysOf, publishSteadily, startBusNodes, subscribedSocket, uniquePrefix } from '../support/redis-cluster';

const PHID = 'PHID-USER-restart';

let redis: RedisHandle;
let nodes: GatewayProcess[] = [];
const sockets: TestSocket[] = [];

beforeAll(async () => {
  redis = await startRedis({ own: true });
  nodes = await startBusNodes(3, { redis: { url: redis.url, keyPrefix: uniquePrefix('restart'), commandTimeoutMs: 500 } });
});

afterAll(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.kill()));
  await redis.stop();
});

async function busConnected(node: GatewayProcess): Promise<boolean> {
  return ((await getStatus(node.adminUrl)).bus as { connected: boolean }).connected;
}

describe('redis restart while publishing', () => {
  it('every socket on every node ends with every acknowledged message, once; no process crashed', async () => {
    for (const node of nodes) for (let i = 0; i < 2; i++) sockets.push(await subscribedSocket(node.clientUrl, [PHID]));

    const publisher = publishSteadily({ nodes: () => nodes, phids: [PHID], ratePerSec: 40, max: 240, maxMs: 9_000 });
    await sleep(1_500);
    const ackedBefore = publisher.acked.length;
    await redis.stop();
    // While Redis is down: refused quickly, reported in /status/.
    await sleep(800);
    expect((await Promise.all(nodes.map(busConnected))).some((c) => !c)).toBe(true);
    const failedDuring = publisher.failed.length;
    await sleep(700);
    await redis.start();
    await publisher.done;
    const acked = publisher.acked;

    expect(ackedBefore).toBeGreaterThan(20);
    expect(acked.length).toBeGreaterThan(ackedBefore + 20); // publishing resumed after the restart
    expect(failedDuring).toBeGreaterThan(0);
    expect(publisher.failed.every((f) => f.status === 503)).toBe(true);

    for (const [i, s] of sockets.entries()) {
      try {
        await s.waitFor(() => acked.every((k) => keysOf(s).includes(k)), 10_000, 'every acknowledged message');
      } catch {
        // Say which messages are missing where, and what each node's bus did, for the next time.
        const { missing } = deliveryFaults(keysOf(s), acked);
        const busLines = nodes.map((n, j) => `node ${j}: ${JSON.stringify(n.logs.filter((l) => String(l.msg).startsWith('bus')).map((l) => l.msg))}`);
        throw new Error(
          `socket ${i} (node ${Math.floor(i / 2)}) lacks ${missing.length} of ${acked.length} acknowledged messages: ${missing.join(', ')}; ` +
            `${ackedBefore} were acknowledged before Redis stopped (the last: ${acked[ackedBefore - 1]}); ${busLines.join('; ')}`,
        );
      }
    }
    await sleep(300);
    await Promise.all(sockets.map((s) => s.roundTrip()));
    for (const s of sockets) expect(deliveryFaults(keysOf(s), acked)).toEqual({ missing: [], duplicates: [] });

    for (const n of nodes) expect(n.child.exitCode).toBeNull();
    expect(await Promise.all(nodes.map(busConnected))).toEqual([true, true, true]);
    for (const n of nodes) {
      const msgs = n.logs.map((l) => l.msg);
      expect(msgs).toContain('bus: down, retrying');
      expect(msgs).toContain('bus: connected again');
    }
  });
});

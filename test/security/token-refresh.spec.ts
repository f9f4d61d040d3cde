/**
 * Short-lived connection tokens in a long-lived client: @tidings/client asks getToken()
 * before every connection, so after its node is killed it reconnects to another one with a
 * fresh token, and replays what it missed. Two gateway processes on one Redis, tokens
 * required; both transports.
 */
import { mintClientToken } from '@tidings/auth';
import { connect, type TidingsClient, type TidingsMessage } from '@tidings/client';
import { sleep, startRedis, type GatewayProcess, type RedisHandle } from '@tidings/testing';
import { deliveryFaults, publishSteadily, startBusNodes, subscribedSocket, uniquePrefix } from '../support/redis-cluster';

const SECRET = 'the-shared-client-token-secret-32+';
let redis: RedisHandle;
let nodes: GatewayProcess[] = [];
const clients: TidingsClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  if (redis.owned) await redis.stop();
});
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

describe.each(['aphlict', 'socket.io'] as const)('client over %s with getToken()', (transport) => {
  it('fetches a fresh token for the reconnect after its node is killed, and misses nothing', async () => {
    nodes = await startBusNodes(2, {
      redis: { url: redis.url, keyPrefix: uniquePrefix(`refresh-${transport}`) },
      config: { auth: { clientTokens: { mode: 'required', hmacSecret: SECRET } } },
    });
    const [victim, survivor] = nodes;
    const PHID = `PHID-USER-refresh-${transport}`;
    const issued: string[] = [];
    const client = connect([victim.clientUrl, survivor.clientUrl], {
      transport,
      reconnect: { initialDelayMs: 200, maxDelayMs: 1_000 },
      // Each token lives 30 s and names this user's PHID only.
      getToken: async () => {
        const token = await mintClientToken({ secret: SECRET, phids: [PHID], ttlSeconds: 30, sub: `call-${issued.length}` });
        issued.push(token);
        return token;
      },
    });
    clients.push(client);
    const messages: TidingsMessage[] = [];
    client.on('message', (m) => messages.push(m));
    await client.waitForOpen();
    await client.subscribe([PHID]);
    expect(issued).toHaveLength(1);

    let alive = [...nodes];
    const publisher = publishSteadily({ nodes: () => alive, phids: [PHID], ratePerSec: 40, max: 80, maxMs: 4_000 });
    await sleep(800);
    await victim.kill();
    alive = [survivor];
    await publisher.done;
    const keys = () => messages.map((m) => String(m.key));
    await until(() => publisher.acked.every((k) => keys().includes(k)), 'every acknowledged message');
    await sleep(300);
    expect(deliveryFaults(keys(), publisher.acked)).toEqual({ missing: [], duplicates: [] });
    expect(client.url).toBe(survivor.clientUrl);
    // One token per connection: the first, and at least one for the reconnect.
    expect(issued.length).toBeGreaterThanOrEqual(2);
    expect(new Set(issued).size).toBe(issued.length);
  });
});

it('a node without a token refuses the raw socket a client without getToken would open (the control)', async () => {
  nodes = await startBusNodes(1, {
    redis: { url: redis.url, keyPrefix: uniquePrefix('refresh-control') },
    config: { auth: { clientTokens: { mode: 'required', hmacSecret: SECRET } } },
  });
  await expect(subscribedSocket(nodes[0].clientUrl, ['PHID-X'])).rejects.toThrow(/401/);
});

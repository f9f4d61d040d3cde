/**
 * @tidings/client against real gateway processes joined by the Aphlict relay only (no Redis):
 * kill -9 of the node a client is on, while publishing; the client reconnects to the other
 * node by itself, replays, and its application sees every acknowledged message exactly once.
 */
import { sleep, type GatewayProcess } from '@tidings/testing';
import { connect, type ClientStatus, type TidingsClient, type TidingsMessage } from '@tidings/client';
import { deliveryFaults, keysOf, publishSteadily, startBusNodes, subscribedSocket } from '../support/redis-cluster';

let nodes: GatewayProcess[] = [];
const clients: TidingsClient[] = [];

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

describe.each(['socket.io', 'aphlict'] as const)('client over %s - failover between relay-only nodes', (transport) => {
  it('reconnects to another node after its node is killed, with nothing missed and nothing twice', async () => {
    nodes = await startBusNodes(2, { redis: {}, relay: true });
    const [victim, survivor] = nodes;
    const PHID = `PHID-FAILOVER-${transport}`;
    const client = connect([victim.clientUrl, survivor.clientUrl], {
      transport,
      instance: 'acme',
      reconnect: { initialDelayMs: 200, maxDelayMs: 1_000 },
    });
    clients.push(client);
    const messages: TidingsMessage[] = [];
    const statuses: ClientStatus[] = [];
    client.on('message', (m) => messages.push(m));
    client.on('status', (s) => statuses.push(s));
    await client.waitForOpen();
    await client.subscribe([PHID]);
    // A raw socket on the survivor as the control.
    const control = await subscribedSocket(survivor.clientUrl, [PHID], 'acme');

    let alive = [...nodes];
    const publisher = publishSteadily({ nodes: () => alive, phids: [PHID], ratePerSec: 40, max: 100, maxMs: 4_000, instance: 'acme' });
    await sleep(1_000);
    await victim.kill();
    alive = [survivor];
    await publisher.done;
    const acked = publisher.acked;
    expect(acked.length).toBeGreaterThan(70);

    const keys = () => messages.map((m) => String(m.key));
    await until(() => acked.every((k) => keys().includes(k)), 'every acknowledged message');
    await sleep(300);
    expect(deliveryFaults(keys(), acked)).toEqual({ missing: [], duplicates: [] });
    expect(client.url).toBe(survivor.clientUrl);
    expect(client.stats).toMatchObject({ reconnects: 1, replays: 1 });
    expect(statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ delayMs: 0 });
    // The control sits on the survivor, which has the victim's messages only through the
    // relay: a node answers its publisher only once its relay requests are written to the
    // sockets, so even what the victim acknowledged just before its kill -9 got there.
    expect(deliveryFaults(keysOf(control), acked)).toEqual({ missing: [], duplicates: [] });
    await control.close();
  });
});

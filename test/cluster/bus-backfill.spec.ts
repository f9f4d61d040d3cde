/**
 * Backfill after a bus outage of one node, fast and in one process: two real Gateway
 * objects (real HTTP and WebSocket servers on 127.0.0.1) share one history store and a
 * MemoryBus hub. While node B's bus is unreachable node A keeps accepting messages; when
 * B's bus comes back, B delivers them to its sockets from shared history, each once.
 * (The Redis path of the same logic runs in redis-restart.spec.ts.)
 */
import { MemoryHistory } from '@tidings/history';
import { MemoryBus, MemoryBusHub } from '@tidings/bus';
import { Gateway } from '@tidings/gateway';
import { resolveConfig, silentLogger } from '@tidings/protocol';
import { notification, post, sleep, type TestSocket } from '@tidings/testing';
import { io as ioClient } from 'socket.io-client';
import { deliveryFaults, keysOf, subscribedSocket } from '../support/redis-cluster';

const PHID = 'PHID-USER-backfill';
const config = () =>
  resolveConfig({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
  });

const gateways: Gateway[] = [];
const sockets: TestSocket[] = [];

afterEach(async () => {
  await Promise.all(sockets.splice(0).map((s) => s.close()));
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

async function pair(options: { bDownAtStart?: boolean } = {}) {
  const hub = new MemoryBusHub();
  const history = new MemoryHistory(); // one store both nodes share, as with Redis
  const busA = new MemoryBus({ hub, nodeId: 'a' });
  const busB = new MemoryBus({ hub, nodeId: 'b' });
  if (options.bDownAtStart) busB.setReachable(false);
  const a = await new Gateway({ config: config(), logger: silentLogger, history, bus: busA }).start();
  const b = await new Gateway({ config: config(), logger: silentLogger, history, bus: busB }).start();
  gateways.push(a, b);
  return { a, b, busB };
}

describe('bus backfill', () => {
  it('a node whose bus was down delivers what others accepted meanwhile, once', async () => {
    const { a, b, busB } = await pair();
    const onB = await subscribedSocket(b.url('client'), [PHID]);
    sockets.push(onB);
    const keys: string[] = [];
    const send = async () => {
      const m = notification([PHID]);
      expect((await post(a.url('admin'), m)).status).toBe(200);
      keys.push(m.key as string);
    };
    await send();
    await onB.waitFor(() => keysOf(onB).length === 1, 2_000, 'live message');
    busB.setReachable(false);
    await send();
    await send();
    await sleep(50);
    expect(keysOf(onB)).toHaveLength(1); // missed live
    busB.setReachable(true);
    await send();
    await onB.waitFor(() => keys.every((k) => keysOf(onB).includes(k)), 2_000, 'backfilled messages');
    await sleep(100);
    await onB.roundTrip();
    expect(deliveryFaults(keysOf(onB), keys)).toEqual({ missing: [], duplicates: [] });
  });

  it('a node that started with its bus down backfills once it connects', async () => {
    const { a, b, busB } = await pair({ bDownAtStart: true });
    expect(b.node.bus?.isConnected).toBe(false);
    const onB = await subscribedSocket(b.url('client'), [PHID]);
    sockets.push(onB);
    const m = notification([PHID]);
    expect((await post(a.url('admin'), m)).status).toBe(200);
    await sleep(50);
    expect(keysOf(onB)).toEqual([]);
    busB.setReachable(true);
    await onB.waitFor(() => keysOf(onB).includes(m.key as string), 2_000, 'backfilled message');
  });

  it('backfill reaches an instance that has only Socket.IO sockets on the node', async () => {
    const { a, b, busB } = await pair();
    const url = b.url('client').replace(/^ws/, 'http');
    const sio = ioClient(url, { path: '/socket.io/', transports: ['websocket'], auth: { instance: 'sio-only' }, reconnection: false });
    const got: string[] = [];
    sio.on('message', (m: { key: string }) => got.push(m.key));
    try {
      await new Promise<void>((resolve, reject) => {
        sio.once('connect', () => resolve());
        sio.once('connect_error', reject);
      });
      const ack = await sio.timeout(2_000).emitWithAck('subscribe', [PHID]);
      expect(ack).toEqual({ ok: true });
      busB.setReachable(false);
      const m = notification([PHID]);
      expect((await post(a.url('admin'), m, { instance: 'sio-only' })).status).toBe(200);
      await sleep(50);
      expect(got).toEqual([]);
      busB.setReachable(true);
      const deadline = Date.now() + 2_000;
      while (!got.includes(m.key as string) && Date.now() < deadline) await sleep(20);
      expect(got).toEqual([m.key]);
    } finally {
      sio.close();
    }
  });
});

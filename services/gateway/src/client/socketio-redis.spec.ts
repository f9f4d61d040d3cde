/**
 * Socket.IO's own cross-node features through @socket.io/redis-adapter (classic and sharded),
 * with two gateways in this process on one real Redis and no bus between them: the adapter
 * sees every node's sockets, and notifications do NOT travel through it (the node's bus or
 * relay carries them, so a publish is not sent to Redis twice nor delivered twice).
 */
import { io, type Socket } from 'socket.io-client';
import { resolveConfig, silentLogger } from '@tidings/protocol';
import { notification, post, sleep, startRedis, type RedisHandle } from '@tidings/testing';
import { Gateway } from '../gateway';

let redis: RedisHandle;
const sockets: Socket[] = [];
const gateways: Gateway[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

afterAll(async () => {
  if (redis.owned) await redis.stop();
});

/** A gateway whose Socket.IO uses Redis; history and bus stay in memory (none), on purpose. */
async function startGateway(prefix: string, sharded: boolean): Promise<Gateway> {
  const config = resolveConfig({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    redis: { url: redis.url, keyPrefix: prefix, sharded },
  });
  const gw = await new Gateway({ config, logger: silentLogger }).start();
  gateways.push(gw);
  return gw;
}

async function connectSio(gw: Gateway, instance?: string): Promise<{ socket: Socket; received: unknown[][] }> {
  const socket = io(gw.url('client').replace('ws', 'http'), {
    path: '/socket.io/',
    auth: instance ? { instance } : undefined,
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  sockets.push(socket);
  const received: unknown[][] = [];
  socket.onAny((...args) => received.push(args));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return { socket, received };
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe.each([false, true])('socket.io redis adapter (sharded: %s)', (sharded) => {
  it('serves fetchSockets and server-side emits to rooms across nodes, while notifications stay off the adapter', async () => {
    const prefix = `tidings-test:sio-adapter:${process.pid}:${Date.now()}:${sharded}:`;
    const [a, b] = [await startGateway(prefix, sharded), await startGateway(prefix, sharded)];
    for (const gw of [a, b]) {
      expect((await gw.status.report('default')).socketio).toMatchObject({ adapter: sharded ? 'redis-sharded' : 'redis' });
    }
    const onA = await connectSio(a);
    const onB = await connectSio(b, 'acme');
    const subscribed = (s: Socket, phids: string[]) => s.timeout(5_000).emitWithAck('subscribe', phids);
    expect(await subscribed(onA.socket, ['PHID-X'])).toEqual({ ok: true });
    expect(await subscribed(onB.socket, ['PHID-X'])).toEqual({ ok: true });

    // Node A sees node B's socket, with its data and rooms (instance~PHID).
    await until(async () => (await a.socketio!.io.fetchSockets()).length === 2, 'both sockets seen from node A');
    const seen = await a.socketio!.io.in('acme~PHID-X').fetchSockets();
    expect(seen.map((s) => s.data.instance)).toEqual(['acme']);
    expect(seen[0].id).toBe(onB.socket.id);

    // A server-side emit to a room reaches the socket on the other node through the adapter.
    a.socketio!.io.to('acme~PHID-X').emit('message', { type: 'server-side', subscribers: ['PHID-X'] });
    await until(() => onB.received.length === 1, 'the server-side emit on node B');
    expect(onB.received[0]).toEqual(['message', { type: 'server-side', subscribers: ['PHID-X'] }]);

    // A publish on node A reaches node A's socket only: without a bus, nothing crosses over the
    // adapter (with a bus, the bus carries it once and node B emits locally).
    const msg = notification(['PHID-X']);
    expect((await post(a.url('admin'), msg)).status).toBe(200);
    expect((await post(b.url('admin'), notification(['PHID-X']), { instance: 'acme' })).status).toBe(200);
    await until(() => onA.received.length === 1 && onB.received.length === 2, 'local deliveries');
    await sleep(200);
    expect(onA.received).toEqual([['message', { ...msg, touched: [a.node.fingerprint] }]]);
    expect(onB.received).toHaveLength(2);
  });
});
